// The group's half of a fork's merge (seed 003's fork-edit-merge): a two-phase commit across
// the groups that own the fork's names, so that every merged version carries one shared stamp.
//
// prepare: the group checks each name's condition and lease, marks the name prepared (plain
// writes to it are refused with OperationAborted until the merge ends) and takes one held
// stamp. The held stamp keeps every cutoff this group sends below it, so no shard can be told
// "complete" past the merge's stamp before its records arrive.
// commit: the coordinator picks the shared stamp above every group's held one; each group
// records that decision durably first, then writes the versions under it. A decided merge is
// finished by the alarm if the write fails; an undecided one older than the lease is dropped
// (its session died between the phases).

import { asNhid, asUvid, type Chid, type Nhid, type Uvid } from "../../common/ids.ts";
import type { VersionBody } from "../../common/manifest.ts";
import type { Versioning } from "../shared/versioning.ts";
import type { WriteCondition } from "./complete.ts";
import { PagedText } from "../shared/paged-text.ts";

/** One pending version of a fork, as the coordinator hands it to the name's group. */
export interface MergeItem {
  nhid: Nhid;
  shard: number;
  body: VersionBody;
  versioning: Versioning;
  condition: WriteCondition | null;
  holder: string;
  replicas: number | null;
}

/** A version a merge wrote, as the coordinator reports it. */
export type MergedVersion = { nhid: Nhid; vmChid: Chid; versionId: string };

export interface PreparedRow {
  item: MergeItem;
  merge: string;
  hold: Uvid;
  decided: Uvid | null;
  at: number;
}

export class MergeBook {
  private readonly sql: SqlStorage;
  /**
   * The prepared names and their merges, as in the table: every write asks whether its name is
   * in a merge, and a statement per write cost more than all the rest of this book.
   */
  private readonly names = new Map<Nhid, string>();
  /** Each prepared item, by NHID: it carries its version's chunk list, past what one row may hold. */
  private readonly items: PagedText;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    this.items = new PagedText(sql, "prepared_item_pages");
    sql.exec(`CREATE TABLE IF NOT EXISTS prepared (
      nhid TEXT PRIMARY KEY, merge TEXT NOT NULL, hold TEXT NOT NULL, item TEXT NOT NULL, decided TEXT, at INTEGER NOT NULL)`);
    for (const r of sql.exec("SELECT nhid, merge FROM prepared")) this.names.set(asNhid(r.nhid), String(r.merge));
  }

  /** The merge a name is prepared in, if any. */
  preparedIn(nhid: Nhid): string | null {
    return this.names.get(nhid) ?? null;
  }

  prepare(merge: string, hold: Uvid, items: readonly MergeItem[], now = Date.now()): void {
    for (const it of items) {
      // The row first: a name listed twice fails here, before its first item's pages are replaced.
      this.sql.exec("INSERT INTO prepared (nhid, merge, hold, item, decided, at) VALUES (?, ?, ?, '', NULL, ?)", it.nhid, merge, hold, now);
      this.items.put(it.nhid, JSON.stringify(it));
      this.names.set(it.nhid, merge);
    }
  }

  /** Record the decision before acting on it: from here the merge is finished, never undone. */
  decide(merge: string, stamp: Uvid): void {
    this.sql.exec("UPDATE prepared SET decided = ? WHERE merge = ?", stamp, merge);
  }

  rows(merge: string): PreparedRow[] {
    return this.sql.exec("SELECT nhid, merge, hold, item, decided, at FROM prepared WHERE merge = ?", merge).toArray().map((r) => this.rowOf(r));
  }

  all(): PreparedRow[] {
    return this.sql.exec("SELECT nhid, merge, hold, item, decided, at FROM prepared").toArray().map((r) => this.rowOf(r));
  }

  done(nhid: Nhid): void {
    this.items.delete(nhid);
    this.sql.exec("DELETE FROM prepared WHERE nhid = ?", nhid);
    this.names.delete(nhid);
  }

  /** Drop an undecided merge; false if it was decided (it must then be finished instead). */
  abort(merge: string): boolean {
    if (this.sql.exec("SELECT 1 FROM prepared WHERE merge = ? AND decided IS NOT NULL LIMIT 1", merge).toArray().length > 0) return false;
    for (const r of this.sql.exec("SELECT nhid FROM prepared WHERE merge = ?", merge).toArray()) this.items.delete(String(r.nhid));
    this.sql.exec("DELETE FROM prepared WHERE merge = ?", merge);
    for (const [nhid, m] of this.names) if (m === merge) this.names.delete(nhid);
    return true;
  }

  private rowOf(r: Record<string, SqlStorageValue>): PreparedRow {
    // The item in its pages, or (prepared before they existed) in its row. Written by prepare from
    // the coordinator's checked items: the cast only names what it wrote.
    const text = r.item !== "" ? String(r.item) : (this.items.get(String(r.nhid)) ?? "null");
    return { merge: String(r.merge), hold: asUvid(r.hold), item: JSON.parse(text) as MergeItem, decided: r.decided === null ? null : asUvid(r.decided), at: Number(r.at) };
  }
}
