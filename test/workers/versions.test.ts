import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { formatUvid, nhidOf, parseUvid, type Chid, type Uvid } from "../../common/ids.ts";
import type { VersionRecord } from "../../workers/manifest-shard/records.ts";
import { CLOCK_LEASE_MS, VersionBook } from "../../workers/negotiating-group/versions.ts";

let n = 0;
// A fresh group object per test: storage is not assumed to be reset between tests.
const freshGroup = () => env.GROUP.get(env.GROUP.idFromName(`group-0-versions-${n++}`));

function withBook<R>(stub: ReturnType<typeof freshGroup>, fn: (book: VersionBook, sql: SqlStorage) => R | Promise<R>): Promise<R> {
  return runInDurableObject(stub, (_instance, state) => fn(new VersionBook(state.storage.sql), state.storage.sql));
}

const chid = (c: string) => c.repeat(64) as Chid;
let removals = 0;
const removal = (target: Uvid) => ({ kind: "removal" as const, tenant: "t", bucket: "b", key: "k", uvid: formatUvid({ ms: 9_000_000 + removals++, seq: 0, group: 0 }), target });

function record(key: string, uvid: Uvid): VersionRecord {
  return {
    tenant: "t",
    bucket: "b",
    key,
    uvid,
    deleteMarker: false,
    size: 1,
    etag: "e",
    lastModified: parseUvid(uvid).ms,
    contentType: "text/plain",
    vmChid: chid("a"),
    creator: "AK",
  };
}

describe("VersionBook stamps", () => {
  it("strictly increase even when `now` repeats or goes backwards", async () => {
    await withBook(freshGroup(), (book) => {
      const nows = [1000, 1000, 1000, 999, 500, 1001, 1001, 2000, 1500, 2000];
      const stamps = nows.map((now) => book.stamp(3, now));
      for (let i = 1; i < stamps.length; i++) expect(stamps[i]! > stamps[i - 1]!).toBe(true);
      expect(new Set(stamps).size).toBe(stamps.length);
      expect(parseUvid(stamps[0]!)).toEqual({ ms: 1000, seq: 0, group: 3 });
      expect(parseUvid(stamps[4]!)).toEqual({ ms: 1000, seq: 4, group: 3 });
      // A clock that catches up resets the sequence.
      expect(parseUvid(stamps[7]!)).toEqual({ ms: 2000, seq: 0, group: 3 });
    });
  });

  it("persist: a new VersionBook on the same storage never reuses or precedes a stamp", async () => {
    const stub = freshGroup();
    const last = await withBook(stub, (book) => {
      book.stamp(1, 5000);
      return book.stamp(1, 5000);
    });
    const next = await withBook(stub, (book) => book.stamp(1, 10));
    expect(next > last).toBe(true);
    // The clock is leased: a restart resumes just past the lease, never more than it ahead.
    expect(parseUvid(next).ms).toBeGreaterThan(5000);
    expect(parseUvid(next).ms).toBeLessThanOrEqual(5000 + CLOCK_LEASE_MS + 1);
  });

  it("writes the clock a few times a second, not once per stamp", async () => {
    await withBook(freshGroup(), (book, sql) => {
      const read = () => Number(sql.exec("SELECT ms FROM clock WHERE k = 0").one().ms);
      book.stamp(0, 1000);
      const lease = read();
      for (let i = 0; i < 50; i++) book.stamp(0, 1000 + i);
      expect(read()).toBe(lease);
      book.stamp(0, lease + 1);
      expect(read()).toBe(lease + 1 + CLOCK_LEASE_MS);
    });
  });

  it("the cutoff is above every stamp already issued and let go, and below the next", async () => {
    await withBook(freshGroup(), (book) => {
      const future = Date.now() + 60_000;
      const s = book.stamp(7, future);
      book.release(s);
      const cutoff = book.cutoffFor(0, []);
      expect(cutoff > s).toBe(true);
      expect(book.stamp(0, 0) >= cutoff).toBe(true);
    });
  });

  it("a stamp holds every shard's cutoff until its record is queued; a record holds its shard's until applied", async () => {
    const nhid = await nhidOf("t", "b", "held");
    await withBook(freshGroup(), (book) => {
      const u = book.stamp(0);
      expect(book.cutoffFor(0, [])).toBe(u);
      expect(book.cutoffFor(3, [])).toBe(u);
      book.commit(nhid, { uvid: u, vmChid: chid("h"), deleteMarker: false, etag: null, isNull: false }, { shard: 1, record: record("held", u), removalOf: removal });
      // Queued for shard 1: shard 0's cutoff is free, shard 1's waits for the record.
      expect(book.cutoffFor(0, []) > u).toBe(true);
      expect(book.cutoffFor(1, [])).toBe(u);
      // A batch that carries the record may promise past it.
      expect(book.cutoffFor(1, [record("held", u)]) > u).toBe(true);
      book.delivered(1, [u]);
      expect(book.cutoffFor(1, []) > u).toBe(true);
    });
  });

  it("records a restart finds in the outbox hold their shard's cutoff", async () => {
    const nhid = await nhidOf("t", "b", "restart");
    const stub = freshGroup();
    let u = "" as Uvid;
    await withBook(stub, (book) => {
      u = book.stamp(0);
      book.commit(nhid, { uvid: u, vmChid: chid("r"), deleteMarker: false, etag: null, isNull: false }, { shard: 2, record: record("restart", u), removalOf: removal });
    });
    await withBook(stub, (book) => {
      expect(book.cutoffFor(2, [])).toBe(u);
      expect(book.cutoffFor(0, []) > u).toBe(true);
    });
  });
});

describe("VersionBook names and outbox", () => {
  it("commit keeps the newest uvid per name, whatever the order commits arrive in", async () => {
    const nhid = await nhidOf("t", "b", "k");
    const other = await nhidOf("t", "b", "other");
    const u = [formatUvid({ ms: 1, seq: 0, group: 0 }), formatUvid({ ms: 2, seq: 0, group: 0 }), formatUvid({ ms: 2, seq: 1, group: 0 })];
    const orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]];
    for (const order of orders) {
      await withBook(freshGroup(), (book) => {
        expect(book.current(nhid)).toBeNull();
        for (const i of order) book.commit(nhid, { uvid: u[i]!, vmChid: chid(String(i)), deleteMarker: i === 2, etag: null, isNull: false }, { shard: 0, record: record("k", u[i]!), removalOf: removal });
        expect(book.current(nhid)).toEqual({ uvid: u[2], vmChid: chid("2"), deleteMarker: true, etag: null });
        expect(book.current(other)).toBeNull();
      });
    }
  });

  it("queues every committed record once, lists pending in uvid order, and drops what was delivered", async () => {
    const nA = await nhidOf("t", "b", "a");
    const nB = await nhidOf("t", "b", "b");
    const u1 = formatUvid({ ms: 10, seq: 0, group: 0 });
    const u2 = formatUvid({ ms: 11, seq: 0, group: 0 });
    const u3 = formatUvid({ ms: 12, seq: 0, group: 0 });
    await withBook(freshGroup(), (book) => {
      expect(book.pending()).toEqual([]);
      book.commit(nB, { uvid: u3, vmChid: chid("3"), deleteMarker: false, etag: null, isNull: false }, { shard: 2, record: record("b", u3), removalOf: removal });
      book.commit(nA, { uvid: u1, vmChid: chid("1"), deleteMarker: false, etag: null, isNull: false }, { shard: 1, record: record("a", u1), removalOf: removal });
      book.commit(nA, { uvid: u2, vmChid: chid("2"), deleteMarker: false, etag: null, isNull: false }, { shard: 1, record: record("a", u2), removalOf: removal });
      // A retried commit must not queue a second copy.
      book.commit(nA, { uvid: u2, vmChid: chid("2"), deleteMarker: false, etag: null, isNull: false }, { shard: 1, record: record("a", u2), removalOf: removal });

      expect(book.pending()).toEqual([
        { shard: 1, record: record("a", u1) },
        { shard: 1, record: record("a", u2) },
        { shard: 2, record: record("b", u3) },
      ]);
      expect(book.pending(2).map((p) => p.record.uvid)).toEqual([u1, u2]);

      // Delivery is per shard: the wrong shard removes nothing.
      book.delivered(2, [u1]);
      expect(book.pending()).toHaveLength(3);
      book.delivered(1, [u1, u2]);
      expect(book.pending()).toEqual([{ shard: 2, record: record("b", u3) }]);
      book.delivered(2, [u3]);
      expect(book.pending()).toEqual([]);
    });
  });

  it("forgets delivered rows in the next commit, and sends them again after a restart before that", async () => {
    const stub = freshGroup();
    const nA = await nhidOf("t", "b", "a");
    const u1 = formatUvid({ ms: 20, seq: 0, group: 0 });
    const u2 = formatUvid({ ms: 21, seq: 0, group: 0 });
    const rows = (sql: SqlStorage) => sql.exec("SELECT uvid FROM outbox ORDER BY uvid").toArray().map((r) => r.uvid);
    await withBook(stub, (book, sql) => {
      book.commit(nA, { uvid: u1, vmChid: chid("1"), deleteMarker: false, etag: null, isNull: false }, { shard: 1, record: record("a", u1), removalOf: removal });
      book.delivered(1, [u1]);
      expect(book.pending()).toEqual([]);
      expect(rows(sql)).toEqual([u1]);
    });
    await withBook(stub, (book, sql) => {
      // The restart lost the note that u1 was delivered: it goes again (harmless, idempotent).
      expect(book.pending().map((p) => p.record.uvid)).toEqual([u1]);
      book.delivered(1, [u1]);
      book.commit(nA, { uvid: u2, vmChid: chid("2"), deleteMarker: false, etag: null, isNull: false }, { shard: 1, record: record("a", u2), removalOf: removal });
      expect(rows(sql)).toEqual([u2]);
    });
  });

  it("outbox survives a new VersionBook on the same storage", async () => {
    const stub = freshGroup();
    const nhid = await nhidOf("t", "b", "k");
    const u = formatUvid({ ms: 42, seq: 0, group: 0 });
    await withBook(stub, (book) => book.commit(nhid, { uvid: u, vmChid: chid("9"), deleteMarker: false, etag: null, isNull: false }, { shard: 3, record: record("k", u), removalOf: removal }));
    await withBook(stub, (book) => {
      expect(book.pending()).toEqual([{ shard: 3, record: record("k", u) }]);
      expect(book.current(nhid)?.uvid).toBe(u);
    });
  });
});

describe("VersionBook versions of a name", () => {
  const v = (ms: number) => formatUvid({ ms, seq: 0, group: 0 });
  const row = (u: Uvid, isNull: boolean, deleteMarker = false) => ({ uvid: u, vmChid: chid("d"), deleteMarker, etag: `e${u.slice(8, 12)}`, isNull });

  it("keeps one null version, the newest stamped, whatever order the commits arrive in", async () => {
    const nhid = await nhidOf("t", "b", "nulls");
    await withBook(freshGroup(), (book, sql) => {
      book.commit(nhid, row(v(30), true), { shard: 0, record: record("nulls", v(30)), removalOf: removal });
      // An older stamp committing late is superseded at once.
      book.commit(nhid, row(v(20), true), { shard: 0, record: record("nulls", v(20)), removalOf: removal });
      book.commit(nhid, row(v(40), false), { shard: 0, record: record("nulls", v(40)), removalOf: removal });
      expect(book.find(nhid, "null")?.uvid).toBe(v(30));
      expect(book.find(nhid, v(20))).toBeNull();
      expect(book.current(nhid)?.uvid).toBe(v(40));
      book.commit(nhid, row(v(50), true), { shard: 0, record: record("nulls", v(50)), removalOf: removal });
      expect(book.find(nhid, "null")?.uvid).toBe(v(50));
      expect(book.find(nhid, v(40))?.isNull).toBe(false);
      // The shard hears of both removals.
      const removed = sql.exec("SELECT record FROM outbox").toArray().map((r) => JSON.parse(String(r.record))).filter((r) => r.kind === "removal").map((r) => r.target);
      expect(removed.sort()).toEqual([v(20), v(30)]);
    });
  });

  it("removing the current version makes the newest remaining one current, or none", async () => {
    const nhid = await nhidOf("t", "b", "rm");
    await withBook(freshGroup(), (book) => {
      book.commit(nhid, row(v(1), false), { shard: 0, record: record("rm", v(1)), removalOf: removal });
      book.commit(nhid, row(v(2), false, true), { shard: 0, record: record("rm", v(2)), removalOf: removal });
      expect(book.current(nhid)).toMatchObject({ uvid: v(2), deleteMarker: true });
      book.remove(nhid, v(2), 0, removal);
      expect(book.current(nhid)).toMatchObject({ uvid: v(1), deleteMarker: false });
      book.remove(nhid, v(1), 0, removal);
      expect(book.current(nhid)).toBeNull();
    });
  });

  it("treats a name written before versions were kept as having its current version as the null version", async () => {
    const nhid = await nhidOf("t", "b", "old");
    await withBook(freshGroup(), (book, sql) => {
      sql.exec("INSERT INTO names (nhid, uvid, vm_chid, delete_marker, etag) VALUES (?, ?, ?, 0, 'x')", nhid, v(7), chid("e"));
      expect(book.find(nhid, "null")?.uvid).toBe(v(7));
      book.commit(nhid, row(v(8), true), { shard: 0, record: record("old", v(8)), removalOf: removal });
      expect(book.find(nhid, v(7))).toBeNull();
      expect(book.current(nhid)?.uvid).toBe(v(8));
    });
  });
});
