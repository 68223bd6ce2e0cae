// A group split's hand-over between real group Durable Objects (workers/negotiating-group/split.ts):
// the cluster's history says 4 then 8 groups, so ids of group 5 were in group 1. Group 5 takes a
// name in when a request names it, takes in the rest (and a hand-over whose reply was lost) by
// walking group 1's tables, group 1 refuses requests for ids it gave away and does not reclaim
// a chunk it no longer owns. No targets: the rows are what is checked (the whole path over
// real targets is test/integration/group-split.test.ts).

import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { groupOf, type Nhid } from "../../common/ids.ts";
import { clusterStub, groupStub } from "../../workers/shared/env.ts";
import { GroupLayout } from "../../workers/shared/group-layout.ts";

const COUNT = Number(env.GROUP_COUNT);
const OLD = COUNT / 2;
const CHILD = OLD + 1;
const PARENT = 1;

/** An id whose first 4 bytes put it in `group` (of COUNT), told apart by `tag`. */
function idIn(group: number, tag: string): string {
  const id = group.toString(16).padStart(8, "0") + tag.repeat(56).slice(0, 56);
  expect(groupOf(id as Nhid, COUNT)).toBe(group);
  return id;
}

const sql = <T,>(g: number, fn: (sql: SqlStorage) => T) => runInDurableObject(groupStub(env, g), (_o, state) => fn(state.storage.sql));
const count = (g: number, table: string, where: string, ...args: SqlStorageValue[]) => sql(g, (s) => Number(s.exec(`SELECT count(*) AS n FROM ${table} WHERE ${where}`, ...args).one().n));

function seedName(s: SqlStorage, nhid: string, uvid: string): void {
  s.exec("INSERT INTO versions (nhid, uvid, vm_chid, delete_marker, etag, is_null, replicas, tags) VALUES (?, ?, ?, 0, 'e', 0, NULL, NULL)", nhid, uvid, "c".repeat(64));
  s.exec("INSERT INTO names (nhid, uvid, vm_chid, delete_marker, etag) VALUES (?, ?, ?, 0, 'e')", nhid, uvid, "c".repeat(64));
}

describe("a group split's hand-over", () => {
  it("moves a name on first touch and the rest by the walk, refuses ids given away, and reclaims only its own", async () => {
    expect(COUNT % 2).toBe(0);
    // The cluster grew from OLD to COUNT groups.
    await runInDurableObject(clusterStub(env), (_o, state) => {
      state.storage.sql.exec("DELETE FROM group_counts");
      state.storage.sql.exec("INSERT INTO group_counts (since, count) VALUES (0, ?), (1, ?)", OLD, COUNT);
    });
    const touched = idIn(CHILD, "a");
    const walked = idIn(CHILD, "b");
    const lost = idIn(CHILD, "d");
    const own = idIn(PARENT, "e");
    const chunk = idIn(CHILD, "f");
    const foreignHeld = idIn(CHILD, "7");
    const ownHeld = idIn(PARENT, "8");
    const uvid = "000000000001000000" + "0001";
    await sql(PARENT, (s) => {
      for (const n of [touched, walked, lost, own]) seedName(s, n, uvid);
      s.exec("INSERT INTO backrefs (chid, ref) VALUES (?, ?)", chunk, `v:${walked}/${uvid}`);
      for (const c of [foreignHeld, ownHeld]) s.exec("INSERT INTO holds (chid, until) VALUES (?, 1)", c);
    });

    // The old group reclaims its own unreferenced chunk, and leaves the one it no longer owns.
    await runDurableObjectAlarm(groupStub(env, PARENT));
    expect(await count(PARENT, "tombstones", "chid = ?", ownHeld)).toBe(1);
    expect(await count(PARENT, "tombstones", "chid = ?", foreignHeld)).toBe(0);
    expect(await count(PARENT, "holds", "chid = ?", foreignHeld)).toBe(1);

    // First touch: a lease on the name brings its rows over before it is taken.
    expect(await groupStub(env, CHILD).leaseName(touched as Nhid, "editor", 60_000)).toBe(true);
    expect(await count(CHILD, "versions", "nhid = ?", touched)).toBe(1);
    expect(await count(CHILD, "names", "nhid = ?", touched)).toBe(1);
    expect(await count(PARENT, "versions", "nhid = ?", touched)).toBe(0);
    // The old group refuses a caller that still routes the name to it.
    const refused = await groupStub(env, PARENT)
      .leaseName(touched as Nhid, "editor", 60_000)
      .then(() => "taken", (e: unknown) => String(e));
    expect(refused).toMatch(new RegExp(`belongs to group ${CHILD}`));

    // A hand-over whose reply never arrived: the old group keeps it until the new one confirms.
    const dropped = await groupStub(env, PARENT).handOver(CHILD, "name", [lost]);
    expect(dropped.moved.map((m) => m.id)).toEqual([lost]);
    expect(await count(PARENT, "handoff", "id = ?", lost)).toBe(1);
    expect(await count(CHILD, "versions", "nhid = ?", lost)).toBe(0);

    // The walk takes the rest in, the lost hand-over included, and then the split is over here.
    for (let i = 0; i < 10 && (await groupStub(env, CHILD).health()).split?.done !== true; i++) await runDurableObjectAlarm(groupStub(env, CHILD));
    const split = (await groupStub(env, CHILD).health()).split;
    expect(split?.done).toBe(true);
    for (const n of [touched, walked, lost]) {
      expect(await count(CHILD, "versions", "nhid = ?", n), n).toBe(1);
      expect(await count(PARENT, "versions", "nhid = ?", n), n).toBe(0);
    }
    expect(await count(CHILD, "backrefs", "chid = ?", chunk)).toBe(1);
    expect(await count(CHILD, "holds", "chid = ?", foreignHeld)).toBe(1);
    expect(await count(PARENT, "backrefs", "chid = ?", chunk)).toBe(0);
    expect(await count(PARENT, "versions", "nhid = ?", own)).toBe(1);
    expect(await count(PARENT, "handoff", "1 = 1")).toBe(0);
    expect(await count(PARENT, "handoff_pages", "1 = 1")).toBe(0);
    // The old group takes nothing more out for the new one for this count: a late touch gets
    // only what it keeps (nothing now), and a table walk is refused.
    await sql(PARENT, (s) => seedName(s, idIn(CHILD, "9"), uvid));
    expect(await groupStub(env, PARENT).handOver(CHILD, "name", [idIn(CHILD, "9")])).toEqual({ moved: [], busy: [] });
    expect(await count(PARENT, "versions", "nhid = ?", idIn(CHILD, "9"))).toBe(1);
    const walk = await groupStub(env, PARENT)
      .handOverNext(CHILD, 0, "")
      .then(() => "served", (e: unknown) => String(e));
    expect(walk).toMatch(/has walked every table/);
    expect(await count(CHILD, "adopted", "1 = 1")).toBe(0);
    // The cluster as other tests expect it: one count.
    await runInDurableObject(clusterStub(env), (_o, state) => {
      state.storage.sql.exec("DELETE FROM group_counts WHERE count = ?", OLD);
    });
  });

  it("starts the history from the count an object ran with, when the code and a new count come in one deploy", async () => {
    await runInDurableObject(env.GROUP.get(env.GROUP.idFromName("group-0-layout")), (_o, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE IF EXISTS group_counts");
      expect(new GroupLayout(sql).observe(16, 5, 8)).toEqual({ count: 16, added: [8, 9, 10, 11, 12, 13, 14, 15] });
      expect(new GroupLayout(sql).history()).toEqual([8, 16]);
      expect(() => new GroupLayout(sql).observe(24, 6)).toThrow(/not a multiple of 16/);
      sql.exec("DROP TABLE group_counts");
      expect(new GroupLayout(sql).observe(8, 7, 8)).toEqual({ count: 8, added: [] });
      expect(new GroupLayout(sql).history()).toEqual([8]);
    });
  });
});
