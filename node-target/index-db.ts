// The target's one SQLite database (WAL, synchronous=FULL): where each chunk lives in the packs
// (packs/pack-index.ts) and the version manifests themselves (vm-log.ts). Writes go through a
// commit queue: every job queued in one turn of the event loop runs in one transaction, so the
// chunks of a pack batch and the manifests that arrived meanwhile share one commit and its one
// fsync (group commit). A job's promise resolves once its commit is durable.
//
// node:sqlite ships with Node, so this adds no dependency.

// Before node:sqlite, so its "experimental" warning meets our handler rather than stderr.
import "./log.ts";
import { existsSync, renameSync, rmSync } from "node:fs";
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
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
  return db;
}

interface Job {
  run: () => void;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class CommitQueue {
  private readonly db: DatabaseSync;
  private queue: Job[] = [];
  private scheduled = false;
  /** Transactions committed, for metrics and tests. */
  commits = 0;

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  /** Run `job` (synchronous statements) in the next group commit; resolves once that commit is durable. */
  run(job: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ run: job, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  /** Commit whatever is queued now (also on close). */
  flush(): void {
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
    for (const j of batch) j.resolve();
  }
}
