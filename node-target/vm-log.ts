// Version manifests on a target: rows of one SQLite database (WAL, synchronous=FULL) rather
// than one file each. A manifest is small and written once per version; as a file it cost a
// write, an fsync, a rename and an fsync of its directory, plus a new directory (two more
// fsyncs) for every new name: ~2 ms of CPU per version on the dev VM. As a row it is one WAL
// append, and writes that arrive together share one commit and its one fsync (group commit).
// node:sqlite ships with Node, so this adds no dependency.
//
// A row is durable when `put` resolves: the WAL is fsynced on every commit. Bytes are checked
// against their CHID before they are written, and rows that fail a later check move to a
// quarantine table (never served, never bid).

import type { Chid, Nhid, Uvid } from "../common/ids.ts";
// Before node:sqlite, so its "experimental" warning meets our handler rather than stderr.
import "./log.ts";
import { DatabaseSync, type StatementSync } from "node:sqlite";

export interface VmEntry {
  uvid: Uvid;
  chid: Chid;
  size: number;
}

interface Pending {
  nhid: Nhid;
  uvid: Uvid;
  chid: Chid;
  bytes: Uint8Array;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class VmLog {
  private readonly db: DatabaseSync;
  private readonly insert: StatementSync;
  private readonly exists: StatementSync;
  private readonly newest: StatementSync;
  private readonly exact: StatementSync;
  private readonly body: StatementSync;
  private readonly moveOut: StatementSync;
  private readonly remove: StatementSync;
  private queue: Pending[] = [];
  private scheduled = false;
  /** Rows written per commit, for metrics and tests. */
  commits = 0;

  constructor(path: string) {
    this.db = new DatabaseSync(path);
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      CREATE TABLE IF NOT EXISTS vm (
        nhid TEXT NOT NULL, uvid TEXT NOT NULL, chid TEXT NOT NULL, bytes BLOB NOT NULL,
        PRIMARY KEY (nhid, uvid, chid)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS quarantine (
        nhid TEXT NOT NULL, uvid TEXT NOT NULL, chid TEXT NOT NULL, bytes BLOB NOT NULL,
        at INTEGER NOT NULL, reason TEXT NOT NULL
      );
    `);
    this.insert = this.db.prepare("INSERT OR IGNORE INTO vm (nhid, uvid, chid, bytes) VALUES (?, ?, ?, ?)");
    this.exists = this.db.prepare("SELECT 1 FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
    this.newest = this.db.prepare("SELECT uvid, chid, length(bytes) AS size FROM vm WHERE nhid = ? ORDER BY uvid DESC LIMIT 1");
    this.exact = this.db.prepare("SELECT uvid, chid, length(bytes) AS size FROM vm WHERE nhid = ? AND uvid = ? LIMIT 1");
    this.body = this.db.prepare("SELECT bytes FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
    this.moveOut = this.db.prepare(
      "INSERT INTO quarantine (nhid, uvid, chid, bytes, at, reason) SELECT nhid, uvid, chid, bytes, ?, ? FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?",
    );
    this.remove = this.db.prepare("DELETE FROM vm WHERE nhid = ? AND uvid = ? AND chid = ?");
  }

  /** Store a manifest; resolves once it is durable. Writes queued in one turn share a commit. */
  put(nhid: Nhid, uvid: Uvid, chid: Chid, bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ nhid, uvid, chid, bytes, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    try {
      this.db.exec("BEGIN");
      for (const p of batch) this.insert.run(p.nhid, p.uvid, p.chid, p.bytes);
      this.db.exec("COMMIT");
      this.commits++;
    } catch (e) {
      try {
        this.db.exec("ROLLBACK");
      } catch {
        // no transaction left to roll back
      }
      const err = e instanceof Error ? e : new Error(String(e));
      for (const p of batch) p.reject(err);
      return;
    }
    for (const p of batch) p.resolve();
  }

  has(nhid: Nhid, uvid: Uvid, chid: Chid): boolean {
    return this.exists.get(nhid, uvid, chid) !== undefined;
  }

  /** The newest manifest held for a name, or the exact version asked for. */
  find(nhid: Nhid, uvid: Uvid | null): VmEntry | null {
    const row = uvid === null ? this.newest.get(nhid) : this.exact.get(nhid, uvid);
    return row ? { uvid: row.uvid as Uvid, chid: row.chid as Chid, size: Number(row.size) } : null;
  }

  read(nhid: Nhid, uvid: Uvid, chid: Chid): Uint8Array | null {
    const row = this.body.get(nhid, uvid, chid);
    return row ? (row.bytes as Uint8Array) : null;
  }

  quarantine(nhid: Nhid, uvid: Uvid, chid: Chid, reason: string): void {
    this.db.exec("BEGIN");
    this.moveOut.run(Date.now(), reason, nhid, uvid, chid);
    this.remove.run(nhid, uvid, chid);
    this.db.exec("COMMIT");
  }

  /** First 4 bytes of every name held, as numbers: which groups this target holds manifests for. */
  namePrefixes(): number[] {
    return this.db
      .prepare("SELECT DISTINCT substr(nhid, 1, 8) AS p FROM vm")
      .all()
      .map((r) => parseInt(String(r.p), 16));
  }

  count(): number {
    return Number(this.db.prepare("SELECT count(*) AS n FROM vm").get()!.n);
  }

  bytes(): number {
    return Number(this.db.prepare("SELECT coalesce(sum(length(bytes)), 0) AS n FROM vm").get()!.n);
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}
