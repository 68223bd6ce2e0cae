// Leases on names for editing sessions (seed 003): only one session at a time may hold a
// pending version of a key. Kept in the group that owns the name, durably and with an expiry,
// so a gateway that dies with a session open frees the name after the lease runs out.

import type { Nhid } from "../../common/ids.ts";

export class LeaseBook {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS leases (nhid TEXT PRIMARY KEY, holder TEXT NOT NULL, until INTEGER NOT NULL)");
  }

  /** Take or renew the lease; false if another holder's lease is still running. */
  acquire(nhid: Nhid, holder: string, ttlMs: number, now = Date.now()): boolean {
    const r = this.sql.exec(
      `INSERT INTO leases (nhid, holder, until) VALUES (?, ?, ?)
       ON CONFLICT(nhid) DO UPDATE SET holder = excluded.holder, until = excluded.until WHERE leases.holder = excluded.holder OR leases.until < ?`,
      nhid, holder, now + ttlMs, now,
    );
    return r.rowsWritten > 0;
  }

  holds(nhid: Nhid, holder: string, now = Date.now()): boolean {
    return this.sql.exec("SELECT 1 FROM leases WHERE nhid = ? AND holder = ? AND until >= ?", nhid, holder, now).toArray().length > 0;
  }

  release(nhid: Nhid, holder: string): void {
    this.sql.exec("DELETE FROM leases WHERE nhid = ? AND holder = ?", nhid, holder);
  }
}
