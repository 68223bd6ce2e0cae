// Version manifests on a target: rows of the target's database (index-db.ts) rather than one
// file each. A manifest is small and written once per version; as a file it cost a write, an
// fsync, a rename and an fsync of its directory, plus a new directory (two more fsyncs) for
// every new name: ~2 ms of CPU per version on the dev VM. As a row it is one WAL append, and
// writes that arrive together share one commit and its one fsync (the commit queue).
//
// A row is durable when `put` resolves. Bytes are checked against their CHID before they are
// written, and rows that fail a later check move to a quarantine table (never served, never bid).

import { asChid, asNhid, asUvid, type Chid, formatUvid, type Nhid, type Uvid } from "../common/ids.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { deflateRawSync, inflateRawSync } from "node:zlib";
import type { CommitQueue } from "./index-db.ts";

/**
 * A version manifest is a few hundred bytes of canonical JSON, most of it the same keys in the
 * same order every time: deflate alone cannot see that within one small document, deflate
 * with this dictionary can (a small file's manifest shrinks to about half). Rows say which
 * form they hold (`enc`), so this text may never change: a new one needs a new `enc` value.
 */
const VM_DICTIONARY_V1 = Buffer.from(
  '"checksum":{"algorithm":"CRC32C","type":"FULL_OBJECT","value":"=="},"parts":[],"application/octet-stream","application/json","text/plain",' +
    '"image/jpeg","text/html","deflate-raw","gzip","userMeta":{},"uvid":"0000019","tenant":"default","size":' +
    '{"bucket":"","chunks":[[0,,"","deflate-raw",,""]],"contentType":"binary/octet-stream","created":17,"creator":"","deleteMarker":false,' +
    '"etag":"","format":1,"httpMeta":{},"inline":null,"key":"',
);
const ENC_RAW = 0;
const ENC_DEFLATE_V1 = 1;

export interface VmEntry {
  uvid: Uvid;
  chid: Chid;
  size: number;
}

export class VmLog {
  private readonly db: DatabaseSync;
  private readonly commitQueue: CommitQueue;
  private readonly insert: StatementSync;
  private readonly exists: StatementSync;
  private readonly newest: StatementSync;
  private readonly exact: StatementSync;
  private readonly body: StatementSync;
  private readonly moveOut: StatementSync;
  private readonly remove: StatementSync;
  private readonly storedLength: StatementSync;

  constructor(db: DatabaseSync, commits: CommitQueue) {
    this.db = db;
    this.commitQueue = commits;
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS vm (
        nhid TEXT NOT NULL, uvid TEXT NOT NULL, chid TEXT NOT NULL, bytes BLOB NOT NULL,
        PRIMARY KEY (nhid, uvid, chid)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS quarantine (
        nhid TEXT NOT NULL, uvid TEXT NOT NULL, chid TEXT NOT NULL, bytes BLOB NOT NULL,
        at INTEGER NOT NULL, reason TEXT NOT NULL
      );
    `);
    // Added later: rows written before hold raw bytes (enc 0) and their size is their length.
    const columns = this.db.prepare("PRAGMA table_info(vm)").all().map((c) => String(c.name));
    if (!columns.includes("enc")) this.db.exec("ALTER TABLE vm ADD COLUMN enc INTEGER NOT NULL DEFAULT 0; ALTER TABLE vm ADD COLUMN size INTEGER");
    // Which manifests were written since a time (a group recovering from a crash asks): a UVID begins with its time.
    this.db.exec("CREATE INDEX IF NOT EXISTS vm_uvid ON vm (uvid)");
    const qColumns = this.db.prepare("PRAGMA table_info(quarantine)").all().map((c) => String(c.name));
    if (!qColumns.includes("enc")) this.db.exec("ALTER TABLE quarantine ADD COLUMN enc INTEGER NOT NULL DEFAULT 0");
    this.insert = this.db.prepare("INSERT OR IGNORE INTO vm (nhid, uvid, chid, bytes, enc, size) VALUES (?, ?, ?, ?, ?, ?)");
    this.exists = this.db.prepare("SELECT 1 FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
    this.newest = this.db.prepare("SELECT uvid, chid, coalesce(size, length(bytes)) AS size FROM vm WHERE nhid = ? ORDER BY uvid DESC LIMIT 1");
    this.exact = this.db.prepare("SELECT uvid, chid, coalesce(size, length(bytes)) AS size FROM vm WHERE nhid = ? AND uvid = ? LIMIT 1");
    this.body = this.db.prepare("SELECT bytes, enc FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
    this.moveOut = this.db.prepare(
      "INSERT INTO quarantine (nhid, uvid, chid, bytes, enc, at, reason) SELECT nhid, uvid, chid, bytes, enc, ?, ? FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?",
    );
    this.remove = this.db.prepare("DELETE FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
    this.storedLength = this.db.prepare("SELECT length(bytes) AS n FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
  }

  /** Transactions committed, and syncs of the log (shared with the chunk index): for tests of group commit. */
  get commits(): number {
    return this.commitQueue.commits;
  }

  get syncs(): number {
    return this.commitQueue.syncs;
  }

  /** Store a manifest; resolves once it is durable. Writes queued in one turn share a commit. */
  put(nhid: Nhid, uvid: Uvid, chid: Chid, bytes: Uint8Array): Promise<void> {
    // Compressed before the commit's turn: the transaction holds nothing but the inserts.
    const packed = deflateRawSync(bytes, { dictionary: VM_DICTIONARY_V1 });
    const row = packed.length < bytes.length ? ([packed, ENC_DEFLATE_V1] as const) : ([bytes, ENC_RAW] as const);
    return this.commitQueue.run(() => void this.insert.run(nhid, uvid, chid, row[0], row[1], bytes.length));
  }

  has(nhid: Nhid, uvid: Uvid, chid: Chid): boolean {
    return this.exists.get(nhid, uvid, chid) !== undefined;
  }

  /** The newest manifest held for a name, or the exact version asked for. */
  find(nhid: Nhid, uvid: Uvid | null): VmEntry | null {
    const row = uvid === null ? this.newest.get(nhid) : this.exact.get(nhid, uvid);
    return row ? { uvid: asUvid(row.uvid), chid: asChid(row.chid), size: Number(row.size) } : null;
  }

  read(nhid: Nhid, uvid: Uvid, chid: Chid): Uint8Array | null {
    const row = this.body.get(nhid, uvid, chid);
    if (!row) return null;
    const bytes = row.bytes as Uint8Array;
    // Whatever the stored form, the caller gets (and checks against the CHID) the manifest's own bytes.
    if (Number(row.enc) !== ENC_DEFLATE_V1) return bytes;
    try {
      return new Uint8Array(inflateRawSync(bytes, { dictionary: VM_DICTIONARY_V1 }));
    } catch {
      // A damaged row: its stored bytes fail the CHID check, and the caller quarantines it.
      return bytes;
    }
  }

  /**
   * Move a damaged manifest aside. Not synced: if a crash undoes it, the damaged row is back,
   * and every read checks its bytes against the CHID again and finds it out again.
   */
  quarantine(nhid: Nhid, uvid: Uvid, chid: Chid, reason: string): void {
    this.db.exec("BEGIN");
    this.moveOut.run(Date.now(), reason, nhid, uvid, chid);
    this.remove.run(nhid, uvid, chid);
    this.db.exec("COMMIT");
  }

  /** Delete a manifest its group reclaimed (its version was deleted); the bytes it took, 0 if it was not here. */
  drop(nhid: Nhid, uvid: Uvid, chid: Chid): number {
    const row = this.storedLength.get(nhid, uvid, chid);
    if (!row) return 0;
    this.remove.run(nhid, uvid, chid);
    return Number(row.n);
  }

  /** Manifests held, in key order after `after` (a position in that order, not necessarily one held; null: from the start), `limit` at a time. */
  page(after: { nhid: string; uvid: string; chid: string } | null, limit: number): { nhid: Nhid; uvid: Uvid; chid: Chid }[] {
    const rows = after
      ? this.db.prepare("SELECT nhid, uvid, chid FROM vm WHERE (nhid, uvid, chid) > (?, ?, ?) ORDER BY nhid, uvid, chid LIMIT ?").all(after.nhid, after.uvid, after.chid, limit)
      : this.db.prepare("SELECT nhid, uvid, chid FROM vm ORDER BY nhid, uvid, chid LIMIT ?").all(limit);
    return rows.map((r) => ({ nhid: asNhid(r.nhid), uvid: asUvid(r.uvid), chid: asChid(r.chid) }));
  }

  /** Whether the log passes SQLite's integrity check (after an unclean stop). */
  intact(): boolean {
    const rows = this.db.prepare("PRAGMA quick_check").all();
    return rows.length === 1 && String(Object.values(rows[0]!)[0]) === "ok";
  }

  /** Manifests stamped at or after `since` (ms since the epoch; a UVID begins with its time), oldest first. */
  stampedSince(since: number, limit: number): { nhid: Nhid; uvid: Uvid; chid: Chid }[] {
    const floor = formatUvid({ ms: Math.max(0, Math.floor(since)), seq: 0, group: 0 });
    return this.db
      .prepare("SELECT nhid, uvid, chid FROM vm WHERE uvid >= ? ORDER BY uvid LIMIT ?")
      .all(floor, limit)
      .map((r) => ({ nhid: asNhid(r.nhid), uvid: asUvid(r.uvid), chid: asChid(r.chid) }));
  }

  /** First 4 bytes of every name held, as numbers: which groups this target holds manifests for. */
  namePrefixes(): number[] {
    return this.db
      .prepare("SELECT DISTINCT substr(nhid, 1, 8) AS p FROM vm")
      .all()
      .map((r) => parseInt(String(r.p), 16));
  }

  /** Whether any manifest held is of a name whose NHID starts with these 8 hex digits. */
  hasNamePrefix(prefix: string): boolean {
    return this.db.prepare("SELECT 1 FROM vm WHERE nhid >= ? AND nhid < ? LIMIT 1").get(prefix, `${prefix}g`) !== undefined;
  }

  bytes(): number {
    return Number(this.db.prepare("SELECT coalesce(sum(length(bytes)), 0) AS n FROM vm").get()!.n);
  }

}
