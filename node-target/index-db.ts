// The target's one SQLite database (WAL): where each chunk lives in the packs
// (packs/pack-index.ts) and the version manifests themselves (vm-log.ts). Writes go through a
// commit queue: every job queued in one turn of the event loop runs in one transaction, so the
// chunks of a pack batch and the manifests that arrived meanwhile share one commit (group
// commit). A job's promise resolves once its commit is durable.
//
// Durable without blocking: node:sqlite is synchronous, and with synchronous=FULL every COMMIT
// waited for its fsync on the target's only thread (measured: a tenth of its time during a
// large PUT). With synchronous=NORMAL a WAL commit only appends to the write-ahead log; the
// queue then fdatasyncs that file through the thread pool before it resolves, so a resolved
// commit is on disk exactly as with FULL (SQLite replays the log's committed frames after a
// crash), while the loop goes on serving. Checkpoints still sync the log and the database
// themselves (SQLite's rule for NORMAL).
//
// node:sqlite ships with Node, so this adds no dependency.

// Before node:sqlite, so its "experimental" warning meets our handler rather than stderr.
import "./log.ts";
import { existsSync, renameSync, rmSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

const FILE = "index.sqlite";
/** What the database was called when it held only manifests. */
const OLD_FILE = "manifests.sqlite";

/** Open (creating if needed) the database of the data directory `dir`. */
export function openIndexDb(dir: string): DatabaseSync {
  const path = join(dir, FILE);
  if (!existsSync(path) && existsSync(join(dir, OLD_FILE))) {
    // Fold the old name's write-ahead log into it first, so that the one file carries everything.
    const old = new DatabaseSync(join(dir, OLD_FILE));
    old.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    old.close();
    renameSync(join(dir, OLD_FILE), path);
    for (const suffix of ["-wal", "-shm"]) rmSync(join(dir, OLD_FILE + suffix), { force: true });
  }
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
  return db;
}

/** The write-ahead log of the database `openIndexDb(dir)` opened: what a commit makes durable. */
export function walPath(dir: string): string {
  return join(dir, `${FILE}-wal`);
}

interface Job {
  run: () => void;
  resolve: () => void;
  reject: (e: Error) => void;
  durable: boolean;
}

export class CommitQueue {
  private readonly db: DatabaseSync;
  private readonly wal: string;
  private walHandle: Promise<FileHandle> | null = null;
  private queue: Job[] = [];
  private scheduled = false;
  /** Transactions committed, and syncs of the log, for metrics and tests. */
  commits = 0;
  syncs = 0;

  constructor(db: DatabaseSync, wal: string) {
    this.db = db;
    this.wal = wal;
  }

  /**
   * Run `job` (synchronous statements) in the next group commit; resolves once that commit is
   * durable, or, with `durable: false`, once it is committed (what it wrote can be rebuilt after
   * a crash: a pack batch's rows, whose records are durable in the pack itself).
   */
  run(job: () => void, opts: { durable?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ run: job, resolve, reject, durable: opts.durable ?? true });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => void this.flush());
    });
  }

  /** Commit whatever is queued now; resolves (and resolves its jobs) once the commit is durable. */
  async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    try {
      this.db.exec("BEGIN");
      for (const j of batch) j.run();
      this.db.exec("COMMIT");
      this.commits++;
    } catch (e) {
      try {
        this.db.exec("ROLLBACK");
      } catch {
        // no transaction left to roll back
      }
      const err = e instanceof Error ? e : new Error(String(e));
      for (const j of batch) j.reject(err);
      return;
    }
    for (const j of batch) if (!j.durable) j.resolve();
    const durable = batch.filter((j) => j.durable);
    if (durable.length === 0) return;
    try {
      await this.syncLog();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      for (const j of durable) j.reject(err);
      return;
    }
    for (const j of durable) j.resolve();
  }

  /**
   * Make every commit so far durable, including statements that ran outside the queue (each its
   * own commit, which synchronous=NORMAL does not sync).
   */
  sync(): Promise<void> {
    return this.syncLog();
  }

  /**
   * fdatasync the write-ahead log: the frames of every commit so far reach the disk. Commits
   * made while one sync runs share the next (a later sync covers all earlier frames).
   */
  private syncing: Promise<void> | null = null;
  private again: Promise<void> | null = null;
  private syncLog(): Promise<void> {
    if (!this.syncing) {
      this.syncing = this.datasync().finally(() => (this.syncing = null));
      return this.syncing;
    }
    // The next sync runs whether the one under way failed or not; its own caller hears that failure.
    this.again ??= this.syncing
      .catch(() => {})
      .then(() => {
        this.again = null;
        return this.syncLog();
      });
    return this.again;
  }

  private async datasync(): Promise<void> {
    this.walHandle ??= open(this.wal, "r+");
    const fh = await this.walHandle.catch((e: unknown) => {
      this.walHandle = null;
      throw e;
    });
    await fh.datasync();
    this.syncs++;
  }

  /** Let go of the log's handle (the database is being closed). */
  async close(): Promise<void> {
    const h = this.walHandle;
    this.walHandle = null;
    // Closing at shutdown: a handle that fails to open or close holds nothing to keep.
    await h?.then((fh) => fh.close()).catch(() => {});
  }
}
