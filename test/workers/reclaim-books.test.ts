// The bookkeeping of space reclamation (workers/negotiating-group/backrefs.ts, expunge.ts,
// ref-outbox.ts) in workerd against real Durable Object SQLite storage: when a chunk becomes
// deletable, what a deletion owes each member, what a snapshot's hold keeps, and the order in
// which reference changes leave a group. The end-to-end behaviour on real targets is
// test/integration/reclaim.test.ts.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { groupOf, type Chid, type Nhid, type TargetId, type Uvid } from "../../common/ids.ts";
import { RefBook, type RefChange } from "../../workers/negotiating-group/backrefs.ts";
import { ExpungeBook } from "../../workers/negotiating-group/expunge.ts";
import { RefOutbox } from "../../workers/negotiating-group/ref-outbox.ts";

let n = 0;
const withSql = <T,>(fn: (sql: SqlStorage) => T | Promise<T>) =>
  runInDurableObject(env.GROUP.get(env.GROUP.idFromName(`group-0-reclaim-${n++}`)), (_o, state) => fn(state.storage.sql));

const chid = (c: string) => c.repeat(64).slice(0, 64) as Chid;
const [A, B] = [chid("a"), chid("b")];
const [T1, T2] = ["t1" as TargetId, "t2" as TargetId];

describe("the copies a chunk's users want (trimming's limit)", () => {
  it("is the most any reference asked for, never below R, and follows a later count", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      expect(book.wanted(A, 3)).toBeNull();
      book.apply([{ op: "+", ref: "v:x/1", chids: [A, B] }], 0, 100);
      expect(book.wanted(A, 3)).toBe(3);
      book.apply([{ op: "+", ref: "v:y/1", chids: [A], replicas: 5 }, { op: "+", ref: "v:z/1", chids: [B], replicas: 1 }], 0, 100);
      expect([book.wanted(A, 3), book.wanted(B, 3)]).toEqual([5, 3]);
      // The version's count changed (setVersionReplicas pushes "+" again with it).
      book.apply([{ op: "+", ref: "v:y/1", chids: [A], replicas: 2 }], 0, 100);
      expect(book.wanted(A, 3)).toBe(3);
      book.apply([{ op: "+", ref: "v:y/1", chids: [A], replicas: 4 }, { op: "-", ref: "v:x/1", chids: [A] }], 0, 100);
      expect(book.wanted(A, 3)).toBe(4);
      expect(book.counts().backrefs).toBe(3);
    });
  });

  it("owes a trimmed copy's deletion to that member only, without treating the chunk as deleted", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      book.apply([{ op: "+", ref: "v:x/1", chids: [A] }], 0, 100);
      book.trim([{ kind: "chunk", chid: A }], T1);
      expect(book.pendingFor(T1, 10)).toEqual([{ kind: "chunk", chid: A }]);
      expect(book.pendingFor(T2, 10)).toEqual([]);
      expect(book.reclaiming({ kind: "chunk", chid: A })).toBe(false);
      expect(book.gone([A])).toEqual([]);
      book.confirmed(T1, [{ kind: "chunk", chid: A }]);
      expect(book.pendingFor(T1, 10)).toEqual([]);
      // A trim owed by a target that is no longer a reader is forgotten.
      book.trim([{ kind: "chunk", chid: A }], T2);
      book.forgetMembersExcept([T1]);
      expect(book.pendingFor(T2, 10)).toEqual([]);
    });
  });
});

describe("a group's back-references and holds", () => {
  it("deletes a held chunk only once its hold ran out with nothing referencing it", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      book.hold([A, B], 1_000);
      expect(book.due(999, 10)).toEqual([]);
      book.apply([{ op: "+", ref: "v:x/1", chids: [A] }], 500, 100);
      // A is referenced: its hold simply ends. B is due.
      expect(book.due(1_000, 10)).toEqual([B]);
      expect(book.nextDue()).toBe(1_000);
      expect(book.counts()).toMatchObject({ backrefs: 1, holds: 1 });
    });
  });

  it("holds a chunk whose last reference went for the grace period, and keeps one a second reference still uses", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      book.apply([{ op: "+", ref: "v:x/1", chids: [A] }, { op: "+", ref: "v:y/1", chids: [A] }], 0, 100);
      book.apply([{ op: "-", ref: "v:x/1", chids: [A] }], 1_000, 100);
      expect(book.due(10_000, 10)).toEqual([]);
      book.apply([{ op: "-", ref: "v:y/1", chids: [A] }], 2_000, 100);
      expect(book.due(2_099, 10)).toEqual([]);
      expect(book.due(2_100, 10)).toEqual([A]);
    });
  });

  it("never makes deletable a chunk whose dropped reference it never had (a version from before references)", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      book.apply([{ op: "-", ref: "v:old/1", chids: [A] }], 0, 0);
      expect(book.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
      expect(book.nextDue()).toBeNull();
    });
  });

  it("owes each member the deletion until it confirms, and a chunk stored again cancels what is still owed", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      book.reclaim([{ kind: "chunk", chid: A }, { kind: "chunk", chid: B }], [T1, T2], 5_000);
      expect(book.pendingFor(T1, 10)).toHaveLength(2);
      book.confirmed(T1, [{ kind: "chunk", chid: A }, { kind: "chunk", chid: B }]);
      expect(book.pendingFor(T1, 10)).toEqual([]);
      expect(book.pendingFor(T2, 10)).toHaveLength(2);
      expect(book.gone([A, B])).toEqual([A, B]);
      // A is put again: T2's stale copy of it is a good copy, no longer to be deleted.
      book.hold([A], 9_000);
      expect(book.pendingFor(T2, 10)).toEqual([{ kind: "chunk", chid: B }]);
      expect(book.gone([A, B])).toEqual([B]);
      expect(book.reclaiming({ kind: "chunk", chid: B })).toBe(true);
      // A target that left the group will never be asked again.
      book.forgetMembersExcept([T1]);
      expect(book.reclaiming({ kind: "chunk", chid: B })).toBe(false);
    });
  });

  it("leaves a marker for an earlier life while holds are in memory or a manifest write is uncommitted", async () => {
    await withSql((sql) => {
      const first = new RefBook(sql);
      first.writing("u1");
      const since = new RefBook(sql).lostSince();
      expect(since).not.toBeNull();
      // A flush with the write still in flight keeps a marker; once it is written, the flush clears it.
      first.hold([A], 5_000);
      first.flushHolds();
      expect(new RefBook(sql).lostSince()).not.toBeNull();
      first.written("u1");
      first.flushHolds();
      expect(new RefBook(sql).lostSince()).toBeNull();
      // A manifest owed for deletion does not make a put's holds go to storage: only a deleted chunk does.
      first.reclaim([{ kind: "vm", chid: A, nhid: "n" as Nhid, uvid: "0".repeat(22) as Uvid }], [T1], 10);
      const fresh = new RefBook(sql);
      fresh.hold([B], 9_000);
      expect(fresh.unflushedHolds).toBe(1);
    });
  });

  it("names no chunk unknown while an earlier life's holds are being recovered", async () => {
    await withSql((sql) => {
      const C = chid("c");
      const earlier = new RefBook(sql);
      earlier.hold([A], 5_000);
      // A restart before the flush: A may be on members with no row here until recovery finds it.
      const book = new RefBook(sql);
      expect(book.unknown([A, C])).toEqual(new Set());
      book.recovered([A], 9_000);
      expect(book.unknown([A, C])).toEqual(new Set([C]));
    });
  });

  it("reports a reference that arrives for a chunk already deleted", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      book.reclaim([{ kind: "chunk", chid: A }], [T1], 0);
      expect(book.apply([{ op: "+", ref: "v:late/1", chids: [A, B] }], 1, 0)).toEqual([A]);
    });
  });
});

describe("removed versions and snapshot holds", () => {
  const v = (u: string) => ({ nhid: "e".repeat(64) as Nhid, uvid: u.padStart(22, "0") as Uvid, vmChid: A });

  it("expunges a removed version when due, unless a snapshot holds it; the last release frees it", async () => {
    await withSql((sql) => {
      const book = new ExpungeBook(sql);
      book.hold("s:t/one", [v("1")]);
      book.hold("s:t/two", [v("1")]);
      book.schedule(v("1"), 100);
      book.schedule(v("2"), 100);
      expect(book.due(99, 10)).toEqual([]);
      expect(book.due(100, 10)).toEqual([v("2")]);
      // Held: it left the queue but its data stays.
      expect(book.retained(v("1").nhid, v("1").uvid)).toBe(true);
      expect(book.release("s:t/one", [v("1")])).toEqual([]);
      expect(book.release("s:t/two", [v("1")])).toEqual([v("1")]);
      expect(book.retained(v("1").nhid, v("1").uvid)).toBe(false);
    });
  });
});

describe("the reference outbox", () => {
  it("splits changes by chunk group and sends each group's in order; a failed send keeps them for the next push", async () => {
    await withSql(async (sql) => {
      const sent: [number, RefChange[]][] = [];
      let fail = true;
      const outbox = new RefOutbox(sql, 4, async (g, changes) => {
        if (fail) throw new Error("unreachable");
        sent.push([g, changes]);
      });
      const chids = Array.from({ length: 40 }, (_, i) => chid(i.toString(16).padStart(2, "0")));
      outbox.queue("+", "v:x/1", chids, 5);
      outbox.queue("-", "u:up/1", chids);
      await expect(outbox.push()).rejects.toThrow("unreachable");
      fail = false;
      await outbox.push();
      expect(outbox.waiting()).toEqual([]);
      const groups = new Set(chids.map((c) => groupOf(c, 4)));
      expect(new Set(sent.map(([g]) => g))).toEqual(groups);
      for (const [g, changes] of sent) {
        expect(changes.map((c) => c.op)).toEqual(["+", "-"]);
        // A version's own replica count travels with its references.
        expect(changes.map((c) => c.replicas)).toEqual([5, undefined]);
        expect(changes[0]!.chids.every((c) => groupOf(c, 4) === g)).toBe(true);
      }
    });
  });
});

describe("whether a chunk was reclaimed (what repairs must not bring back)", () => {
  it("is true from its reclaim until something holds it again", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      expect(book.reclaimed(A)).toBe(false);
      book.hold([A, B], 10);
      expect(book.due(20, 10).sort()).toEqual([A, B]);
      book.reclaim([{ kind: "chunk", chid: A }], [T1, T2], 20);
      expect([book.reclaimed(A), book.reclaimed(B)]).toEqual([true, false]);
      // A new put of the same bytes holds it: it is alive again, and a repair may copy it.
      book.hold([A], 100);
      expect(book.reclaimed(A)).toBe(false);
    });
  });

  it("waits, when postponed (its repair is under way), and is due again after, still unreferenced", async () => {
    await withSql((sql) => {
      const book = new RefBook(sql);
      book.hold([A, B], 10);
      expect(book.due(20, 10).sort()).toEqual([A, B]);
      book.postpone([A], 50);
      expect(book.due(20, 10)).toEqual([B]);
      // Postponing never shortens a hold.
      book.hold([B], 500);
      book.postpone([B], 60);
      expect(book.due(60, 10)).toEqual([A]);
      expect(book.reclaimed(A)).toBe(false);
    });
  });
});
