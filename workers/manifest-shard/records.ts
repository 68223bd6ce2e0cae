// What a manifest shard learns from the group that owns a name, in one outbox: version records
// (one per version, immutable, uniquely named by (tenant, bucket, key, uvid)) and upload records
// (a multipart upload opened or closed, for ListMultipartUploads). Applying either twice
// changes nothing.

import type { Chid, Uvid } from "../../common/ids.ts";
import type { VersionManifest } from "../../common/manifest.ts";
import type { Tag } from "../shared/tags.ts";

export interface VersionRecord {
  /** Absent in records written before upload records existed. */
  kind?: "version";
  tenant: string;
  bucket: string;
  key: string;
  uvid: Uvid;
  deleteMarker: boolean;
  size: number;
  etag: string;
  lastModified: number;
  contentType: string;
  vmChid: Chid;
  creator: string;
  /** S3's null version (written while the bucket was not versioning). Absent means false. */
  isNull?: boolean;
  /** x-amz-meta-* pairs (names without the prefix), for metadata qualifiers. Absent: none, or a record from before they were kept. */
  meta?: Record<string, string>;
  /** The version's tags when it was written (tags records change them later). Absent: none. */
  tags?: Tag[];
}

/**
 * A version is gone for good (deleted by id, or an unversioned overwrite or delete): it leaves
 * listings of versions, and if it was current the name's newest remaining version becomes
 * current. `uvid` stamps the removal itself; `target` is the version removed.
 */
export interface RemovalRecord {
  kind: "removal";
  tenant: string;
  bucket: string;
  key: string;
  uvid: Uvid;
  target: Uvid;
}

/**
 * A multipart upload opened (open) or finished, completed or aborted (closed). `uvid` is a stamp
 * of the group that owns the name: it orders the two and names the record in the outbox.
 */
export interface UploadRecord {
  kind: "upload";
  tenant: string;
  bucket: string;
  key: string;
  uploadId: string;
  uvid: Uvid;
  /** When the upload was created, ms since the epoch. */
  initiated: number;
  open: boolean;
  creator: string;
}

/**
 * A version's tags were replaced (S3 lets them change after the write): `uvid` stamps the change,
 * so of two changes to one version the later-stamped one wins whatever order they arrive in;
 * `target` is the version.
 */
export interface TagsRecord {
  kind: "tags";
  tenant: string;
  bucket: string;
  key: string;
  uvid: Uvid;
  target: Uvid;
  tags: Tag[];
}

export type ShardRecord = VersionRecord | UploadRecord | RemovalRecord | TagsRecord;

export function isUploadRecord(r: ShardRecord): r is UploadRecord {
  return r.kind === "upload";
}

export function isRemovalRecord(r: ShardRecord): r is RemovalRecord {
  return r.kind === "removal";
}

export function isTagsRecord(r: ShardRecord): r is TagsRecord {
  return r.kind === "tags";
}

export function recordOf(vm: VersionManifest, vmChid: Chid, o: { isNull: boolean; tags?: readonly Tag[] }): VersionRecord {
  const { isNull, tags = [] } = o;
  return {
    tenant: vm.tenant,
    bucket: vm.bucket,
    key: vm.key,
    uvid: vm.uvid,
    deleteMarker: vm.deleteMarker,
    size: vm.size,
    etag: vm.etag,
    lastModified: vm.created,
    contentType: vm.contentType,
    vmChid,
    creator: vm.creator,
    ...(isNull ? { isNull: true } : {}),
    ...(Object.keys(vm.userMeta).length > 0 ? { meta: vm.userMeta } : {}),
    ...(tags.length > 0 ? { tags: [...tags] } : {}),
  };
}

/** The initiator's promise that travels with a batch: no version earlier than `cutoff` will come from `group`. */
export interface SourceCutoff {
  group: number;
  cutoff: Uvid;
}
