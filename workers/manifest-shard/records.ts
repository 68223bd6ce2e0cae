// What a manifest shard learns from the group that owns a name, in one outbox: version records
// (one per version, immutable, uniquely named by (tenant, bucket, key, uvid)) and upload records
// (a multipart upload opened or closed, for ListMultipartUploads). Applying either twice
// changes nothing.

import type { Chid, Uvid } from "../../common/ids.ts";
import type { VersionManifest } from "../../common/manifest.ts";

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

export type ShardRecord = VersionRecord | UploadRecord | RemovalRecord;

export function isUploadRecord(r: ShardRecord): r is UploadRecord {
  return r.kind === "upload";
}

export function isRemovalRecord(r: ShardRecord): r is RemovalRecord {
  return r.kind === "removal";
}

export function recordOf(vm: VersionManifest, vmChid: Chid, isNull: boolean): VersionRecord {
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
  };
}

/** The initiator's promise that travels with a batch: no version earlier than `cutoff` will come from `group`. */
export interface SourceCutoff {
  group: number;
  cutoff: Uvid;
}
