// Space reclamation, the chunk's side (seed 002). A group keeps, for every chunk it owns, the
// back-references of whatever uses it (a version, an upload's part, a snapshot's page) and a
// hold: a time limit set when the chunk is stored (or re-stored, or referenced again by a copy)
// that keeps it until the references of its version arrive. A chunk with no back-reference and
// no live hold is deleted from every member that may hold it. Who adds or drops a reference
// pushes the change here (ref-outbox.ts); nothing scans another group or any shard, and nothing
// ever has to find "every link to X": a copy is a version with references of its own.
//
// Deletion is a message, not a transaction: the group records, per item and member, that the
// member must delete it (`reclaims`), sends `reclaim` to the live ones, and forgets a row when
// that member answers. A member that is away gets its rows when it connects again. A chunk that
// is stored again before every member answered cancels the rest: a stale copy of a chunk has the
// very bytes its name promises, so it is a good copy again, not garbage.

import { asChid, type Chid, type TargetId } from "../../common/ids.ts";
import { storedRefKey, type StoredRef } from "../../common/protocol.ts";
import { ensureWithoutRowid } from "../shared/without-rowid.ts";

export type RefOp = "+" | "-";

/** One pushed change: `ref` now uses (+) or no longer uses (-) each of `chids`. */
export interface RefChange {
  op: RefOp;
  ref: string;
  chids: Chid[];
  /** On "+": the replica count the referrer asked for, when not the cluster's R. */
  replicas?: number;
}

/** The back-reference a version puts on its chunks. */
export function versionRef(nhid: string, uvid: string): string {
  return `v:${nhid}/${uvid}`;
}

/** The back-reference of an upload's part (kept until the upload completes or is aborted). */
export function partRef(uploadId: string, partNumber: number): string {
  return `u:${uploadId}/${partNumber}`;
}

/** The back-reference a manifest-tree node holds on each of its entries while it lives (tree-nodes.ts). */
export function nodeRef(chid: string): string {
  return `n:${chid}`;
}

/** The back-reference a committed snapshot puts on the chunks of its own pages and root. */
export function snapshotRef(tenant: string, id: string): string {
  return `s:${tenant}/${id}`;
}

/** How long a deleted chunk's id is remembered, so a late copy of it can be told it is gone. */
const TOMBSTONE_MS = 7 * 24 * 3600_000;

export class RefBook {
  private readonly sql: SqlStorage;
  /** Cached anyDeleted(): null until asked; set by reclaim(). */
  private deletedKnown: boolean | null = null;
  /** Holds not yet in storage (see hold); flushHolds writes them. */
  private readonly unflushed = new Map<Chid, number>();
  /** Since when holds of this instance have been in memory only (the marker in storage), or null. */
  private since: number | null = null;
  /** Version manifests being written and not yet committed, by UVID: when each began. */
  private readonly writes = new Map<string, number>();
  /**
   * An earlier life's holds are not recovered yet (lostSince): until they are, a chunk with no
   * row may still be on a member. Only recovery clears it; no later write sets it again.
   */
  private recovering: boolean;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS backrefs (chid TEXT NOT NULL, ref TEXT NOT NULL, PRIMARY KEY (chid, ref)) WITHOUT ROWID");
    // A row per chunk put or deleted, keyed by its id as text: kept once (shared/without-rowid.ts).
    ensureWithoutRowid(sql, "holds", (t) => `CREATE TABLE ${t} (chid TEXT PRIMARY KEY, until INTEGER NOT NULL) WITHOUT ROWID`);
    sql.exec("CREATE INDEX IF NOT EXISTS holds_until ON holds (until)");
    sql.exec("CREATE TABLE IF NOT EXISTS reclaims (member TEXT NOT NULL, key TEXT NOT NULL, ref TEXT NOT NULL, PRIMARY KEY (member, key))");
    sql.exec("CREATE INDEX IF NOT EXISTS reclaims_key ON reclaims (key)");
    ensureWithoutRowid(sql, "tombstones", (t) => `CREATE TABLE ${t} (chid TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID`);
    // Added later: a referrer's own replica count (null: the cluster's R), so that trimming a
    // surplus copy never goes below what any version using the chunk asked for.
    const columns = sql.exec("PRAGMA table_info(backrefs)").toArray().map((c) => String(c.name));
    if (!columns.includes("replicas")) sql.exec("ALTER TABLE backrefs ADD COLUMN replicas INTEGER");
    // Surplus copies to delete on one member each (trimming): like reclaims, but the chunk lives on.
    sql.exec("CREATE TABLE IF NOT EXISTS trims (member TEXT NOT NULL, key TEXT NOT NULL, ref TEXT NOT NULL, PRIMARY KEY (member, key))");
    sql.exec("CREATE INDEX IF NOT EXISTS trims_key ON trims (key)");
    // One row per life of this object with holds in memory only; an earlier life's row is what recovery looks for.
    sql.exec("CREATE TABLE IF NOT EXISTS hold_marker (since INTEGER PRIMARY KEY)");
    sql.exec("CREATE INDEX IF NOT EXISTS tombstones_at ON tombstones (at)");
    this.recovering = this.lostSince() !== null;
  }

  /**
   * Keep these chunks at least until `until` (a put, a copy, a session's commit); they are alive
   * again if they were being deleted. Set at a time (json_each): a statement costs far more
   * than a row, and every putChunks comes here.
   */
  hold(chids: Iterable<Chid>, until: number): void {
    if (!this.anyDeleted()) {
      // Nothing to revive: keep the hold in memory until the next flush. A put then writes no
      // storage, so its event needs no commit (measured: a write per putChunks cost a 1 MiB PUT
      // ~7 ms of workerd CPU). Only the first hold after a flush writes, a marker saying since
      // when holds are in memory only: should this object restart before the flush, it finds
      // the marker and recovers them from its members (lostSince, recovered). Without
      // that a lost hold would leave a failed write's chunk with no row, kept for good.
      this.mark();
      for (const c of chids) this.unflushed.set(c, Math.max(this.unflushed.get(c) ?? 0, until));
      return;
    }
    const list = JSON.stringify([...new Set(chids)]);
    this.sql.exec(
      "INSERT INTO holds (chid, until) SELECT value, ? FROM json_each(?) WHERE true ON CONFLICT(chid) DO UPDATE SET until = max(until, excluded.until)",
      until,
      list,
    );
    void this.revive(list);
  }

  /**
   * Of these chunks, those this group has no record of at all: no back-reference, no hold (in
   * memory or stored), no deletion or trim still owed by a member. Such a chunk is on no member
   * (a deleted one is not held from the moment its reclaim reached the member), so storing it
   * needs no bid round to look for copies. One statement for the batch. Call before `hold`.
   * None while an earlier life's holds are being recovered: a chunk stored then has no row
   * until recovery finds it on the members, so every chunk goes through bids.
   */
  unknown(chids: readonly Chid[]): Set<Chid> {
    if (this.recovering) return new Set();
    const candidates = chids.filter((c) => !this.unflushed.has(c));
    if (candidates.length === 0) return new Set();
    // Correlated look-ups, one index probe each: `NOT IN (SELECT …)` would build the whole
    // table's ids on every call, a cost that grows with what the group holds.
    const rows = this.sql
      .exec(
        `SELECT j.value AS value FROM json_each(?) AS j
         WHERE NOT EXISTS (SELECT 1 FROM backrefs WHERE chid = j.value) AND NOT EXISTS (SELECT 1 FROM holds WHERE chid = j.value)
           AND NOT EXISTS (SELECT 1 FROM reclaims WHERE key = 'c:' || j.value) AND NOT EXISTS (SELECT 1 FROM trims WHERE key = 'c:' || j.value)`,
        JSON.stringify(candidates),
      )
      .toArray();
    return new Set(rows.map((r) => asChid(r.value)));
  }

  /**
   * A version manifest is about to be written to the members, committed later (or never: the
   * caller crashed, or its chunks failed). The same marker covers it: should this object
   * restart before the commit, recovery finds the manifest on the members, stamped since the
   * marker and unknown to the group, and deletes it. A write that fails without a restart is
   * the caller's to delete.
   */
  writing(uvid: string): void {
    this.mark();
    this.writes.set(uvid, Date.now());
  }

  /** The manifest `writing` announced was committed, or deleted by the caller. */
  written(uvid: string): void {
    this.writes.delete(uvid);
  }

  /** In-memory state begins: the marker says since when (one storage write per flush, not per put). */
  private mark(): void {
    if (this.since !== null) return;
    this.since = Date.now();
    this.sql.exec("INSERT OR IGNORE INTO hold_marker (since) VALUES (?)", this.since);
  }

  /**
   * Write the holds kept in memory to storage (before any decision that reads holds). The
   * marker then moves up to the oldest manifest write still in flight, or goes.
   */
  flushHolds(): void {
    if (this.unflushed.size > 0) {
      const pairs = JSON.stringify([...this.unflushed]);
      this.unflushed.clear();
      this.sql.exec(
        "INSERT INTO holds (chid, until) SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true ON CONFLICT(chid) DO UPDATE SET until = max(until, excluded.until)",
        pairs,
      );
    }
    if (this.since === null) return;
    let oldest: number | null = null;
    for (const t of this.writes.values()) oldest = oldest === null ? t : Math.min(oldest, t);
    if (oldest === this.since) return;
    // A marker of an earlier life stays until its recovery is done.
    this.sql.exec("DELETE FROM hold_marker WHERE since = ?", this.since);
    this.since = oldest;
    if (oldest !== null) this.sql.exec("INSERT OR IGNORE INTO hold_marker (since) VALUES (?)", oldest);
  }

  /**
   * Holds of an earlier life of this object that never reached storage: chunks stored since
   * this time may have no row. Null when there are none to recover.
   */
  lostSince(): number | null {
    const r = this.sql.exec("SELECT min(since) AS since FROM hold_marker WHERE since IS NOT ?", this.since).toArray()[0];
    return r && r.since !== null ? Number(r.since) : null;
  }

  /**
   * Recovery of lost holds: of these chunks (written since lostSince, found on the members),
   * hold those with no row at all, then forget the marker. Chunks with a row are known already.
   */
  recovered(chids: readonly Chid[], until: number): number {
    const list = JSON.stringify([...new Set(chids)]);
    const n = this.sql.exec(
      `INSERT INTO holds (chid, until) SELECT j.value, ? FROM json_each(?) AS j
       WHERE NOT EXISTS (SELECT 1 FROM backrefs WHERE chid = j.value) AND NOT EXISTS (SELECT 1 FROM tombstones WHERE chid = j.value)
       ON CONFLICT(chid) DO NOTHING`,
      until,
      list,
    ).rowsWritten;
    this.sql.exec("DELETE FROM hold_marker WHERE since IS NOT ?", this.since);
    this.recovering = false;
    return n;
  }

  /** Holds are waiting in memory for a flush. */
  get unflushedHolds(): number {
    return this.unflushed.size;
  }

  /** Of these chunks, those deleted (and not stored again since): a version must not be made to name them. */
  gone(chids: Iterable<Chid>): Chid[] {
    return [...new Set(chids)].filter(
      (c) => this.sql.exec("SELECT 1 FROM tombstones WHERE chid = ?", c).toArray().length > 0 && !this.referenced(c) && !this.held(c),
    );
  }

  /**
   * Apply pushed changes in order. A chunk whose last reference goes is held for `graceMs` more
   * before it is deleted: the margin for a copy whose own references are still on their way.
   * Returns the chunks a reference arrived for after they were deleted (a copy's references came
   * later than the grace period allows: the caller reports them as lost).
   */
  apply(changes: readonly RefChange[], now: number, graceMs: number): Chid[] {
    this.flushHolds();
    const late: Chid[] = [];
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i]!;
      if (c.op === "+") {
        // A run of additions is one statement, whatever its length: a push carries many commits.
        const rows: [Chid, string, number | null][] = [];
        for (; i < changes.length && changes[i]!.op === "+"; i++) for (const chid of changes[i]!.chids) rows.push([chid, changes[i]!.ref, changes[i]!.replicas ?? null]);
        i--;
        const list = JSON.stringify(rows.map(([chid]) => chid));
        // A "+" for a reference already here carries its (new) replica count.
        this.sql.exec(
          `INSERT INTO backrefs (chid, ref, replicas) SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true
           ON CONFLICT(chid, ref) DO UPDATE SET replicas = excluded.replicas`,
          JSON.stringify(rows),
        );
        late.push(...this.revive(list));
        continue;
      }
      const list = JSON.stringify(c.chids);
      // Only chunks that had this reference: one from before references were kept stays, since
      // whatever else uses it may not have references here either.
      const dropped = this.sql.exec("DELETE FROM backrefs WHERE ref = ? AND chid IN (SELECT value FROM json_each(?)) RETURNING chid", c.ref, list).toArray();
      if (dropped.length === 0) continue;
      this.sql.exec(
        `INSERT INTO holds (chid, until) SELECT j.value, ? FROM json_each(?) AS j WHERE NOT EXISTS (SELECT 1 FROM backrefs WHERE chid = j.value)
         ON CONFLICT(chid) DO UPDATE SET until = max(until, excluded.until)`,
        now + graceMs,
        JSON.stringify(dropped.map((r) => r.chid)),
      );
    }
    return late;
  }

  /** The earliest time a hold runs out (the alarm's next reclamation), or null. */
  nextDue(): number | null {
    this.flushHolds();
    const r = this.sql.exec("SELECT min(until) AS t FROM holds").toArray()[0];
    return r && r.t !== null ? Number(r.t) : null;
  }

  /**
   * Chunks whose hold ran out by `now` with nothing referencing them: to be deleted. Holds of
   * chunks that are referenced simply end (their references keep them from now on).
   */
  due(now: number, limit: number): Chid[] {
    this.flushHolds();
    const out: Chid[] = [];
    for (const r of this.sql.exec("SELECT chid FROM holds WHERE until <= ? ORDER BY until LIMIT ?", now, limit).toArray()) {
      const chid = asChid(r.chid);
      if (this.referenced(chid)) this.sql.exec("DELETE FROM holds WHERE chid = ?", chid);
      else out.push(chid);
    }
    return out;
  }

  /** Keep these held chunks until `until` at least (their deletion waits for something under way). */
  postpone(chids: readonly Chid[], until: number): void {
    this.sql.exec("UPDATE holds SET until = max(until, ?) WHERE chid IN (SELECT value FROM json_each(?))", until, JSON.stringify(chids));
  }

  /**
   * Record that every one of `members` must delete these items, and forget the chunks' holds;
   * the caller sends `reclaim` to the live members. A chunk's id is kept as a tombstone.
   */
  reclaim(refs: readonly StoredRef[], members: readonly TargetId[], now: number): void {
    this.flushHolds();
    if (refs.some((r) => r.kind === "chunk")) this.deletedKnown = true;
    for (const ref of refs) {
      if (ref.kind === "chunk") {
        this.sql.exec("DELETE FROM holds WHERE chid = ?", ref.chid);
        this.sql.exec("INSERT OR REPLACE INTO tombstones (chid, at) VALUES (?, ?)", ref.chid, now);
      }
      const key = storedRefKey(ref);
      const text = JSON.stringify(ref);
      for (const m of members) this.sql.exec("INSERT OR IGNORE INTO reclaims (member, key, ref) VALUES (?, ?, ?)", m, key, text);
    }
    if (this.sql.exec("DELETE FROM tombstones WHERE at < ?", now - TOMBSTONE_MS).rowsWritten > 0) this.deletedKnown = null;
  }

  /**
   * The most copies any user of this chunk asked for (`r`, the cluster's R, for those that
   * asked nothing); null for a chunk nothing references (reclamation's business, not trimming's).
   */
  wanted(chid: Chid, r: number): number | null {
    const row = this.sql.exec("SELECT count(*) AS n, max(coalesce(replicas, ?)) AS w FROM backrefs WHERE chid = ?", r, chid).one();
    return Number(row.n) === 0 ? null : Math.max(r, Number(row.w));
  }

  /** Chunks some user asked more than `r` copies of, with the most asked: one query for a whole sweep. */
  raised(r: number): Map<Chid, number> {
    const rows = this.sql.exec("SELECT chid, max(replicas) AS w FROM backrefs WHERE replicas > ? GROUP BY chid", r).toArray();
    return new Map(rows.map((row) => [asChid(row.chid), Number(row.w)]));
  }

  /** Record that `member` must delete its surplus copies of these items (the caller sends `reclaim`); how many it did not owe yet. */
  trim(refs: readonly StoredRef[], member: TargetId): number {
    let added = 0;
    for (const ref of refs) added += this.sql.exec("INSERT OR IGNORE INTO trims (member, key, ref) VALUES (?, ?, ?)", member, storedRefKey(ref), JSON.stringify(ref)).rowsWritten;
    return added;
  }

  /** Deletions `member` has not confirmed yet (sent again when it connects): reclaims, then trims. */
  pendingFor(member: TargetId, limit: number): StoredRef[] {
    return this.sql
      .exec("SELECT ref FROM reclaims WHERE member = ? UNION ALL SELECT ref FROM trims WHERE member = ? LIMIT ?", member, member, limit)
      .toArray()
      .map((r) => JSON.parse(String(r.ref)) as StoredRef);
  }

  /** `member` deleted these. */
  confirmed(member: TargetId, refs: readonly StoredRef[]): void {
    for (const ref of refs) {
      this.sql.exec("DELETE FROM reclaims WHERE member = ? AND key = ?", member, storedRefKey(ref));
      this.sql.exec("DELETE FROM trims WHERE member = ? AND key = ?", member, storedRefKey(ref));
    }
  }

  /** Deletions owed by targets that are no longer readers of this group: they will never be asked. */
  forgetMembersExcept(members: readonly TargetId[]): void {
    const keep = new Set<string>(members);
    for (const table of ["reclaims", "trims"]) {
      for (const r of this.sql.exec(`SELECT DISTINCT member FROM ${table}`).toArray()) {
        if (!keep.has(String(r.member))) this.sql.exec(`DELETE FROM ${table} WHERE member = ?`, String(r.member));
      }
    }
  }

  /** Whether any member still owes a deletion. */
  owesAny(): boolean {
    return this.sql.exec("SELECT 1 FROM reclaims LIMIT 1").toArray().length > 0;
  }

  /** Whether a delete of this item is still owed by some member (a repair must not bring it back). */
  reclaiming(ref: StoredRef): boolean {
    return this.sql.exec("SELECT 1 FROM reclaims WHERE key = ? LIMIT 1", storedRefKey(ref)).toArray().length > 0;
  }

  /** Back-references and holds, for tests and status: how many rows each chunk has. */
  counts(): { backrefs: number; holds: number; reclaims: number } {
    this.flushHolds();
    const n = (t: string) => Number(this.sql.exec(`SELECT count(*) AS n FROM ${t}`).toArray()[0]!.n);
    return { backrefs: n("backrefs"), holds: n("holds"), reclaims: n("reclaims") };
  }

  private referenced(chid: Chid): boolean {
    return this.sql.exec("SELECT 1 FROM backrefs WHERE chid = ? LIMIT 1", chid).toArray().length > 0;
  }

  private held(chid: Chid): boolean {
    return this.sql.exec("SELECT 1 FROM holds WHERE chid = ?", chid).toArray().length > 0;
  }

  /**
   * These chunks (a JSON list) are in use again: deletions still owed for them (keyed as
   * storedRefKey does) are void, and they are no longer gone. Returns those that were gone.
   */
  private revive(list: string): Chid[] {
    if (!this.anyDeleted()) return [];
    this.sql.exec("DELETE FROM reclaims WHERE key IN (SELECT 'c:' || value FROM json_each(?))", list);
    return this.sql.exec("DELETE FROM tombstones WHERE chid IN (SELECT value FROM json_each(?)) RETURNING chid", list).toArray().map((r) => asChid(r.chid));
  }

  /**
   * Whether anything was ever deleted here (within the tombstones' memory): until then, a put
   * has nothing to revive, and skipping two statements per put is measurable.
   */
  /**
   * Whether this chunk was reclaimed and nothing has held it since. A repair must not copy such
   * a chunk (a copy left on a target after the reclaim was sent would belong to nothing and be
   * kept for good), and one that copied it meanwhile must reclaim the new copies too.
   */
  reclaimed(chid: Chid): boolean {
    if (!this.anyDeleted()) return false;
    return this.sql.exec("SELECT 1 FROM tombstones WHERE chid = ?", chid).toArray().length > 0;
  }

  /** Rows of chunks arrived by a split's hand-over (tombstones, owed deletions among them): look again. */
  rowsArrived(): void {
    this.deletedKnown = null;
  }

  private anyDeleted(): boolean {
    // Manifests owed are not revived by a put: only chunks count.
    this.deletedKnown ??=
      this.sql.exec("SELECT 1 FROM tombstones LIMIT 1").toArray().length > 0 || this.sql.exec("SELECT 1 FROM reclaims WHERE key LIKE 'c:%' LIMIT 1").toArray().length > 0;
    return this.deletedKnown;
  }
}
