// The manifest shard's sources and cutoffs, and its answers as of a time (seed 000), on real
// Durable Objects in workerd: shards with their SQLite storage, and real group objects
// answering a shard's request to advance their cutoff.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { formatUvid, type Chid, type Uvid } from "../../common/ids.ts";
import type { ListEntry, ListQuery } from "../../workers/manifest-shard/listing.ts";
import type { RemovalRecord, VersionRecord } from "../../workers/manifest-shard/records.ts";
import { SourceBook } from "../../workers/manifest-shard/sources.ts";
import type { VersionQuery } from "../../workers/manifest-shard/versions.ts";

let n = 0;
const freshShard = () => env.SHARD.get(env.SHARD.idFromName(`pit-${n++}`));
const GROUPS = Number(env.GROUP_COUNT);

const uvid = (ms: number, seq = 0, group = 0): Uvid => formatUvid({ ms, seq, group });
/** The first UVID after time T: what a read as of T is bounded by. */
const at = (t: number): Uvid => uvid(t + 1);

function rec(key: string, u: Uvid, over: Partial<VersionRecord> = {}): VersionRecord {
  return { tenant: "t", bucket: "b", key, uvid: u, deleteMarker: false, size: 1, etag: `e-${u}`, lastModified: 0, contentType: "x/y", vmChid: "c".repeat(64) as Chid, creator: "AK", ...over };
}
const removal = (key: string, u: Uvid, target: Uvid): RemovalRecord => ({ kind: "removal", tenant: "t", bucket: "b", key, uvid: u, target });
const q = (over: Partial<ListQuery> = {}): ListQuery => ({ tenant: "t", bucket: "b", prefix: "", delimiter: "", after: "", limit: 1000, ...over });
const vq = (over: Partial<VersionQuery> = {}): VersionQuery => ({ tenant: "t", bucket: "b", prefix: "", delimiter: "", keyMarker: "", versionIdMarker: "", limit: 1000, ...over });
const listed = (entries: ListEntry[]) => entries.map((e) => (e.kind === "object" ? `${e.key}@${e.etag}` : `[${e.prefix}]`));

describe("a shard's sources", () => {
  it("expects exactly the configured groups, each with no promise until it reports", async () => {
    const states = await freshShard().sourceStates();
    expect(states.map((s) => s.group)).toEqual(Array.from({ length: GROUPS }, (_, g) => g));
    expect(states.every((s) => s.cutoff === "")).toBe(true);
  });

  it("changes its expected set explicitly when the group count changes: new groups start with no promise", async () => {
    const shard = freshShard();
    await shard.applyRecords([], { group: 1, cutoff: uvid(40) });
    await runInDurableObject(shard, (_i, state) => {
      const book = new SourceBook(state.storage.sql);
      expect(book.expect(GROUPS + 2)).toEqual({ added: [GROUPS, GROUPS + 1], removed: [] });
      expect(book.lagging(at(10)).includes(GROUPS + 1)).toBe(true);
      expect(book.expect(2)).toEqual({ added: [], removed: Array.from({ length: GROUPS }, (_, g) => g + 2) });
      expect(book.all().map((s) => [s.group, s.cutoff])).toEqual([[0, ""], [1, uvid(40)]]);
      expect(book.expects(5)).toBe(false);
    });
  });

  it("keeps each group's cutoff, only ever moving it forward", async () => {
    const shard = freshShard();
    await shard.applyRecords([], { group: 2, cutoff: uvid(50) });
    await shard.applyRecords([], { group: 2, cutoff: uvid(20) });
    await shard.applyRecords([], { group: 5, cutoff: uvid(30) });
    const states = await shard.sourceStates();
    expect(states.find((s) => s.group === 2)!.cutoff).toBe(uvid(50));
    expect(states.find((s) => s.group === 5)!.cutoff).toBe(uvid(30));
    expect(states.find((s) => s.group === 0)!.cutoff).toBe("");
  });

  it("refuses records from a group it does not expect, and applies none of them", async () => {
    const shard = freshShard();
    expect(await shard.applyRecords([rec("x", uvid(1))], { group: GROUPS + 3, cutoff: uvid(2) })).toEqual({ refused: expect.stringMatching(/not from group 11: GROUP_COUNT differs/) });
    expect((await shard.list(q())).entries).toEqual([]);
  });

  it("settles at once for a time every group has promised past, without asking anyone", async () => {
    const shard = freshShard();
    for (let g = 0; g < GROUPS; g++) await shard.applyRecords([], { group: g, cutoff: uvid(100) });
    expect(await shard.settle(0, at(98), 0)).toEqual({ lagging: [] });
    expect((await shard.settle(0, at(100), 0)).lagging).toEqual(Array.from({ length: GROUPS }, (_, g) => g));
    // One name's answer needs only its own group.
    await shard.applyRecords([], { group: 3, cutoff: uvid(200) });
    expect(await shard.settle(0, at(150), 0, 3)).toEqual({ lagging: [] });
    expect(await shard.settle(0, at(150), 0, 4)).toEqual({ lagging: [4] });
  });

  it("asks idle groups to advance: real group objects promise past a time that has gone by", async () => {
    // The real shard 1, as the groups address it; they are idle, so each answers with "now".
    const shard = env.SHARD.get(env.SHARD.idFromName("shard-1"));
    const t = Date.now() - 5;
    expect(await shard.settle(1, at(t), 10_000)).toEqual({ lagging: [] });
    const states = await shard.sourceStates();
    expect(states.every((s) => s.cutoff >= at(t))).toBe(true);
  });

  it("does not settle a time no group can have promised past yet, and says which groups it waits for", async () => {
    const shard = env.SHARD.get(env.SHARD.idFromName("shard-2"));
    const future = Date.now() + 3_600_000;
    expect((await shard.settle(2, at(future), 100)).lagging).toEqual(Array.from({ length: GROUPS }, (_, g) => g));
  });
});

describe("answers as of a time", () => {
  // a: put at 1, overwritten at 3. b: put at 2, delete marker at 4. c: put at 2, removed by id at 5.
  async function history() {
    const shard = freshShard();
    await shard.applyRecords(
      [rec("a", uvid(1)), rec("b", uvid(2)), rec("c", uvid(2, 1)), rec("a", uvid(3)), rec("b", uvid(4), { deleteMarker: true }), removal("c", uvid(5), uvid(2, 1))],
      { group: 0, cutoff: uvid(6) },
    );
    return shard;
  }

  it("lists exactly the versions current at each time", async () => {
    const shard = await history();
    const list = async (t: number) => listed((await shard.list(q(), at(t))).entries);
    expect(await list(0)).toEqual([]);
    expect(await list(1)).toEqual([`a@e-${uvid(1)}`]);
    expect(await list(2)).toEqual([`a@e-${uvid(1)}`, `b@e-${uvid(2)}`, `c@e-${uvid(2, 1)}`]);
    expect(await list(3)).toEqual([`a@e-${uvid(3)}`, `b@e-${uvid(2)}`, `c@e-${uvid(2, 1)}`]);
    expect(await list(4)).toEqual([`a@e-${uvid(3)}`, `c@e-${uvid(2, 1)}`]);
    expect(await list(5)).toEqual([`a@e-${uvid(3)}`]);
    // And now, from the table of current versions, the same as the latest time.
    expect(listed((await shard.list(q())).entries)).toEqual(await list(6));
  });

  it("finds one key's version at a time, delete markers included", async () => {
    const shard = await history();
    expect(await shard.versionAt("t", "b", "a", at(0))).toBeNull();
    expect((await shard.versionAt("t", "b", "a", at(2)))!.uvid).toBe(uvid(1));
    expect((await shard.versionAt("t", "b", "a", at(3)))!.uvid).toBe(uvid(3));
    expect(await shard.versionAt("t", "b", "b", at(4))).toMatchObject({ uvid: uvid(4), deleteMarker: true });
    expect((await shard.versionAt("t", "b", "c", at(4)))!.uvid).toBe(uvid(2, 1));
    expect(await shard.versionAt("t", "b", "c", at(5))).toBeNull();
  });

  it("lists versions as they existed at a time, with IsLatest as it was then", async () => {
    const shard = await history();
    const versions = async (t: number) =>
      (await shard.listVersions(vq(), at(t))).entries.map((e) => (e.kind === "version" ? `${e.key}@${e.uvid.slice(9, 12)}${e.isLatest ? "*" : ""}${e.deleteMarker ? "x" : ""}` : e.prefix));
    expect(await versions(3)).toEqual(["a@003*", "a@001", "b@002*", "c@002*"]);
    expect(await versions(4)).toEqual(["a@003*", "a@001", "b@004*x", "b@002", "c@002*"]);
    expect(await versions(5)).toEqual(["a@003*", "a@001", "b@004*x", "b@002"]);
  });

  it("rolls up and pages as of a time like a listing of now", async () => {
    const shard = freshShard();
    const recs = [rec("p/1", uvid(1)), rec("p/2", uvid(1, 1)), rec("q", uvid(1, 2)), rec("r/1", uvid(3))];
    await shard.applyRecords(recs, { group: 0, cutoff: uvid(4) });
    expect(listed((await shard.list(q({ delimiter: "/" }), at(2))).entries)).toEqual(["[p/]", `q@e-${uvid(1, 2)}`]);
    const first = await shard.list(q({ limit: 2 }), at(2));
    expect(listed(first.entries)).toEqual([`p/1@e-${uvid(1)}`, `p/2@e-${uvid(1, 1)}`]);
    expect(first.truncated).toBe(true);
    expect(listed((await shard.list(q({ after: "p/2" }), at(2))).entries)).toEqual([`q@e-${uvid(1, 2)}`]);
  });

  it("a removal applied before the version it removes still removes it", async () => {
    const shard = freshShard();
    await shard.applyRecords([removal("late", uvid(9), uvid(7))], { group: 0, cutoff: uvid(1) });
    await shard.applyRecords([rec("late", uvid(7))], { group: 0, cutoff: uvid(10) });
    expect((await shard.list(q())).entries).toEqual([]);
    expect((await shard.versionAt("t", "b", "late", at(8)))!.uvid).toBe(uvid(7));
    expect(await shard.versionAt("t", "b", "late", at(9))).toBeNull();
  });
});
