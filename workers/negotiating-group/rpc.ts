// What a negotiating group answers over RPC, and the data its calls carry. Stubs are typed by
// this interface rather than by the NegotiatingGroup class (group.ts `implements` it), so
// shared/env.ts can name the binding without importing the object and everything it is built
// from: that import would tie every part that reaches env.ts into one cycle.

import type { Chid, Nhid, TargetId, Uvid } from "../../common/ids.ts";
import type { HandOverAnswer, IdKind } from "./handover.ts";
import type { ObjectChecksum, VersionBody, VersionManifest } from "../../common/manifest.ts";
import type { StoredRef } from "../../common/protocol.ts";
import type { Refusal } from "../shared/refusal.ts";
import type { Versioning } from "../shared/versioning.ts";
import type { RefChange } from "./backrefs.ts";
import type { ListedPart, WriteCondition } from "./complete.ts";
import type { RemovedVersion } from "./expunge.ts";
import type { GroupHealth } from "./health.ts";
import type { MergedVersion, MergeItem } from "./merges.ts";
import type { PartRow, PartSummary, UploadAt, UploadInfo } from "./uploads.ts";
import type { Tag } from "../shared/tags.ts";

/** Which version's tags to set: the name, where its records go, and the version (null: the current one). */
export interface TagsAt {
  nhid: Nhid;
  shard: number;
  name: { tenant: string; bucket: string; key: string };
  versionId: Uvid | "null" | null;
}

export interface PutVersionResult {
  uvid: Uvid;
  /** The version manifest's CHID (internal: tokens are made from it, clients never see it). */
  vmChid: Chid;
  created: number;
  /** S3's version id: the UVID, or "null" for a null version. */
  versionId: string;
}

/** A version as a GET sees it: its manifest, and whether it is the name's null version. */
export interface StoredVersion {
  vm: VersionManifest;
  /** The manifest's CHID (internal: tokens and validation are made from it, clients never see it). */
  vmChid: Chid;
  isNull: boolean;
  /** The version's replication count (kept outside its manifest); absent where the version was found by record (as of a time, through a snapshot). */
  replicas?: number;
  /** Its tags (kept outside its manifest); absent where the version was found by record. */
  tags?: Tag[];
}

/** How a version is written, beyond its name and body. */
export interface WriteOptions {
  /**
   * The caller's own promise that the object's chunks are saved (a function stub: calling it
   * reaches back into the gateway's request). The manifest is put while the caller waits for
   * its last chunks, and nothing is committed unless that resolves, so a version never names a
   * chunk that is not stored.
   */
  chunksStored?: (() => Promise<void>) | null;
  /**
   * A conditional write (If-None-Match: * or If-Match: etag): checked when the call arrives and
   * again, synchronously, just before the commit, so of two racing writers at most one whose
   * condition held can commit.
   */
  condition?: WriteCondition | null;
  /** The version's own replication count (null: the cluster's R). */
  replicas?: number | null;
  /** The version's tags (x-amz-tagging), kept beside it. */
  tags?: Tag[];
}

/** What validating one item found: good and bad copies on live targets, and copies made to restore R. */
export interface ItemVerdict {
  good: number;
  bad: number;
  repaired: number;
  /** Still fewer copies on members than wanted (none good, or the repair could not place them all). */
  short: boolean;
}

/** Sections follow group.ts, which says what each call does. */
export interface GroupRpc extends Rpc.DurableObjectBranded {
  // chunks
  putChunks(items: { chid: Chid; bytes: Uint8Array }[], replicas?: number | null): Promise<void>;
  getChunk(chid: Chid, near?: string | null): Promise<Uint8Array>;
  getChunks(chids: Chid[], near?: string | null): Promise<Uint8Array[]>;
  putNode(bytes: Uint8Array, replicas?: number | null): Promise<void>;

  // names and versions
  putVersion(nhid: Nhid, body: VersionBody, versioning: Versioning, o?: WriteOptions): Promise<PutVersionResult | Refusal>;
  getVersion(nhid: Nhid, versionId?: Uvid | "null" | null): Promise<StoredVersion | null>;
  readVersion(nhid: Nhid, uvid: Uvid, vmChid: Chid): Promise<VersionManifest>;
  deleteName(nhid: Nhid, marker: VersionBody, versioning: Versioning): Promise<{ versionId: string | null; deleteMarker: boolean } | Refusal>;
  deleteVersion(nhid: Nhid, name: { tenant: string; bucket: string; key: string }, versionId: Uvid | "null"): Promise<{ versionId: string; deleteMarker: boolean } | Refusal | null>;
  setVersionReplicas(nhid: Nhid, versionId: Uvid | "null" | null, replicas: number | null): Promise<{ uvid: Uvid } | null>;
  setVersionTags(at: TagsAt, tags: Tag[]): Promise<{ uvid: Uvid; isNull: boolean } | null>;
  advanceCutoff(shard: number): Promise<void>;

  // editing sessions
  leaseName(nhid: Nhid, holder: string, ttlMs: number): Promise<boolean>;
  releaseName(nhid: Nhid, holder: string): Promise<void>;
  commitEdit(nhid: Nhid, body: VersionBody, versioning: Versioning, o: { condition: WriteCondition | null; holder: string; replicas?: number | null }): Promise<PutVersionResult | Refusal>;

  // a fork's merge
  prepareMerge(merge: string, items: MergeItem[]): Promise<{ hold: Uvid } | Refusal>;
  mergeStamp(atLeast: number): Promise<Uvid>;
  commitMerge(merge: string, stamp: Uvid, nhids: Nhid[]): Promise<MergedVersion[]>;
  abortMerge(merge: string): Promise<void>;

  // multipart uploads
  createUpload(nhid: Nhid, info: Omit<UploadInfo, "uploadId" | "initiated">): Promise<{ uploadId: string; initiated: number }>;
  uploadReplicas(nhid: Nhid, uploadId: string): Promise<{ replicas: number | null } | Refusal>;
  putPart(nhid: Nhid, uploadId: string, part: Omit<PartRow, "uploaded">): Promise<{ uploaded: number } | Refusal>;
  listParts(nhid: Nhid, uploadId: string, after: number, limit: number): Promise<{ upload: UploadInfo; parts: PartSummary[]; truncated: boolean } | Refusal>;
  completeUpload(at: UploadAt, o: { listed: ListedPart[]; condition: WriteCondition | null; versioning: Versioning }): Promise<(PutVersionResult & { etag: string; checksum: ObjectChecksum | null }) | Refusal>;
  abortUpload(at: UploadAt): Promise<Refusal | null>;

  // lifecycle rules
  expireByLifecycle(batch: LifecycleBatch): Promise<number>;

  // validation and health
  verifyItems(refs: StoredRef[], replicas?: number | null): Promise<ItemVerdict[]>;
  health(): Promise<GroupHealth>;
  membershipChanged(): Promise<void>;
  liveMembers(): Promise<{ id: TargetId; location: string }[]>;

  // space reclamation
  applyRefs(changes: RefChange[]): Promise<void>;

  // a split's hand-over between groups (split.ts)
  handOver(to: number, kind: IdKind, ids: string[]): Promise<HandOverAnswer>;
  handOverNext(to: number, step: number, after: string): Promise<HandOverAnswer & { next: string | null }>;
  handedOver(to: number, ids: { kind: IdKind; id: string }[]): Promise<void>;
  closeHandover(to: number): Promise<void>;
  holdChunks(chids: Chid[]): Promise<Chid[]>;
  holdVersions(holder: string, versions: RemovedVersion[]): Promise<RemovedVersion[]>;
  releaseVersions(holder: string, versions: { nhid: Nhid; uvid: Uvid }[]): Promise<void>;
  reclaimStatus(): Promise<{ backrefs: number; holds: number; reclaims: number; outbox: number; expunging: number }>;
}

/**
 * What a manifest shard's lifecycle pass asks of the group that owns the names: each action is
 * checked again here, where the names are written, since a client may have changed the name
 * after the shard looked (a newer version, new tags), and is then left undone.
 */
export type LifecycleAction =
  /** The current version expired: a delete marker (versioned buckets) or its removal (unversioned). Only while it is still current and has every tag the rule filters by. */
  | { kind: "expire-current"; nhid: Nhid; key: string; uvid: Uvid; tags: Tag[] }
  /** A noncurrent version expired under a rule of these days, newer versions kept and tags: removed for good if that still holds. */
  | { kind: "remove-noncurrent"; nhid: Nhid; key: string; uvid: Uvid; tags: Tag[]; days: number; newer: number }
  /** A delete marker with no version behind it: removed, if it still has none. */
  | { kind: "remove-marker"; nhid: Nhid; key: string; uvid: Uvid }
  /** An upload left open too long: aborted. */
  | { kind: "abort-upload"; nhid: Nhid; key: string; uploadId: string };

export interface LifecycleBatch {
  tenant: string;
  bucket: string;
  versioning: Versioning;
  actions: LifecycleAction[];
}
