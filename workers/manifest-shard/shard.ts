// A manifest shard: one slice of the namespace manifest (seed 000). It holds every version
// record of the names that hash to it, the current version of each name for listings, the
// multipart uploads in progress on those names, and the cutoff each initiating group has
// promised (sources.ts), which says how far back its answers as of a time are complete.

import { DurableObject } from "cloudflare:workers";
import type { Uvid } from "../../common/ids.ts";
import { configOf, groupStub, type Env } from "../shared/env.ts";
import { AS_OF_WAIT_MAX_MS, versionAt, type VersionAt } from "./as-of.ts";
import { listCurrent, type ListQuery, type ListPage } from "./listing.ts";
import { isRemovalRecord, isUploadRecord, type RemovalRecord, type ShardRecord, type SourceCutoff, type UploadRecord, type VersionRecord } from "./records.ts";
import { selectVersions, type SelectCursor, type Selection, type SelectPage } from "./select.ts";
import { UsageBook, type Usage } from "./usage.ts";
import type { ShardRpc } from "./rpc.ts";
import { SourceBook, type SourceState } from "./sources.ts";
import { listVersions, type VersionPage, type VersionQuery } from "./versions.ts";
import { listUploads, type UploadPage, type UploadQuery } from "./uploads.ts";

/** How long a shard waits between asking lagging groups to advance. */
const ADVANCE_RETRY_MS = 50;

export class ManifestShard extends DurableObject<Env> implements ShardRpc {
  private readonly sql: SqlStorage;
  private readonly sources: SourceBook;
  private readonly usage: UsageBook;
  /** Rows of early_removals, as in the table: every version record would otherwise look there. */
  private earlyRemovals = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS versions (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, uvid TEXT NOT NULL,
      delete_marker INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified INTEGER NOT NULL,
      content_type TEXT NOT NULL, vm_chid TEXT NOT NULL, creator TEXT NOT NULL,
      PRIMARY KEY (tenant, bucket, key, uvid))`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS current (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, uvid TEXT NOT NULL,
      delete_marker INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified INTEGER NOT NULL,
      PRIMARY KEY (tenant, bucket, key))`);
    // Added with versioning; older rows are null versions that were never removed.
    const cols = new Set(this.sql.exec("PRAGMA table_info(versions)").toArray().map((c) => String(c.name)));
    if (!cols.has("is_null")) this.sql.exec("ALTER TABLE versions ADD COLUMN is_null INTEGER NOT NULL DEFAULT 1");
    if (!cols.has("removed")) this.sql.exec("ALTER TABLE versions ADD COLUMN removed INTEGER NOT NULL DEFAULT 0");
    // The removal's stamp, for reads as of a time; null in rows removed before it was kept.
    if (!cols.has("removed_at")) this.sql.exec("ALTER TABLE versions ADD COLUMN removed_at TEXT");
    // User metadata as JSON, for metadata qualifiers; null: none, or a row from before it was kept.
    if (!cols.has("meta")) this.sql.exec("ALTER TABLE versions ADD COLUMN meta TEXT");
    // A removal that arrived before the version it removes (their batches can be applied out of
    // order when one is retried): applied when the version comes.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS early_removals (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, target TEXT NOT NULL, uvid TEXT NOT NULL,
      PRIMARY KEY (tenant, bucket, key, target))`);
    this.earlyRemovals = Number(this.sql.exec("SELECT count(*) AS n FROM early_removals").one().n);
    // Multipart uploads by key; a closed one stays as a tombstone so that a late, repeated
    // "open" cannot bring it back.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS uploads (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL,
      initiated INTEGER NOT NULL, creator TEXT NOT NULL, open INTEGER NOT NULL,
      PRIMARY KEY (tenant, bucket, key, upload_id))`);
    this.sources = new SourceBook(this.sql);
    this.usage = new UsageBook(this.sql);
    const groups = configOf(env).groupCount;
    const changed = this.sources.expect(groups);
    // A new shard adds every group at once: only a change to an existing set is news.
    if (changed.removed.length > 0 || (changed.added.length > 0 && changed.added.length !== groups)) {
      console.log(JSON.stringify({ event: "shard-sources-changed", added: changed.added, removed: changed.removed }));
    }
  }

  /**
   * Apply a batch of records from one group. Idempotent: a record or batch applied twice changes
   * nothing. A batch from a group this shard does not expect is refused whole (answered, not
   * thrown, so that the group can say why): applying it would let its records arrive after a
   * point-in-time answer that did not wait for them.
   */
  async applyRecords(records: ShardRecord[], source: SourceCutoff): Promise<{ refused: string } | null> {
    if (!this.sources.expects(source.group)) {
      return { refused: `this shard expects records from groups 0..${this.sources.all().length - 1}, not from group ${source.group}: GROUP_COUNT differs between the group and the shard` };
    }
    try {
      this.ctx.storage.transactionSync(() => {
        for (const r of records) {
          if (isUploadRecord(r)) this.applyUpload(r);
          else if (isRemovalRecord(r)) this.applyRemoval(r);
          else this.applyVersion(r);
        }
        this.usage.settle();
        this.sources.promise(source.group, source.cutoff);
      });
    } catch (e) {
      // Rolled back: what is kept in memory of the tables goes back with them.
      this.usage.discard();
      this.sources.reload();
      this.earlyRemovals = Number(this.sql.exec("SELECT count(*) AS n FROM early_removals").one().n);
      throw e;
    }
    return null;
  }

  private applyUpload(r: UploadRecord): void {
    if (r.open) {
      this.sql.exec(
        `INSERT OR IGNORE INTO uploads (tenant, bucket, key, upload_id, initiated, creator, open) VALUES (?, ?, ?, ?, ?, ?, 1)`,
        r.tenant, r.bucket, r.key, r.uploadId, r.initiated, r.creator,
      );
    } else {
      this.sql.exec(
        `INSERT INTO uploads (tenant, bucket, key, upload_id, initiated, creator, open) VALUES (?, ?, ?, ?, ?, ?, 0)
         ON CONFLICT(tenant, bucket, key, upload_id) DO UPDATE SET open = 0`,
        r.tenant, r.bucket, r.key, r.uploadId, r.initiated, r.creator,
      );
    }
  }

  private applyVersion(r: VersionRecord): void {
    const inserted = this.sql.exec(
      `INSERT OR IGNORE INTO versions (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified, content_type, vm_chid, creator, is_null, removed, meta)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
      r.tenant, r.bucket, r.key, r.uvid, r.deleteMarker ? 1 : 0, r.size, r.etag, r.lastModified, r.contentType, r.vmChid, r.creator, r.isNull ? 1 : 0, r.meta ? JSON.stringify(r.meta) : null,
    ).rowsWritten > 0;
    if (inserted && !r.deleteMarker) this.usage.change(r.tenant, r.size, 1);
    // Nearly always there are none: then no statement.
    const early =
      this.earlyRemovals > 0
        ? this.sql.exec("DELETE FROM early_removals WHERE tenant = ? AND bucket = ? AND key = ? AND target = ? RETURNING uvid", r.tenant, r.bucket, r.key, r.uvid).toArray()[0]
        : undefined;
    if (early) {
      this.earlyRemovals--;
      this.markRemoved(r, r.uvid, String(early.uvid));
    }
    // A record applied again (its row may have been removed since) or removed on arrival: the
    // current entry is recomputed from the versions.
    if (!inserted || early) {
      this.refreshCurrent(r.tenant, r.bucket, r.key);
      return;
    }
    // A new version, not removed, is the key's current one exactly when it is newer than the
    // current one: one statement instead of looking the newest up (stamps rise, so nearly always).
    this.sql.exec(
      `INSERT INTO current (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(tenant, bucket, key) DO UPDATE SET uvid = excluded.uvid, delete_marker = excluded.delete_marker,
         size = excluded.size, etag = excluded.etag, last_modified = excluded.last_modified
       WHERE excluded.uvid > current.uvid`,
      r.tenant, r.bucket, r.key, r.uvid, r.deleteMarker ? 1 : 0, r.size, r.etag, r.lastModified,
    );
  }

  private applyRemoval(r: RemovalRecord): void {
    if (!this.markRemoved(r, r.target, r.uvid)) {
      const known = this.sql.exec("SELECT 1 FROM versions WHERE tenant = ? AND bucket = ? AND key = ? AND uvid = ?", r.tenant, r.bucket, r.key, r.target).toArray().length > 0;
      if (!known) this.earlyRemovals += this.sql.exec("INSERT OR IGNORE INTO early_removals (tenant, bucket, key, target, uvid) VALUES (?, ?, ?, ?, ?)", r.tenant, r.bucket, r.key, r.target, r.uvid).rowsWritten;
    }
    this.refreshCurrent(r.tenant, r.bucket, r.key);
  }

  /** Whether a version row changed (false if it was already removed, or is not here yet). */
  private markRemoved(name: { tenant: string; bucket: string; key: string }, target: string, at: string): boolean {
    const { tenant, bucket, key } = name;
    const row = this.sql
      .exec("UPDATE versions SET removed = 1, removed_at = ? WHERE tenant = ? AND bucket = ? AND key = ? AND uvid = ? AND removed = 0 RETURNING size, delete_marker", at, tenant, bucket, key, target)
      .toArray()[0];
    if (row && Number(row.delete_marker) === 0) this.usage.change(tenant, Number(row.size), -1);
    return row !== undefined;
  }

  /**
   * A key's current entry is its newest version not removed. Recomputed from the versions rather
   * than moved forward blindly, so a record applied twice, or after the removal of the version
   * it names, still leaves the right version current.
   */
  private refreshCurrent(tenant: string, bucket: string, key: string): void {
    const top = this.sql
      .exec("SELECT uvid, delete_marker, size, etag, last_modified FROM versions WHERE tenant = ? AND bucket = ? AND key = ? AND removed = 0 ORDER BY uvid DESC LIMIT 1", tenant, bucket, key)
      .toArray()[0];
    if (!top) {
      this.sql.exec("DELETE FROM current WHERE tenant = ? AND bucket = ? AND key = ?", tenant, bucket, key);
      return;
    }
    this.sql.exec(
      `INSERT INTO current (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(tenant, bucket, key) DO UPDATE SET uvid = excluded.uvid, delete_marker = excluded.delete_marker,
         size = excluded.size, etag = excluded.etag, last_modified = excluded.last_modified`,
      tenant, bucket, key, String(top.uvid), Number(top.delete_marker), Number(top.size), String(top.etag), Number(top.last_modified),
    );
  }

  /** `bound`: as of the time just before it (call `settle` first); absent: now. */
  async listVersions(q: VersionQuery, bound?: Uvid): Promise<VersionPage> {
    return listVersions(this.sql, q, bound);
  }

  async listUploads(q: UploadQuery): Promise<UploadPage> {
    return listUploads(this.sql, q);
  }

  /** `bound`: as of the time just before it (call `settle` first); absent: now. */
  async list(q: ListQuery, bound?: Uvid): Promise<ListPage> {
    return listCurrent(this.sql, q, bound);
  }

  /** The version of a key current just before `bound`, delete marker included (call `settle` first). */
  async versionAt(tenant: string, bucket: string, key: string, bound: Uvid): Promise<VersionAt | null> {
    return versionAt(this.sql, { tenant, bucket, key }, bound);
  }

  /**
   * Waits, up to `waitMs`, until every expected source (or only group `only`, for one name's
   * answer) has promised past `bound`, asking each lagging group to advance its cutoff. Returns
   * the groups still lagging: none means answers below the bound are complete and final.
   * `shard` is this shard's own number, which the groups address it by.
   */
  async settle(shard: number, bound: Uvid, waitMs: number, only?: number): Promise<{ lagging: number[] }> {
    const deadline = Date.now() + Math.min(Math.max(waitMs, 0), AS_OF_WAIT_MAX_MS);
    for (;;) {
      const lagging = this.sources.lagging(bound, only);
      if (lagging.length === 0 || Date.now() >= deadline) return { lagging };
      // An idle group answers in one round trip; one that cannot (unreachable, or a write of
      // its stamped before the bound still in flight) is asked again until the deadline.
      const asked = Promise.allSettled(lagging.map((g) => groupStub(this.env, g).advanceCutoff(shard)));
      await Promise.race([asked, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
      if (this.sources.lagging(bound, only).length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, Math.min(ADVANCE_RETRY_MS, Math.max(0, deadline - Date.now()))));
      }
    }
  }

  /** Versions matching a selection (snapshots, queries), in (bucket, key, newest first) order. Settle first for a selection as of a time. */
  async select(sel: Selection, after: SelectCursor | null, limit: number): Promise<SelectPage> {
    return selectVersions(this.sql, sel, after, limit);
  }

  /** The expected sources and their cutoffs, for status and tests. */
  async sourceStates(): Promise<SourceState[]> {
    return this.sources.all();
  }

  /** For the status page: versions and bytes held (every tenant's) and how many groups feed it. */
  async stats(): Promise<{ versions: number; bytes: number; sources: number }> {
    const total = this.usage.total();
    return { versions: total.objects, bytes: total.bytes, sources: this.sources.all().length };
  }

  /** What a tenant keeps in this shard (usage.ts). */
  async tenantUsage(tenant: string): Promise<Usage> {
    return this.usage.of(tenant);
  }

  /** Whether a bucket has anything in this shard: a version of any key, delete markers included (S3's rule for DeleteBucket). */
  async hasObjects(tenant: string, bucket: string): Promise<boolean> {
    return this.sql.exec("SELECT 1 FROM current WHERE tenant = ? AND bucket = ? LIMIT 1", tenant, bucket).toArray().length > 0;
  }
}
