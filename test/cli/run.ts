#!/usr/bin/env node
// npm run test:cli [-- --endpoint URL] [--client aws|rclone|s3cmd]: the CLI scenario against an
// already running cluster (npm start), for a look at what each client does by hand. CI runs the
// same scenario through test/integration/cli-clients.test.ts, on a cluster of its own.

import { parseArgs } from "node:util";
import { DEFAULTS } from "../../scripts/cluster.ts";
import { CLI_CLIENTS, type Endpoint } from "./clients.ts";
import { cliScenario } from "./scenario.ts";

const { values } = parseArgs({
  options: {
    endpoint: { type: "string", default: process.env.S3_ENDPOINT ?? `http://127.0.0.1:${DEFAULTS.port}` },
    client: { type: "string" },
  },
});
const ep: Endpoint = {
  url: values.endpoint!,
  region: DEFAULTS.region,
  accessKey: process.env.S3_ACCESS_KEY ?? DEFAULTS.accessKey,
  secretKey: process.env.S3_SECRET_KEY ?? DEFAULTS.secretKey,
};

let passed = 0;
let failed = 0;
for (const make of CLI_CLIENTS) {
  const client = make(ep);
  if (values.client && client.name !== values.client) continue;
  if ("missing" in client) {
    process.stdout.write(`- ${client.name}: not run, ${client.missing}\n`);
    continue;
  }
  process.stdout.write(`${client.name} (${client.version})\n`);
  const { steps, cleanup } = cliScenario(client, ep, `cli-${client.name}-${Date.now().toString(36)}`);
  try {
    for (const step of steps) {
      const t0 = performance.now();
      try {
        await step.run();
        passed++;
        process.stdout.write(`  ✓ ${step.name} (${Math.round(performance.now() - t0)} ms)\n`);
      } catch (e) {
        failed++;
        process.stdout.write(`  ✗ ${step.name}: ${e instanceof Error ? e.message : String(e)}\n`);
        break; // later steps build on this one
      }
    }
  } finally {
    cleanup();
  }
}
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed === 0 ? 0 : 1);
