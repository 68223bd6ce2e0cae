// ListObjectVersions from one shard: every version not removed, keys in UTF-8 order and each
// key's versions newest first, delete markers included, rolled up into common prefixes under a
// delimiter. The gateway merges the shards' pages.

import type { Uvid } from "../../common/ids.ts";
import { existsAt } from "./as-of.ts";
import { narrowToPart, type NamePart } from "./name-part.ts";
import { keyBounds, walkRolledUp } from "./rolled-walk.ts";

export interface VersionQuery {
  tenant: string;
  bucket: string;
  prefix: string;
  delimiter: string;
  /** Start after this key, or, with `versionIdMarker`, after that version of it. */
  keyMarker: string;
  /** A version id (UVID) or "null". */
  versionIdMarker: string;
  limit: number;
}

export type VersionEntry =
  | {
      kind: "version";
      key: string;
      uvid: string;
      isNull: boolean;
      deleteMarker: boolean;
      isLatest: boolean;
      size: number;
      etag: string;
      lastModified: number;
      creator: string;
    }
  | { kind: "prefix"; prefix: string };

export interface VersionPage {
  entries: VersionEntry[];
  truncated: boolean;
}

/**
 * `bound`: the versions that existed just before it, IsLatest as it was then (see as-of.ts);
 * absent: the versions not removed, IsLatest now.
 */
export function listVersions(sql: SqlStorage, q: VersionQuery, bound: Uvid | undefined, part: NamePart | null): VersionPage {
  const live = bound === undefined;
  const exists = live ? { sql: "v.removed = 0", args: [] } : { sql: existsAt("v"), args: [bound, bound] };
  // A version-id marker positions within the marker key's versions (newest first); "null" is
  // the key's null version, and a marker that names none starts after the whole key.
  let start: string | null = null;
  if (q.keyMarker && q.versionIdMarker) {
    if (q.versionIdMarker === "null") {
      const m = sql
        .exec(`SELECT uvid FROM versions v WHERE tenant = ? AND bucket = ? AND key = ? AND is_null = 1 AND ${exists.sql} ORDER BY uvid DESC LIMIT 1`, q.tenant, q.bucket, q.keyMarker, ...exists.args)
        .toArray()[0];
      start = m ? String(m.uvid) : null;
    } else {
      start = q.versionIdMarker;
    }
  }
  return walkRolledUp<Record<string, SqlStorageValue>, string, Extract<VersionEntry, { kind: "version" }>>(
    {
      prefix: q.prefix,
      delimiter: q.delimiter,
      limit: q.limit,
      fetch(pos, upper, n) {
        const conds = ["v.tenant = ?", "v.bucket = ?", exists.sql];
        const args: (string | number)[] = [q.tenant, q.bucket, ...exists.args];
        keyBounds("v.key", { pos, upper, afterWithin: pos.within === null ? null : { sql: "v.uvid < ?", args: [pos.within] } }, { conds, args });
        narrowToPart("v", part, { conds, args });
        const cols = "v.key, v.uvid, v.is_null, v.delete_marker, v.size, v.etag, v.last_modified, v.creator";
        const order = `WHERE ${conds.join(" AND ")} ORDER BY v.key, v.uvid DESC LIMIT ?`;
        if (live) {
          return sql
            .exec(`SELECT ${cols}, (c.uvid = v.uvid) AS latest FROM versions v LEFT JOIN current c ON c.tenant = v.tenant AND c.bucket = v.bucket AND c.key = v.key ${order}`, ...args, n)
            .toArray();
        }
        const latest = `(v.uvid = (SELECT MAX(w.uvid) FROM versions w WHERE w.tenant = v.tenant AND w.bucket = v.bucket AND w.key = v.key AND ${existsAt("w")}))`;
        return sql.exec(`SELECT ${cols}, ${latest} AS latest FROM versions v ${order}`, bound, bound, ...args, n).toArray();
      },
      key: (row) => String(row.key),
      within: (row) => String(row.uvid),
      entry: (row, key) => ({
        kind: "version",
        key,
        uvid: String(row.uvid),
        isNull: Number(row.is_null) === 1,
        deleteMarker: Number(row.delete_marker) === 1,
        isLatest: Number(row.latest) === 1,
        size: Number(row.size),
        etag: String(row.etag),
        lastModified: Number(row.last_modified),
        creator: String(row.creator),
      }),
    },
    { key: q.keyMarker || null, within: start },
  );
}
