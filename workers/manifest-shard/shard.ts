// A manifest shard: one slice of the namespace manifest (seed 000). It holds every version
// record of the names that hash to it, the current version of each name for listings, the
// multipart uploads in progress on those names, and the cutoff each initiating group has
// promised.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../shared/env.ts";
import { listCurrent, type ListQuery, type ListPage } from "./listing.ts";
import { isRemovalRecord, isUploadRecord, type RemovalRecord, type ShardRecord, type SourceCutoff, type UploadRecord, type VersionRecord } from "./records.ts";
import { listVersions, type VersionPage, type VersionQuery } from "./versions.ts";
import { listUploads, type UploadPage, type UploadQuery } from "./uploads.ts";

export class ManifestShard extends DurableObject<Env> {
  private readonly sql: SqlStorage;

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
    this.sql.exec(`CREATE TABLE IF NOT EXISTS cutoffs (grp INTEGER PRIMARY KEY, cutoff TEXT NOT NULL)`);
    // Added with versioning; older rows are null versions that were never removed.
    const cols = new Set(this.sql.exec("PRAGMA table_info(versions)").toArray().map((c) => String(c.name)));
    if (!cols.has("is_null")) this.sql.exec("ALTER TABLE versions ADD COLUMN is_null INTEGER NOT NULL DEFAULT 1");
    if (!cols.has("removed")) this.sql.exec("ALTER TABLE versions ADD COLUMN removed INTEGER NOT NULL DEFAULT 0");
    // Multipart uploads by key; a closed one stays as a tombstone so that a late, repeated
    // "open" cannot bring it back.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS uploads (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL,
      initiated INTEGER NOT NULL, creator TEXT NOT NULL, open INTEGER NOT NULL,
      PRIMARY KEY (tenant, bucket, key, upload_id))`);
  }

  /** Apply a batch of records from one group. Idempotent: a record or batch applied twice changes nothing. */
  async applyRecords(records: ShardRecord[], source: SourceCutoff): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      for (const r of records) {
        if (isUploadRecord(r)) this.applyUpload(r);
        else if (isRemovalRecord(r)) this.applyRemoval(r);
        else this.applyVersion(r);
      }
      // Cutoffs only move forward.
      this.sql.exec(
        `INSERT INTO cutoffs (grp, cutoff) VALUES (?, ?) ON CONFLICT(grp) DO UPDATE SET cutoff = excluded.cutoff WHERE excluded.cutoff > cutoffs.cutoff`,
        source.group, source.cutoff,
      );
    });
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
    this.sql.exec(
      `INSERT OR IGNORE INTO versions (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified, content_type, vm_chid, creator, is_null, removed)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
      r.tenant, r.bucket, r.key, r.uvid, r.deleteMarker ? 1 : 0, r.size, r.etag, r.lastModified, r.contentType, r.vmChid, r.creator, r.isNull ? 1 : 0,
    );
    this.refreshCurrent(r.tenant, r.bucket, r.key);
  }

  private applyRemoval(r: RemovalRecord): void {
    this.sql.exec("UPDATE versions SET removed = 1 WHERE tenant = ? AND bucket = ? AND key = ? AND uvid = ?", r.tenant, r.bucket, r.key, r.target);
    this.refreshCurrent(r.tenant, r.bucket, r.key);
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

  async listVersions(q: VersionQuery): Promise<VersionPage> {
    return listVersions(this.sql, q);
  }

  async listUploads(q: UploadQuery): Promise<UploadPage> {
    return listUploads(this.sql, q);
  }

  async list(q: ListQuery): Promise<ListPage> {
    return listCurrent(this.sql, q);
  }

  /** Whether a bucket has anything in this shard: a version of any key, delete markers included (S3's rule for DeleteBucket). */
  async hasObjects(tenant: string, bucket: string): Promise<boolean> {
    return this.sql.exec("SELECT 1 FROM current WHERE tenant = ? AND bucket = ? LIMIT 1", tenant, bucket).toArray().length > 0;
  }
}
