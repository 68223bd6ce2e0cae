// The one walk behind every listing a shard serves (current objects, versions, multipart
// uploads): rows in key order, several rows per key in the table's own order, rolled up into
// common prefixes under a delimiter. A rolled-up prefix is skipped in one seek rather than by
// reading every row beneath it, so a prefix over a million keys costs one row.

import { commonPrefixOf, prefixSuccessor } from "../../common/keys.ts";

export type RolledPrefix = { kind: "prefix"; prefix: string };

/** Where the walk stands: strictly after `within` of `key` (or after all of `key`), at or after `from`. */
export interface WalkPosition<W> {
  key: string | null;
  within: W | null;
  from: string | null;
}

export interface RolledWalk<Row, W, E> {
  prefix: string;
  delimiter: string;
  limit: number;
  /** Up to `n` rows past the position and below `upper` (exclusive, null: no bound), in order. */
  fetch(pos: WalkPosition<W>, upper: string | null, n: number): Row[];
  key(row: Row): string;
  /** The row's place among its key's rows (null where a key has one row). */
  within(row: Row): W | null;
  entry(row: Row, key: string): E;
}

export interface WalkPage<E> {
  entries: (E | RolledPrefix)[];
  /** True when there are more entries after the last one returned. */
  truncated: boolean;
}

const BATCH = 256;

/**
 * Walks from `start` (a key marker, with an inner marker or none). A key marker that is itself a
 * common prefix (a continuation token is the last key or prefix returned) resumes past
 * everything beneath it; a marker key inside a prefix is an ordinary position, so the prefix is
 * still reported if rows remain under it after that point.
 */
export function walkRolledUp<Row, W, E>(w: RolledWalk<Row, W, E>, start: { key: string | null; within: W | null }): WalkPage<E> {
  const entries: (E | RolledPrefix)[] = [];
  const upper = w.prefix ? prefixSuccessor(w.prefix) : null;
  const pos: WalkPosition<W> = { key: start.key, within: start.within, from: w.prefix || null };
  if (pos.key !== null && pos.within === null) {
    const cp = commonPrefixOf(pos.key, w.prefix, w.delimiter);
    if (cp !== null && cp === pos.key) {
      pos.key = null;
      pos.from = prefixSuccessor(cp);
      if (pos.from === null) return { entries, truncated: false };
    }
  }
  for (;;) {
    const rows = w.fetch(pos, upper, BATCH);
    if (rows.length === 0) return { entries, truncated: false };
    let rolled = false;
    for (const row of rows) {
      const key = w.key(row);
      if (entries.length === w.limit) return { entries, truncated: true };
      const cp = commonPrefixOf(key, w.prefix, w.delimiter);
      if (cp !== null) {
        entries.push({ kind: "prefix", prefix: cp });
        const next = prefixSuccessor(cp);
        if (next === null) return { entries, truncated: false };
        pos.key = null;
        pos.within = null;
        pos.from = next;
        rolled = true;
        break;
      }
      entries.push(w.entry(row, key));
      pos.key = key;
      pos.within = w.within(row);
    }
    if (!rolled && rows.length < BATCH) return { entries, truncated: false };
  }
}

/**
 * The WHERE terms for the key bounds of a position over column `col`: after `pos.key` (all of
 * it, or past `afterWithin` of it when an inner position is given), at or after `from`, below
 * `upper`. Pushes onto `conds` and `args`.
 */
export function keyBounds(
  col: string,
  at: { pos: WalkPosition<unknown>; upper: string | null; afterWithin: { sql: string; args: (string | number)[] } | null },
  where: { conds: string[]; args: (string | number)[] },
): void {
  const { pos, upper, afterWithin } = at;
  const { conds, args } = where;
  if (pos.key !== null) {
    if (afterWithin !== null) {
      conds.push(`(${col} > ? OR (${col} = ? AND ${afterWithin.sql}))`);
      args.push(pos.key, pos.key, ...afterWithin.args);
    } else {
      conds.push(`${col} > ?`);
      args.push(pos.key);
    }
  }
  if (pos.from !== null) {
    conds.push(`${col} >= ?`);
    args.push(pos.from);
  }
  if (upper !== null) {
    conds.push(`${col} < ?`);
    args.push(upper);
  }
}
