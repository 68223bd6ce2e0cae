#!/usr/bin/env node
// npm run bench:grow [-- --mib 1024]
//
// Growing a cluster while it serves: load N MiB at R=3 onto five targets of a fresh local
// cluster, then start a sixth it has never seen, and time how long until `cluster rebalance`
// says balanced (the groups the newcomer entered copied their data to their members and trimmed
// the copies on the members that left). Meanwhile a client reads and writes small objects; the
// bench prints their latency before and during the move, what the newcomer stores at the end,
// and how many bytes moved per second. Never run by CI.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LocalCluster, sleep } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { MinimalHttp, signedSend } from "./http-client.ts";
import { pct } from "./measure.ts";

const { values } = parseArgs({ options: { mib: { type: "string", default: "1024" } } });
const MiB = 1024 * 1024;
const NEWCOMER = 5;

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

interface Rebalance {
  balanced: boolean;
  targets: { location: string; bytes: number; places: number; share: number }[];
  moving: { group: number }[];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-grow-"));
  const c = new LocalCluster({ port: await freePort(), dataDir: dir, initialTargets: NEWCOMER, vars: { REPLICAS: "3" } });
  c.stopOnSignal();
  log(`starting a local cluster (R=3, ${NEWCOMER} targets of ${c.targetCount}) in ${dir}...`);
  await c.start();
  const http = new MinimalHttp(c.endpoint);
  const send = signedSend(http, c);
  const admin = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${c.endpoint}/_admin/${path}`, { headers: { authorization: `Bearer ${c.adminToken}` } });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  };
  try {
    await send("PUT", "/grow");
    const size = Number(values.mib) * MiB;
    const piece = 16 * MiB;
    let t = performance.now();
    for (let at = 0, i = 0; at < size; at += piece, i++) await send("PUT", `/grow/big-${i}`, pseudoRandom(Math.min(piece, size - at), 100 + i));
    for (let i = 0; i < 200; i++) await send("PUT", `/grow/small-${i}`, pseudoRandom(4096, 10_000 + i));
    log(`loaded ${values.mib} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    // The cluster knows the targets hold data once their heartbeats say so.
    for (let i = 0; i < 100 && (await admin<{ targets: { bytes: number }[] }>("status.json")).targets.some((x) => x.bytes === 0); i++) await sleep(100);

    /** Small reads and writes, one at a time, until `stop()` says so; their latencies. */
    let written = 0;
    const client = async (stop: () => boolean): Promise<{ get: number[]; put: number[] }> => {
      const get: number[] = [];
      const put: number[] = [];
      for (let i = 0; !stop(); i++) {
        let s = performance.now();
        await send("GET", `/grow/small-${i % 200}`);
        get.push(performance.now() - s);
        s = performance.now();
        const w = written++;
        await send("PUT", `/grow/during-${w}`, pseudoRandom(4096, 20_000 + w));
        put.push(performance.now() - s);
      }
      return { get, put };
    };
    const line = (label: string, l: { get: number[]; put: number[] }) =>
      log(`${label}: GET 4 KiB p50 ${pct(l.get, 50).toFixed(1)} ms, p99 ${pct(l.get, 99).toFixed(1)} ms; PUT 4 KiB p50 ${pct(l.put, 50).toFixed(1)} ms, p99 ${pct(l.put, 99).toFixed(1)} ms (${l.get.length} of each)`);
    const quietEnd = performance.now() + 5000;
    line("before", await client(() => performance.now() > quietEnd));

    t = performance.now();
    c.startTarget(NEWCOMER);
    let balanced = false;
    const during = client(() => balanced);
    let last: Rebalance | null = null;
    let movingSeen = 0;
    while (!balanced) {
      await sleep(500);
      last = await admin<Rebalance>("rebalance");
      movingSeen = Math.max(movingSeen, last.moving.length);
      const joined = last.targets.some((x) => x.location === c.targets[NEWCOMER]!.location && x.places > 0);
      balanced = joined && last.balanced;
      if (performance.now() - t > 60 * 60_000) throw new Error("not balanced after an hour");
    }
    const secs = (performance.now() - t) / 1000;
    line("during", await during);
    const newcomer = last!.targets.find((x) => x.location === c.targets[NEWCOMER]!.location)!;
    log(`balanced ${secs.toFixed(1)} s after the new target started (its start and first heartbeat included): it entered ${newcomer.places} of 8 groups (share ${newcomer.share}), ${movingSeen} group(s) moved data`);
    log(`the newcomer stores ${(newcomer.bytes / MiB).toFixed(0)} MiB: ${(newcomer.bytes / MiB / secs).toFixed(1)} MiB/s onto it, copies trimmed off the members it replaced included`);
    for (const x of last!.targets) log(`  ${x.location}  ${x.places} / ${x.share} places  ${(x.bytes / MiB).toFixed(0)} MiB`);
    log("splitting groups (8 -> 16) while serving: not measured, groups cannot yet be split (docs/deploy.md)");
  } finally {
    http.close();
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
