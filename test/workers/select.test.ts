// A shard's selection of versions for snapshots and queries, on a real shard object.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { formatUvid, type Chid, type Uvid } from "../../common/ids.ts";
import type { RemovalRecord, TagsRecord, VersionRecord } from "../../workers/manifest-shard/records.ts";
import { compileGlob, GlobError, globMatches } from "../../workers/manifest-shard/glob.ts";
import type { Selection } from "../../workers/manifest-shard/select.ts";

let n = 0;
const freshShard = () => env.SHARD.get(env.SHARD.idFromName(`select-${n++}`));
const uvid = (ms: number, seq = 0): Uvid => formatUvid({ ms, seq, group: 0 });
const at = (t: number): Uvid => uvid(t + 1);

function rec(bucket: string, key: string, u: Uvid, over: Partial<VersionRecord> = {}): VersionRecord {
  return { tenant: "t", bucket, key, uvid: u, deleteMarker: false, size: 10, etag: "e", lastModified: Number.parseInt(u.slice(0, 12), 16), contentType: "text/plain", vmChid: "c".repeat(64) as Chid, creator: "AK", ...over };
}

const sel = (over: Partial<Selection> = {}): Selection => ({ tenant: "t", masks: [{ bucket: "*", key: "*" }], qualifiers: [], which: "versions", ...over });

async function seeded() {
  const shard = freshShard();
  const removal: RemovalRecord = { kind: "removal", tenant: "t", bucket: "a", key: "x.mp3", uvid: uvid(9), target: uvid(1) };
  await shard.applyRecords(
    [
      rec("a", "x.mp3", uvid(1), { meta: { genre: "jazz" } }),
      rec("a", "x.mp3", uvid(3), { size: 99, meta: { genre: "rock" } }),
      rec("a", "dir/y.mp3", uvid(2), { contentType: "audio/mpeg" }),
      rec("a", "z.txt", uvid(2, 1), { creator: "OTHER" }),
      rec("b", "w.mp3", uvid(4)),
      rec("b", "gone.mp3", uvid(5), { deleteMarker: true }),
      rec("other-tenant-bucket", "q.mp3", uvid(6), { tenant: "u" }),
      removal,
    ],
    { group: 0, cutoff: uvid(10) },
  );
  return shard;
}

const names = (p: { entries: { bucket: string; key: string; uvid: string }[] }) => p.entries.map((e) => `${e.bucket}/${e.key}@${Number.parseInt(e.uvid.slice(0, 12), 16)}`);

describe("selecting versions", () => {
  it("matches globs over bucket and key (`*` crosses `/`), in (bucket, key, newest first) order, within the tenant, without delete markers", async () => {
    const shard = await seeded();
    expect(names(await shard.select(sel({ masks: [{ bucket: "*", key: "*.mp3" }] }), null, 100))).toEqual(["a/dir/y.mp3@2", "a/x.mp3@3", "b/w.mp3@4"]);
    expect(names(await shard.select(sel({ masks: [{ bucket: "b", key: "*" }, { bucket: "a", key: "z.*" }] }), null, 100))).toEqual(["a/z.txt@2", "b/w.mp3@4"]);
  });

  it("as of a time, every version then or each key's current one", async () => {
    const shard = await seeded();
    expect(names(await shard.select(sel({ masks: [{ bucket: "a", key: "x.mp3" }], bound: at(8) }), null, 100))).toEqual(["a/x.mp3@3", "a/x.mp3@1"]);
    expect(names(await shard.select(sel({ masks: [{ bucket: "a", key: "x.mp3" }], bound: at(9) }), null, 100))).toEqual(["a/x.mp3@3"]);
    expect(names(await shard.select(sel({ which: "current", bound: at(2) }), null, 100))).toEqual(["a/dir/y.mp3@2", "a/x.mp3@1", "a/z.txt@2"]);
    expect(names(await shard.select(sel({ which: "current", bound: at(1) }), null, 100))).toEqual(["a/x.mp3@1"]);
    expect(names(await shard.select(sel({ which: "current" }), null, 100))).toEqual(["a/dir/y.mp3@2", "a/x.mp3@3", "a/z.txt@2", "b/w.mp3@4"]);
  });

  it("filters by time, creator, size, prefix, content type and metadata", async () => {
    const shard = await seeded();
    expect(names(await shard.select(sel({ createdFrom: 2, createdBefore: 4 }), null, 100))).toEqual(["a/dir/y.mp3@2", "a/x.mp3@3", "a/z.txt@2"]);
    expect(names(await shard.select(sel({ creator: "OTHER" }), null, 100))).toEqual(["a/z.txt@2"]);
    expect(names(await shard.select(sel({ sizeMin: 50 }), null, 100))).toEqual(["a/x.mp3@3"]);
    expect(names(await shard.select(sel({ keyPrefix: "dir/" }), null, 100))).toEqual(["a/dir/y.mp3@2"]);
    expect(names(await shard.select(sel({ qualifiers: [{ name: "content-type", value: "audio/mpeg" }] }), null, 100))).toEqual(["a/dir/y.mp3@2"]);
    expect(names(await shard.select(sel({ qualifiers: [{ name: "x-amz-meta-genre", value: "rock" }] }), null, 100))).toEqual(["a/x.mp3@3"]);
  });

  it("filters by the tags a version has now: set at the write, changed later, the later-stamped change winning in any order of arrival", async () => {
    const shard = freshShard();
    const tags = (target: Uvid, stamp: Uvid, value: string): TagsRecord => ({ kind: "tags", tenant: "t", bucket: "a", key: "k", uvid: stamp, target, tags: [{ key: "Class", value }] });
    const byTag = (value: string) => sel({ qualifiers: [{ name: "tag:Class", value }] });
    // A change arriving before its version (a batch sent again after later ones) waits for it.
    await shard.applyRecords([tags(uvid(1), uvid(5), "cold")], { group: 0, cutoff: uvid(1) });
    await shard.applyRecords([rec("a", "k", uvid(1), { tags: [{ key: "Class", value: "hot" }] }), rec("a", "j", uvid(2), { tags: [{ key: "Class", value: "hot" }] })], { group: 0, cutoff: uvid(6) });
    expect(names(await shard.select(byTag("cold"), null, 100))).toEqual(["a/k@1"]);
    expect(names(await shard.select(byTag("hot"), null, 100))).toEqual(["a/j@2"]);
    // An older change applied after a newer one leaves the newer.
    await shard.applyRecords([tags(uvid(1), uvid(4), "warm")], { group: 0, cutoff: uvid(7) });
    expect(names(await shard.select(byTag("cold"), null, 100))).toEqual(["a/k@1"]);
    await shard.applyRecords([tags(uvid(1), uvid(8), "warm")], { group: 0, cutoff: uvid(9) });
    expect(names(await shard.select(byTag("warm"), null, 100))).toEqual(["a/k@1"]);
    // Tag keys compare with their case, as S3's do.
    expect(names(await shard.select(sel({ qualifiers: [{ name: "tag:class", value: "warm" }] }), null, 100))).toEqual([]);
  });

  it("read only the ranges a scoped key was granted: no entry and no cursor outside them, page after page", async () => {
    const shard = await seeded();
    const within = [{ bucket: "a", prefix: "x" }, { bucket: "b", prefix: "" }, { bucket: "b", prefix: "w" }, { bucket: "a", prefix: "z.t" }];
    const seen: string[] = [];
    const cursors: string[] = [];
    let after = null;
    for (let i = 0; i < 20; i++) {
      const page = await shard.select(sel({ within }), after, 1);
      seen.push(...names(page));
      if (!page.next) break;
      cursors.push(`${page.next.bucket}/${page.next.key}`);
      after = page.next;
    }
    expect(seen).toEqual(["a/x.mp3@3", "a/z.txt@2", "b/w.mp3@4"]);
    for (const c of cursors) expect(["a/x.mp3", "a/z.txt", "b/w.mp3"]).toContain(c);
  });

  it("pages from a cursor without repeating or skipping", async () => {
    const shard = await seeded();
    const all: string[] = [];
    let after = null;
    for (let i = 0; i < 10; i++) {
      const p = await shard.select(sel(), after, 2);
      all.push(...names(p));
      if (!p.next) break;
      after = p.next;
    }
    expect(all).toEqual(["a/dir/y.mp3@2", "a/x.mp3@3", "a/z.txt@2", "b/w.mp3@4"]);
  });
});

describe("masks matched outside SQL", () => {
  it("agree with SQLite's GLOB on every pattern short enough for it to run", async () => {
    // The oracle is the Durable Object's own SQLite, which refuses patterns past ~50 bytes.
    const texts = ["", "a", "ab", "abc", "a/b/c.mp3", "x.mp3", "é😀z", "]", "a]b", "-", "a-b", "[x]", "A", "a*b", "a?c", "aaab"];
    const patterns = ["*", "?", "a", "a*", "*c", "a?c", "a*c", "*a*", "a*b*c", "??", "[ab]*", "[^a]*", "[!a]*", "[a-c]", "[c-a]", "[]]", "[]a]*", "[a-]", "[-a]",
      "*.mp3", "*/*", "é?z", "??z", "[é]*", "A*", "*b", "a**b", "**", "a[*]b", "a[?]c", "[[]x]", "*aab", "a*a*b"];
    const shard = freshShard();
    const oracle = await runInDurableObject(shard, (_o: unknown, state) => {
      const out: Record<string, boolean> = {};
      for (const p of patterns) for (const t of texts) out[`${p} ${t}`] = Number(state.storage.sql.exec("SELECT ? GLOB ? AS m", t, p).one().m) === 1;
      return out;
    });
    for (const p of patterns) {
      const g = compileGlob(p);
      for (const t of texts) expect(globMatches(g, t), `"${t}" GLOB "${p}"`).toBe(oracle[`${p} ${t}`]);
    }
  });

  it("takes patterns longer than SQLite allows, and more masks than a statement has parameters", async () => {
    const shard = freshShard();
    const long = `${"deep/".repeat(40)}file.bin`;
    await shard.applyRecords([rec("a", long, uvid(1)), rec("a", "other", uvid(2))], { group: 0, cutoff: uvid(10) });
    const pattern = long.replace(/e/g, "?").replace(/\//g, "*");
    expect(pattern.length).toBeGreaterThan(200);
    expect(names(await shard.select(sel({ masks: [{ bucket: "a", key: pattern }] }), null, 100))).toEqual([`a/${long}@1`]);
    const many = Array.from({ length: 300 }, (_, i) => ({ bucket: "a", key: `nope-${i}*` }));
    expect(names(await shard.select(sel({ masks: [...many, { bucket: "?", key: "oth*" }] }), null, 100))).toEqual(["a/other@2"]);
  });

  it("bound a call's matching work under a hostile pattern, going on from a cursor", async () => {
    const shard = freshShard();
    const key = "a".repeat(1000);
    await shard.applyRecords(
      Array.from({ length: 40 }, (_, i) => rec("a", `${key}${String(i).padStart(2, "0")}`, uvid(i + 1))),
      { group: 0, cutoff: uvid(100) },
    );
    // Each row costs about key × pattern comparisons and none matches: a call stops early with
    // a cursor, and following the cursors still reaches the end.
    const hostile = `*${"a".repeat(500)}b*`;
    let after = null;
    let calls = 0;
    for (; calls < 100; calls++) {
      const p = await shard.select(sel({ masks: [{ bucket: "a", key: hostile }] }), after, 100);
      expect(p.entries).toEqual([]);
      if (!p.next) break;
      after = p.next;
    }
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThan(100);
  });

  it("match nothing with a class left open (a stored mask from before masks were checked)", async () => {
    const shard = await seeded();
    expect(names(await shard.select(sel({ masks: [{ bucket: "a", key: "[x*" }] }), null, 100))).toEqual([]);
    expect(() => compileGlob("[x")).toThrow(GlobError);
  });
});
