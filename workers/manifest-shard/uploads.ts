// ListMultipartUploads from one shard: the open uploads of a bucket in key order, uploads of
// one key by initiation time (then id), rolled up into common prefixes under a delimiter. The
// gateway merges the shards' pages the same way listings are merged.

import { commonPrefixOf, prefixSuccessor } from "../../common/keys.ts";

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

const BATCH = 256;

export function listUploads(sql: SqlStorage, q: UploadQuery): UploadPage {
  const entries: UploadEntry[] = [];
  const upper = q.prefix ? prefixSuccessor(q.prefix) : null;
  // Position: uploads of key `atKey` after (initiated, id) `atUpload`, then keys after `atKey`.
  let atKey: string | null = q.keyMarker || null;
  let atUpload: { initiated: number; id: string } | null = null;
  if (atKey !== null && q.uploadIdMarker) {
    const m = sql
      .exec("SELECT initiated FROM uploads WHERE tenant = ? AND bucket = ? AND key = ? AND upload_id = ?", q.tenant, q.bucket, atKey, q.uploadIdMarker)
      .toArray()[0];
    if (m) atUpload = { initiated: Number(m.initiated), id: q.uploadIdMarker };
  }
  let from: string | null = q.prefix || null;
  if (atKey !== null && atUpload === null) {
    const cp = commonPrefixOf(atKey, q.prefix, q.delimiter);
    if (cp !== null && cp === atKey) {
      atKey = null;
      from = prefixSuccessor(cp);
      if (from === null) return { entries, truncated: false };
    }
  }
  for (;;) {
    const conds = ["tenant = ?", "bucket = ?", "open = 1"];
    const args: (string | number)[] = [q.tenant, q.bucket];
    if (atKey !== null) {
      if (atUpload !== null) {
        conds.push("(key > ? OR (key = ? AND (initiated > ? OR (initiated = ? AND upload_id > ?))))");
        args.push(atKey, atKey, atUpload.initiated, atUpload.initiated, atUpload.id);
      } else {
        conds.push("key > ?");
        args.push(atKey);
      }
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
      .exec(
        `SELECT key, upload_id, initiated, creator FROM uploads WHERE ${conds.join(" AND ")} ORDER BY key, initiated, upload_id LIMIT ?`,
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
        atUpload = null;
        from = next;
        rolled = true;
        break;
      }
      entries.push({ kind: "upload", key, uploadId: String(row.upload_id), initiated: Number(row.initiated), creator: String(row.creator) });
      atKey = key;
      atUpload = { initiated: Number(row.initiated), id: String(row.upload_id) };
    }
    if (!rolled && rows.length < BATCH) return { entries, truncated: false };
  }
}
