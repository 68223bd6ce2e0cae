// Multipart uploads of the names this group writes: an upload is a row (uploads.ts) and a record
// in the name's shard (so ListMultipartUploads sees it); each part's chunks are referenced by
// the upload until it completes or is aborted. Completion commits one version whose chunk list
// is the parts' lists end to end: no byte is read or written. Uploads left open past
// UPLOAD_EXPIRE_SECONDS are aborted by the alarm.

import { parseUvid, shardOf, type Nhid } from "../../common/ids.ts";
import type { ObjectChecksum } from "../../common/manifest.ts";
import type { UploadRecord } from "../manifest-shard/records.ts";
import { configOf, type Env } from "../shared/env.ts";
import type { Refusal } from "../shared/refusal.ts";
import type { Versioning } from "../shared/versioning.ts";
import type { AlarmClock } from "./alarm-clock.ts";
import { partRef } from "./backrefs.ts";
import { assemble, newUploadId, noSuchUpload, type ListedPart, type WriteCondition } from "./complete.ts";
import { OUTBOX_RETRY_MS, type Names } from "./names.ts";
import type { RefOutbox } from "./ref-outbox.ts";
import type { PutVersionResult } from "./rpc.ts";
import type { PartRow, PartSummary, UploadAt, UploadBook, UploadInfo } from "./uploads.ts";
import type { VersionBook } from "./versions.ts";
import type { CompletedUploads } from "./completed-uploads.ts";
import type { StorageBudget } from "../shared/storage-budget.ts";

export interface MultipartContext {
  readonly group: number;
  readonly env: Env;
  readonly uploads: UploadBook;
  readonly completed: CompletedUploads;
  readonly book: VersionBook;
  readonly names: Names;
  readonly refOutbox: RefOutbox;
  readonly alarms: AlarmClock;
  readonly budget: StorageBudget;
  refsSoon(): void;
}

export class Multipart {
  private readonly c: MultipartContext;

  constructor(c: MultipartContext) {
    this.c = c;
  }

  async create(nhid: Nhid, shard: number, info: Omit<UploadInfo, "uploadId" | "initiated">): Promise<{ uploadId: string; initiated: number }> {
    const uploadId = newUploadId();
    const uvid = this.c.book.stamp(this.c.group);
    const initiated = parseUvid(uvid).ms;
    const record: UploadRecord = { kind: "upload", tenant: info.tenant, bucket: info.bucket, key: info.key, uploadId, uvid, initiated, open: true, creator: info.creator };
    try {
      this.c.uploads.create(nhid, { ...info, uploadId, initiated });
      this.c.book.queue(shard, record);
    } finally {
      this.c.book.release(uvid);
    }
    await this.c.names.deliver(shard, record);
    await this.c.alarms.by(initiated + configOf(this.c.env).uploadExpireMs);
    return { uploadId, initiated };
  }

  /** The replication count an upload asked for (null: the cluster's R), or a refusal if there is no such upload. */
  /** Asked before a part's body is read: a full group refuses here, before the client sends it. */
  replicas(nhid: Nhid, uploadId: string): { replicas: number | null } | Refusal {
    const upload = this.c.uploads.get(nhid, uploadId);
    if (!upload) return noSuchUpload(uploadId);
    return this.c.budget.full() ?? { replicas: upload.replicas ?? null };
  }

  /** Record a part whose chunks are stored (replacing one of the same number). */
  putPart(nhid: Nhid, uploadId: string, part: Omit<PartRow, "uploaded">): { uploaded: number } | Refusal {
    if (!this.c.uploads.get(nhid, uploadId)) return noSuchUpload(uploadId);
    const full = this.c.budget.full();
    if (full) return full;
    const uploaded = Date.now();
    // The part's chunks are referenced by the upload until it completes or is aborted; a part
    // uploaded again drops the old part's chunks it does not use.
    const ref = partRef(uploadId, part.partNumber);
    const now = new Set(part.chunks.map((c) => c.chid));
    const before = this.c.uploads.parts(uploadId, [part.partNumber]).get(part.partNumber)?.chunks.map((c) => c.chid) ?? [];
    this.c.uploads.putPart(uploadId, { ...part, uploaded });
    this.c.refOutbox.queue("+", ref, now, this.c.uploads.get(nhid, uploadId)?.replicas ?? null);
    this.c.refOutbox.queue("-", ref, before.filter((c) => !now.has(c)));
    this.c.refsSoon();
    return { uploaded };
  }

  listParts(nhid: Nhid, uploadId: string, after: number, limit: number): { upload: UploadInfo; parts: PartSummary[]; truncated: boolean } | Refusal {
    const upload = this.c.uploads.get(nhid, uploadId);
    if (!upload) return noSuchUpload(uploadId);
    const parts = this.c.uploads.summaries(uploadId, after, limit + 1);
    return { upload, parts: parts.slice(0, limit), truncated: parts.length > limit };
  }

  /** Complete: check the listed parts against those uploaded, and commit one version of them end to end. */
  async complete(
    at: UploadAt,
    o: { listed: ListedPart[]; condition: WriteCondition | null; versioning: Versioning },
  ): Promise<(PutVersionResult & { etag: string; checksum: ObjectChecksum | null }) | Refusal> {
    const { nhid, shard, uploadId } = at;
    const upload = this.c.uploads.get(nhid, uploadId);
    // Gone: completed already (a client retrying a Complete whose answer it lost gets that answer again), or never there.
    if (!upload) return this.c.completed.retried(at, o.listed) ?? noSuchUpload(uploadId);
    const assembled = await assemble(upload, o.listed, this.c.uploads.parts(uploadId, o.listed.map((p) => p.partNumber)));
    if ("refused" in assembled) return assembled;
    const closed: UploadRecord = { kind: "upload", tenant: upload.tenant, bucket: upload.bucket, key: upload.key, uploadId, uvid: this.c.book.stamp(this.c.group), initiated: upload.initiated, open: false, creator: upload.creator };
    let result: PutVersionResult | Refusal;
    try {
      result = await this.c.names.write({
        nhid,
        shard,
        // A completion frees more than it adds (its parts' chunk lists go): a full group still takes it.
        freesRoom: true,
        body: assembled.body,
        versioning: o.versioning,
        condition: o.condition,
        replicas: upload.replicas ?? null,
        tags: upload.tags ?? [],
        beforeCommit: (v) => {
          // In the version's own transaction: the upload ends exactly when the object appears.
          this.dropPartRefs(uploadId);
          this.c.uploads.drop(uploadId);
          this.c.completed.record(at, o.listed, { ...v, etag: assembled.body.etag, checksum: assembled.body.checksum ?? null });
          this.c.book.queue(shard, closed);
        },
      });
    } finally {
      this.c.book.release(closed.uvid);
    }
    if ("refused" in result) return result;
    this.c.names.deliverLater(shard, closed);
    return { ...result, etag: assembled.body.etag, checksum: assembled.body.checksum ?? null };
  }

  async abort(at: UploadAt): Promise<Refusal | null> {
    const { nhid, shard, uploadId } = at;
    const upload = this.c.uploads.get(nhid, uploadId);
    if (!upload) return noSuchUpload(uploadId);
    this.dropPartRefs(uploadId);
    this.c.uploads.drop(uploadId);
    this.c.refsSoon();
    const record: UploadRecord = { kind: "upload", tenant: upload.tenant, bucket: upload.bucket, key: upload.key, uploadId, uvid: this.c.book.stamp(this.c.group), initiated: upload.initiated, open: false, creator: upload.creator };
    this.c.book.queue(shard, record);
    await this.c.names.deliver(shard, record);
    return null;
  }

  /** Abort uploads older than UPLOAD_EXPIRE_SECONDS: their parts' chunks are reclaimed like any unreferenced ones. */
  async expireDue(): Promise<void> {
    const cfg = configOf(this.c.env);
    for (const u of this.c.uploads.begunBefore(Date.now() - cfg.uploadExpireMs, 64)) {
      await this.abort({ nhid: u.nhid, shard: shardOf(u.nhid, cfg.shardCount), uploadId: u.info.uploadId });
      console.log(JSON.stringify({ msg: "upload expired", group: this.c.group, uploadId: u.info.uploadId }));
    }
    // A retried Complete comes within moments; one kept as long as an upload may stay open is answered however late.
    this.c.completed.forgetBefore(Date.now() - cfg.uploadExpireMs);
    const oldest = this.c.uploads.oldest();
    if (oldest !== null) await this.c.alarms.by(Math.max(oldest + cfg.uploadExpireMs, Date.now() + OUTBOX_RETRY_MS));
  }

  private dropPartRefs(uploadId: string): void {
    for (const [n, chids] of this.c.uploads.partChunks(uploadId)) this.c.refOutbox.queue("-", partRef(uploadId, n), chids);
  }
}
