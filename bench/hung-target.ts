#!/usr/bin/env node
// npm run bench:hung-target [-- --objects 20]
//
// Issue 6's "a slow or failed replica is skipped within a bounded timeout": PUT N objects of a
// few chunks at R=3, freeze one target (SIGSTOP: its sockets stay open, it answers nothing),
// and print each GET's latency while it hangs. Never run by CI.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { pct } from "./measure.ts";

const { values } = parseArgs({ options: { objects: { type: "string", default: "20" } } });
const N = Number(values.objects);

const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-hung-"));
const c = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: "3" } });
c.stopOnSignal();
await c.start();
const send = async (method: string, path: string, body?: Uint8Array): Promise<number> => {
  const url = `${c.endpoint}${path}`;
  const h = await signRequest({ method, url, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region });
  const r = await fetch(url, { method, headers: { ...h }, ...(body ? { body: body as Uint8Array<ArrayBuffer> } : {}) });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status}`);
  return r.status;
};
try {
  await send("PUT", "/hung");
  for (let i = 0; i < N; i++) await send("PUT", `/hung/o${i}`, pseudoRandom(400_000, i));
  c.freezeTargets([0], true);
  const ms: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await send("GET", `/hung/o${i}`);
    ms.push(performance.now() - t);
  }
  process.stdout.write(`GET of ${N} objects of 400 kB with one of six targets hung: p50 ${pct(ms, 50).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms; ${ms.filter((x) => x > 1000).length} took over 1 s\n`);
  c.freezeTargets([0], false);
} finally {
  await c.stop();
  rmSync(dir, { recursive: true, force: true });
}
