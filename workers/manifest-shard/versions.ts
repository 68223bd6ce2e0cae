// ListObjectVersions from one shard: every version not removed, keys in UTF-8 order and each
// key's versions newest first, delete markers included, rolled up into common prefixes under a
// delimiter. The gateway merges the shards' pages.

import { commonPrefixOf, prefixSuccessor } from "../../common/keys.ts";

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

const BATCH = 256;

export function listVersions(sql: SqlStorage, q: VersionQuery): VersionPage {
  const entries: VersionEntry[] = [];
  const upper = q.prefix ? prefixSuccessor(q.prefix) : null;
  // Position: versions of `atKey` older than `atUvid`, then keys after `atKey`.
  let atKey: string | null = q.keyMarker || null;
  let atUvid: string | null = null;
  if (atKey !== null && q.versionIdMarker) {
    if (q.versionIdMarker === "null") {
      const m = sql
        .exec("SELECT uvid FROM versions WHERE tenant = ? AND bucket = ? AND key = ? AND is_null = 1 AND removed = 0 ORDER BY uvid DESC LIMIT 1", q.tenant, q.bucket, atKey)
        .toArray()[0];
      atUvid = m ? String(m.uvid) : null;
    } else {
      atUvid = q.versionIdMarker;
    }
  }
  let from: string | null = q.prefix || null;
  if (atKey !== null && atUvid === null) {
    const cp = commonPrefixOf(atKey, q.prefix, q.delimiter);
    if (cp !== null && cp === atKey) {
      atKey = null;
      from = prefixSuccessor(cp);
      if (from === null) return { entries, truncated: false };
    }
  }
  for (;;) {
    const conds = ["v.tenant = ?", "v.bucket = ?", "v.removed = 0"];
    const args: (string | number)[] = [q.tenant, q.bucket];
    if (atKey !== null) {
      if (atUvid !== null) {
        conds.push("(v.key > ? OR (v.key = ? AND v.uvid < ?))");
        args.push(atKey, atKey, atUvid);
      } else {
        conds.push("v.key > ?");
        args.push(atKey);
      }
    }
    if (from !== null) {
      conds.push("v.key >= ?");
      args.push(from);
    }
    if (upper !== null) {
      conds.push("v.key < ?");
      args.push(upper);
    }
    const rows = sql
      .exec(
        `SELECT v.key, v.uvid, v.is_null, v.delete_marker, v.size, v.etag, v.last_modified, v.creator, (c.uvid = v.uvid) AS latest
         FROM versions v LEFT JOIN current c ON c.tenant = v.tenant AND c.bucket = v.bucket AND c.key = v.key
         WHERE ${conds.join(" AND ")} ORDER BY v.key, v.uvid DESC LIMIT ?`,
        ...args,
        BATCH,
      )
      .toArray();
    if (rows.length === 0) return { entries, truncated: false };
    let rolled = false;
    for (const row of rows) {
      const key = String(row.key);
      if (entries.length === q.limit) return { entries, truncated: true };
      const cp = commonPrefixOf(key, q.prefix, q.delimiter);
      if (cp !== null) {
        entries.push({ kind: "prefix", prefix: cp });
        const next = prefixSuccessor(cp);
        if (next === null) return { entries, truncated: false };
        atKey = null;
        atUvid = null;
        from = next;
        rolled = true;
        break;
      }
      entries.push({
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
      });
      atKey = key;
      atUvid = String(row.uvid);
    }
    if (!rolled && rows.length < BATCH) return { entries, truncated: false };
  }
}
