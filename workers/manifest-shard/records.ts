// A version record: what a manifest shard learns about one version from the group that
// stamped it. Records are immutable and uniquely named by (tenant, bucket, key, uvid), so
// applying one twice changes nothing.

import type { Chid, Uvid } from "../../common/ids.ts";
import type { VersionManifest } from "../../common/manifest.ts";

export interface VersionRecord {
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
}

export function recordOf(vm: VersionManifest, vmChid: Chid): VersionRecord {
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
  };
}

/** The initiator's promise that travels with a batch: no version earlier than `cutoff` will come from `group`. */
export interface SourceCutoff {
  group: number;
  cutoff: Uvid;
}
