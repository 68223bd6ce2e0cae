// The group as initiator for the names it owns: it stamps version ids from a clock that never
// runs backwards (persisted, so a restart cannot reuse or precede a stamp), remembers the newest
// committed version of each name, and keeps an outbox of version records not yet applied by
// their manifest shard.

import { formatUvid, type Chid, type Nhid, type Uvid } from "../../common/ids.ts";
import type { VersionRecord } from "../manifest-shard/records.ts";

export interface NameRow {
  uvid: Uvid;
  vmChid: Chid;
  deleteMarker: boolean;
}

export class VersionBook {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS clock (k INTEGER PRIMARY KEY CHECK (k = 0), ms INTEGER NOT NULL, seq INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS names (nhid TEXT PRIMARY KEY, uvid TEXT NOT NULL, vm_chid TEXT NOT NULL, delete_marker INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS outbox (uvid TEXT NOT NULL, shard INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY (shard, uvid))`);
  }

  /** Next version id: wall-clock milliseconds, or the last stamp's plus a sequence step if the clock lags. */
  stamp(group: number, now: number = Date.now()): Uvid {
    const last = this.sql.exec("SELECT ms, seq FROM clock WHERE k = 0").toArray()[0];
    let ms = now;
    let seq = 0;
    if (last && Number(last.ms) >= now) {
      ms = Number(last.ms);
      seq = Number(last.seq) + 1;
    }
    this.sql.exec("INSERT INTO clock (k, ms, seq) VALUES (0, ?, ?) ON CONFLICT(k) DO UPDATE SET ms = excluded.ms, seq = excluded.seq", ms, seq);
    return formatUvid({ ms, seq, group });
  }

  /** The smallest version id this clock could still stamp. */
  floor(group: number): Uvid {
    const last = this.sql.exec("SELECT ms, seq FROM clock WHERE k = 0").toArray()[0];
    const ms = Math.max(Date.now(), last ? Number(last.ms) : 0);
    const seq = last && Number(last.ms) === ms ? Number(last.seq) + 1 : 0;
    return formatUvid({ ms, seq, group: 0 });
  }

  current(nhid: Nhid): NameRow | null {
    const row = this.sql.exec("SELECT uvid, vm_chid, delete_marker FROM names WHERE nhid = ?", nhid).toArray()[0];
    if (!row) return null;
    return { uvid: row.uvid as Uvid, vmChid: row.vm_chid as Chid, deleteMarker: Number(row.delete_marker) === 1 };
  }

  /** Record a committed version and queue its record for the shard, in one storage transaction. */
  commit(nhid: Nhid, row: NameRow, shard: number, record: VersionRecord): void {
    this.sql.exec(
      `INSERT INTO names (nhid, uvid, vm_chid, delete_marker) VALUES (?, ?, ?, ?)
       ON CONFLICT(nhid) DO UPDATE SET uvid = excluded.uvid, vm_chid = excluded.vm_chid, delete_marker = excluded.delete_marker
       WHERE excluded.uvid > names.uvid`,
      nhid, row.uvid, row.vmChid, row.deleteMarker ? 1 : 0,
    );
    this.sql.exec("INSERT OR IGNORE INTO outbox (uvid, shard, record) VALUES (?, ?, ?)", record.uvid, shard, JSON.stringify(record));
  }

  pending(limit = 500): { shard: number; record: VersionRecord }[] {
    return this.sql
      .exec("SELECT shard, record FROM outbox ORDER BY uvid LIMIT ?", limit)
      .toArray()
      .map((r) => ({ shard: Number(r.shard), record: JSON.parse(String(r.record)) as VersionRecord }));
  }

  delivered(shard: number, uvids: readonly Uvid[]): void {
    for (const u of uvids) this.sql.exec("DELETE FROM outbox WHERE shard = ? AND uvid = ?", shard, u);
  }
}
