// A shard split's hand-over between real shard Durable Objects (workers/manifest-shard/split.ts):
// the cluster's history says 2 then 4 shards, so names of shard 3 were in shard 1. Shard 1
// holds rows of both parts, some from before rows kept their name's hash. Shard 3 answers
// through shard 1 for its names alone, forwards what groups send it, takes its rows in a page
// at a time with a batch arriving between pages, and then answers alone while shard 1 drops the
// rows it handed on and refuses records and questions about them. Each step is its alarm, run
// by hand. The whole path on a real cluster is test/integration/shard-split.test.ts.

import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { formatUvid, groupOf, nhidOf, type Chid, type Uvid } from "../../common/ids.ts";
import { nameHashOf } from "../../workers/manifest-shard/name-part.ts";
import type { RemovalRecord, VersionRecord } from "../../workers/manifest-shard/records.ts";
import { HANDOVER_ROWS } from "../../workers/manifest-shard/split.ts";
import { clusterStub, groupStub, shardStub } from "../../workers/shared/env.ts";

const COUNT = Number(env.SHARD_COUNT);
const OLD = COUNT / 2;
const PARENT = 1;
const CHILD = PARENT + OLD;
const T = "splitter";
const B = "b";

const uvid = (n: number): Uvid => formatUvid({ ms: Date.UTC(2026, 0, 1) + n, seq: 0, group: 0 });
const version = (key: string, n: number, deleteMarker = false): VersionRecord => ({
  tenant: T, bucket: B, key, uvid: uvid(n), deleteMarker, size: deleteMarker ? 0 : 10, etag: `e${n}`, lastModified: n, contentType: "", vmChid: "c".repeat(64) as Chid, creator: "AK",
});
const removal = (key: string, target: number, n: number): RemovalRecord => ({ kind: "removal", tenant: T, bucket: B, key, uvid: uvid(n), target: uvid(target) });
const source = (n: number) => ({ group: 0, cutoff: uvid(n) });

/** `n` keys of the tenant's bucket whose shard (of COUNT) is `shard`. */
async function keysOf(shard: number, n: number, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; out.length < n && i < 100_000; i++) {
    const key = `${prefix}${String(i).padStart(5, "0")}`;
    if ((await nameHashOf(T, B, key)) % COUNT === shard) out.push(key);
  }
  return out;
}

const sql = <R,>(s: number, fn: (sql: SqlStorage) => R) => runInDurableObject(shardStub(env, s), (_o, state) => fn(state.storage.sql));
const list = async (s: number) => (await shardStub(env, s).list({ tenant: T, bucket: B, prefix: "", delimiter: "", after: "", limit: 1_000 })).entries.map((e) => (e.kind === "object" ? e.key : e.prefix));

describe("a shard split's hand-over", () => {
  it("answers through the old shard, takes the rows in while batches arrive, then answers alone", async () => {
    expect(COUNT % 2).toBe(0);
    await runInDurableObject(clusterStub(env), (_o, state) => {
      state.storage.sql.exec("INSERT OR IGNORE INTO shard_counts (since, count) VALUES (0, ?)", OLD);
    });
    expect((await clusterStub(env).layouts()).shards).toEqual([OLD, COUNT]);
    const mine = await keysOf(PARENT, 20, "p/");
    const theirs = await keysOf(CHILD, 300, "c/");
    const parent = shardStub(env, PARENT);
    const child = shardStub(env, CHILD);
    // The parent's own names, and (as before the split) the child's: two versions each, more rows than a page.
    await parent.applyRecords(mine.map((k, i) => version(k, i)), source(10_000));
    expect(await parent.applyRecords([version(theirs[0]!, 1)], source(10_000))).toEqual({ refused: expect.stringMatching(/belongs to shard 3 of 4, not 1: SHARD_COUNT differs/), stray: true });
    const part = { count: COUNT, index: CHILD, unhashed: false };
    await parent.applyForwarded(theirs.map((k, i) => version(k, 100 + i)), part);
    await parent.applyForwarded(theirs.map((k, i) => version(k, 500 + i)), part);
    // Rows from before names kept their hash: the parent fills them in before it hands any over.
    await sql(PARENT, (s) => {
      s.exec("UPDATE versions SET h = NULL WHERE key < 'c/00100'");
      s.exec("DELETE FROM shard_split WHERE k LIKE 'hashed%'");
    });
    expect(await sql(PARENT, (s) => Number(s.exec("SELECT count(*) AS n FROM versions WHERE h IS NULL").one().n))).toBeGreaterThan(0);

    // A part that is not of a shard split from it is refused, whatever asks.
    const stray = await parent.handedOver({ count: COUNT, index: PARENT, unhashed: false }).then(() => "dropped", (e: unknown) => String(e));
    expect(stray).toMatch(/not of a shard split from shard 1/);
    // A group sends a name's records to its shard by its own count: this upload's goes to the child (and on through it).
    const nhid = await nhidOf(T, B, theirs[0]!);
    const { uploadId } = await groupStub(env, groupOf(nhid, Number(env.GROUP_COUNT))).createUpload(nhid, { tenant: T, bucket: B, key: theirs[0]!, creator: "AK", contentType: "", userMeta: {}, httpMeta: {}, checksum: null });
    const uploads = await child.listUploads({ tenant: T, bucket: B, prefix: "", delimiter: "", keyMarker: "", uploadIdMarker: "", limit: 10 });
    expect(uploads.entries).toEqual([expect.objectContaining({ key: theirs[0], uploadId })]);
    expect((await parent.listUploads({ tenant: T, bucket: B, prefix: "", delimiter: "", keyMarker: "", uploadIdMarker: "", limit: 10 })).entries).toEqual([]);

    // Before any row moves, each name is answered by one shard: the child's through the parent.
    expect(await list(CHILD)).toEqual([...theirs].sort());
    expect(await list(PARENT)).toEqual([...mine].sort());
    const versionAt = await child.versionAt(T, B, theirs[0]!, uvid(1_000_000));
    expect(versionAt?.uvid).toBe(uvid(500));
    // A group's batch to the child lands in both.
    await child.applyRecords([version(theirs[1]!, 900)], source(10_000));
    expect(await sql(PARENT, (s) => s.exec("SELECT count(*) AS n FROM versions WHERE uvid = ?", uvid(900)).one().n)).toBe(1);
    expect(await sql(CHILD, (s) => s.exec("SELECT count(*) AS n FROM versions WHERE uvid = ?", uvid(900)).one().n)).toBe(1);
    expect((await child.stats()).split.takingFrom).toBe(PARENT);
    expect((await child.tenantUsage(T)).objects).toBe(0);
    expect((await parent.tenantUsage(T)).objects).toBe(20 + 601);

    // The walk: the parent makes the child wait while it fills in hashes, then hands pages over.
    let steps = 0;
    let batchSent = false;
    for (; steps < 40 && (await child.stats()).split.takingFrom !== null; steps++) {
      await runDurableObjectAlarm(parent);
      await runDurableObjectAlarm(child);
      const taken = (await child.stats()).split.rowsTaken;
      if (!batchSent && taken >= HANDOVER_ROWS) {
        // Between pages: a new version, a removal of one already taken, a delete marker.
        await child.applyRecords([version(theirs[2]!, 901), removal(theirs[3]!, 103, 902), version(theirs[4]!, 903, true)], source(10_000));
        batchSent = true;
      }
    }
    expect(batchSent).toBe(true);
    expect((await child.stats()).split.takingFrom).toBeNull();
    expect(await sql(PARENT, (s) => Number(s.exec("SELECT count(*) AS n FROM versions WHERE h IS NULL").one().n))).toBe(0);

    // The child holds exactly what the parent held for its names.
    const rowsOf = (s: number) =>
      sql(s, (q) => q.exec("SELECT key, uvid, removed, delete_marker, h FROM versions WHERE key LIKE 'c/%' ORDER BY key, uvid").toArray().map((r) => JSON.stringify(r)));
    const held = await rowsOf(PARENT);
    expect(await rowsOf(CHILD)).toEqual(held);
    expect(held.length).toBe(2 * 300 + 3);
    // Answered alone now; usage moved with the names.
    expect(await list(CHILD)).toEqual(theirs.filter((k) => k !== theirs[4]).sort());
    expect((await child.tenantUsage(T)).objects).toBe(600 + 2 - 1);
    expect((await parent.tenantUsage(T)).objects).toBe(20);
    // The parent refuses questions about names it handed on, and drops their rows in steps.
    // (Settled with then: an RPC promise handed to expect() would have its properties pipelined as calls.)
    const asked = await parent.list({ tenant: T, bucket: B, prefix: "", delimiter: "", after: "", limit: 10 }, undefined, { count: COUNT, index: CHILD, unhashed: false }).then(() => "answered", (e: unknown) => String(e));
    expect(asked).toMatch(/HandedOver: names 3 of 4 are held by shard 3 now/);
    const one = await parent.versionAt(T, B, theirs[0]!, uvid(1_000_000)).then(() => "answered", (e: unknown) => String(e));
    expect(one).toMatch(/HandedOver/);
    for (let i = 0; i < 10 && (await parent.stats()).split.dropping > 0; i++) await runDurableObjectAlarm(parent);
    expect((await parent.stats()).split.dropping).toBe(0);
    expect(await sql(PARENT, (s) => Number(s.exec("SELECT count(*) AS n FROM versions WHERE key LIKE 'c/%'").one().n))).toBe(0);
    expect(await list(PARENT)).toEqual([...mine].sort());
    expect(await list(CHILD)).toEqual(theirs.filter((k) => k !== theirs[4]).sort());
  });

  it("refuses to answer on a cluster history that lacks the count the shard last ran with", async () => {
    const other = (PARENT + 1) % OLD;
    await sql(other, (s) => s.exec("INSERT INTO shard_split (k, v) VALUES ('count', '16')"));
    const asked = await list(other).then(() => "answered", (e: unknown) => String(e));
    expect(asked).toMatch(/last ran with SHARD_COUNT 16, which the cluster's shard counts 2 -> 4 do not hold/);
  });
});
