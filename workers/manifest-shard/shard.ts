// A manifest shard: one slice of the namespace manifest (seed 000). It holds every version
// record of the names that hash to it, the current version of each name for listings, the
// multipart uploads in progress on those names, and the cutoff each initiating group has
// promised.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../shared/env.ts";
import { listCurrent, type ListQuery, type ListPage } from "./listing.ts";
import { isUploadRecord, type ShardRecord, type SourceCutoff, type UploadRecord, type VersionRecord } from "./records.ts";
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
      `INSERT OR IGNORE INTO versions (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified, content_type, vm_chid, creator)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      r.tenant, r.bucket, r.key, r.uvid, r.deleteMarker ? 1 : 0, r.size, r.etag, r.lastModified, r.contentType, r.vmChid, r.creator,
    );
    this.sql.exec(
      `INSERT INTO current (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(tenant, bucket, key) DO UPDATE SET uvid = excluded.uvid, delete_marker = excluded.delete_marker,
         size = excluded.size, etag = excluded.etag, last_modified = excluded.last_modified
       WHERE excluded.uvid > current.uvid`,
      r.tenant, r.bucket, r.key, r.uvid, r.deleteMarker ? 1 : 0, r.size, r.etag, r.lastModified,
    );
  }

  async listUploads(q: UploadQuery): Promise<UploadPage> {
    return listUploads(this.sql, q);
  }

  async list(q: ListQuery): Promise<ListPage> {
    return listCurrent(this.sql, q);
  }

  /** Whether a bucket has any current (not deleted) object in this shard. */
  async hasObjects(tenant: string, bucket: string): Promise<boolean> {
    return this.sql.exec("SELECT 1 FROM current WHERE tenant = ? AND bucket = ? AND delete_marker = 0 LIMIT 1", tenant, bucket).toArray().length > 0;
  }
}
