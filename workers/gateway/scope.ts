// Every operation checked against the scope of the key that signed it (shared/key-scope.ts),
// once, after routing and before anything runs. The switch names every endpoint, so a new
// operation does not compile until it says what it needs (the `never` in the default). Where the names an operation touches
// are not in its endpoint, its handler checks each as it learns it: DeleteObjects' keys, a copy's
// source, a form upload's key, query results (filtered), ListBuckets (filtered).

import { S3Error } from "../../common/s3/errors.ts";
import { scopeAllows, scopeTouches, type KeyScope } from "../shared/key-scope.ts";
import type { Endpoint } from "./router.ts";

const denied = (why: string) => new S3Error("AccessDenied", `Access Denied: ${why}`);

export function checkScope(scope: KeyScope | null, ep: Endpoint): void {
  if (scope === null) return;
  const need = (want: "read" | "write", bucket: string, key: string) => {
    if (!scopeAllows(scope, want, bucket, key)) throw denied(`the key's scope does not allow it to ${want} ${key === "" ? `in bucket ${bucket}` : `${bucket}/${key}`}`);
  };
  const touch = (bucket: string) => {
    if (!scopeTouches(scope, bucket)) throw denied(`the key's scope does not include bucket ${bucket}`);
  };
  switch (ep.op) {
    // Filtered to the buckets the scope names.
    case "ListBuckets":
      return;
    case "HeadBucket":
    case "GetBucketLocation":
    case "GetBucketVersioning":
      return touch(ep.bucket);
    // A bucket's settings name its other prefixes and tags: read on the whole bucket.
    case "GetBucketAcl":
    case "GetBucketTagging":
    case "GetBucketPolicy":
    case "GetPublicAccessBlock":
    case "GetBucketCors":
    case "GetBucketLifecycle":
      return need("read", ep.bucket, "");
    case "ListObjects":
    case "ListObjectsV2":
    case "ListObjectVersions":
      return need("read", ep.bucket, ep.list.prefix);
    case "ListMultipartUploads":
      return need("write", ep.bucket, ep.list.prefix);
    case "GetObject":
    case "HeadObject":
    case "GetObjectTagging":
    case "GetObjectAcl":
    case "GetObjectAttributes":
    case "GetChunkLayout":
    case "GetStoredChunk":
      return need("read", ep.bucket, ep.key);
    // A copy's source is checked for reading where copy.ts parses it.
    case "CopyObject":
    case "UploadPartCopy":
    case "PutObject":
    case "DeleteObject":
    case "CreateMultipartUpload":
    case "UploadPart":
    case "CompleteMultipartUpload":
    case "AbortMultipartUpload":
    case "ListParts":
    case "PutObjectTagging":
    case "DeleteObjectTagging":
    case "PutObjectAcl":
      return need("write", ep.bucket, ep.key);
    // Each key is checked as the request document names it; the form's key once the form is read.
    case "DeleteObjects":
    case "PostObject":
      return touch(ep.bucket);
    // Results are filtered to what the scope may read.
    case "QueryVersions":
      if (scope.access === "write-only") throw denied("a write-only key cannot query names");
      return;
    case "CreateBucket":
    case "DeleteBucket":
    case "PutBucketVersioning":
    case "PutBucketAcl":
    case "PutBucketTagging":
    case "DeleteBucketTagging":
    case "PutBucketPolicy":
    case "DeleteBucketPolicy":
    case "PutPublicAccessBlock":
    case "DeletePublicAccessBlock":
    case "PutBucketCors":
    case "DeleteBucketCors":
    case "PutBucketLifecycle":
    case "DeleteBucketLifecycle":
      throw denied("a bucket's settings are changed with a key that has no scope");
    case "CreateSnapshot":
    case "ListSnapshots":
    case "GetSnapshot":
    case "EditSnapshot":
    case "DeleteSnapshot":
    case "CommitSnapshot":
    case "AbortSnapshot":
    case "RestoreSnapshot":
    case "OpenSession":
    case "CreateHttpSession":
    case "SessionCommand":
    case "EndHttpSession":
    case "Validate":
    case "SetReplicas":
      throw denied("snapshots, editing sessions, validation and replica settings span a tenant's buckets: they need a key without a scope");
    default: {
      // Every endpoint is named above: one added without a case fails to compile here, and is denied if it ever runs.
      const unclassified: never = ep;
      throw denied(`an operation the scope check does not know: ${(unclassified as Endpoint).op}`);
    }
  }
}
