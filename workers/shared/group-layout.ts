// The group counts the cluster has had, oldest first. A count may only grow to a multiple of
// the last (8 -> 16 -> 64): then every id's new group `id mod new` has one group of each older
// count it came from (`id mod old`), so a group split is a tree and each new group knows where
// its names and chunks were (negotiating-group/split.ts). The Cluster object and each shard keep the history,
// recorded the first time each runs with a new GROUP_COUNT. Manifest shards split by the same
// rule (SHARD_COUNT, manifest-shard/split.ts): the Cluster keeps that history too.

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
export function refuseCount(history: readonly number[], count: number, setting = "GROUP_COUNT"): string | null {
  const last = history[history.length - 1];
  if (last === undefined || last === count) return null;
  if (count < last) return `${setting} ${count} is below ${last}: it can be split, not merged`;
  if (count % last !== 0) return `${setting} ${count} is not a multiple of ${last}: each new one must come from one of the old count`;
  return null;
}

/** What a layout counts: groups (the default) or manifest shards. */
export interface LayoutKind {
  readonly table: "group_counts" | "shard_counts";
  readonly setting: "GROUP_COUNT" | "SHARD_COUNT";
}

export const SHARD_LAYOUT: LayoutKind = { table: "shard_counts", setting: "SHARD_COUNT" };

export class GroupLayout {
  private readonly sql: SqlStorage;
  private readonly kind: LayoutKind;

  constructor(sql: SqlStorage, kind: LayoutKind = { table: "group_counts", setting: "GROUP_COUNT" }) {
    this.sql = sql;
    this.kind = kind;
    sql.exec(`CREATE TABLE IF NOT EXISTS ${kind.table} (since INTEGER NOT NULL, count INTEGER PRIMARY KEY)`);
  }

  history(): number[] {
    return this.sql.exec(`SELECT count FROM ${this.kind.table} ORDER BY count`).toArray().map((r) => Number(r.count));
  }

  /** Counts of a history learnt from elsewhere (the Cluster's) that this one lacks. */
  adopt(history: readonly number[]): void {
    for (const c of history) this.sql.exec(`INSERT OR IGNORE INTO ${this.kind.table} (since, count) VALUES (0, ?)`, c);
  }

  /**
   * Record `count` if it is new (`before`: the count this object last ran with, if it kept none). A count that cannot follow (fewer groups, or not a multiple)
   * throws: the object refuses to start rather than send ids to groups that never held them.
   */
  observe(count: number, now: number, before: number | null = null): LayoutChange {
    // The first run of this code: the count the object ran with until now (`before`, from what
    // it stores) starts the history, so a count changed in the same deploy is still a split.
    if (this.history().length === 0 && before !== null && before !== count) this.sql.exec(`INSERT INTO ${this.kind.table} (since, count) VALUES (0, ?)`, before);
    const history = this.history();
    const refused = refuseCount(history, count, this.kind.setting);
    if (refused !== null) throw new Error(`${refused} (history: ${history.join(" -> ")})`);
    const last = history[history.length - 1];
    if (last === count) return { count, added: [] };
    this.sql.exec(`INSERT INTO ${this.kind.table} (since, count) VALUES (?, ?)`, now, count);
    if (last === undefined) return { count, added: [] };
    return { count, added: Array.from({ length: count - last }, (_, i) => last + i) };
  }
}
