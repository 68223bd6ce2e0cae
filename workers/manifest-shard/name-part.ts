// Which names a shard answers for. A name's shard is `h mod SHARD_COUNT`, where `h` is the name's
// hash (the NHID's second four bytes, common/ids.ts `shardOf`); every row keeps its `h`, so that
// after SHARD_COUNT grows (split.ts) a shard can answer for its own names alone while rows of
// names now another shard's are still in its tables, and hand exactly those rows over.

import { nhidOf, type Nhid } from "../../common/ids.ts";

/** The names with `h mod count = index`; `unhashed`: rows whose `h` is not yet known count too. */
export interface NamePart {
  readonly count: number;
  readonly index: number;
  readonly unhashed: boolean;
}

/** A name's `h`: the NHID bits the shard number is taken from. */
export function hashOfNhid(nhid: Nhid): number {
  return parseInt(nhid.slice(8, 16), 16);
}

export async function nameHashOf(tenant: string, bucket: string, key: string): Promise<number> {
  return hashOfNhid(await nhidOf(tenant, bucket, key));
}

export function inPart(h: number, part: NamePart): boolean {
  return h % part.count === part.index;
}

/** SQL for "row `alias` is in the part" (nothing when every row is), with its arguments. */
export function partCond(alias: string, part: NamePart | null): { sql: string; args: number[] } | null {
  if (part === null) return null;
  const col = alias === "" ? "h" : `${alias}.h`;
  const sql = `${col} % ? = ?`;
  return { sql: part.unhashed ? `(${col} IS NULL OR ${sql})` : sql, args: [part.count, part.index] };
}

/** Push the part's condition onto a query's conditions. */
export function narrowToPart(alias: string, part: NamePart | null, into: { conds: string[]; args: (string | number)[] }): void {
  const c = partCond(alias, part);
  if (c === null) return;
  into.conds.push(c.sql);
  into.args.push(...c.args);
}

/** Whether one part holds all of another's names (a part of a later count within one of an earlier). */
export function partWithin(inner: NamePart, outer: NamePart): boolean {
  return inner.count % outer.count === 0 && inner.index % outer.count === outer.index;
}
