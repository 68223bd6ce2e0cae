#!/usr/bin/env node
// npm run bench:grow [-- --part rebalance|split|all] [--mib 1024] [--objects 10000]
//
// Growing a cluster while it serves, in two parts, each on a fresh local cluster:
//
// - rebalance: load N MiB at R=3 onto five targets, then start a sixth it has never seen, and
//   time how long until `cluster rebalance` says balanced (the groups the newcomer entered
//   copied their data to their members and trimmed the copies on the members that left).
// - split: load N small objects under 8 groups, redeploy the gateway with GROUP_COUNT 16, and
//   time how long until every new group has taken in all its names and chunks (the groups'
//   `split` in the status).
//
// Meanwhile a client reads and writes small objects; each part prints their latency before and
// during. Never run by CI.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LocalCluster, sleep } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { MinimalHttp, signedSend } from "./http-client.ts";
import { pct } from "./measure.ts";

const { values } = parseArgs({ options: { part: { type: "string", default: "all" }, mib: { type: "string", default: "1024" }, objects: { type: "string", default: "10000" } } });
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

type Send = ReturnType<typeof signedSend>;
type Latencies = { get: number[]; put: number[]; failed?: number };

/**
 * Small reads (of `small-0..reads-1`) and writes, one at a time, until `stop()` says so; their
 * latencies, and how many failed (`tolerate`: counted and retried after 50 ms, not thrown).
 */
function smallClient(send: Send, bucket: string, reads: number, tolerate = false): (stop: () => boolean) => Promise<Latencies> {
  let written = 0;
  const timed = async (out: number[], fails: { n: number }, op: () => Promise<unknown>) => {
    const s = performance.now();
    try {
      await op();
      out.push(performance.now() - s);
    } catch (e) {
      if (!tolerate) throw e;
      fails.n++;
      await sleep(50);
    }
  };
  return async (stop) => {
    const get: number[] = [];
    const put: number[] = [];
    const failed = { n: 0 };
    for (let i = 0; !stop(); i++) {
      await timed(get, failed, () => send("GET", `/${bucket}/small-${i % reads}`));
      const w = written++;
      await timed(put, failed, () => send("PUT", `/${bucket}/during-${w}`, pseudoRandom(4096, 20_000 + w)));
    }
    return { get, put, failed: failed.n };
  };
}

function latencyLine(label: string, l: Latencies): void {
  if (l.get.length === 0 || l.put.length === 0) return log(`${label}: no request completed${l.failed ? ` (${l.failed} failed and retried)` : ""}`);
  log(`${label}: GET 4 KiB p50 ${pct(l.get, 50).toFixed(1)} ms, p99 ${pct(l.get, 99).toFixed(1)} ms; PUT 4 KiB p50 ${pct(l.put, 50).toFixed(1)} ms, p99 ${pct(l.put, 99).toFixed(1)} ms (${l.get.length} of each${l.failed ? `, ${l.failed} failed and retried` : ""})`);
}

async function rebalance(): Promise<void> {
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

    const client = smallClient(send, "grow", 200);
    const line = latencyLine;
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
  } finally {
    http.close();
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface GroupSplitStatus {
  group: number;
  split?: { done: boolean; stepsDone: number; steps: number; startedAt: number | null; doneAt: number | null } | null;
  storage?: { bytes: number };
}

async function split(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-split-"));
  const c = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: "3", GROUP_COUNT: "8" } });
  c.stopOnSignal();
  const objects = Number(values.objects);
  log(`starting a local cluster (R=3, ${c.targetCount} targets, 8 groups) in ${dir}...`);
  await c.start();
  let http = new MinimalHttp(c.endpoint);
  const groups = async (): Promise<GroupSplitStatus[]> => {
    const r = await fetch(`${c.endpoint}/_admin/status.json`, { headers: { authorization: `Bearer ${c.adminToken}` } });
    if (!r.ok) throw new Error(`status: ${r.status} ${await r.text()}`);
    return ((await r.json()) as { groups: GroupSplitStatus[] }).groups;
  };
  try {
    let send = signedSend(http, c);
    await send("PUT", "/split");
    let t = performance.now();
    // Four writers: loading is not what is measured.
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = next++; i < objects; i = next++) await send("PUT", `/split/small-${i}`, pseudoRandom(4096, 30_000 + i));
    }));
    log(`loaded ${objects} objects of 4 KiB in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const before = await groups();
    const quietEnd = performance.now() + 5000;
    latencyLine("before", await smallClient(send, "split", objects)(() => performance.now() > quietEnd));

    // A redeploy: the local gateway restarts with the new count (a real deploy does not stop).
    // The client starts as soon as the gateway answers, while the targets link again and the
    // new groups walk; what fails while targets are not yet back is counted and retried.
    http.close();
    t = performance.now();
    await c.restartGateway({ GROUP_COUNT: "16" });
    http = new MinimalHttp(c.endpoint);
    send = signedSend(http, c);
    const ready = performance.now();
    log(`gateway redeployed with 16 groups in ${((ready - t) / 1000).toFixed(1)} s (local restart)`);
    let done = false;
    const during = smallClient(send, "split", objects, true)(() => done);
    await c.waitForTargets();
    let last: GroupSplitStatus[] = [];
    while (!done) {
      await sleep(250);
      last = await groups();
      done = last.every((g) => !g.split || g.split.done);
      if (performance.now() - ready > 60 * 60_000) throw new Error("split not done after an hour");
    }
    latencyLine("during", await during);
    // The groups' own clocks: their walks begin as soon as the targets link to them, before the
    // local gateway answers clients again.
    const walks = last.flatMap((g) => (g.split?.startedAt && g.split.doneAt ? [{ start: g.split.startedAt, end: g.split.doneAt }] : []));
    const secs = (Math.max(...walks.map((w) => w.end)) - Math.min(...walks.map((w) => w.start))) / 1000;
    const longest = Math.max(...walks.map((w) => w.end - w.start)) / 1000;
    log(`split 8 -> 16: ${walks.length} new groups took in every name and chunk of theirs from ${objects} names in ${secs.toFixed(2)} s from the first walk's start to the last one's end (longest walk ${longest.toFixed(2)} s): ${(objects / 2 / secs).toFixed(0)} names moved per second`);
    const storage = (gs: GroupSplitStatus[]) => gs.map((g) => `${g.group}:${((g.storage?.bytes ?? 0) / MiB).toFixed(1)}`).join(" ");
    log(`group storage (MiB) before: ${storage(before)}`);
    log(`group storage (MiB) after:  ${storage(last)}`);
    const quietAfter = performance.now() + 5000;
    latencyLine("after", await smallClient(send, "split", objects)(() => performance.now() > quietAfter));
  } finally {
    http.close();
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.part === "rebalance" || values.part === "all") await rebalance();
if (values.part === "split" || values.part === "all") await split();
