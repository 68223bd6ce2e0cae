// Multipart uploads that completed, remembered for a while: an SDK whose CompleteMultipartUpload
// response was lost sends the same request again, and S3 answers it with the same result rather
// than NoSuchUpload. A Complete that lists other parts than the one that succeeded is not a
// retry, and still finds no upload.

import { asChid, asUvid, type Chid, type Nhid, type Uvid } from "../../common/ids.ts";
import type { ObjectChecksum } from "../../common/manifest.ts";
import type { ListedPart } from "./complete.ts";

/** What the Complete answered, to answer its retries with. */
export interface CompletedUpload {
  uvid: Uvid;
  vmChid: Chid;
  created: number;
  versionId: string;
  etag: string;
  checksum: ObjectChecksum | null;
}

/** The parts a Complete listed, as compared between a request and its retry: numbers and ETags, quotes aside. */
function listing(listed: readonly ListedPart[]): string {
  return JSON.stringify(listed.map((p) => [p.partNumber, p.etag.replace(/^"|"$/g, "")]));
}

export class CompletedUploads {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS completed_uploads (upload_id TEXT PRIMARY KEY, nhid TEXT NOT NULL, listed TEXT NOT NULL, result TEXT NOT NULL, at INTEGER NOT NULL)");
    sql.exec("CREATE INDEX IF NOT EXISTS completed_uploads_at ON completed_uploads (at)");
  }

  /** Called in the completing version's own transaction, so a committed upload is always remembered. */
  record(at: { nhid: Nhid; uploadId: string }, listed: readonly ListedPart[], result: CompletedUpload): void {
    this.sql.exec("INSERT OR REPLACE INTO completed_uploads (upload_id, nhid, listed, result, at) VALUES (?, ?, ?, ?, ?)", at.uploadId, at.nhid, listing(listed), JSON.stringify(result), Date.now());
  }

  /** The result of an earlier Complete of this upload that listed the same parts, if it is remembered. */
  retried(at: { nhid: Nhid; uploadId: string }, listed: readonly ListedPart[]): CompletedUpload | null {
    const row = this.sql.exec("SELECT listed, result FROM completed_uploads WHERE upload_id = ? AND nhid = ?", at.uploadId, at.nhid).toArray()[0];
    if (!row || String(row.listed) !== listing(listed)) return null;
    // Our own row, written by record(): its ids are parsed back, the rest is as stored.
    const r = JSON.parse(String(row.result)) as CompletedUpload;
    return { ...r, uvid: asUvid(r.uvid), vmChid: asChid(r.vmChid) };
  }

  /** Forget completions older than `before`. */
  forgetBefore(before: number): void {
    this.sql.exec("DELETE FROM completed_uploads WHERE at < ?", before);
  }
}
