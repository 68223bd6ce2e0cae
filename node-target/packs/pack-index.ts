// Where each chunk lives: pack, position of its record, length, when it was written; and per
// pack, the size committed so far and the bytes of its records no longer indexed there (what
// compaction weighs: the padding after a batch is not dead space, and moving it gains nothing). Rows
// are in the target's database (index-db.ts); every change runs inside a commit-queue job, so a
// chunk's row is durable in the same commit as the batch that wrote it, and a deletion is
// durable before it is confirmed.

import type { DatabaseSync, StatementSync } from "node:sqlite";
import { asChid, type Chid } from "../../common/ids.ts";
import { footprint } from "./record.ts";

export interface ChunkLocation {
  pack: number;
  /** Where its record (header first) begins in the pack. */
  pos: number;
  /** Payload bytes. */
  length: number;
}

/** Where an appended chunk landed; `replaced`: the chunk was indexed already (a second copy of one write). */
export type Placed = ChunkLocation & { replaced: boolean };

export interface ChunkRow extends ChunkLocation {
  chid: Chid;
  /** When it was written (ms since the epoch). */
  written: number;
}

export interface PackRow {
  id: number;
  /** Bytes committed (batches end on 4 KiB boundaries); anything beyond is an unfinished batch. */
  size: number;
  /** Bytes of records deleted, replaced or moved out since they were written here. */
  dead: number;
}

export class PackIndex {
  private readonly db: DatabaseSync;
  private readonly findStmt: StatementSync;
  private readonly upsert: StatementSync;
  private readonly died: StatementSync;
  private readonly grown: StatementSync;
  private readonly removeStmt: StatementSync;
  private readonly moveStmt: StatementSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    db.exec(`
      CREATE TABLE IF NOT EXISTS chunks (
        chid TEXT PRIMARY KEY, pack INTEGER NOT NULL, pos INTEGER NOT NULL, length INTEGER NOT NULL, written INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS chunks_pack ON chunks (pack, pos);
      CREATE INDEX IF NOT EXISTS chunks_written ON chunks (written);
      CREATE TABLE IF NOT EXISTS packs (id INTEGER PRIMARY KEY, size INTEGER NOT NULL, dead INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS retired_packs (id INTEGER PRIMARY KEY);
    `);
    // Packs first counted the bytes still live; all they lack is counted dead once (padding
    // too), so such a pack is compacted once more at most, into batches that account exactly.
    const columns = db.prepare("PRAGMA table_info(packs)").all().map((c) => String(c.name));
    if (columns.includes("live")) {
      db.exec("ALTER TABLE packs ADD COLUMN dead INTEGER NOT NULL DEFAULT 0; UPDATE packs SET dead = max(0, size - live); ALTER TABLE packs DROP COLUMN live;");
    }
    this.findStmt = db.prepare("SELECT pack, pos, length, written FROM chunks WHERE chid = ?");
    this.upsert = db.prepare("INSERT OR REPLACE INTO chunks (chid, pack, pos, length, written) VALUES (?, ?, ?, ?, ?)");
    this.died = db.prepare("UPDATE packs SET dead = dead + ? WHERE id = ?");
    this.grown = db.prepare("INSERT INTO packs (id, size, dead) VALUES (?, ?, 0) ON CONFLICT(id) DO UPDATE SET size = max(size, excluded.size)");
    this.removeStmt = db.prepare("DELETE FROM chunks WHERE chid = ?");
    this.moveStmt = db.prepare("UPDATE chunks SET pack = ?, pos = ? WHERE chid = ? AND pack = ? AND pos = ?");
  }

  find(chid: Chid): (ChunkLocation & { written: number }) | null {
    const r = this.findStmt.get(chid);
    return r ? { pack: Number(r.pack), pos: Number(r.pos), length: Number(r.length), written: Number(r.written) } : null;
  }

  has(chid: Chid): boolean {
    return this.findStmt.get(chid) !== undefined;
  }

  /**
   * In a commit job: these records are in `pack`, whose committed size is now `size`. A chunk
   * indexed before (elsewhere, or by an earlier row of these) moves here; returns, row by row,
   * whether it was.
   */
  added(pack: number, size: number, rows: readonly ChunkRow[]): boolean[] {
    this.grown.run(pack, size);
    return rows.map((r) => {
      const old = this.find(r.chid);
      if (old) this.died.run(footprint(old.length), old.pack);
      this.upsert.run(r.chid, r.pack, r.pos, r.length, r.written);
      return old !== null;
    });
  }

  /** In a commit job: bytes of `pack` that hold no record worth keeping (a damaged one skipped at start). */
  wasted(pack: number, bytes: number): void {
    this.died.run(bytes, pack);
  }

  /** In a commit job: a compacted record's new place, if the row still names the old one (false: deleted or replaced meanwhile). */
  moved(chid: Chid, from: ChunkLocation, to: ChunkLocation): boolean {
    if (Number(this.moveStmt.run(to.pack, to.pos, chid, from.pack, from.pos).changes) === 0) return false;
    this.died.run(footprint(from.length), from.pack);
    return true;
  }

  /** In a commit job: forget a chunk; its payload length, or 0 if it was not indexed. */
  removed(chid: Chid): number {
    const old = this.find(chid);
    if (!old) return 0;
    this.removeStmt.run(chid);
    this.died.run(footprint(old.length), old.pack);
    return old.length;
  }

  packs(): PackRow[] {
    return this.db
      .prepare("SELECT id, size, dead FROM packs ORDER BY id")
      .all()
      .map((r) => ({ id: Number(r.id), size: Number(r.size), dead: Number(r.dead) }));
  }

  /** In a commit job: a pack whose file is gone. */
  dropPack(id: number): void {
    this.db.prepare("DELETE FROM packs WHERE id = ?").run(id);
  }

  /**
   * In a commit job: a compacted pack holds nothing any more, but its file stays a while for
   * reads that found it before. Until the file is deleted, the pack is remembered as retired,
   * so that a start in between deletes it rather than indexing its records again.
   */
  retirePack(id: number): void {
    this.dropPack(id);
    this.db.prepare("INSERT OR IGNORE INTO retired_packs (id) VALUES (?)").run(id);
  }

  /** Retired packs whose files may still be there. */
  retired(): number[] {
    return this.db
      .prepare("SELECT id FROM retired_packs ORDER BY id")
      .all()
      .map((r) => Number(r.id));
  }

  /** In a commit job: a retired pack's file is deleted. */
  forgetRetired(id: number): void {
    this.db.prepare("DELETE FROM retired_packs WHERE id = ?").run(id);
  }

  /** Records still indexed in `pack`, in their order there, after position `after`. */
  inPack(pack: number, after: number, limit: number): ChunkRow[] {
    return this.db
      .prepare("SELECT chid, pack, pos, length, written FROM chunks WHERE pack = ? AND pos > ? ORDER BY pos LIMIT ?")
      .all(pack, after, limit)
      .map(rowOf);
  }

  /** Rows in CHID order after `after`, a position in that order rather than an id (null: from the start). */
  page(after: string | null, limit: number): ChunkRow[] {
    return this.db
      .prepare("SELECT chid, pack, pos, length, written FROM chunks WHERE chid > ? ORDER BY chid LIMIT ?")
      .all(after ?? "", limit)
      .map(rowOf);
  }

  /** Rows written at or after `since` (ms), oldest first. */
  writtenSince(since: number, limit: number): ChunkRow[] {
    return this.db
      .prepare("SELECT chid, pack, pos, length, written FROM chunks WHERE written >= ? ORDER BY written LIMIT ?")
      .all(since, limit)
      .map(rowOf);
  }

  totals(): { chunks: number; bytes: number } {
    const r = this.db.prepare("SELECT count(*) AS n, coalesce(sum(length), 0) AS b FROM chunks").get()!;
    return { chunks: Number(r.n), bytes: Number(r.b) };
  }

  /** Whether any CHID held starts with these 8 hex digits (a range of the primary key: one seek). */
  hasPrefix(prefix: string): boolean {
    return this.db.prepare("SELECT 1 FROM chunks WHERE chid >= ? AND chid < ? LIMIT 1").get(prefix, `${prefix}g`) !== undefined;
  }

  /** First 4 bytes of every CHID held, as numbers: which groups this target holds chunks for. */
  prefixes(): number[] {
    return this.db
      .prepare("SELECT DISTINCT substr(chid, 1, 8) AS p FROM chunks")
      .all()
      .map((r) => parseInt(String(r.p), 16));
  }
}

function rowOf(r: Record<string, unknown>): ChunkRow {
  return { chid: asChid(r.chid), pack: Number(r.pack), pos: Number(r.pos), length: Number(r.length), written: Number(r.written) };
}
