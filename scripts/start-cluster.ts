#!/usr/bin/env node
// npm start: the whole local cluster in one command. State lives under .data/ (git-ignored),
// so a restart finds every object again. Ctrl-C stops every process this started.
// `npm run dev` (this with --wrangler-dev) runs the gateway under `wrangler dev` instead of
// directly on Miniflare: hot reload and the DevTools inspector, at the cost of wrangler's
// request proxy (see scripts/gateway-host.ts). Both keep their state in the same place.

import { DEFAULTS, LocalCluster } from "./cluster.ts";

const port = Number(process.env.PORT ?? DEFAULTS.port);
const cluster = new LocalCluster({
  port,
  dataDir: process.env.DATA_DIR ?? ".data",
  accessKey: process.env.S3_ACCESS_KEY ?? DEFAULTS.accessKey,
  secretKey: process.env.S3_SECRET_KEY ?? DEFAULTS.secretKey,
  joinSecret: process.env.JOIN_SECRET ?? DEFAULTS.joinSecret,
  adminToken: process.env.ADMIN_TOKEN ?? DEFAULTS.adminToken,
  echo: process.env.CLUSTER_LOGS === "1",
  runtime: process.argv.includes("--wrangler-dev") ? "wrangler-dev" : "miniflare",
});

let stopping = false;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\nstopping the cluster...\n");
  await cluster.stop();
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

try {
  process.stdout.write(`starting gateway on ${cluster.endpoint} and ${cluster.targets.length} node-targets...\n`);
  await cluster.start();
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  await shutdown(1);
}

process.stdout.write(`
edgestore is running.

  S3 endpoint   ${cluster.endpoint}   (path-style)
  region        ${cluster.region}
  access key    ${cluster.accessKey}
  secret key    ${cluster.secretKey}      (tenant "default")
  admin token   ${cluster.adminToken}   (npm run admin -- --help)
  status page   ${cluster.endpoint}/_admin/status   (the page asks for the admin token)

  targets       ${cluster.targets.map((t) => `${t.location}  (${t.dataDir})`).join("\n                ")}

Try it:
  export AWS_ACCESS_KEY_ID=${cluster.accessKey} AWS_SECRET_ACCESS_KEY=${cluster.secretKey} AWS_DEFAULT_REGION=${cluster.region}
  aws --endpoint-url ${cluster.endpoint} s3 mb s3://demo
  aws --endpoint-url ${cluster.endpoint} s3 cp ./README.md s3://demo/
  EDGESTORE_ADMIN_TOKEN=${cluster.adminToken} npm run admin -- keys create default

Ctrl-C stops everything; state is kept in ${process.env.DATA_DIR ?? ".data"}/.
`);
