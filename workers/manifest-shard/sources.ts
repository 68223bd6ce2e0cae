// The shard's sources (seed 000): the exact set of initiating groups it expects records from,
// and the cutoff each has promised. A point-in-time answer at T is complete once every expected
// source has promised past T; a source not in the set could send records nobody waits for, so
// the set is kept durably and changed only explicitly, when the group count changes.

import type { Uvid } from "../../common/ids.ts";

/** A cutoff that promises nothing: a source that has not reported yet. */
const NOTHING = "";

export interface SourceState {
  group: number;
  /** The source's latest promise: no record earlier than this will come from it ("" if none yet). */
  cutoff: string;
  /** When this source joined the set (ms since the epoch). */
  since: number;
}

export class SourceBook {
  private readonly sql: SqlStorage;

  /**
   * Each expected source's cutoff, as in the table: every batch of records asks whether its
   * source is expected and moves its cutoff, and a statement each cost more than the records.
   */
  private readonly cutoffs = new Map<number, string>();

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS sources (grp INTEGER PRIMARY KEY, cutoff TEXT NOT NULL, since INTEGER NOT NULL)`);
    // Shards older than the source set kept cutoffs only for groups that had reported.
    if (sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'cutoffs'").toArray().length > 0) {
      sql.exec("INSERT OR IGNORE INTO sources (grp, cutoff, since) SELECT grp, cutoff, 0 FROM cutoffs");
      sql.exec("DROP TABLE cutoffs");
    }
    this.reload();
  }

  /** Read the table again (after a transaction that touched it rolled back). */
  reload(): void {
    this.cutoffs.clear();
    for (const r of this.sql.exec("SELECT grp, cutoff FROM sources")) this.cutoffs.set(Number(r.grp), String(r.cutoff));
  }

  /**
   * Makes the expected set exactly groups 0..count-1. A group that joins starts with no promise,
   * so answers wait for it; a group that leaves is dropped. Returns what changed, for the log.
   */
  expect(count: number, now: number = Date.now()): { added: number[]; removed: number[] } {
    const have = new Set(this.sql.exec("SELECT grp FROM sources").toArray().map((r) => Number(r.grp)));
    const added: number[] = [];
    const removed: number[] = [];
    for (let g = 0; g < count; g++) {
      if (have.has(g)) continue;
      // Rows from before the set existed were recorded as reporting, not as expected.
      this.sql.exec("INSERT INTO sources (grp, cutoff, since) VALUES (?, ?, ?)", g, NOTHING, now);
      added.push(g);
    }
    for (const g of have) {
      if (g < count) continue;
      this.sql.exec("DELETE FROM sources WHERE grp = ?", g);
      removed.push(g);
    }
    this.reload();
    return { added, removed };
  }

  expects(group: number): boolean {
    return this.cutoffs.has(group);
  }

  /** Record an expected source's promise. Cutoffs only move forward. */
  promise(group: number, cutoff: Uvid): void {
    const known = this.cutoffs.get(group);
    if (known === undefined || known >= cutoff) return;
    this.sql.exec("UPDATE sources SET cutoff = ? WHERE grp = ? AND cutoff < ?", cutoff, group, cutoff);
    this.cutoffs.set(group, cutoff);
  }

  all(): SourceState[] {
    return this.sql
      .exec("SELECT grp, cutoff, since FROM sources ORDER BY grp")
      .toArray()
      .map((r) => ({ group: Number(r.grp), cutoff: String(r.cutoff), since: Number(r.since) }));
  }

  /** The sources (of `only`, if given) whose promise does not yet pass `bound` (a UVID: complete through every stamp below it). */
  lagging(bound: Uvid, only?: readonly number[]): number[] {
    const out: number[] = [];
    for (const [g, cutoff] of this.cutoffs) if (cutoff < bound && (only === undefined || only.includes(g))) out.push(g);
    return out.sort((a, b) => a - b);
  }
}
