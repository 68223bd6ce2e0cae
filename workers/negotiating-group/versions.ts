// The group as initiator for the names it owns: it stamps version ids from a clock that never
// runs backwards (persisted, so a restart cannot reuse or precede a stamp), keeps every live
// version of each name (and which is current), and keeps an outbox of the records its manifest
// shards have not applied yet.
//
// S3's "null" version: a version written while its bucket is not versioning (unversioned or
// suspended) is the name's null version, and writing another one removes the previous one.
// Versions written while versioning is enabled are kept until deleted by id.
//
// The clock is persisted as a lease, not per stamp: storage holds a time that no stamp issued
// so far exceeds, moved CLOCK_LEASE_MS ahead whenever a stamp reaches it. A stamp is then a
// storage write only a few times a second instead of once per PUT; after a restart stamps
// start just past the lease, so they may run up to CLOCK_LEASE_MS ahead of the wall clock.
// Likewise the outbox forgets delivered records lazily, in the next commit's transaction.

import { asChid, asUvid, type Chid, formatUvid, type Nhid, nhidOf, parseUvid, shardOf as shardOfNhid, type Uvid } from "../../common/ids.ts";
import type { RemovalRecord, ShardRecord, TagsRecord, VersionRecord } from "../manifest-shard/records.ts";
import { CutoffTracker } from "./cutoff.ts";
import { tagsOfJson, tagsToJson, type Tag } from "../shared/tags.ts";
import { ensureWithoutRowid } from "../shared/without-rowid.ts";

export interface NameRow {
  uvid: Uvid;
  vmChid: Chid;
  deleteMarker: boolean;
  /** The version's ETag (hex, "-N" for multipart), for conditional writes; null in rows from before it was kept. */
  etag: string | null;
}

export interface VersionRow extends NameRow {
  /** S3's null version of the name (written while the bucket was not versioning). */
  isNull: boolean;
  /** Replicas asked for this version, kept outside its manifest (its token does not change with it); null: the cluster's R. */
  replicas?: number | null;
  /** The version's tags, kept outside its manifest: S3 lets them change after the write. */
  tags?: Tag[];
}

/** Makes the record that tells the shard a version is gone. */
export type RemovalOf = (removed: Uvid) => RemovalRecord;

export const CLOCK_LEASE_MS = 100;
/** Names whose current version is kept in memory. */
const NAMES_CACHED = 4_096;

export class VersionBook {
  private readonly sql: SqlStorage;
  /** No stamp issued so far, before or after any restart, has a time above this. */
  private leaseUntil: number;
  /** The last stamp issued by this instance (or, after a restart, just past the lease). */
  private lastMs: number;
  private lastSeq: number;
  /** Delivered outbox rows, deleted in the next commit's transaction. */
  private readonly forget = new Map<string, { shard: number; uvid: Uvid }>();
  /** What the cutoff sent to each shard must stay below. */
  private readonly cutoffs = new CutoffTracker();
  /**
   * The `names` rows of recently used names (null: none), as in storage: a write reads its
   * name's current version three times (conditions, commit, cache), and each read was a
   * statement. Storage stays the truth; every change of a row goes through refreshCurrent.
   */
  private readonly currentOf = new Map<Nhid, NameRow | null>();
  /** Names checked for older data this life (migrate). */
  private readonly migrated = new Set<Nhid>();

  /** Told of every version that leaves the namespace, in the transaction that removes it (its data goes later: expunge.ts). */
  private readonly dropped: (v: { nhid: Nhid; uvid: Uvid; vmChid: Chid }) => void;

  constructor(sql: SqlStorage, dropped: (v: { nhid: Nhid; uvid: Uvid; vmChid: Chid }) => void = () => {}) {
    this.sql = sql;
    this.dropped = dropped;
    sql.exec(`CREATE TABLE IF NOT EXISTS clock (k INTEGER PRIMARY KEY CHECK (k = 0), ms INTEGER NOT NULL, seq INTEGER NOT NULL)`);
    // Keyed by text, one row per name and per version: WITHOUT ROWID keeps each key once.
    ensureWithoutRowid(sql, "names", (t) => `CREATE TABLE ${t} (nhid TEXT PRIMARY KEY, uvid TEXT NOT NULL, vm_chid TEXT NOT NULL, delete_marker INTEGER NOT NULL, etag TEXT) WITHOUT ROWID`);
    sql.exec(`CREATE TABLE IF NOT EXISTS outbox (uvid TEXT NOT NULL, shard INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY (shard, uvid))`);
    // Every live version of every name. Names written before this table existed have their
    // current version here as the null version once first touched (see versionsOf).
    ensureWithoutRowid(
      sql,
      "versions",
      (t) => `CREATE TABLE ${t} (
        nhid TEXT NOT NULL, uvid TEXT NOT NULL, vm_chid TEXT NOT NULL, delete_marker INTEGER NOT NULL,
        etag TEXT, is_null INTEGER NOT NULL, replicas INTEGER, tags TEXT, PRIMARY KEY (nhid, uvid)) WITHOUT ROWID`,
    );
    // `ms` bounds every stamp issued before (older data: it is the last stamp itself).
    const row = sql.exec("SELECT ms FROM clock WHERE k = 0").toArray()[0];
    this.leaseUntil = row ? Number(row.ms) : 0;
    this.lastMs = row ? this.leaseUntil + 1 : 0;
    this.lastSeq = -1;
    // Records of an earlier life that no shard confirmed hold the cutoff back like any other.
    for (const r of sql.exec("SELECT shard, uvid FROM outbox").toArray()) this.cutoffs.queued(Number(r.shard), asUvid(r.uvid));
  }

  /**
   * Records queued under another shard count (shards split since: manifest-shard/split.ts) go to
   * their names' shards of this one, so that no record is sent to a shard that now refuses it.
   * Run before any record is sent, and again (`force`) when a shard refuses one as not its own.
   */
  async readdress(count: number, o: { force?: boolean } = {}): Promise<void> {
    this.sql.exec("CREATE TABLE IF NOT EXISTS outbox_count (k INTEGER PRIMARY KEY CHECK (k = 0), count INTEGER NOT NULL)");
    const stored = this.sql.exec("SELECT count FROM outbox_count WHERE k = 0").toArray()[0];
    if (stored && Number(stored.count) === count && !o.force) return;
    const shardOf = async (r: ShardRecord) => shardOfNhid(await nhidOf(r.tenant, r.bucket, r.key), count);
    let after = 0;
    for (;;) {
      const rows = this.sql.exec("SELECT rowid, shard, uvid, record FROM outbox WHERE rowid > ? ORDER BY rowid LIMIT 500", after).toArray();
      if (rows.length === 0) break;
      for (const r of rows) {
        const from = Number(r.shard);
        const uvid = asUvid(r.uvid);
        const to = await shardOf(JSON.parse(String(r.record)) as ShardRecord);
        if (to === from) continue;
        this.sql.exec("UPDATE outbox SET shard = ? WHERE rowid = ?", to, Number(r.rowid));
        this.cutoffs.applied(from, [uvid]);
        this.cutoffs.queued(to, uvid);
      }
      after = Number(rows.at(-1)!.rowid);
    }
    this.sql.exec("INSERT INTO outbox_count (k, count) VALUES (0, ?) ON CONFLICT(k) DO UPDATE SET count = excluded.count", count);
  }

  /**
   * Next version id: wall-clock milliseconds, or the last stamp's plus a sequence step if the
   * clock lags. The stamp holds every shard's cutoff below it until its record is queued or
   * the stamp is released.
   */
  stamp(group: number, now: number = Date.now()): Uvid {
    const ms = Math.max(now, this.lastMs);
    const seq = ms === this.lastMs ? this.lastSeq + 1 : 0;
    this.lastMs = ms;
    this.lastSeq = seq;
    if (ms > this.leaseUntil) {
      this.leaseUntil = ms + CLOCK_LEASE_MS;
      this.sql.exec("INSERT INTO clock (k, ms, seq) VALUES (0, ?, 0) ON CONFLICT(k) DO UPDATE SET ms = excluded.ms", this.leaseUntil);
    }
    const uvid = formatUvid({ ms, seq, group });
    this.cutoffs.hold(uvid);
    return uvid;
  }

  /** Hold a stamp again after a restart (a prepared merge's): memory did not survive, the row did. */
  hold(uvid: Uvid): void {
    this.cutoffs.hold(uvid);
  }

  /**
   * Another group stamped a version this group writes (a merge's shared stamp): move the clock
   * past it, so a later write of the same name is stamped after it.
   */
  witness(uvid: Uvid): void {
    const { ms, seq } = parseUvid(uvid);
    if (ms > this.lastMs || (ms === this.lastMs && seq > this.lastSeq)) {
      this.lastMs = ms;
      this.lastSeq = seq;
    }
    if (this.lastMs > this.leaseUntil) {
      this.leaseUntil = this.lastMs + CLOCK_LEASE_MS;
      this.sql.exec("INSERT INTO clock (k, ms, seq) VALUES (0, ?, 0) ON CONFLICT(k) DO UPDATE SET ms = excluded.ms", this.leaseUntil);
    }
  }

  /** The name's rows came or went by a split's hand-over: what is remembered of it is stale. */
  uncache(nhid: Nhid): void {
    this.currentOf.delete(nhid);
    this.migrated.delete(nhid);
  }

  /** The stamp will make no record (its write failed or was refused). */
  release(uvid: Uvid): void {
    this.cutoffs.release(uvid);
  }

  /** The smallest version id this clock could still stamp. */
  private floor(): Uvid {
    const ms = Math.max(Date.now(), this.lastMs);
    const seq = ms === this.lastMs ? this.lastSeq + 1 : 0;
    return formatUvid({ ms, seq, group: 0 });
  }

  /** "No record earlier than this will ever come from me" for a batch to `shard` carrying `sending`. */
  cutoffFor(shard: number, sending: readonly ShardRecord[]): Uvid {
    return this.cutoffs.cutoffFor(shard, this.floor(), new Set(sending.map((r) => r.uvid)));
  }

  private enqueue(shard: number, record: ShardRecord): void {
    this.sql.exec("INSERT OR IGNORE INTO outbox (uvid, shard, record) VALUES (?, ?, ?)", record.uvid, shard, JSON.stringify(record));
    this.cutoffs.queued(shard, record.uvid);
  }

  current(nhid: Nhid): NameRow | null {
    const known = this.currentOf.get(nhid);
    if (known !== undefined) return known;
    const row = this.sql.exec("SELECT uvid, vm_chid, delete_marker, etag FROM names WHERE nhid = ?", nhid).toArray()[0];
    const cur = row ? { uvid: asUvid(row.uvid), vmChid: asChid(row.vm_chid), deleteMarker: Number(row.delete_marker) === 1, etag: row.etag === null ? null : String(row.etag) } : null;
    this.remember(nhid, cur);
    return cur;
  }

  private remember(nhid: Nhid, cur: NameRow | null): void {
    this.currentOf.delete(nhid);
    this.currentOf.set(nhid, cur);
    if (this.currentOf.size > NAMES_CACHED) this.currentOf.delete(this.currentOf.keys().next().value!);
  }

  /** Older data: a name with a current version but no versions rows gets it as its null version. */
  private migrate(nhid: Nhid): void {
    if (this.migrated.has(nhid)) return;
    if (this.migrated.size >= NAMES_CACHED) this.migrated.clear();
    this.migrated.add(nhid);
    // A name without a current version has nothing to migrate.
    if (this.current(nhid) === null) return;
    if (this.sql.exec("SELECT 1 FROM versions WHERE nhid = ? LIMIT 1", nhid).toArray().length > 0) return;
    const cur = this.current(nhid)!;
    this.sql.exec("INSERT OR IGNORE INTO versions (nhid, uvid, vm_chid, delete_marker, etag, is_null) VALUES (?, ?, ?, ?, ?, 1)", nhid, cur.uvid, cur.vmChid, cur.deleteMarker ? 1 : 0, cur.etag);
  }

  /** The name's current version is its newest live one (`newest`: the caller knows it already). */
  private refreshCurrent(nhid: Nhid, newest: NameRow | null = null): void {
    let top = newest;
    if (!top) {
      const r = this.sql.exec("SELECT uvid, vm_chid, delete_marker, etag FROM versions WHERE nhid = ? ORDER BY uvid DESC LIMIT 1", nhid).toArray()[0];
      top = r ? { uvid: asUvid(r.uvid), vmChid: asChid(r.vm_chid), deleteMarker: Number(r.delete_marker) === 1, etag: r.etag === null ? null : String(r.etag) } : null;
    }
    // Storage first: should a statement throw, the remembered row is not ahead of the table.
    this.currentOf.delete(nhid);
    if (!top) {
      this.sql.exec("DELETE FROM names WHERE nhid = ?", nhid);
    } else {
      this.sql.exec(
        `INSERT INTO names (nhid, uvid, vm_chid, delete_marker, etag) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(nhid) DO UPDATE SET uvid = excluded.uvid, vm_chid = excluded.vm_chid, delete_marker = excluded.delete_marker, etag = excluded.etag`,
        nhid, top.uvid, top.vmChid, top.deleteMarker ? 1 : 0, top.etag,
      );
    }
    this.remember(nhid, top);
  }

  private rowOf(r: Record<string, SqlStorageValue>): VersionRow {
    return {
      uvid: asUvid(r.uvid),
      vmChid: asChid(r.vm_chid),
      deleteMarker: Number(r.delete_marker) === 1,
      etag: r.etag === null ? null : String(r.etag),
      isNull: Number(r.is_null) === 1,
      replicas: r.replicas === null || r.replicas === undefined ? null : Number(r.replicas),
      tags: tagsOfJson(r.tags),
    };
  }

  /** A live version by id, or the name's null version. */
  find(nhid: Nhid, versionId: Uvid | "null"): VersionRow | null {
    this.migrate(nhid);
    const r =
      versionId === "null"
        ? this.sql.exec("SELECT * FROM versions WHERE nhid = ? AND is_null = 1 ORDER BY uvid DESC LIMIT 1", nhid).toArray()[0]
        : this.sql.exec("SELECT * FROM versions WHERE nhid = ? AND uvid = ?", nhid, versionId).toArray()[0];
    return r ? this.rowOf(r) : null;
  }

  /** Live versions with a replication count of their own, by NHID and UVID (`nhid/uvid`): one query for a whole sweep. */
  ownCounts(): Map<string, number> {
    const rows = this.sql.exec("SELECT nhid, uvid, replicas FROM versions WHERE replicas IS NOT NULL").toArray();
    return new Map(rows.map((row) => [`${String(row.nhid)}/${String(row.uvid)}`, Number(row.replicas)]));
  }

  /** Change a live version's replication count (null: back to the cluster's R); false if there is no such version. */
  setReplicas(nhid: Nhid, uvid: Uvid, replicas: number | null): boolean {
    return this.sql.exec("UPDATE versions SET replicas = ? WHERE nhid = ? AND uvid = ?", replicas, nhid, uvid).rowsWritten > 0;
  }

  /** Replace a live version's tags and queue the record that tells its shard; false if there is no such version. */
  setTags(nhid: Nhid, uvid: Uvid, tags: readonly Tag[], feed: { shard: number; record: TagsRecord }): boolean {
    this.forgetDelivered();
    if (this.sql.exec("UPDATE versions SET tags = ? WHERE nhid = ? AND uvid = ?", tagsToJson(tags), nhid, uvid).rowsWritten === 0) {
      this.release(feed.record.uvid);
      return false;
    }
    this.enqueue(feed.shard, feed.record);
    return true;
  }

  /** How many live versions (delete markers included) the name has. */
  liveCount(nhid: Nhid): number {
    this.migrate(nhid);
    return Number(this.sql.exec("SELECT count(*) AS n FROM versions WHERE nhid = ?", nhid).one().n);
  }

  /** How many live versions of the name are newer than `uvid`, counting no further than `max`. */
  newerCount(nhid: Nhid, uvid: Uvid, max: number): number {
    return Number(this.sql.exec("SELECT count(*) AS n FROM (SELECT 1 FROM versions WHERE nhid = ? AND uvid > ? LIMIT ?)", nhid, uvid, max).one().n);
  }

  /** The live version of the name just newer than `uvid` (the one that made it noncurrent); null if none. */
  successor(nhid: Nhid, uvid: Uvid): Uvid | null {
    const r = this.sql.exec("SELECT uvid FROM versions WHERE nhid = ? AND uvid > ? ORDER BY uvid LIMIT 1", nhid, uvid).toArray()[0];
    return r ? asUvid(r.uvid) : null;
  }

  /** Whether this version is the name's current one. */
  isCurrent(nhid: Nhid, uvid: Uvid): boolean {
    return this.current(nhid)?.uvid === uvid;
  }

  /**
   * Record a committed version and queue its record for the shard, in one storage transaction.
   * A new null version removes the name's previous one (S3's overwrite of the null version).
   */
  commit(nhid: Nhid, row: VersionRow, feed: { shard: number; record: VersionRecord; removalOf: RemovalOf }): RemovalRecord[] {
    const { shard, record, removalOf } = feed;
    this.forgetDelivered();
    this.migrate(nhid);
    const before = this.current(nhid);
    this.sql.exec(
      "INSERT OR IGNORE INTO versions (nhid, uvid, vm_chid, delete_marker, etag, is_null, replicas, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      nhid, row.uvid, row.vmChid, row.deleteMarker ? 1 : 0, row.etag, row.isNull ? 1 : 0, row.replicas ?? null, tagsToJson(row.tags ?? []),
    );
    this.enqueue(shard, record);
    const removed: RemovalRecord[] = [];
    // A name with no live version before this one has no other null version to drop.
    if (row.isNull && before !== null) {
      // Only the newest-stamped null version stays. Commits may arrive out of stamp order, so
      // the one just written is the one to go if a newer null version committed first.
      const nulls = this.sql.exec("SELECT uvid FROM versions WHERE nhid = ? AND is_null = 1 ORDER BY uvid DESC", nhid).toArray();
      for (const o of nulls.slice(1)) removed.push(...this.dropRow(nhid, asUvid(o.uvid), shard, removalOf));
    }
    // Stamps rise, so the version just written is nearly always the newest: no need to look.
    const newest = before === null || row.uvid > before.uvid ? { uvid: row.uvid, vmChid: row.vmChid, deleteMarker: row.deleteMarker, etag: row.etag } : null;
    this.refreshCurrent(nhid, newest);
    return removed;
  }

  /** Permanently remove one version (DeleteObject with a version id, or an unversioned delete). */
  remove(nhid: Nhid, uvid: Uvid, shard: number, removalOf: RemovalOf): RemovalRecord[] {
    this.forgetDelivered();
    this.migrate(nhid);
    const removed = this.dropRow(nhid, uvid, shard, removalOf);
    this.refreshCurrent(nhid);
    return removed;
  }

  /** The removal records queued (none if the version was not there). */
  private dropRow(nhid: Nhid, uvid: Uvid, shard: number, removalOf: RemovalOf): RemovalRecord[] {
    const row = this.sql.exec("SELECT vm_chid FROM versions WHERE nhid = ? AND uvid = ?", nhid, uvid).toArray()[0];
    if (!row) return [];
    this.sql.exec("DELETE FROM versions WHERE nhid = ? AND uvid = ?", nhid, uvid);
    this.dropped({ nhid, uvid, vmChid: asChid(row.vm_chid) });
    const removal = removalOf(uvid);
    this.enqueue(shard, removal);
    return [removal];
  }

  /** Records not yet known to be applied by their shard, oldest first. */
  pending(limit = 500): { shard: number; record: ShardRecord }[] {
    return this.sql
      .exec("SELECT shard, uvid, record FROM outbox ORDER BY uvid LIMIT ?", limit + this.forget.size)
      .toArray()
      .filter((r) => !this.forget.has(`${Number(r.shard)}/${String(r.uvid)}`))
      .slice(0, limit)
      .map((r) => ({ shard: Number(r.shard), record: JSON.parse(String(r.record)) as ShardRecord }));
  }

  /** Queue a record that goes with no name change (an upload opened or closed). */
  queue(shard: number, record: ShardRecord): void {
    this.forgetDelivered();
    this.enqueue(shard, record);
  }

  private forgetDelivered(): void {
    if (this.forget.size === 0) return;
    const rows = JSON.stringify([...this.forget.values()].map((f) => [f.shard, f.uvid]));
    this.sql.exec("DELETE FROM outbox WHERE (shard, uvid) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))", rows);
    this.forget.clear();
  }

  /**
   * The shard has applied these. Their rows go with the next commit's transaction: should the
   * object restart first, they are sent again, and applying a record twice changes nothing.
   */
  delivered(shard: number, uvids: readonly Uvid[]): void {
    this.cutoffs.applied(shard, uvids);
    for (const uvid of uvids) this.forget.set(`${shard}/${uvid}`, { shard, uvid });
  }
}
