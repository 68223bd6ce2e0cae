// The group counts the cluster has had, oldest first. A count may only grow to a multiple of
// the last (8 -> 16 -> 64): then every id's new group `id mod new` has one group of each older
// count it came from (`id mod old`), so a group split is a tree and each new group knows where
// its names and chunks were (negotiating-group/split.ts). The Cluster object and each shard keep the history,
// recorded the first time each runs with a new GROUP_COUNT.

export interface LayoutChange {
  /** The count now in force. */
  readonly count: number;
  /** Groups added by this start (each begins with its parent's members), empty if none. */
  readonly added: readonly number[];
}

/** Where a group's ids were under each older count, nearest first: none for a group of the first count. */
export function ancestorsOf(group: number, history: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = history.length - 2; i >= 0; i--) {
    const g = group % history[i]!;
    if (g !== group && !out.includes(g)) out.push(g);
  }
  return out;
}

/** The group of an older count that a group of the current one began as a copy of (its members), or null. */
export function parentOf(group: number, history: readonly number[]): number | null {
  return ancestorsOf(group, history)[0] ?? null;
}

/** Why a new count cannot follow the history, or null if it can. */
export function refuseCount(history: readonly number[], count: number): string | null {
  const last = history[history.length - 1];
  if (last === undefined || last === count) return null;
  if (count < last) return `GROUP_COUNT ${count} is below ${last}: groups can be split, not merged`;
  if (count % last !== 0) return `GROUP_COUNT ${count} is not a multiple of ${last}: each new group must come from one group of the old count`;
  return null;
}

export class GroupLayout {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS group_counts (since INTEGER NOT NULL, count INTEGER PRIMARY KEY)");
  }

  history(): number[] {
    return this.sql.exec("SELECT count FROM group_counts ORDER BY count").toArray().map((r) => Number(r.count));
  }

  /**
   * Record `count` if it is new (`before`: the count this object last ran with, if it kept none). A count that cannot follow (fewer groups, or not a multiple)
   * throws: the object refuses to start rather than send ids to groups that never held them.
   */
  observe(count: number, now: number, before: number | null = null): LayoutChange {
    // The first run of this code: the count the object ran with until now (`before`, from what
    // it stores) starts the history, so a count changed in the same deploy is still a split.
    if (this.history().length === 0 && before !== null && before !== count) this.sql.exec("INSERT INTO group_counts (since, count) VALUES (0, ?)", before);
    const history = this.history();
    const refused = refuseCount(history, count);
    if (refused !== null) throw new Error(`${refused} (history: ${history.join(" -> ")})`);
    const last = history[history.length - 1];
    if (last === count) return { count, added: [] };
    this.sql.exec("INSERT INTO group_counts (since, count) VALUES (?, ?)", now, count);
    if (last === undefined) return { count, added: [] };
    return { count, added: Array.from({ length: count - last }, (_, i) => last + i) };
  }
}
