// How a manifest shard's tables take the records its groups send (records.ts): versions, the
// current version of each key, removals, tag changes and multipart uploads. Every record is
// idempotent, and records of one group may arrive out of order (a failed batch is sent again
// after later ones): a removal or a tag change that comes before its version waits in a table of
// its own and is applied when the version comes.

import { tagsToJson } from "../shared/tags.ts";
import { ensureWithoutRowid } from "../shared/without-rowid.ts";
import { isRemovalRecord, isTagsRecord, isUploadRecord, type RemovalRecord, type ShardRecord, type TagsRecord, type UploadRecord, type VersionRecord } from "./records.ts";
import type { UsageBook } from "./usage.ts";

/**
 * Every table with a row per name (or per version of one): what a shard split hands over, in
 * this order. Waiting removals and tag changes go before versions: one the parent still keeps
 * when the walk passes it is then here for its version, however late that version comes.
 */
export const SPLIT_TABLES = ["early_removals", "early_tags", "versions", "current", "uploads"] as const;
export type SplitTable = (typeof SPLIT_TABLES)[number];

export class RecordTables {
  private readonly sql: SqlStorage;
  private readonly usage: UsageBook;
  /** Rows of early_removals and early_tags, as in the tables: every version record would otherwise look there. */
  private earlyRemovals = 0;
  private earlyTags = 0;

  /** The tables records go to: made before anything reads them (the usage book counts versions when it starts). */
  static createTables(sql: SqlStorage): void {
    // A row per version and per name, keyed by text: WITHOUT ROWID keeps each key once (a rowid
    // table also keeps it in the index that makes it unique). A table of an older form, rowid and
    // without the later columns, is rebuilt into this one with them. Columns: is_null (older rows
    // are null versions never removed), removed and the removal's stamp (reads as of a time; null
    // in rows removed before it was kept), user metadata as JSON (metadata qualifiers), tags as
    // the group stores them and the stamp of the change that set them (null: the write's own).
    ensureWithoutRowid(
      sql,
      "versions",
      (t) => `CREATE TABLE ${t} (
        tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, uvid TEXT NOT NULL,
        delete_marker INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified INTEGER NOT NULL,
        content_type TEXT NOT NULL, vm_chid TEXT NOT NULL, creator TEXT NOT NULL,
        is_null INTEGER NOT NULL DEFAULT 1, removed INTEGER NOT NULL DEFAULT 0, removed_at TEXT, meta TEXT, tags TEXT, tags_at TEXT, h INTEGER,
        PRIMARY KEY (tenant, bucket, key, uvid)) WITHOUT ROWID`,
    );
    ensureWithoutRowid(
      sql,
      "current",
      (t) => `CREATE TABLE ${t} (
        tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, uvid TEXT NOT NULL,
        delete_marker INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified INTEGER NOT NULL, h INTEGER,
        PRIMARY KEY (tenant, bucket, key)) WITHOUT ROWID`,
    );
    // A removal that arrived before the version it removes (their batches can be applied out of
    // order when one is retried): applied when the version comes.
    sql.exec(`CREATE TABLE IF NOT EXISTS early_removals (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, target TEXT NOT NULL, uvid TEXT NOT NULL, h INTEGER,
      PRIMARY KEY (tenant, bucket, key, target))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS early_tags (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, target TEXT NOT NULL, uvid TEXT NOT NULL, tags TEXT, h INTEGER,
      PRIMARY KEY (tenant, bucket, key, target))`);
    // Multipart uploads by key; a closed one stays as a tombstone so that a late, repeated
    // "open" cannot bring it back.
    sql.exec(`CREATE TABLE IF NOT EXISTS uploads (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL,
      initiated INTEGER NOT NULL, creator TEXT NOT NULL, open INTEGER NOT NULL, h INTEGER,
      PRIMARY KEY (tenant, bucket, key, upload_id))`);
    // Tables from before names kept their hash (name-part.ts) take the column; name-hashes.ts fills it.
    for (const t of SPLIT_TABLES) {
      const columns = sql.exec(`PRAGMA table_info(${t})`).toArray().map((c) => String(c.name));
      if (!columns.includes("h")) sql.exec(`ALTER TABLE ${t} ADD COLUMN h INTEGER`);
    }
  }

  constructor(sql: SqlStorage, usage: UsageBook) {
    this.sql = sql;
    this.usage = usage;
    this.recount();
  }

  /** After a rolled-back batch: the counts kept in memory go back with the tables. */
  recount(): void {
    this.earlyRemovals = Number(this.sql.exec("SELECT count(*) AS n FROM early_removals").one().n);
    this.earlyTags = Number(this.sql.exec("SELECT count(*) AS n FROM early_tags").one().n);
  }

  /** One record of any kind; `h`: its name's hash (name-part.ts), kept in every row the record makes. */
  apply(r: ShardRecord, h: number): void {
    if (isUploadRecord(r)) this.applyUpload(r, h);
    else if (isRemovalRecord(r)) this.applyRemoval(r, h);
    else if (isTagsRecord(r)) this.applyTags(r, h);
    else this.applyVersion(r, h);
  }

  applyUpload(r: UploadRecord, h: number): void {
    if (r.open) {
      this.sql.exec(
        `INSERT OR IGNORE INTO uploads (tenant, bucket, key, upload_id, initiated, creator, open, h) VALUES (?, ?, ?, ?, ?, ?, 1, ?)`,
        r.tenant, r.bucket, r.key, r.uploadId, r.initiated, r.creator, h,
      );
    } else {
      this.sql.exec(
        `INSERT INTO uploads (tenant, bucket, key, upload_id, initiated, creator, open, h) VALUES (?, ?, ?, ?, ?, ?, 0, ?)
         ON CONFLICT(tenant, bucket, key, upload_id) DO UPDATE SET open = 0`,
        r.tenant, r.bucket, r.key, r.uploadId, r.initiated, r.creator, h,
      );
    }
  }

  applyVersion(r: VersionRecord, h: number): void {
    const inserted = this.sql.exec(
      `INSERT OR IGNORE INTO versions (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified, content_type, vm_chid, creator, is_null, removed, meta, tags, h)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
      r.tenant, r.bucket, r.key, r.uvid, r.deleteMarker ? 1 : 0, r.size, r.etag, r.lastModified, r.contentType, r.vmChid, r.creator, r.isNull ? 1 : 0, r.meta ? JSON.stringify(r.meta) : null, tagsToJson(r.tags ?? []), h,
    ).rowsWritten > 0;
    if (inserted && this.earlyTags > 0) this.applyEarlyTags(r);
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
      this.refreshCurrent(r, h);
      return;
    }
    // A new version, not removed, is the key's current one exactly when it is newer than the
    // current one: one statement instead of looking the newest up (stamps rise, so nearly always).
    this.sql.exec(
      `INSERT INTO current (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified, h) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(tenant, bucket, key) DO UPDATE SET uvid = excluded.uvid, delete_marker = excluded.delete_marker,
         size = excluded.size, etag = excluded.etag, last_modified = excluded.last_modified, h = excluded.h
       WHERE excluded.uvid > current.uvid`,
      r.tenant, r.bucket, r.key, r.uvid, r.deleteMarker ? 1 : 0, r.size, r.etag, r.lastModified, h,
    );
  }

  applyRemoval(r: RemovalRecord, h: number): void {
    if (!this.markRemoved(r, r.target, r.uvid)) {
      const known = this.sql.exec("SELECT 1 FROM versions WHERE tenant = ? AND bucket = ? AND key = ? AND uvid = ?", r.tenant, r.bucket, r.key, r.target).toArray().length > 0;
      if (!known) this.earlyRemovals += this.sql.exec("INSERT OR IGNORE INTO early_removals (tenant, bucket, key, target, uvid, h) VALUES (?, ?, ?, ?, ?, ?)", r.tenant, r.bucket, r.key, r.target, r.uvid, h).rowsWritten;
    }
    this.refreshCurrent(r, h);
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
  private refreshCurrent(name: { tenant: string; bucket: string; key: string }, h: number): void {
    const { tenant, bucket, key } = name;
    const top = this.sql
      .exec("SELECT uvid, delete_marker, size, etag, last_modified FROM versions WHERE tenant = ? AND bucket = ? AND key = ? AND removed = 0 ORDER BY uvid DESC LIMIT 1", tenant, bucket, key)
      .toArray()[0];
    if (!top) {
      this.sql.exec("DELETE FROM current WHERE tenant = ? AND bucket = ? AND key = ?", tenant, bucket, key);
      return;
    }
    this.sql.exec(
      `INSERT INTO current (tenant, bucket, key, uvid, delete_marker, size, etag, last_modified, h) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(tenant, bucket, key) DO UPDATE SET uvid = excluded.uvid, delete_marker = excluded.delete_marker,
         size = excluded.size, etag = excluded.etag, last_modified = excluded.last_modified, h = excluded.h`,
      tenant, bucket, key, String(top.uvid), Number(top.delete_marker), Number(top.size), String(top.etag), Number(top.last_modified), h,
    );
  }

  /** The later-stamped tag change wins; one for a version not here yet waits for it. */
  applyTags(r: TagsRecord, h: number): void {
    const json = tagsToJson(r.tags);
    const changed = this.sql.exec(
      "UPDATE versions SET tags = ?, tags_at = ? WHERE tenant = ? AND bucket = ? AND key = ? AND uvid = ? AND (tags_at IS NULL OR tags_at < ?)",
      json, r.uvid, r.tenant, r.bucket, r.key, r.target, r.uvid,
    ).rowsWritten;
    if (changed > 0) return;
    const known = this.sql.exec("SELECT 1 FROM versions WHERE tenant = ? AND bucket = ? AND key = ? AND uvid = ?", r.tenant, r.bucket, r.key, r.target).toArray().length > 0;
    if (known) return;
    const before = this.sql.exec("SELECT 1 FROM early_tags WHERE tenant = ? AND bucket = ? AND key = ? AND target = ?", r.tenant, r.bucket, r.key, r.target).toArray().length;
    this.sql.exec(
      `INSERT INTO early_tags (tenant, bucket, key, target, uvid, tags, h) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(tenant, bucket, key, target) DO UPDATE SET uvid = excluded.uvid, tags = excluded.tags WHERE excluded.uvid > early_tags.uvid`,
      r.tenant, r.bucket, r.key, r.target, r.uvid, json, h,
    );
    if (before === 0) this.earlyTags++;
  }

  private applyEarlyTags(r: VersionRecord): void {
    const early = this.sql.exec("DELETE FROM early_tags WHERE tenant = ? AND bucket = ? AND key = ? AND target = ? RETURNING uvid, tags", r.tenant, r.bucket, r.key, r.uvid).toArray()[0];
    if (!early) return;
    this.earlyTags--;
    this.sql.exec("UPDATE versions SET tags = ?, tags_at = ? WHERE tenant = ? AND bucket = ? AND key = ? AND uvid = ?", early.tags, early.uvid, r.tenant, r.bucket, r.key, r.uvid);
  }
}
