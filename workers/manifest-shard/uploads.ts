// ListMultipartUploads from one shard: the open uploads of a bucket in key order, uploads of
// one key by initiation time (then id), rolled up into common prefixes under a delimiter. The
// gateway merges the shards' pages the same way listings are merged.

import { narrowToPart, type NamePart } from "./name-part.ts";
import { keyBounds, walkRolledUp } from "./rolled-walk.ts";

export interface UploadQuery {
  tenant: string;
  bucket: string;
  prefix: string;
  delimiter: string;
  /** Start after this key (all its uploads), or, with `uploadIdMarker`, after that upload of it. */
  keyMarker: string;
  uploadIdMarker: string;
  limit: number;
}

export type UploadEntry =
  | { kind: "upload"; key: string; uploadId: string; initiated: number; creator: string }
  | { kind: "prefix"; prefix: string };

export interface UploadPage {
  entries: UploadEntry[];
  truncated: boolean;
}

/** `part`: only its names (null: all). */
export function listUploads(sql: SqlStorage, q: UploadQuery, part: NamePart | null): UploadPage {
  type At = { initiated: number; id: string };
  // An upload-id marker positions within the marker key's uploads; one that names no upload of
  // it is ignored, and the walk starts after the whole key.
  let start: At | null = null;
  if (q.keyMarker && q.uploadIdMarker) {
    const m = sql
      .exec("SELECT initiated FROM uploads WHERE tenant = ? AND bucket = ? AND key = ? AND upload_id = ?", q.tenant, q.bucket, q.keyMarker, q.uploadIdMarker)
      .toArray()[0];
    if (m) start = { initiated: Number(m.initiated), id: q.uploadIdMarker };
  }
  return walkRolledUp<Record<string, SqlStorageValue>, At, Extract<UploadEntry, { kind: "upload" }>>(
    {
      prefix: q.prefix,
      delimiter: q.delimiter,
      limit: q.limit,
      fetch(pos, upper, n) {
        const conds = ["tenant = ?", "bucket = ?", "open = 1"];
        const args: (string | number)[] = [q.tenant, q.bucket];
        const w = pos.within;
        keyBounds("key", { pos, upper, afterWithin: w && { sql: "(initiated > ? OR (initiated = ? AND upload_id > ?))", args: [w.initiated, w.initiated, w.id] } }, { conds, args });
        narrowToPart("", part, { conds, args });
        return sql
          .exec(`SELECT key, upload_id, initiated, creator FROM uploads WHERE ${conds.join(" AND ")} ORDER BY key, initiated, upload_id LIMIT ?`, ...args, n)
          .toArray();
      },
      key: (row) => String(row.key),
      within: (row) => ({ initiated: Number(row.initiated), id: String(row.upload_id) }),
      entry: (row, key) => ({ kind: "upload", key, uploadId: String(row.upload_id), initiated: Number(row.initiated), creator: String(row.creator) }),
    },
    { key: q.keyMarker || null, within: start },
  );
}
