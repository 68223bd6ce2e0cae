#!/usr/bin/env node
// npm run bench:sessions [-- --mib 1024] [--sync-mib 64] [--replicas 3]
//
// Issue 5's figures: validating an N MiB object (time, and bytes that reach the client), and an
// editing session's sync of an edited object (bytes sent against its size, and time). Starts
// a fresh local cluster. Never run by CI.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { EdgestoreExtensions } from "../client/extensions.ts";
import { EditingSession } from "../client/session.ts";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";

const MiB = 1024 * 1024;
const { values } = parseArgs({ options: { mib: { type: "string", default: "1024" }, "sync-mib": { type: "string", default: "64" }, replicas: { type: "string", default: "3" } } });

async function put(c: LocalCluster, path: string, size: number, seed: number): Promise<void> {
  const piece = 4 * MiB;
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      if (sent === size) return ctrl.close();
      const p = pseudoRandom(Math.min(piece, size - sent), seed + sent / piece);
      sent += p.length;
      ctrl.enqueue(p);
    },
  });
  const url = `${c.endpoint}${path}`;
  const h = await signRequest({ method: "PUT", url, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region });
  const res = await fetch(url, { method: "PUT", body, headers: { ...h, "content-length": String(size) }, duplex: "half" } as RequestInit);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status}`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-sess-"));
  const c = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: values.replicas! } });
  process.stdout.write(`starting a local cluster (R=${values.replicas}, 6 targets) in ${dir}...\n`);
  c.stopOnSignal();
  await c.start();
  const creds = { endpoint: c.endpoint, region: c.region, accessKeyId: c.accessKey, secretAccessKey: c.secretKey };
  const ext = new EdgestoreExtensions(creds);
  try {
    const mk = await signRequest({ method: "PUT", url: `${c.endpoint}/bench`, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region });
    await fetch(`${c.endpoint}/bench`, { method: "PUT", headers: { ...mk } });

    const size = Number(values.mib) * MiB;
    let t = performance.now();
    await put(c, "/bench/big.bin", size, 5000);
    process.stdout.write(`PUT ${values.mib} MiB: ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
    t = performance.now();
    const v = await ext.validate({ bucket: "bench", key: "big.bin" });
    const ms = performance.now() - t;
    const bytes = JSON.stringify(v).length;
    process.stdout.write(`validate ${values.mib} MiB (R=${values.replicas}, ${v.items} items, ${v.copies.good} copies re-hashed on the targets): ${(ms / 1000).toFixed(1)} s, ${bytes} bytes of answer to the client, state ${v.state}\n`);

    const syncSize = Number(values["sync-mib"]) * MiB;
    const base = pseudoRandom(syncSize, 6000);
    // The base as an ordinary PUT: one body, chunked in one pass.
    const url = `${c.endpoint}/bench/doc.bin`;
    const h = await signRequest({ method: "PUT", url, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region });
    const res = await fetch(url, { method: "PUT", body: base as Uint8Array<ArrayBuffer>, headers: { ...h } });
    if (res.status !== 200) throw new Error(`PUT doc.bin: ${res.status}`);
    const bs = await EditingSession.open(creds);
    // Two edits: 4 KiB inserted near the start, 1 KiB overwritten in the middle.
    const edited = new Uint8Array(syncSize + 4096);
    edited.set(base.subarray(0, MiB), 0);
    edited.set(pseudoRandom(4096, 6001), MiB);
    edited.set(base.subarray(MiB), MiB + 4096);
    edited.set(pseudoRandom(1024, 6002), syncSize / 2);
    t = performance.now();
    const e = await bs.begin({ bucket: "bench", key: "doc.bin", mode: "replace" });
    const r = await e.sync(edited);
    await e.commit();
    process.stdout.write(
      `sync of an edited ${values["sync-mib"]} MiB object (4 KiB inserted, 1 KiB overwritten): sent ${(r.sent / MiB).toFixed(2)} MiB of ${(edited.length / MiB).toFixed(2)} (${((100 * r.sent) / edited.length).toFixed(1)}%), ${r.reused} of ${r.chunks} chunks by reference, ${((performance.now() - t) / 1000).toFixed(2)} s\n`,
    );
    await bs.close();
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
