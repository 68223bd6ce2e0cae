// ACLs: buckets and objects belong to their tenant alone, as in an S3 bucket with Object
// Ownership "bucket owner enforced" (AWS's default since 2023). GET ?acl answers the one policy
// there is (the owner, FULL_CONTROL), well-formed, because clients such as s3cmd ask for it. A
// write may restate that policy (canned "private" or "bucket-owner-full-control", or a body
// granting FULL_CONTROL to the owner alone); any other grant is refused as AWS refuses it in
// such a bucket, never silently dropped.

import { requireBucket, type RequestContext } from "./context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { subresourceVersion } from "./object-get.ts";
import type { VersionId } from "../params.ts";
import { esc } from "../../../common/s3/xml.ts";
import { readXmlBody } from "./xml-read.ts";

function ownerPolicy(ctx: RequestContext): Response {
  const owner = { ID: esc(ctx.tenant), DisplayName: esc(ctx.tenant) };
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>${owner.ID}</ID><DisplayName>${owner.DisplayName}</DisplayName></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>${owner.ID}</ID><DisplayName>${owner.DisplayName}</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>`;
  return new Response(body, { headers: { "content-type": "application/xml" } });
}

const OWNER_ONLY_CANNED = new Set(["private", "bucket-owner-full-control"]);
const GRANT_HEADERS = ["x-amz-grant-read", "x-amz-grant-write", "x-amz-grant-read-acp", "x-amz-grant-write-acp", "x-amz-grant-full-control"];

function aclRefused(onBucketCreation: boolean): S3Error {
  return onBucketCreation
    ? new S3Error("InvalidBucketAclWithObjectOwnership", "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")
    : new S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs");
}

/** The ACL headers of a write (PutObject, CopyObject, CreateMultipartUpload, CreateBucket, PUT ?acl): owner-only or refused. */
export function refuseAclGrants(headers: Headers, onBucketCreation = false): void {
  const canned = headers.get("x-amz-acl");
  if (canned !== null && !OWNER_ONLY_CANNED.has(canned)) throw aclRefused(onBucketCreation);
  if (GRANT_HEADERS.some((h) => headers.has(h))) throw aclRefused(onBucketCreation);
}

/** PUT ?acl: the headers as for any write, and a body that grants nothing beyond the owner. */
async function checkOwnerOnly(ctx: RequestContext): Promise<void> {
  refuseAclGrants(ctx.req.headers);
  const xml = await readXmlBody(ctx.req, 64 * 1024, () => new S3Error("MalformedACLError", "The XML you provided was not well-formed or did not validate against our published schema"));
  const grants = xml.match(/<Permission>/g)?.length ?? 0;
  if (grants > 1 || (grants === 1 && !xml.includes("<Permission>FULL_CONTROL</Permission>"))) throw aclRefused(false);
}

export async function getBucketAcl(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  return ownerPolicy(ctx);
}

export async function putBucketAcl(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  await checkOwnerOnly(ctx);
  return new Response(null, { status: 200 });
}

export async function getObjectAcl(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId }): Promise<Response> {
  const res = ownerPolicy(ctx);
  for (const [k, v] of Object.entries(await subresourceVersion(ctx, at))) res.headers.set(k, v);
  return res;
}

export async function putObjectAcl(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId }): Promise<Response> {
  const headers = await subresourceVersion(ctx, at);
  await checkOwnerOnly(ctx);
  return new Response(null, { status: 200, headers });
}

