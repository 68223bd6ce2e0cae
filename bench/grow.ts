#!/usr/bin/env node
// npm run bench:grow [-- --part rebalance|split|shards|all] [--mib 1024] [--objects 10000]
//
// Growing a cluster while it serves, in two parts, each on a fresh local cluster:
//
// - rebalance: load N MiB at R=3 onto five targets, then start a sixth it has never seen, and
//   time how long until `cluster rebalance` says balanced (the groups the newcomer entered
//   copied their data to their members and trimmed the copies on the members that left).
// - split: load N small objects under 8 groups, redeploy the gateway with GROUP_COUNT 16, and
//   time how long until every new group has taken in all its names and chunks (the groups'
//   `split` in the status).
// - shards: load N small objects under 4 shards, redeploy with SHARD_COUNT 8, and time how long
//   until every new shard has taken in its names and the old ones have dropped them (the
//   shards' `split` in the status).
//
// Meanwhile a client reads, writes and lists small objects; each part prints their latency
// before and during. Never run by CI.

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
type Latencies = { get: number[]; put: number[]; list: number[]; failed?: number };

/**
 * Small reads (of `small-0..reads-1`) and writes, and with `lists` a listing of 100 keys every
 * fourth round, one at a time, until `stop()` says so; their latencies, and how many failed
 * (`tolerate`: counted and retried after 50 ms, not thrown).
 */
function smallClient(send: Send, bucket: string, reads: number, o: { tolerate?: boolean; lists?: boolean } = {}): (stop: () => boolean) => Promise<Latencies> {
  const { tolerate = false, lists = false } = o;
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
    const list: number[] = [];
    const failed = { n: 0 };
    for (let i = 0; !stop(); i++) {
      await timed(get, failed, () => send("GET", `/${bucket}/small-${i % reads}`));
      const w = written++;
      await timed(put, failed, () => send("PUT", `/${bucket}/during-${w}`, pseudoRandom(4096, 20_000 + w)));
      if (lists && i % 4 === 0) await timed(list, failed, () => send("GET", `/${bucket}?list-type=2&max-keys=100&start-after=small-${i % reads}`));
    }
    return { get, put, list, failed: failed.n };
  };
}

function latencyLine(label: string, l: Latencies): void {
  if (l.get.length === 0 || l.put.length === 0) return log(`${label}: no request completed${l.failed ? ` (${l.failed} failed and retried)` : ""}`);
  const lists = l.list.length === 0 ? "" : `; LIST 100 keys p50 ${pct(l.list, 50).toFixed(1)} ms, p99 ${pct(l.list, 99).toFixed(1)} ms (${l.list.length})`;
  log(`${label}: GET 4 KiB p50 ${pct(l.get, 50).toFixed(1)} ms, p99 ${pct(l.get, 99).toFixed(1)} ms; PUT 4 KiB p50 ${pct(l.put, 50).toFixed(1)} ms, p99 ${pct(l.put, 99).toFixed(1)} ms (${l.get.length} of each${l.failed ? `, ${l.failed} failed and retried` : ""})${lists}`);
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

interface ShardSplitStatus {
  shard: number;
  split?: { takingFrom: number | null; rowsTaken: number; dropping: number };
  storage?: { bytes: number };
}

/** What differs between splitting groups and splitting shards. */
interface SplitKind<S> {
  name: string;
  bucket: string;
  /** Clients list too (what shards serve). */
  lists: boolean;
  pollMs: number;
  /** The count setting, its value before and after. */
  setting: "GROUP_COUNT" | "SHARD_COUNT";
  from: number;
  to: number;
  objectBytes: number;
  /** This kind's entries of the admin status. */
  of(status: { groups: GroupSplitStatus[]; shards: ShardSplitStatus[] }): S[];
  /** Clients measured "during" until this holds. */
  moved(s: S[]): boolean;
  /** The split is over. */
  over(s: S[]): boolean;
  /** The figures, once over; `movedAt` and `readyAt` on performance.now()'s clock. */
  report(o: { last: S[]; objects: number; readyAt: number; movedAt: number }): string;
  storage(s: S): { label: number; bytes: number };
}

const GROUPS: SplitKind<GroupSplitStatus> = {
  name: "groups",
  bucket: "split",
  lists: false,
  pollMs: 250,
  setting: "GROUP_COUNT",
  from: 8,
  to: 16,
  objectBytes: 4096,
  of: (st) => st.groups,
  moved: (gs) => gs.every((g) => !g.split || g.split.done),
  over: (gs) => gs.every((g) => !g.split || g.split.done),
  report({ last, objects }) {
    // The groups' own clocks: their walks begin as soon as the targets link to them, before the
    // local gateway answers clients again.
    const walks = last.flatMap((g) => (g.split?.startedAt && g.split.doneAt ? [{ start: g.split.startedAt, end: g.split.doneAt }] : []));
    const secs = (Math.max(...walks.map((w) => w.end)) - Math.min(...walks.map((w) => w.start))) / 1000;
    const longest = Math.max(...walks.map((w) => w.end - w.start)) / 1000;
    return `split 8 -> 16: ${walks.length} new groups took in every name and chunk of theirs from ${objects} names in ${secs.toFixed(2)} s from the first walk's start to the last one's end (longest walk ${longest.toFixed(2)} s): ${(objects / 2 / secs).toFixed(0)} names moved per second`;
  },
  storage: (g) => ({ label: g.group, bytes: g.storage?.bytes ?? 0 }),
};

const SHARDS: SplitKind<ShardSplitStatus> = {
  name: "shards",
  bucket: "shards",
  lists: true,
  pollMs: 100,
  setting: "SHARD_COUNT",
  from: 4,
  to: 8,
  objectBytes: 1024,
  of: (st) => st.shards,
  moved: (ss) => ss.every((s) => s.split?.takingFrom === null),
  over: (ss) => ss.every((s) => s.split?.takingFrom === null && s.split.dropping === 0),
  report({ last, objects, readyAt, movedAt }) {
    const rows = last.reduce((n, s) => n + (s.split?.rowsTaken ?? 0), 0);
    const secs = (movedAt - readyAt) / 1000;
    return `split 4 -> 8 shards: 4 new shards took in ${rows} rows of about ${objects / 2} names in ${secs.toFixed(2)} s from the gateway answering (${(rows / secs).toFixed(0)} rows/s); the old shards had dropped them ${((performance.now() - movedAt) / 1000).toFixed(2)} s later`;
  },
  storage: (s) => ({ label: s.shard, bytes: s.storage?.bytes ?? 0 }),
};

async function split<S>(kind: SplitKind<S>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `edgestore-bench-${kind.name}-`));
  const c = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: "3", [kind.setting]: String(kind.from) } });
  c.stopOnSignal();
  const objects = Number(values.objects);
  const bucket = kind.bucket;
  const client = { lists: kind.lists };
  log(`starting a local cluster (R=3, ${c.targetCount} targets, ${kind.from} ${kind.name}) in ${dir}...`);
  await c.start();
  let http = new MinimalHttp(c.endpoint);
  const status = async (): Promise<S[]> => {
    const r = await fetch(`${c.endpoint}/_admin/status.json`, { headers: { authorization: `Bearer ${c.adminToken}` } });
    if (!r.ok) throw new Error(`status: ${r.status} ${await r.text()}`);
    return kind.of((await r.json()) as { groups: GroupSplitStatus[]; shards: ShardSplitStatus[] });
  };
  try {
    let send = signedSend(http, c);
    await send("PUT", `/${bucket}`);
    let t = performance.now();
    // Four writers: loading is not what is measured.
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = next++; i < objects; i = next++) await send("PUT", `/${bucket}/small-${i}`, pseudoRandom(kind.objectBytes, 30_000 + i));
    }));
    log(`loaded ${objects} objects of ${kind.objectBytes} B in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const before = await status();
    const quietEnd = performance.now() + 5000;
    latencyLine("before", await smallClient(send, bucket, objects, client)(() => performance.now() > quietEnd));

    // A redeploy: the local gateway restarts with the new count (a real deploy does not stop).
    // The client starts as soon as the gateway answers, while the targets link again and the
    // split goes on; what fails while targets are not yet back is counted and retried.
    http.close();
    t = performance.now();
    await c.restartGateway({ [kind.setting]: String(kind.to) });
    http = new MinimalHttp(c.endpoint);
    send = signedSend(http, c);
    const readyAt = performance.now();
    log(`gateway redeployed with ${kind.to} ${kind.name} in ${((readyAt - t) / 1000).toFixed(1)} s (local restart)`);
    let movedAt = 0;
    const during = smallClient(send, bucket, objects, { ...client, tolerate: true })(() => movedAt > 0);
    await c.waitForTargets();
    let last: S[] = [];
    for (;;) {
      await sleep(kind.pollMs);
      last = await status();
      if (movedAt === 0 && kind.moved(last)) movedAt = performance.now();
      if (movedAt > 0 && kind.over(last)) break;
      if (performance.now() - readyAt > 60 * 60_000) throw new Error(`${kind.name} split not done after an hour`);
    }
    latencyLine("during", await during);
    log(kind.report({ last, objects, readyAt, movedAt }));
    const storage = (xs: S[]) => xs.map((x) => kind.storage(x)).map((x) => `${x.label}:${(x.bytes / MiB).toFixed(2)}`).join(" ");
    log(`${kind.name} storage (MiB) before: ${storage(before)}`);
    log(`${kind.name} storage (MiB) after:  ${storage(last)}`);
    const quietAfter = performance.now() + 5000;
    latencyLine("after", await smallClient(send, bucket, objects, client)(() => performance.now() > quietAfter));
  } finally {
    http.close();
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.part === "rebalance" || values.part === "all") await rebalance();
if (values.part === "split" || values.part === "all") await split(GROUPS);
if (values.part === "shards" || values.part === "all") await split(SHARDS);
