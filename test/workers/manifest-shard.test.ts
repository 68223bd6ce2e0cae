import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { formatUvid, type Chid, type Uvid } from "../../common/ids.ts";
import { compareKeys } from "../../common/keys.ts";
import type { ListEntry, ListQuery } from "../../workers/manifest-shard/listing.ts";
import type { VersionRecord } from "../../workers/manifest-shard/records.ts";
import { UsageBook } from "../../workers/manifest-shard/usage.ts";

let n = 0;
// A fresh shard per test: storage is not assumed to be reset between tests.
const freshShard = () => env.SHARD.get(env.SHARD.idFromName(`t1-${n++}`));

const uvid = (ms: number, seq = 0, group = 0): Uvid => formatUvid({ ms, seq, group });

function rec(key: string, u: Uvid, over: Partial<VersionRecord> = {}): VersionRecord {
  return {
    tenant: "t1",
    bucket: "b1",
    key,
    uvid: u,
    deleteMarker: false,
    size: 10,
    etag: `etag-${u}`,
    lastModified: 1_700_000_000_000,
    contentType: "application/octet-stream",
    vmChid: "c".repeat(64) as Chid,
    creator: "AK",
    ...over,
  };
}

const cutoff = (ms: number) => ({ group: 0, cutoff: uvid(ms) });
const q = (over: Partial<ListQuery> = {}): ListQuery => ({ tenant: "t1", bucket: "b1", prefix: "", delimiter: "", after: "", limit: 1000, ...over });
const names = (entries: ListEntry[]) => entries.map((e) => (e.kind === "object" ? e.key : `[${e.prefix}]`));

describe("ManifestShard records", () => {
  it("applying the same batch twice changes nothing", async () => {
    const shard = freshShard();
    const batch = [rec("a", uvid(1)), rec("b", uvid(2)), rec("a", uvid(3), { size: 99 }), rec("c", uvid(4), { deleteMarker: true })];
    await shard.applyRecords(batch, cutoff(5));
    const dump = () =>
      runInDurableObject(shard, (_i, state) => ({
        versions: state.storage.sql.exec("SELECT * FROM versions ORDER BY key, uvid").toArray(),
        current: state.storage.sql.exec("SELECT * FROM current ORDER BY key").toArray(),
        sources: state.storage.sql.exec("SELECT * FROM sources").toArray(),
      }));
    const first = await dump();
    const listed = await shard.list(q());
    await shard.applyRecords(batch, cutoff(5));
    expect(await dump()).toEqual(first);
    expect(await shard.list(q())).toEqual(listed);
    expect(first.versions).toHaveLength(4);
    expect(listed.entries).toEqual([
      { kind: "object", key: "a", size: 99, etag: `etag-${uvid(3)}`, lastModified: 1_700_000_000_000 },
      { kind: "object", key: "b", size: 10, etag: `etag-${uvid(2)}`, lastModified: 1_700_000_000_000 },
    ]);
  });

  it("a newer uvid replaces the current version; an older one arriving later does not", async () => {
    const shard = freshShard();
    await shard.applyRecords([rec("k", uvid(10), { size: 1 })], cutoff(10));
    await shard.applyRecords([rec("k", uvid(20, 5), { size: 2 })], cutoff(20));
    await shard.applyRecords([rec("k", uvid(15), { size: 3 })], cutoff(15));
    // Same millisecond, lower sequence: still older.
    await shard.applyRecords([rec("k", uvid(20, 4, 7), { size: 4 })], cutoff(20));
    expect((await shard.list(q())).entries).toEqual([{ kind: "object", key: "k", size: 2, etag: `etag-${uvid(20, 5)}`, lastModified: 1_700_000_000_000 }]);
    // Same millisecond and sequence: the stamping group breaks the tie.
    await shard.applyRecords([rec("k", uvid(20, 5, 1), { size: 5 })], cutoff(20));
    expect((await shard.list(q())).entries).toMatchObject([{ key: "k", size: 5 }]);
  });

  it("applies a batch in any order to the same current version", async () => {
    const a = freshShard();
    const b = freshShard();
    const batch = [rec("k", uvid(1), { size: 1 }), rec("k", uvid(3), { size: 3 }), rec("k", uvid(2), { size: 2 })];
    await a.applyRecords(batch, cutoff(3));
    await b.applyRecords([...batch].reverse(), cutoff(3));
    expect(await a.list(q())).toEqual(await b.list(q()));
    expect((await a.list(q())).entries).toMatchObject([{ key: "k", size: 3 }]);
  });

  it("a delete marker hides the key from listings, but the bucket is not empty until its versions are removed", async () => {
    const shard = freshShard();
    const removal = (key: string, target: Uvid, u: number) => ({ kind: "removal" as const, tenant: "t1", bucket: "b1", key, uvid: uvid(u), target });
    await shard.applyRecords([rec("gone", uvid(1)), rec("kept", uvid(1))], cutoff(1));
    await shard.applyRecords([rec("gone", uvid(2), { deleteMarker: true, size: 0 })], cutoff(2));
    expect(names((await shard.list(q())).entries)).toEqual(["kept"]);
    await shard.applyRecords([rec("kept", uvid(3), { deleteMarker: true, size: 0 })], cutoff(3));
    expect((await shard.list(q())).entries).toEqual([]);
    // S3's rule for DeleteBucket: versions and delete markers count.
    expect(await shard.hasObjects("t1", "b1")).toBe(true);
    await shard.applyRecords([rec("gone", uvid(4))], cutoff(4));
    expect(names((await shard.list(q())).entries)).toEqual(["gone"]);
    await shard.applyRecords(
      [removal("gone", uvid(1), 5), removal("gone", uvid(2), 6), removal("gone", uvid(4), 7), removal("kept", uvid(1), 8), removal("kept", uvid(3), 9)],
      cutoff(9),
    );
    expect(await shard.hasObjects("t1", "b1")).toBe(false);
  });

  it("an older put arriving after a delete marker does not resurrect the key", async () => {
    const shard = freshShard();
    await shard.applyRecords([rec("k", uvid(5), { deleteMarker: true })], cutoff(5));
    await shard.applyRecords([rec("k", uvid(4))], cutoff(5));
    expect((await shard.list(q())).entries).toEqual([]);
  });

  it("removing the current version makes the next newest current; a record redelivered after its removal stays removed", async () => {
    const shard = freshShard();
    const removal = (target: Uvid, u: number) => ({ kind: "removal" as const, tenant: "t1", bucket: "b1", key: "r", uvid: uvid(u), target });
    await shard.applyRecords([rec("r", uvid(1), { size: 1 }), rec("r", uvid(2), { size: 2 })], cutoff(2));
    await shard.applyRecords([removal(uvid(2), 3)], cutoff(3));
    expect((await shard.list(q())).entries).toMatchObject([{ key: "r", size: 1 }]);
    await shard.applyRecords([rec("r", uvid(2), { size: 2 })], cutoff(3));
    expect((await shard.list(q())).entries).toMatchObject([{ key: "r", size: 1 }]);
    const versions = await shard.listVersions({ tenant: "t1", bucket: "b1", prefix: "", delimiter: "", keyMarker: "", versionIdMarker: "", limit: 100 });
    expect(versions.entries.map((e) => (e.kind === "version" ? [e.uvid, e.isLatest] : e.prefix))).toEqual([[uvid(1), true]]);
  });

  it("never shows keys of other tenants or buckets", async () => {
    const shard = freshShard();
    await shard.applyRecords(
      [rec("mine", uvid(1)), rec("theirs", uvid(1), { tenant: "t2" }), rec("other-bucket", uvid(1), { bucket: "b2" }), rec("both", uvid(1), { tenant: "t2", bucket: "b2" })],
      cutoff(1),
    );
    expect(names((await shard.list(q())).entries)).toEqual(["mine"]);
    expect(names((await shard.list(q({ tenant: "t2" }))).entries)).toEqual(["theirs"]);
    expect(names((await shard.list(q({ bucket: "b2" }))).entries)).toEqual(["other-bucket"]);
    expect(await shard.hasObjects("t1", "b3")).toBe(false);
    expect(await shard.hasObjects("t3", "b1")).toBe(false);
    expect(await shard.hasObjects("t1", "b1")).toBe(true);
    expect(await shard.hasObjects("t2", "b1")).toBe(true);
    expect(await shard.hasObjects("t2", "b3")).toBe(false);
  });
});

describe("ManifestShard listing", () => {
  it("lists in UTF-8 byte order, not UTF-16 order", async () => {
    const shard = freshShard();
    const keys = ["😀", "\uFFFF", "é", "a/b", "a", "Z", "\uE000", "a😀", "a\uFFFF", "~"];
    await shard.applyRecords(keys.map((k, i) => rec(k, uvid(i + 1))), cutoff(100));
    const listed = names((await shard.list(q())).entries);
    expect(listed).toEqual([...keys].sort(compareKeys));
    expect(listed.indexOf("😀")).toBeGreaterThan(listed.indexOf("\uFFFF"));
  });

  it("restricts to a prefix, including one ending in an astral character", async () => {
    const shard = freshShard();
    const keys = ["a/1", "a/2", "a", "a0", "ab", "b/1", "😀/x", "😀0", "\u{1F601}"];
    await shard.applyRecords(keys.map((k, i) => rec(k, uvid(i + 1))), cutoff(100));
    expect(names((await shard.list(q({ prefix: "a/" }))).entries)).toEqual(["a/1", "a/2"]);
    expect(names((await shard.list(q({ prefix: "a" }))).entries)).toEqual(["a", "a/1", "a/2", "a0", "ab"]);
    expect(names((await shard.list(q({ prefix: "😀" }))).entries)).toEqual(["😀/x", "😀0"]);
    expect(names((await shard.list(q({ prefix: "zzz" }))).entries)).toEqual([]);
  });

  it("rolls many keys under one prefix up into ONE prefix entry", async () => {
    const shard = freshShard();
    // More keys than one read batch, so the rollup must seek past them rather than page through.
    const photos = Array.from({ length: 600 }, (_, i) => rec(`photos/${String(i).padStart(4, "0")}.jpg`, uvid(i + 1)));
    const nested = Array.from({ length: 5 }, (_, i) => rec(`docs/2024/${i}`, uvid(1000 + i)));
    await shard.applyRecords([...photos, ...nested, rec("readme", uvid(2000)), rec("zz", uvid(2001)), rec("docs/index", uvid(2002))], cutoff(3000));

    const top = await shard.list(q({ delimiter: "/" }));
    expect(names(top.entries)).toEqual(["[docs/]", "[photos/]", "readme", "zz"]);
    expect(top.truncated).toBe(false);

    const docs = await shard.list(q({ prefix: "docs/", delimiter: "/" }));
    expect(names(docs.entries)).toEqual(["[docs/2024/]", "docs/index"]);

    const deep = await shard.list(q({ prefix: "photos/", delimiter: "/", limit: 3 }));
    expect(names(deep.entries)).toEqual(["photos/0000.jpg", "photos/0001.jpg", "photos/0002.jpg"]);
    expect(deep.truncated).toBe(true);
  });

  it("resumes after a common prefix without repeating it or anything beneath it", async () => {
    const shard = freshShard();
    const under = Array.from({ length: 300 }, (_, i) => rec(`p/${String(i).padStart(3, "0")}`, uvid(i + 1)));
    await shard.applyRecords([rec("a", uvid(900)), ...under, rec("p0", uvid(901)), rec("q", uvid(902))], cutoff(1000));
    expect(names((await shard.list(q({ delimiter: "/", after: "p/" }))).entries)).toEqual(["p0", "q"]);
    expect(names((await shard.list(q({ delimiter: "/", after: "a" }))).entries)).toEqual(["[p/]", "p0", "q"]);
    expect(names((await shard.list(q({ delimiter: "/", after: "q" }))).entries)).toEqual([]);
  });

  it("reports a prefix again when start-after is a key inside it and keys remain beyond it", async () => {
    const shard = freshShard();
    await shard.applyRecords([rec("p/001", uvid(1)), rec("p/002", uvid(2)), rec("p/003", uvid(3)), rec("q", uvid(4))], cutoff(10));
    expect(names((await shard.list(q({ delimiter: "/", after: "p/002" }))).entries)).toEqual(["[p/]", "q"]);
    expect(names((await shard.list(q({ delimiter: "/", after: "p/003" }))).entries)).toEqual(["q"]);
  });

  it("pages with limit and truncated, each page resuming after the last entry", async () => {
    const shard = freshShard();
    const keys = ["k1", "k2", "k3", "k4", "k5"];
    await shard.applyRecords(keys.map((k, i) => rec(k, uvid(i + 1))), cutoff(10));
    const seen: string[] = [];
    const flags: boolean[] = [];
    let after = "";
    for (;;) {
      const page = await shard.list(q({ after, limit: 2 }));
      seen.push(...names(page.entries));
      flags.push(page.truncated);
      if (!page.truncated) break;
      after = seen[seen.length - 1]!;
    }
    expect(seen).toEqual(keys);
    expect(flags).toEqual([true, true, false]);
    // Exactly `limit` entries left: not truncated.
    const last = await shard.list(q({ after: "k3", limit: 2 }));
    expect(names(last.entries)).toEqual(["k4", "k5"]);
    expect(last.truncated).toBe(false);
  });

  it("counts a common prefix as one entry against the limit", async () => {
    const shard = freshShard();
    const keys = ["a/1", "a/2", "a/3", "b", "c/1", "c/2", "d"];
    await shard.applyRecords(keys.map((k, i) => rec(k, uvid(i + 1))), cutoff(10));
    const p1 = await shard.list(q({ delimiter: "/", limit: 2 }));
    expect(names(p1.entries)).toEqual(["[a/]", "b"]);
    expect(p1.truncated).toBe(true);
    const p2 = await shard.list(q({ delimiter: "/", limit: 2, after: "b" }));
    expect(names(p2.entries)).toEqual(["[c/]", "d"]);
    expect(p2.truncated).toBe(false);
  });
});

describe("ManifestShard multipart uploads", () => {
  const up = (key: string, id: string, initiated: number, open: boolean, u: number) =>
    ({ kind: "upload", tenant: "t1", bucket: "b1", key, uploadId: id, uvid: uvid(u), initiated, open, creator: "AK" }) as const;
  const uq = (over: Record<string, unknown> = {}) => ({ tenant: "t1", bucket: "b1", prefix: "", delimiter: "", keyMarker: "", uploadIdMarker: "", limit: 1000, ...over });
  const ids = (p: { entries: { kind: string; uploadId?: string; prefix?: string }[] }) => p.entries.map((e) => (e.kind === "upload" ? e.uploadId : `[${e.prefix}]`));

  it("lists open uploads by key, then initiation time, and a closed one never comes back", async () => {
    const shard = freshShard();
    await shard.applyRecords([up("k", "late", 20, true, 1), up("k", "early", 10, true, 2), up("a/x", "ax", 5, true, 3), up("z", "gone", 1, true, 4)], cutoff(5));
    await shard.applyRecords([up("z", "gone", 1, false, 6)], cutoff(6));
    // A repeated "open" after the close (a redelivered batch) does not resurrect it.
    await shard.applyRecords([up("z", "gone", 1, true, 4)], cutoff(6));
    expect(ids(await shard.listUploads(uq()))).toEqual(["ax", "early", "late"]);
    expect(ids(await shard.listUploads(uq({ delimiter: "/" })))).toEqual(["[a/]", "early", "late"]);
    expect(ids(await shard.listUploads(uq({ keyMarker: "k", uploadIdMarker: "early" })))).toEqual(["late"]);
    expect(ids(await shard.listUploads(uq({ keyMarker: "k" })))).toEqual([]);
    const first = await shard.listUploads(uq({ limit: 2 }));
    expect([ids(first), first.truncated]).toEqual([["ax", "early"], true]);
  });
});

describe("ManifestShard tenant usage", () => {
  it("counts each tenant's visible versions exactly: redelivered records, removals and early removals included", async () => {
    const shard = freshShard();
    const removal = (key: string, target: Uvid, u: number) => ({ kind: "removal" as const, tenant: "t1", bucket: "b1", key, uvid: uvid(u), target });
    const batch = [rec("a", uvid(1), { size: 100 }), rec("a", uvid(2), { size: 50 }), rec("m", uvid(3), { deleteMarker: true, size: 0 }), rec("o", uvid(4), { tenant: "t2", size: 7 })];
    await shard.applyRecords(batch, cutoff(5));
    await shard.applyRecords(batch, cutoff(5));
    expect(await shard.tenantUsage("t1")).toEqual({ bytes: 150, objects: 2 });
    expect(await shard.tenantUsage("t2")).toEqual({ bytes: 7, objects: 1 });
    // A removal applied twice counts once; one that comes before its version cancels it on arrival.
    await shard.applyRecords([removal("a", uvid(1), 6), removal("a", uvid(1), 6), removal("late", uvid(8), 9)], cutoff(10));
    expect(await shard.tenantUsage("t1")).toEqual({ bytes: 50, objects: 1 });
    await shard.applyRecords([rec("late", uvid(8), { size: 1000 })], cutoff(11));
    expect(await shard.tenantUsage("t1")).toEqual({ bytes: 50, objects: 1 });
    expect(await shard.tenantUsage("nobody")).toEqual({ bytes: 0, objects: 0 });
  });

  it("a shard from before usage was kept counts its rows once when it starts with this code", async () => {
    const shard = freshShard();
    await shard.applyRecords([rec("a", uvid(1), { size: 30 }), rec("b", uvid(2), { size: 12 })], cutoff(3));
    // Drop the table as an older shard never had it, then let a new instance build it.
    await runInDurableObject(shard, (_i, state) => {
      state.storage.sql.exec("DROP TABLE tenant_usage");
      new UsageBook(state.storage.sql);
    });
    expect(await shard.tenantUsage("t1")).toEqual({ bytes: 42, objects: 2 });
  });
});
