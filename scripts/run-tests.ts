#!/usr/bin/env node
// npm test: typecheck both halves (Worker and Node), then every test project (unit and workers
// inside workerd, integration against a real local cluster). The summary reporter prints the
// closing "N passed, N failed" line.

import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const env = { ...process.env, X_LOCAL_OBSERVABILITY: "false", WRANGLER_SEND_METRICS: "false" };

for (const project of ["tsconfig.workers.json", "tsconfig.node.json"]) {
  const tsc = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", project, "--noEmit"], { cwd: ROOT, stdio: "inherit", env });
  if (tsc.status !== 0) {
    process.stdout.write(`\ntypecheck of ${project} failed\n0 passed, 1 failed\n`);
    process.exit(1);
  }
}

const r = spawnSync(process.execPath, [join(ROOT, "node_modules", "vitest", "vitest.mjs"), "run", ...process.argv.slice(2)], { cwd: ROOT, stdio: "inherit", env });
process.exit(r.status ?? 1);
