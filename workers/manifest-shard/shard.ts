// A manifest shard: one slice of the namespace manifest (seed 000). It holds every version
// record of the names that hash to it, the current version of each name for listings, and the
// cutoff each initiating group has promised.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../shared/env.ts";
import { listCurrent, type ListQuery, type ListPage } from "./listing.ts";
import type { SourceCutoff, VersionRecord } from "./records.ts";

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
  }

  /** Apply a batch of records from one group. Idempotent: a record or batch applied twice changes nothing. */
  async applyRecords(records: VersionRecord[], source: SourceCutoff): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      for (const r of records) {
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
      // Cutoffs only move forward.
      this.sql.exec(
        `INSERT INTO cutoffs (grp, cutoff) VALUES (?, ?) ON CONFLICT(grp) DO UPDATE SET cutoff = excluded.cutoff WHERE excluded.cutoff > cutoffs.cutoff`,
        source.group, source.cutoff,
      );
    });
  }

  async list(q: ListQuery): Promise<ListPage> {
    return listCurrent(this.sql, q);
  }

  /** Whether a bucket has any current (not deleted) object in this shard. */
  async hasObjects(tenant: string, bucket: string): Promise<boolean> {
    return this.sql.exec("SELECT 1 FROM current WHERE tenant = ? AND bucket = ? AND delete_marker = 0 LIMIT 1", tenant, bucket).toArray().length > 0;
  }
}
