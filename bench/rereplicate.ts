#!/usr/bin/env node
// npm run bench:rereplicate [-- --mib 1024] [--grace 1]
//
// Issue 6's re-replication figure: load N MiB at R=3 on a fresh local cluster, kill one target
// (SIGKILL), and time how long until every chunk it held has three good copies on the live
// targets again, counted on their disks; meanwhile a client reads small objects and the bench
// prints their latency before and during the repair. Never run by CI.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Chid } from "../common/ids.ts";
import { chunkOnDisk, chunksOnDisk, type ChunkOnDisk } from "../node-target/packs/on-disk.ts";
import { LocalCluster, sleep } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { MinimalHttp, signedSend } from "./http-client.ts";
import { pct } from "./measure.ts";

const { values } = parseArgs({ options: { mib: { type: "string", default: "1024" }, grace: { type: "string", default: "1" } } });
const MiB = 1024 * 1024;

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

function chunksOf(c: LocalCluster, t: number): ChunkOnDisk[] {
  return chunksOnDisk(c.targets[t]!.dataDir);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-rerep-"));
  const c = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: "3", REREPLICATE_AFTER_SECONDS: values.grace! } });
  c.stopOnSignal();
  log(`starting a local cluster (R=3, 6 targets, grace ${values.grace} s) in ${dir}...`);
  await c.start();
  const http = new MinimalHttp(c.endpoint);
  const send = signedSend(http, c);
  try {
    await send("PUT", "/rerep");
    const size = Number(values.mib) * MiB;
    const piece = 16 * MiB;
    for (let at = 0, i = 0; at < size; at += piece, i++) await send("PUT", `/rerep/big-${i}`, pseudoRandom(Math.min(piece, size - at), 100 + i));
    for (let i = 0; i < 200; i++) await send("PUT", `/rerep/small-${i}`, pseudoRandom(4096, 10_000 + i));
    const lostCopies = chunksOf(c, 0);
    const lost = lostCopies.map((x) => x.chid);
    const held = new Set(lost);
    const lostBytes = lostCopies.reduce((n, x) => n + x.length, 0);
    log(`loaded ${values.mib} MiB; target 0 holds ${lost.length} chunks, ${(lostBytes / MiB).toFixed(0)} MiB`);

    const latencies = async (ms: number): Promise<number[]> => {
      const out: number[] = [];
      const end = performance.now() + ms;
      for (let i = 0; performance.now() < end; i++) {
        const t = performance.now();
        await send("GET", `/rerep/small-${i % 200}`);
        out.push(performance.now() - t);
      }
      return out;
    };
    const quiet = await latencies(3000);
    log(`GET 4 KiB before: p50 ${pct(quiet, 50).toFixed(1)} ms, p99 ${pct(quiet, 99).toFixed(1)} ms (${quiet.length} reads)`);

    await c.killTarget(0);
    const t0 = performance.now();
    const copies = (chid: string) => [1, 2, 3, 4, 5].filter((t) => chunkOnDisk(c.targets[t]!.dataDir, chid as Chid) !== null).length;
    let during: number[] = [];
    let restoredAt = 0;
    const reader = (async () => {
      while (restoredAt === 0) during = during.concat(await latencies(500));
    })();
    for (;;) {
      await sleep(250);
      const short = [...held].filter((chid) => copies(chid) < 3);
      if (short.length === 0) {
        restoredAt = performance.now();
        break;
      }
      if (performance.now() - t0 > 30 * 60_000) throw new Error(`${short.length} chunks still short after 30 min`);
    }
    await reader;
    const secs = (restoredAt - t0) / 1000;
    log(`restored R=3 for the lost target's ${lost.length} chunks (${(lostBytes / MiB).toFixed(0)} MiB) in ${secs.toFixed(1)} s after the kill, grace ${values.grace} s included: ${(lostBytes / MiB / Math.max(0.001, secs - Number(values.grace))).toFixed(1)} MiB/s of repair`);
    log(`GET 4 KiB during: p50 ${pct(during, 50).toFixed(1)} ms, p99 ${pct(during, 99).toFixed(1)} ms (${during.length} reads)`);
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
