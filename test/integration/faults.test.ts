// Fault injection (issue 6, "how it is shown") against the real local cluster, R = 3 on six
// targets, bounded in time: a target killed (SIGKILL) in the middle of a large PUT and of GETs,
// two of six killed at once, the gateway's workerd killed in the middle of writes and started
// again on its persisted state, a target cut off from the gateway (a TCP proxy that resets its
// connections, scripts/partition-proxy.ts) past the grace period and let back, a target's disk
// filling up (a small --capacity quota), and half the targets full. After each: every acknowledged object reads back byte-exact,
// nothing unacknowledged is half-visible, replica counts return to R, and once everything is
// deleted the targets' disks come back empty. Sizes are tens of MiB rather than the issue's
// 1 GiB so that CI stays within minutes; `npm run bench:rereplicate` measures the large case.
// Short timings (a 3 s hold, 1 s retention, 0.5 s grace, 1 s re-replication grace) stand in for
// the defaults of a day, an hour, ten minutes and a minute.

import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { PartitionProxy } from "../../scripts/partition-proxy.ts";
import { bodyBytes, chunkCopies, clusterForSuite, copyOn, eventually, manifestRows, pseudoRandom, sameBytes, writtenAt } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "faults";

clusterForSuite(
  { bucket: B, vars: { REREPLICATE_AFTER_SECONDS: "1", CHUNK_HOLD_SECONDS: "3", REMOVED_RETAIN_SECONDS: "1", RECLAIM_GRACE_SECONDS: "0.5" } },
  (c) => ({ cluster, s3 } = c),
);

/** What the test knows was acknowledged, by key. */
const acked = new Map<string, Uint8Array>();

async function put(key: string, body: Uint8Array): Promise<boolean> {
  try {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body }));
    acked.set(key, body);
    return true;
  } catch {
    return false;
  }
}

async function read(key: string): Promise<Uint8Array | null> {
  try {
    return await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body);
  } catch (e) {
    if ((e as { name?: string }).name === "NoSuchKey") return null;
    throw e;
  }
}

async function allAckedReadBack(): Promise<void> {
  for (const [key, body] of acked) expect(sameBytes((await read(key))!, body), key).toBe(true);
}

/** Copies of every chunk on the live targets' disks. */
function liveCopies(live: readonly number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const [chid, sizes] of chunkCopies(cluster, live)) out.set(chid, sizes.length);
  return out;
}

const all = [0, 1, 2, 3, 4, 5];

/**
 * Waits (bounded) until every chunk on the `live` targets has at least R = 3 copies there, and
 * otherwise fails naming each short chunk, where its copies are and since when, and what the
 * Durable Objects say of it: under CI's load a repair can take a while, and a failure should say
 * where to look.
 */
async function expectAtR(live: readonly number[]): Promise<void> {
  const short = () => [...liveCopies(live)].filter(([, n]) => n < 3).map(([chid]) => chid);
  if (await eventually(() => short().length === 0, { ms: 60_000 })) return;
  const chids = short();
  const where = chids.map((chid) => ({ chid, on: live.filter((i) => copyOn(cluster, i, chid)).map((i) => `target-${i} written ${writtenAt(cluster, i, chid)}`) }));
  expect({ short: where, rows: rowsAbout(cluster, chids) }).toEqual({ short: [], rows: [] });
}

/** Rows naming these chunks in any Durable Object's SQLite file under the gateway's state (diagnostics only). */
function rowsAbout(c: LocalCluster, chids: string[]): unknown[] {
  const out: unknown[] = [];
  const files = (readdirSync(join(c.dataDir, "wrangler"), { recursive: true }) as string[]).filter((f) => f.endsWith(".sqlite"));
  for (const f of files) {
    const db = new DatabaseSync(join(c.dataDir, "wrangler", f), { readOnly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => String(r.name));
      for (const t of tables) {
        const cols = db.prepare(`PRAGMA table_info("${t}")`).all().map((r) => String(r.name));
        for (const col of cols.filter((n) => n === "chid" || n === "vm_chid")) {
          for (const chid of chids) for (const row of db.prepare(`SELECT * FROM "${t}" WHERE ${col} = ?`).all(chid)) out.push({ file: f, table: t, row });
        }
      }
    } catch (e) {
      out.push({ file: f, error: String(e) });
    } finally {
      db.close();
    }
  }
  return out;
}

describe("fault injection", () => {
  it("survives a target killed in the middle of a large PUT and of GETs", async () => {
    const stored = pseudoRandom(16 * 2 ** 20, 8001);
    expect(await put("stored.bin", stored)).toBe(true);
    const big = pseudoRandom(48 * 2 ** 20, 8002);
    const putting = put("big.bin", big);
    const reading = Promise.all([0, 1, 2].map(() => read("stored.bin")));
    // Into the middle of both: a fraction of the time the 48 MiB PUT and the reads take.
    await sleep(300);
    await cluster.killTarget(2);
    const ok = await putting;
    // The GETs under way when a holder died finish from the other holders, byte-exact.
    for (const r of await reading) expect(sameBytes(r!, stored)).toBe(true);
    // Acknowledged: readable and exact. Not acknowledged: absent, or (committed just as it failed) exact.
    const seen = await read("big.bin");
    if (ok) expect(sameBytes(seen!, big)).toBe(true);
    else if (seen) expect(sameBytes(seen, big)).toBe(true);
    if (seen && !ok) acked.set("big.bin", big);
    // R again on the five live targets, past the 1 s grace period.
    const live = all.filter((i) => i !== 2);
    await expectAtR(live);
    await allAckedReadBack();
    cluster.startTarget(2);
    await cluster.waitForTargets();
  });

  it("loses nothing acknowledged when two of six targets are killed at once", async () => {
    for (let i = 0; i < 6; i++) expect(await put(`two-${i}`, pseudoRandom(700_000, 8100 + i))).toBe(true);
    await Promise.all([cluster.killTarget(0), cluster.killTarget(4)]);
    await allAckedReadBack();
    // A group that lost two of its four members cannot place R = 3 on its two left (members are
    // not replaced yet: docs/durability.md); R is back once the two return with their copies.
    cluster.startTarget(0);
    cluster.startTarget(4);
    await cluster.waitForTargets();
    await expectAtR(all);
    await allAckedReadBack();
  });

  it("keeps every acknowledged write, and shows no half-written one, when the gateway is killed mid-write and restarted", async () => {
    const bodies = Array.from({ length: 8 }, (_, i) => pseudoRandom(3 * 2 ** 20, 8200 + i));
    const writes = bodies.map((b, i) => put(`crash-${i}`, b));
    // Into the middle of the writes: a fraction of the time 24 MiB of them take.
    await sleep(400);
    await cluster.killGateway();
    const results = await Promise.all(writes);
    await cluster.startGateway();
    await cluster.waitForTargets();
    for (let i = 0; i < bodies.length; i++) {
      const seen = await read(`crash-${i}`);
      if (results[i]) expect(sameBytes(seen!, bodies[i]!)).toBe(true);
      else if (seen) {
        expect(sameBytes(seen, bodies[i]!)).toBe(true);
        acked.set(`crash-${i}`, bodies[i]!);
      }
    }
    await allAckedReadBack();
  });

  it("keeps everything through a target cut off past the grace period, and has it drop on return what was deleted meanwhile", async () => {
    const proxy = await PartitionProxy.to(cluster.endpoint);
    try {
      await cluster.stopTarget(5);
      cluster.startTarget(5, { gateway: proxy.url });
      await cluster.waitForTargets();
      const before = new Set(chunkCopies(cluster).keys());
      expect(await put("cut-doomed", pseudoRandom(2_000_000, 8300))).toBe(true);
      const doomed = [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
      for (let i = 1; i < 4; i++) expect(await put(`cut-${i}`, pseudoRandom(600_000, 8300 + i))).toBe(true);
      // Its copies of the object to be deleted while it is away.
      const heldThere = doomed.filter((c) => chunkCopies(cluster, [5]).has(c));
      expect(heldThere.length).toBeGreaterThan(0);
      proxy.cut();
      // Both ends see the connections go; past the 1 s grace the groups restore R on the five left.
      const others = all.filter((i) => i !== 5);
      await expectAtR(others);
      // Writes and deletes go on meanwhile.
      expect(await put("cut-new", pseudoRandom(500_000, 8310))).toBe(true);
      await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "cut-doomed" }));
      acked.delete("cut-doomed");
      expect(await eventually(() => doomed.every((c) => !chunkCopies(cluster, others).has(c)))).toBe(true);
      expect(heldThere.every((c) => chunkCopies(cluster, [5]).has(c))).toBe(true);
      proxy.heal();
      await cluster.waitForTargets();
      await allAckedReadBack();
      // The deletions it missed reach it as it reconnects.
      expect(await eventually(() => heldThere.every((c) => !chunkCopies(cluster, [5]).has(c)))).toBe(true);
      expect(await read("cut-doomed")).toBeNull();
    } finally {
      await cluster.stopTarget(5);
      await proxy.close();
      cluster.startTarget(5);
      await cluster.waitForTargets();
    }
  });

  it("places writes on the other members once a target's disk is full, and loses nothing", async () => {
    const bytesOn = (i: number) => [...chunkCopies(cluster, [i]).values()].flat().reduce((a, b) => a + b, 0);
    const used = bytesOn(3);
    // A quota (--capacity) just 1 MiB above what it holds plus the 64 MiB a target keeps in reserve.
    await cluster.stopTarget(3);
    cluster.startTarget(3, { args: ["--capacity", String(used + 64 * 2 ** 20 + 2 ** 20)] });
    try {
      await cluster.waitForTargets();
      for (let i = 0; i < 10; i++) expect(await put(`full-${i}`, pseudoRandom(1_500_000, 8400 + i))).toBe(true);
      // It filled up (taking at most its quota and what was already accepted), and the rest went
      // elsewhere at R (items of the earlier faults still being copied back get there too).
      expect(bytesOn(3) - used).toBeLessThan(3 * 2 ** 20);
      await expectAtR(all);
      await allAckedReadBack();
      // Half the targets full: groups left with fewer than R members that accept refuse the
      // write as a whole, with a 503 that says why; nothing of it is visible.
      for (const i of [3, 4, 5]) {
        await cluster.stopTarget(i);
        cluster.startTarget(i, { args: ["--capacity", "1"] });
      }
      await cluster.waitForTargets();
      let refused = 0;
      for (const [key, size] of [["half-full-small", 100], ["half-full-large", 1_000_000]] as const) {
        const body = pseudoRandom(size, 8450 + size);
        try {
          await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body }));
          acked.set(key, body);
        } catch (e) {
          refused++;
          const err = e as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
          expect([err.name, err.$metadata?.httpStatusCode]).toEqual(["ServiceUnavailable", 503]);
          expect(err.message).toMatch(/refused: only \d+ bytes free/);
          expect(await read(key)).toBeNull();
        }
      }
      expect(refused).toBeGreaterThan(0);
      await allAckedReadBack();
    } finally {
      for (const i of [3, 4, 5]) {
        await cluster.stopTarget(i);
        cluster.startTarget(i);
      }
      await cluster.waitForTargets();
    }
  });

  it("gives every byte back once everything written through the faults is deleted", async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: B }));
    for (const o of listed.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: B, Key: o.Key! }));
    expect(await read("stored.bin")).toBeNull();
    // Past retention, grace and the holds of chunks that writes cut off by the faults left.
    const empty = await eventually(() => chunkCopies(cluster).size === 0 && manifestRows(cluster) === 0, { ms: 60_000 });
    // Which chunk is left on which target (and since when), and what the Durable Objects still
    // say about it, so that a failure says where to look.
    const left = all.flatMap((i) =>
      [...chunkCopies(cluster, [i]).keys()].map((chid) => `${chid}@target-${i} written ${writtenAt(cluster, i, chid)}`),
    );
    if (left.length > 0) console.log(JSON.stringify({ left, rows: rowsAbout(cluster, [...chunkCopies(cluster).keys()]) }, null, 1));
    expect({ chunks: chunkCopies(cluster).size, manifests: manifestRows(cluster), left }).toEqual({ chunks: 0, manifests: 0, left: [] });
    expect(empty).toBe(true);
  });
});
