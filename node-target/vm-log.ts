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
/** Deflate with VM_DICTIONARY_V1 and then a manifest of the same name (`vm_dicts`, by `dict`). */
const ENC_DEFLATE_NAME = 2;

/**
 * A manifest this close to its name's dictionary is stored as its difference from it; one
 * further off becomes the name's next dictionary. A re-PUT of unchanged content differs in its
 * version id and time only (about 30 bytes); a changed one in its hashes (over 100).
 */
const NAME_DICT_CLOSE = 96;
/**
 * Manifests from this size to NAME_DICT_MAX may become their name's dictionary: smaller ones
 * gain nothing from it, larger ones are no small file's (deflate looks back 32 KiB at most).
 */
const NAME_DICT_MIN = 128;
const NAME_DICT_MAX = 8192;
/** Names whose newest dictionary is kept in memory. */
const DICTS_CACHED = 4096;

const hexOf = (b: unknown): string => Buffer.from(b as Uint8Array).toString("hex");
const bin = (hex: string): Buffer => Buffer.from(hex, "hex");

export interface VmEntry {
  uvid: Uvid;
  chid: Chid;
  size: number;
}

/**
 * The manifest log: version manifests kept by name (NHID), version (UVID) and content (CHID),
 * the ids as bytes. A manifest is stored deflated against a dictionary: the keys every
 * manifest has (VM_DICTIONARY_V1), and for small ones an earlier manifest of the same name, so
 * that the versions of a name that differ only in their id and time (a tree re-uploaded whole,
 * most files unchanged) cost a few dozen bytes each. A name's dictionaries live while a
 * manifest deflated against them does; none depends on another manifest row, so any version
 * can be deleted alone.
 */
export class VmLog {
  private readonly db: DatabaseSync;
  private readonly commitQueue: CommitQueue;
  private readonly insert: StatementSync;
  private readonly insertDict: StatementSync;
  private readonly exists: StatementSync;
  private readonly newest: StatementSync;
  private readonly exact: StatementSync;
  private readonly body: StatementSync;
  private readonly dictBody: StatementSync;
  private readonly newestDict: StatementSync;
  private readonly dictUsed: StatementSync;
  private readonly removeDict: StatementSync;
  private readonly highestDict: StatementSync;
  private readonly moveOut: StatementSync;
  private readonly remove: StatementSync;
  private readonly stored: StatementSync;
  /** Each name's newest dictionary (its manifest's own bytes), as puts use it. */
  private readonly dicts = new Map<string, { n: number; bytes: Uint8Array }>();
  /** Puts not yet committed, by the dictionary they are deflated against ("nhid/n"): it may not be deleted meanwhile. */
  private readonly pending = new Map<string, number>();
  /** The highest dictionary number each name has in a put not yet committed: the next one is above it. */
  private readonly numbering = new Map<string, number>();

  constructor(db: DatabaseSync, commits: CommitQueue) {
    this.db = db;
    this.commitQueue = commits;
    this.migrate();
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS vm (
        nhid BLOB NOT NULL, uvid BLOB NOT NULL, chid BLOB NOT NULL, bytes BLOB NOT NULL,
        enc INTEGER NOT NULL DEFAULT 0, size INTEGER, dict INTEGER,
        PRIMARY KEY (nhid, uvid, chid)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS vm_dicts (nhid BLOB NOT NULL, n INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (nhid, n)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS quarantine (
        nhid TEXT NOT NULL, uvid TEXT NOT NULL, chid TEXT NOT NULL, bytes BLOB NOT NULL,
        at INTEGER NOT NULL, reason TEXT NOT NULL
      );
    `);
    // Which manifests were written since a time (a group recovering from a crash asks): a UVID begins with its time.
    this.db.exec("CREATE INDEX IF NOT EXISTS vm_uvid ON vm (uvid)");
    const qColumns = this.db.prepare("PRAGMA table_info(quarantine)").all().map((c) => String(c.name));
    if (!qColumns.includes("enc")) this.db.exec("ALTER TABLE quarantine ADD COLUMN enc INTEGER NOT NULL DEFAULT 0");
    this.insert = this.db.prepare("INSERT OR IGNORE INTO vm (nhid, uvid, chid, bytes, enc, size, dict) VALUES (?, ?, ?, ?, ?, ?, ?)");
    // Never OR IGNORE: a number taken twice fails the put rather than leave a row deflated against other bytes.
    this.insertDict = this.db.prepare("INSERT INTO vm_dicts (nhid, n, bytes) VALUES (?, ?, ?)");
    this.exists = this.db.prepare("SELECT 1 FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
    this.newest = this.db.prepare("SELECT uvid, chid, coalesce(size, length(bytes)) AS size FROM vm WHERE nhid = ? ORDER BY uvid DESC LIMIT 1");
    this.exact = this.db.prepare("SELECT uvid, chid, coalesce(size, length(bytes)) AS size FROM vm WHERE nhid = ? AND uvid = ? LIMIT 1");
    this.body = this.db.prepare("SELECT bytes, enc, dict FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
    this.dictBody = this.db.prepare("SELECT bytes FROM vm_dicts WHERE nhid = ? AND n = ?");
    this.newestDict = this.db.prepare("SELECT n, bytes FROM vm_dicts WHERE nhid = ? ORDER BY n DESC LIMIT 1");
    this.dictUsed = this.db.prepare("SELECT 1 FROM vm WHERE nhid = ? AND dict = ? LIMIT 1");
    this.removeDict = this.db.prepare("DELETE FROM vm_dicts WHERE nhid = ? AND n = ?");
    this.highestDict = this.db.prepare("SELECT max(n) AS n FROM vm_dicts WHERE nhid = ?");
    this.moveOut = this.db.prepare("INSERT INTO quarantine (nhid, uvid, chid, bytes, enc, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?)");
    this.remove = this.db.prepare("DELETE FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
    this.stored = this.db.prepare("SELECT coalesce(size, length(bytes)) AS n, enc, dict FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
  }

  /** A log written before ids were kept as bytes is rewritten once, at open (ids as hex text, no dictionaries). */
  private migrate(): void {
    const columns = this.db.prepare("PRAGMA table_info(vm)").all() as { name: string; type: string }[];
    if (columns.length === 0 || columns.find((c) => c.name === "nhid")!.type === "BLOB") return;
    const has = (c: string) => columns.some((x) => x.name === c);
    this.db.exec("BEGIN");
    try {
      this.rewrite(has);
      this.db.exec("COMMIT");
    } catch (e) {
      // Left as it was (a full disk cannot hold the copy): the target does not start until it can.
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  private rewrite(has: (c: string) => boolean): void {
    this.db.exec("DROP INDEX IF EXISTS vm_uvid; ALTER TABLE vm RENAME TO vm_text");
    this.db.exec(`CREATE TABLE vm (
        nhid BLOB NOT NULL, uvid BLOB NOT NULL, chid BLOB NOT NULL, bytes BLOB NOT NULL,
        enc INTEGER NOT NULL DEFAULT 0, size INTEGER, dict INTEGER,
        PRIMARY KEY (nhid, uvid, chid)
      ) WITHOUT ROWID`);
    this.db.exec(`INSERT INTO vm (nhid, uvid, chid, bytes, enc, size) SELECT unhex(nhid), unhex(uvid), unhex(chid), bytes, ${has("enc") ? "enc" : "0"}, ${has("size") ? "size" : "NULL"} FROM vm_text`);
    this.db.exec("DROP TABLE vm_text");
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
    const dict = this.dictFor(nhid);
    let row: { bytes: Uint8Array; enc: number; dict: number | null } | null = null;
    let fresh: { n: number; bytes: Uint8Array } | null = null;
    if (dict) {
      const near = deflateRawSync(bytes, { dictionary: nameDictionary(dict.bytes) });
      if (near.length <= NAME_DICT_CLOSE) row = { bytes: near, enc: ENC_DEFLATE_NAME, dict: dict.n };
    }
    if (!row && bytes.length >= NAME_DICT_MIN && bytes.length <= NAME_DICT_MAX) {
      // The name's next dictionary: the versions after it that are like it cost their difference.
      const disk = Number(this.highestDict.get(bin(nhid))?.n ?? 0);
      fresh = { n: Math.max(disk, dict?.n ?? 0, this.numbering.get(nhid) ?? 0) + 1, bytes };
      this.numbering.set(nhid, fresh.n);
      row = { bytes: deflateRawSync(bytes, { dictionary: nameDictionary(bytes) }), enc: ENC_DEFLATE_NAME, dict: fresh.n };
      this.remember(nhid, fresh);
    }
    if (!row) {
      const packed = deflateRawSync(bytes, { dictionary: VM_DICTIONARY_V1 });
      row = packed.length < bytes.length ? { bytes: packed, enc: ENC_DEFLATE_V1, dict: null } : { bytes, enc: ENC_RAW, dict: null };
    }
    const stored = row;
    const dictRow = fresh ? deflateRawSync(fresh.bytes, { dictionary: VM_DICTIONARY_V1 }) : null;
    const key = stored.dict === null ? null : `${nhid}/${stored.dict}`;
    if (key) this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    const settled = () => {
      if (fresh && this.numbering.get(nhid) === fresh.n) this.numbering.delete(nhid);
      if (!key) return;
      const left = (this.pending.get(key) ?? 1) - 1;
      if (left > 0) this.pending.set(key, left);
      else this.pending.delete(key);
      // A row that did not land (the same manifest was here already, or the commit failed), or
      // a drop that had to leave the dictionary to this put: it goes now if nothing uses it.
      this.dropDictIfUnused(nhid, stored.dict!);
    };
    return this.commitQueue
      .run(() => {
        if (fresh && dictRow) this.insertDict.run(bin(nhid), fresh.n, dictRow);
        this.insert.run(bin(nhid), bin(uvid), bin(chid), stored.bytes, stored.enc, bytes.length, stored.dict);
      })
      .then(settled, (e: unknown) => {
        // What is in memory may name a dictionary that never reached the disk: read it again.
        this.dicts.delete(nhid);
        settled();
        throw e;
      });
  }

  has(nhid: Nhid, uvid: Uvid, chid: Chid): boolean {
    return this.exists.get(bin(nhid), bin(uvid), bin(chid)) !== undefined;
  }

  /** The newest manifest held for a name, or the exact version asked for. */
  find(nhid: Nhid, uvid: Uvid | null): VmEntry | null {
    const row = uvid === null ? this.newest.get(bin(nhid)) : this.exact.get(bin(nhid), bin(uvid));
    return row ? { uvid: asUvid(hexOf(row.uvid)), chid: asChid(hexOf(row.chid)), size: Number(row.size) } : null;
  }

  read(nhid: Nhid, uvid: Uvid, chid: Chid): Uint8Array | null {
    const row = this.body.get(bin(nhid), bin(uvid), bin(chid));
    if (!row) return null;
    const bytes = row.bytes as Uint8Array;
    // Whatever the stored form, the caller gets (and checks against the CHID) the manifest's own bytes.
    try {
      switch (Number(row.enc)) {
        case ENC_DEFLATE_V1:
          return new Uint8Array(inflateRawSync(bytes, { dictionary: VM_DICTIONARY_V1 }));
        case ENC_DEFLATE_NAME: {
          const dict = this.dictionary(nhid, Number(row.dict));
          return dict ? new Uint8Array(inflateRawSync(bytes, { dictionary: nameDictionary(dict) })) : bytes;
        }
        default:
          return bytes;
      }
    } catch {
      // A damaged row: its stored bytes fail the CHID check, and the caller quarantines it.
      return bytes;
    }
  }

  /**
   * Move a damaged manifest aside, as read (its dictionary may go with it). Not synced: if a
   * crash undoes it, the damaged row is back, and every read checks its bytes against the CHID
   * again and finds it out again.
   */
  quarantine(nhid: Nhid, uvid: Uvid, chid: Chid, reason: string): void {
    const row = this.stored.get(bin(nhid), bin(uvid), bin(chid));
    if (!row) return;
    const bytes = this.read(nhid, uvid, chid)!;
    this.db.exec("SAVEPOINT quarantine");
    this.moveOut.run(nhid, uvid, chid, bytes, Number(row.enc) === ENC_RAW || bytes.length === Number(row.n) ? ENC_RAW : Number(row.enc), Date.now(), reason);
    this.drop(nhid, uvid, chid);
    this.db.exec("RELEASE quarantine");
  }

  /** Delete a manifest its group reclaimed (its version was deleted); the bytes it held, 0 if it was not here. */
  drop(nhid: Nhid, uvid: Uvid, chid: Chid): number {
    const row = this.stored.get(bin(nhid), bin(uvid), bin(chid));
    if (!row) return 0;
    this.db.exec("SAVEPOINT drop_vm");
    this.remove.run(bin(nhid), bin(uvid), bin(chid));
    if (row.dict !== null) this.dropDictIfUnused(nhid, Number(row.dict));
    this.db.exec("RELEASE drop_vm");
    return Number(row.n);
  }

  /** A name's dictionary goes with the last manifest deflated against it, once no put of one is pending. */
  private dropDictIfUnused(nhid: Nhid, n: number): void {
    if (this.pending.has(`${nhid}/${n}`) || this.dictUsed.get(bin(nhid), n) !== undefined) return;
    this.removeDict.run(bin(nhid), n);
    if (this.dicts.get(nhid)?.n === n) this.dicts.delete(nhid);
  }

  /** Manifests held, in key order after `after` (a position in that order, not necessarily one held; null: from the start), `limit` at a time. */
  page(after: { nhid: string; uvid: string; chid: string } | null, limit: number): { nhid: Nhid; uvid: Uvid; chid: Chid }[] {
    // Ids as bytes sort as their hex does (fixed widths, lowercase hex): the order is the same.
    const rows = after
      ? this.db.prepare("SELECT nhid, uvid, chid FROM vm WHERE (nhid, uvid, chid) > (?, ?, ?) ORDER BY nhid, uvid, chid LIMIT ?").all(bin(after.nhid), bin(after.uvid), bin(after.chid), limit)
      : this.db.prepare("SELECT nhid, uvid, chid FROM vm ORDER BY nhid, uvid, chid LIMIT ?").all(limit);
    return rows.map((r) => ({ nhid: asNhid(hexOf(r.nhid)), uvid: asUvid(hexOf(r.uvid)), chid: asChid(hexOf(r.chid)) }));
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
      .all(bin(floor), limit)
      .map((r) => ({ nhid: asNhid(hexOf(r.nhid)), uvid: asUvid(hexOf(r.uvid)), chid: asChid(hexOf(r.chid)) }));
  }

  /** First 4 bytes of every name held, as numbers: which groups this target holds manifests for. */
  namePrefixes(): number[] {
    return this.db
      .prepare("SELECT DISTINCT substr(nhid, 1, 4) AS p FROM vm")
      .all()
      .map((r) => Buffer.from(r.p as Uint8Array).readUInt32BE(0));
  }

  /** Whether any manifest held is of a name whose NHID starts with these 8 hex digits. */
  hasNamePrefix(prefix: string): boolean {
    const from = bin(prefix);
    const next = from.readUInt32BE(0) + 1;
    // Names from this prefix up to the next one; the last prefix has none above it.
    if (next > 0xffffffff) return this.db.prepare("SELECT 1 FROM vm WHERE nhid >= ? LIMIT 1").get(from) !== undefined;
    const upper = Buffer.alloc(4);
    upper.writeUInt32BE(next, 0);
    return this.db.prepare("SELECT 1 FROM vm WHERE nhid >= ? AND nhid < ? LIMIT 1").get(from, upper) !== undefined;
  }

  /** Bytes of the manifests held, as written (what a write adds and a drop takes off the target's count). */
  bytes(): number {
    return Number(this.db.prepare("SELECT coalesce(sum(coalesce(size, length(bytes))), 0) AS n FROM vm").get()!.n);
  }

  /** A name's newest dictionary, from memory or the log. */
  private dictFor(nhid: Nhid): { n: number; bytes: Uint8Array } | null {
    const cached = this.dicts.get(nhid);
    if (cached) {
      this.remember(nhid, cached);
      return cached;
    }
    const row = this.newestDict.get(bin(nhid));
    if (!row) return null;
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(inflateRawSync(row.bytes as Uint8Array, { dictionary: VM_DICTIONARY_V1 }));
    } catch {
      // A damaged dictionary is used by no new row: the next becomes a dictionary of its own.
      return null;
    }
    const d = { n: Number(row.n), bytes };
    this.remember(nhid, d);
    return d;
  }

  private remember(nhid: Nhid, d: { n: number; bytes: Uint8Array }): void {
    this.dicts.delete(nhid);
    this.dicts.set(nhid, d);
    if (this.dicts.size > DICTS_CACHED) this.dicts.delete(this.dicts.keys().next().value!);
  }

  /** Dictionary `n` of a name (a manifest's own bytes), or null if it is gone. */
  private dictionary(nhid: Nhid, n: number): Uint8Array | null {
    const cached = this.dicts.get(nhid);
    if (cached?.n === n) return cached.bytes;
    const row = this.dictBody.get(bin(nhid), n);
    // A damaged one throws: the read returns the stored bytes, which fail the CHID check.
    return row ? new Uint8Array(inflateRawSync(row.bytes as Uint8Array, { dictionary: VM_DICTIONARY_V1 })) : null;
  }
}

/** What a manifest of a name is deflated against: the common keys, then the name's dictionary (deflate uses the last 32 KiB). */
function nameDictionary(dict: Uint8Array): Buffer {
  return Buffer.concat([VM_DICTIONARY_V1, dict]);
}
