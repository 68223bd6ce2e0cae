// Multipart uploads in progress on the names a group owns: the upload (its metadata, fixed at
// creation) and each part uploaded so far (its MD5, size, checksum and chunk references).
// Parts point at chunks already stored; completing an upload only concatenates references.

import { asNhid, type Chid, type Nhid } from "../../common/ids.ts";
import { chunkFromWire, chunkToWire, type ChecksumAlgorithm, type ChunkWire, type Extent } from "../../common/manifest.ts";
import type { Tag } from "../shared/tags.ts";
import { PagedText } from "../shared/paged-text.ts";

export interface UploadInfo {
  uploadId: string;
  tenant: string;
  bucket: string;
  key: string;
  initiated: number;
  creator: string;
  contentType: string;
  userMeta: Record<string, string>;
  httpMeta: Record<string, string>;
  /** The checksum asked for at creation: every part must carry one, and the object gets one. */
  checksum: { algorithm: ChecksumAlgorithm; type: "FULL_OBJECT" | "COMPOSITE" } | null;
  /** x-edgestore-replicas at creation: copies of every part's chunks and of the object's manifest. */
  replicas?: number | null;
  /** x-amz-tagging at creation: the completed object's tags. */
  tags?: Tag[];
}

export interface PartRow {
  partNumber: number;
  /** Hex MD5 of the part. */
  etag: string;
  size: number;
  /** Offsets relative to the start of the part. */
  chunks: Extent[];
  /** Base64 checksum of the part, in the upload's algorithm. */
  checksum: string | null;
  uploaded: number;
}

export type PartSummary = Omit<PartRow, "chunks">;

/** Which upload, of which name, and where the name's records go. */
export interface UploadAt {
  nhid: Nhid;
  shard: number;
  uploadId: string;
}

export class UploadBook {
  private readonly sql: SqlStorage;
  /** Each part's chunk list, by `<uploadId>/<partNumber>`: it grows with the part, past what one row may hold. */
  private readonly chunkLists: PagedText;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    this.chunkLists = new PagedText(sql, "part_chunk_pages");
    sql.exec(`CREATE TABLE IF NOT EXISTS uploads (upload_id TEXT PRIMARY KEY, nhid TEXT NOT NULL, info TEXT NOT NULL)`);
    // The alarm asks for the oldest upload every round: an index on when each began, not a decode of them all.
    sql.exec(`CREATE INDEX IF NOT EXISTS uploads_initiated ON uploads (json_extract(info, '$.initiated'))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS parts (
      upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
      chunks TEXT NOT NULL, checksum TEXT, uploaded INTEGER NOT NULL, PRIMARY KEY (upload_id, part_number))`);
  }

  create(nhid: Nhid, info: UploadInfo): void {
    this.sql.exec("INSERT INTO uploads (upload_id, nhid, info) VALUES (?, ?, ?)", info.uploadId, nhid, JSON.stringify(info));
  }

  /** The upload, if it is in progress on this name. */
  get(nhid: Nhid, uploadId: string): UploadInfo | null {
    const row = this.sql.exec("SELECT info FROM uploads WHERE upload_id = ? AND nhid = ?", uploadId, nhid).toArray()[0];
    return row ? (JSON.parse(String(row.info)) as UploadInfo) : null;
  }

  /** Store a part, replacing one of the same number. Its chunk list goes to pages of its own; `chunks` is left empty. */
  putPart(uploadId: string, p: PartRow): void {
    this.chunkLists.put(`${uploadId}/${p.partNumber}`, JSON.stringify(p.chunks.map(chunkToWire)));
    this.sql.exec(
      `INSERT INTO parts (upload_id, part_number, etag, size, chunks, checksum, uploaded) VALUES (?, ?, ?, ?, '', ?, ?)
       ON CONFLICT(upload_id, part_number) DO UPDATE SET etag = excluded.etag, size = excluded.size, chunks = '',
         checksum = excluded.checksum, uploaded = excluded.uploaded`,
      uploadId, p.partNumber, p.etag, p.size, p.checksum, p.uploaded,
    );
  }

  /** A part's chunk list: from its row (a part stored before pages existed), else from its pages, read by `paged`. */
  private chunksOf(inRow: SqlStorageValue | undefined, paged: () => string | null): Extent[] {
    const text = inRow !== "" && inRow !== null && inRow !== undefined ? String(inRow) : (paged() ?? "[]");
    // Written by putPart from a part's checked chunk list: the cast only names what it wrote.
    return (JSON.parse(text) as ChunkWire[]).map(chunkFromWire);
  }

  /** Parts after `afterPartNumber`, in order, without their chunk lists. */
  summaries(uploadId: string, afterPartNumber: number, limit: number): PartSummary[] {
    return this.sql
      .exec("SELECT part_number, etag, size, checksum, uploaded FROM parts WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?", uploadId, afterPartNumber, limit)
      .toArray()
      .map((r) => ({ partNumber: Number(r.part_number), etag: String(r.etag), size: Number(r.size), checksum: r.checksum === null ? null : String(r.checksum), uploaded: Number(r.uploaded) }));
  }

  /** The parts with these numbers (those that exist), with their chunk lists. */
  parts(uploadId: string, numbers: readonly number[]): Map<number, PartRow> {
    const out = new Map<number, PartRow>();
    for (const n of numbers) {
      const r = this.sql.exec("SELECT etag, size, chunks, checksum, uploaded FROM parts WHERE upload_id = ? AND part_number = ?", uploadId, n).toArray()[0];
      if (!r) continue;
      const chunks = this.chunksOf(r.chunks, () => this.chunkLists.get(`${uploadId}/${n}`));
      out.set(n, { partNumber: n, etag: String(r.etag), size: Number(r.size), chunks, checksum: r.checksum === null ? null : String(r.checksum), uploaded: Number(r.uploaded) });
    }
    return out;
  }

  /** The chunk ids of every part uploaded so far (what the upload's back-references cover): two range reads. */
  partChunks(uploadId: string): Map<number, Chid[]> {
    const paged = this.chunkLists.under(`${uploadId}/`);
    const out = new Map<number, Chid[]>();
    for (const r of this.sql.exec("SELECT part_number, chunks FROM parts WHERE upload_id = ?", uploadId).toArray()) {
      const n = Number(r.part_number);
      out.set(n, this.chunksOf(r.chunks, () => paged.get(`${uploadId}/${n}`) ?? null).map((c) => c.chid));
    }
    return out;
  }

  /** Uploads begun before `before` (to be aborted: S3's AbortIncompleteMultipartUpload, always on). */
  begunBefore(before: number, limit: number): { nhid: Nhid; info: UploadInfo }[] {
    return this.sql
      .exec(
        "SELECT nhid, info FROM uploads WHERE json_extract(info, '$.initiated') < ? ORDER BY json_extract(info, '$.initiated') LIMIT ?",
        before,
        limit,
      )
      .toArray()
      .map((r) => ({ nhid: asNhid(r.nhid), info: JSON.parse(String(r.info)) as UploadInfo }));
  }

  /** When the oldest upload began, or null if there is none. */
  oldest(): number | null {
    const r = this.sql.exec("SELECT min(json_extract(info, '$.initiated')) AS t FROM uploads").toArray()[0];
    return r && r.t !== null ? Number(r.t) : null;
  }

  drop(uploadId: string): void {
    this.chunkLists.deleteUnder(`${uploadId}/`);
    this.sql.exec("DELETE FROM parts WHERE upload_id = ?", uploadId);
    this.sql.exec("DELETE FROM uploads WHERE upload_id = ?", uploadId);
  }
}
