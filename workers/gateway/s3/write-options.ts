// Options a write may ask for that this gateway does not keep: ACL grants, server-side
// encryption, object lock, storage classes other than STANDARD. Each is refused the way S3
// refuses it where it has an answer (a bucket with ACLs disabled, a bucket without object lock),
// NotImplemented otherwise: a client must never believe an object is encrypted, locked or
// shared when it is not.

import { refuseAclGrants } from "./acl.ts";
import { S3Error } from "../../../common/s3/errors.ts";

const SSE_HEADERS = [
  "x-amz-server-side-encryption",
  "x-amz-server-side-encryption-customer-algorithm",
  "x-amz-server-side-encryption-aws-kms-key-id",
  "x-amz-copy-source-server-side-encryption-customer-algorithm",
];
const LOCK_HEADERS = ["x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold"];
const STORAGE_CLASSES = new Set(["STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE"]);

/** PutObject, CopyObject and CreateMultipartUpload. */
export function refuseUnkeptWriteOptions(h: Headers): void {
  refuseAclGrants(h);
  const sse = SSE_HEADERS.find((name) => h.has(name));
  if (sse) throw new S3Error("NotImplemented", `Server-side encryption (${sse}) is not supported by this gateway`);
  if (LOCK_HEADERS.some((name) => h.has(name))) throw new S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration");
  const cls = h.get("x-amz-storage-class");
  if (cls !== null && cls !== "STANDARD") {
    if (!STORAGE_CLASSES.has(cls)) throw new S3Error("InvalidStorageClass", "The storage class you specified is not valid", { StorageClassRequested: cls });
    throw new S3Error("NotImplemented", `Storage class ${cls} is not offered: every object is STANDARD`);
  }
}

/** CreateBucket. */
export function refuseUnkeptBucketOptions(h: Headers): void {
  refuseAclGrants(h, true);
  if (h.get("x-amz-bucket-object-lock-enabled")?.toLowerCase() === "true") throw new S3Error("NotImplemented", "Object lock is not supported by this gateway");
}
