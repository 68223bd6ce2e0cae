// When a removed version's data goes. Deleting a version (by id, by an unversioned delete, or
// by a new null version replacing it) takes it out of the namespace at once; its manifest and
// its chunks' back-references stay for REMOVED_RETAIN_SECONDS, so that reads as of a time just
// before the delete, and snapshots being defined, still find it. After that the group drops the
// version's back-references in its chunks' groups and deletes its manifest from the targets:
// the version is expunged. A committed snapshot that names the version holds it (a row here per
// snapshot) until the snapshot is deleted, so a snapshot never loses what it names.

import { asChid, asNhid, asUvid, type Chid, type Nhid, type Uvid } from "../../common/ids.ts";

export interface RemovedVersion {
  nhid: Nhid;
  uvid: Uvid;
  vmChid: Chid;
}

export class ExpungeBook {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS expunge (nhid TEXT NOT NULL, uvid TEXT NOT NULL, vm_chid TEXT NOT NULL, due INTEGER NOT NULL, PRIMARY KEY (nhid, uvid))");
    sql.exec("CREATE INDEX IF NOT EXISTS expunge_due ON expunge (due)");
    sql.exec("CREATE TABLE IF NOT EXISTS version_holds (nhid TEXT NOT NULL, uvid TEXT NOT NULL, holder TEXT NOT NULL, vm_chid TEXT NOT NULL, PRIMARY KEY (nhid, uvid, holder))");
  }

  /** A version left the namespace: expunge it at `due` unless something holds it then. */
  schedule(v: RemovedVersion, due: number): void {
    this.sql.exec("INSERT OR IGNORE INTO expunge (nhid, uvid, vm_chid, due) VALUES (?, ?, ?, ?)", v.nhid, v.uvid, v.vmChid, due);
  }

  /** Whether a removed version still has its data (it waits to be expunged, or is held). */
  retained(nhid: Nhid, uvid: Uvid): boolean {
    return (
      this.sql.exec("SELECT 1 FROM expunge WHERE nhid = ? AND uvid = ?", nhid, uvid).toArray().length > 0 ||
      this.sql.exec("SELECT 1 FROM version_holds WHERE nhid = ? AND uvid = ? LIMIT 1", nhid, uvid).toArray().length > 0
    );
  }

  nextDue(): number | null {
    const r = this.sql.exec("SELECT min(due) AS t FROM expunge").toArray()[0];
    return r && r.t !== null ? Number(r.t) : null;
  }

  /**
   * Removed versions due by `now`. One that a snapshot holds leaves the queue: releasing the
   * last hold schedules it again.
   */
  due(now: number, limit: number): RemovedVersion[] {
    const out: RemovedVersion[] = [];
    for (const r of this.sql.exec("SELECT nhid, uvid, vm_chid FROM expunge WHERE due <= ? ORDER BY due LIMIT ?", now, limit).toArray()) {
      const v = { nhid: asNhid(r.nhid), uvid: asUvid(r.uvid), vmChid: asChid(r.vm_chid) };
      if (this.held(v.nhid, v.uvid)) this.done(v);
      else out.push(v);
    }
    return out;
  }

  /** Still waiting and held by no one (checked again after an await). */
  stillDue(v: { nhid: Nhid; uvid: Uvid }): boolean {
    return this.sql.exec("SELECT 1 FROM expunge WHERE nhid = ? AND uvid = ?", v.nhid, v.uvid).toArray().length > 0 && !this.held(v.nhid, v.uvid);
  }

  /** Try again at `due` (its manifest could not be read). */
  postpone(v: { nhid: Nhid; uvid: Uvid }, due: number): void {
    this.sql.exec("UPDATE expunge SET due = ? WHERE nhid = ? AND uvid = ?", due, v.nhid, v.uvid);
  }

  done(v: { nhid: Nhid; uvid: Uvid }): void {
    this.sql.exec("DELETE FROM expunge WHERE nhid = ? AND uvid = ?", v.nhid, v.uvid);
  }

  /** `holder` (a snapshot) names these versions: none is expunged until it lets go. */
  hold(holder: string, versions: readonly RemovedVersion[]): void {
    for (const v of versions) this.sql.exec("INSERT OR IGNORE INTO version_holds (nhid, uvid, holder, vm_chid) VALUES (?, ?, ?, ?)", v.nhid, v.uvid, holder, v.vmChid);
  }

  /** `holder` lets go; returns the versions no one holds any more (the caller expunges those already removed). */
  release(holder: string, versions: readonly { nhid: Nhid; uvid: Uvid }[]): RemovedVersion[] {
    const free: RemovedVersion[] = [];
    for (const v of versions) {
      const row = this.sql.exec("SELECT vm_chid FROM version_holds WHERE nhid = ? AND uvid = ? AND holder = ?", v.nhid, v.uvid, holder).toArray()[0];
      if (!row) continue;
      this.sql.exec("DELETE FROM version_holds WHERE nhid = ? AND uvid = ? AND holder = ?", v.nhid, v.uvid, holder);
      if (!this.held(v.nhid, v.uvid)) free.push({ nhid: v.nhid, uvid: v.uvid, vmChid: asChid(row.vm_chid) });
    }
    return free;
  }

  private held(nhid: Nhid, uvid: Uvid): boolean {
    return this.sql.exec("SELECT 1 FROM version_holds WHERE nhid = ? AND uvid = ? LIMIT 1", nhid, uvid).toArray().length > 0;
  }
}
