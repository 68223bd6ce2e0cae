// Listing the current objects of a bucket from one shard, in UTF-8 key order, rolling keys up
// into common prefixes under a delimiter (rolled-walk.ts): now, from the table of current
// versions, or as of a time, from the versions themselves (as-of.ts).

import type { Uvid } from "../../common/ids.ts";
import { newestAt } from "./as-of.ts";
import { narrowToPart, type NamePart } from "./name-part.ts";
import { keyBounds, walkRolledUp } from "./rolled-walk.ts";

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

/** `bound`: list as of the time just before it (see as-of.ts); absent: now. `part`: only its names (null: all). */
export function listCurrent(sql: SqlStorage, q: ListQuery, bound: Uvid | undefined, part: NamePart | null): ListPage {
  return walkRolledUp<Record<string, SqlStorageValue>, null, Extract<ListEntry, { kind: "object" }>>(
    {
      prefix: q.prefix,
      delimiter: q.delimiter,
      limit: q.limit,
      fetch(pos, upper, n) {
        const conds = ["tenant = ?", "bucket = ?"];
        const args: (string | number)[] = [q.tenant, q.bucket];
        keyBounds("key", { pos, upper, afterWithin: null }, { conds, args });
        narrowToPart("", part, { conds, args });
        if (bound === undefined) {
          conds.push("delete_marker = 0");
          return sql.exec(`SELECT key, size, etag, last_modified FROM current WHERE ${conds.join(" AND ")} ORDER BY key LIMIT ?`, ...args, n).toArray();
        }
        conds.push(newestAt("versions"), "delete_marker = 0");
        args.push(bound, bound, bound, bound);
        return sql.exec(`SELECT key, size, etag, last_modified FROM versions WHERE ${conds.join(" AND ")} ORDER BY key LIMIT ?`, ...args, n).toArray();
      },
      key: (row) => String(row.key),
      within: () => null,
      entry: (row, key) => ({ kind: "object", key, size: Number(row.size), etag: String(row.etag), lastModified: Number(row.last_modified) }),
    },
    { key: q.after || null, within: null },
  );
}
