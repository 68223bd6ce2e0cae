// Items this group has to repair (a read met a bad copy, a member's scrub reported one), kept in
// storage until a repair has put them back at R: an eviction or a restart of the object loses
// none. An item whose repair fails (too few targets take it now) is tried again later, each time
// after a longer wait (as Garage's resync queue keeps `when` and `errors` per block).

import type { StoredRef } from "../../common/protocol.ts";
import { storedRefKey } from "../../common/protocol.ts";
import { decodeStoredRef } from "../../common/wire-decode.ts";

/** The first retry comes this long after a failure, each next one twice as long, up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 10 * 60_000;

export interface QueuedRepair {
  ref: StoredRef;
  why: string;
  errors: number;
}

export class RepairQueue {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS repair_queue (key TEXT PRIMARY KEY, ref TEXT NOT NULL, why TEXT NOT NULL, due INTEGER NOT NULL, errors INTEGER NOT NULL)");
  }

  /** Queue a repair of `ref` for `at` (one already queued keeps its place). */
  add(ref: StoredRef, why: string, at: number): void {
    this.sql.exec("INSERT INTO repair_queue (key, ref, why, due, errors) VALUES (?, ?, ?, ?, 0) ON CONFLICT(key) DO NOTHING", storedRefKey(ref), JSON.stringify(ref), why, at);
  }

  /** Up to `limit` repairs due by `now`, earliest first. */
  due(now: number, limit: number): QueuedRepair[] {
    return this.sql
      .exec("SELECT ref, why, errors FROM repair_queue WHERE due <= ? ORDER BY due LIMIT ?", now, limit)
      .toArray()
      .flatMap((r) => {
        const ref = decodeStoredRef(String(r.ref));
        return ref ? [{ ref, why: String(r.why), errors: Number(r.errors) }] : [];
      });
  }

  /** The repair is done (or there is nothing left to repair from). */
  done(ref: StoredRef): void {
    this.sql.exec("DELETE FROM repair_queue WHERE key = ?", storedRefKey(ref));
  }

  /** The repair failed: try again after a wait that doubles with each failure. */
  failed(ref: StoredRef, now: number): void {
    const row = this.sql.exec("SELECT errors FROM repair_queue WHERE key = ?", storedRefKey(ref)).toArray()[0];
    const errors = row ? Number(row.errors) + 1 : 1;
    const wait = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.min(errors - 1, 20));
    this.sql.exec("UPDATE repair_queue SET errors = ?, due = ? WHERE key = ?", errors, now + wait, storedRefKey(ref));
  }

  /** Look at it again at `at`, without counting a failure. */
  postpone(ref: StoredRef, at: number): void {
    this.sql.exec("UPDATE repair_queue SET due = max(due, ?) WHERE key = ?", at, storedRefKey(ref));
  }

  /** When the next repair falls due, or null if none is queued. */
  nextDue(): number | null {
    const r = this.sql.exec("SELECT min(due) AS due FROM repair_queue").one();
    return r.due === null ? null : Number(r.due);
  }

  get size(): number {
    return Number(this.sql.exec("SELECT count(*) AS n FROM repair_queue").one().n);
  }
}
