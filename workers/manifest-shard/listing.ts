// Listing the current objects of a bucket from one shard, in UTF-8 key order, rolling keys up
// into common prefixes under a delimiter. A rolled-up prefix is skipped in one seek rather than
// by reading every key beneath it, so a prefix over a million keys costs one row.

import { commonPrefixOf, prefixSuccessor } from "../../common/keys.ts";

export interface ListQuery {
  tenant: string;
  bucket: string;
  prefix: string;
  delimiter: string;
  /** List strictly after this key (or past this common prefix). */
  after: string;
  limit: number;
}

export type ListEntry =
  | { kind: "object"; key: string; size: number; etag: string; lastModified: number }
  | { kind: "prefix"; prefix: string };

export interface ListPage {
  entries: ListEntry[];
  /** True when this shard has more entries after the last one returned. */
  truncated: boolean;
}

const BATCH = 256;

export function listCurrent(sql: SqlStorage, q: ListQuery): ListPage {
  const entries: ListEntry[] = [];
  const upper = q.prefix ? prefixSuccessor(q.prefix) : null;
  // Rows strictly after `cursor` (exclusive) or from `from` (inclusive).
  let cursor: string | null = q.after || null;
  let from: string | null = q.prefix || null;
  // Resuming after a common prefix (a continuation token is the last key or prefix returned):
  // skip everything beneath it. A start-after key inside a prefix is an ordinary cursor, so the
  // prefix is still reported if keys remain under it past that point.
  if (cursor !== null) {
    const cp = commonPrefixOf(cursor, q.prefix, q.delimiter);
    if (cp !== null && cp === cursor) {
      cursor = null;
      from = prefixSuccessor(cp);
      if (from === null) return { entries, truncated: false };
    }
  }
  for (;;) {
    const conds = ["tenant = ?", "bucket = ?", "delete_marker = 0"];
    const args: (string | number)[] = [q.tenant, q.bucket];
    if (cursor !== null) {
      conds.push("key > ?");
      args.push(cursor);
    }
    if (from !== null) {
      conds.push("key >= ?");
      args.push(from);
    }
    if (upper !== null) {
      conds.push("key < ?");
      args.push(upper);
    }
    const rows = sql
      .exec(`SELECT key, size, etag, last_modified FROM current WHERE ${conds.join(" AND ")} ORDER BY key LIMIT ?`, ...args, BATCH)
      .toArray();
    if (rows.length === 0) return { entries, truncated: false };
    for (const row of rows) {
      const key = String(row.key);
      if (entries.length === q.limit) return { entries, truncated: true };
      const cp = commonPrefixOf(key, q.prefix, q.delimiter);
      if (cp !== null) {
        entries.push({ kind: "prefix", prefix: cp });
        const next = prefixSuccessor(cp);
        if (next === null) return { entries, truncated: false };
        cursor = null;
        from = next;
        break;
      }
      entries.push({ kind: "object", key, size: Number(row.size), etag: String(row.etag), lastModified: Number(row.last_modified) });
      cursor = key;
    }
    if (rows.length < BATCH && cursor !== null && entries.length > 0 && entries[entries.length - 1]!.kind === "object") {
      // The batch ran out without a rollup: nothing more here.
      return { entries, truncated: false };
    }
  }
}
