// `npm run proxy`: the co-deployed S3 proxy (server.ts) as a long-running process. Settings
// from flags, else the environment; one JSON object per line on stdout.
//
//   AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… EDGESTORE_ENDPOINT=https://cluster.example \
//   EDGESTORE_PROXY_ACCESS_KEY_ID=local EDGESTORE_PROXY_SECRET_ACCESS_KEY=… npm run proxy

import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { DEFAULT_MIN_SESSION_BYTES, jsonLines, S3Proxy } from "./server.ts";

const USAGE = `usage: node client/proxy/main.ts [options]

  --listen HOST:PORT           EDGESTORE_PROXY_LISTEN (default 127.0.0.1:9000)
  --endpoint URL               EDGESTORE_ENDPOINT: the cluster
  --access-key-id ID           AWS_ACCESS_KEY_ID: the proxy's key pair on the cluster
  --secret-access-key KEY      AWS_SECRET_ACCESS_KEY
  --region R                   AWS_REGION (default us-east-1)
  --local-access-key-id ID     EDGESTORE_PROXY_ACCESS_KEY_ID: the key pair local clients sign with
  --local-secret-access-key K  EDGESTORE_PROXY_SECRET_ACCESS_KEY
  --local-region R             EDGESTORE_PROXY_REGION (default: --region)
  --trust-loopback             accept unsigned (or any) requests instead; loopback addresses only
  --min-session-bytes N        PUTs smaller than this are forwarded as they are (default ${DEFAULT_MIN_SESSION_BYTES})
  --window N                   probes in flight per PUT (default 16; 1: never probe ahead)
`;

function fail(message: string): never {
  process.stderr.write(`proxy: ${message}\n\n${USAGE}`);
  process.exit(2);
}

const { values: f } = (() => {
  try {
    return parseArgs({
      options: {
        listen: { type: "string" },
        endpoint: { type: "string" },
        "access-key-id": { type: "string" },
        "secret-access-key": { type: "string" },
        region: { type: "string" },
        "local-access-key-id": { type: "string" },
        "local-secret-access-key": { type: "string" },
        "local-region": { type: "string" },
        "trust-loopback": { type: "boolean" },
        "min-session-bytes": { type: "string" },
        window: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    });
  } catch (e) {
    return fail((e as Error).message);
  }
})();
if (f.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const env = process.env;
const listen = f.listen ?? env.EDGESTORE_PROXY_LISTEN ?? "127.0.0.1:9000";
const m = /^(.*):(\d+)$/.exec(listen);
if (!m) fail(`--listen is HOST:PORT, not ${listen}`);
const host = m[1]!.replace(/^\[(.*)\]$/, "$1");
const port = Number(m[2]);
const endpoint = f.endpoint ?? env.EDGESTORE_ENDPOINT;
const accessKeyId = f["access-key-id"] ?? env.AWS_ACCESS_KEY_ID;
const secretAccessKey = f["secret-access-key"] ?? env.AWS_SECRET_ACCESS_KEY;
const region = f.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1";
if (!endpoint || !accessKeyId || !secretAccessKey) fail("the cluster: --endpoint, --access-key-id and --secret-access-key (or EDGESTORE_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
const localId = f["local-access-key-id"] ?? env.EDGESTORE_PROXY_ACCESS_KEY_ID;
const localSecret = f["local-secret-access-key"] ?? env.EDGESTORE_PROXY_SECRET_ACCESS_KEY;
const loopback = host === "localhost" || (isIP(host) === 4 && host.startsWith("127.")) || host === "::1";
if (!localId || !localSecret) {
  if (!f["trust-loopback"]) fail("local clients: --local-access-key-id and --local-secret-access-key, or --trust-loopback");
  if (!loopback) fail(`--trust-loopback only on a loopback address, not ${host}`);
}
const whole = (name: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) fail(`--${name} is a whole number, not ${v}`);
  return Number(v);
};

const proxy = new S3Proxy({
  cluster: { endpoint, accessKeyId, secretAccessKey, region },
  local: localId && localSecret ? { accessKeyId: localId, secretAccessKey: localSecret, region: f["local-region"] ?? env.EDGESTORE_PROXY_REGION ?? region } : null,
  minSessionBytes: whole("min-session-bytes", f["min-session-bytes"]),
  window: whole("window", f.window),
});

try {
  await proxy.listen(port, host);
} catch (e) {
  jsonLines({ level: "error", event: "listen-failed", message: (e as Error).message });
  process.exit(1);
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    jsonLines({ level: "info", event: "stopping", signal: sig });
    void proxy.close().then(() => process.exit(0));
  });
}
