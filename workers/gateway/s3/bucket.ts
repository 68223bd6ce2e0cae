// Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
// GetBucketVersioning and PutBucketVersioning.

import { scopeTouches } from "../../shared/key-scope.ts";
import { registryStub, shardStub, tenantStub } from "../../shared/env.ts";
import { forgetBucket } from "./bucket-cache.ts";
import { requireBucket, type RequestContext } from "./context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { refuseUnkeptBucketOptions } from "./write-options.ts";
import { childText, parseXml, readXmlBody } from "./xml-read.ts";
import { isoTime, xmlResponse } from "./xml.ts";

/** S3's rules for bucket names (DNS-compatible, the only ones new buckets may use). */
export function validateBucketName(name: string): void {
  const ok =
    name.length >= 3 &&
    name.length <= 63 &&
    /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name) &&
    !name.includes("..") &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(name) &&
    !["xn--", "sthree-", "amzn-s3-demo-"].some((p) => name.startsWith(p)) &&
    !["-s3alias", "--ol-s3", "--x-s3", ".mrap"].some((s) => name.endsWith(s));
  if (!ok) throw new S3Error("InvalidBucketName", "The specified bucket is not valid", { BucketName: name });
}

export async function listBuckets(ctx: RequestContext): Promise<Response> {
  // A scoped key is shown the buckets its scope names, no others.
  const buckets = (await tenantStub(ctx.env, ctx.tenant).listBuckets()).filter((b) => scopeTouches(ctx.scope, b.name));
  return xmlResponse("ListAllMyBucketsResult", {
    Owner: { ID: ctx.tenant, DisplayName: ctx.tenant },
    Buckets: { Bucket: buckets.map((b) => ({ Name: b.name, CreationDate: isoTime(b.created) })) },
  });
}

const CREATE_BUCKET_BODY_MAX = 64 * 1024;

export async function createBucket(ctx: RequestContext, bucket: string): Promise<Response> {
  validateBucketName(bucket);
  refuseUnkeptBucketOptions(ctx.req.headers);
  // The body may name a LocationConstraint; there is one region, so it is only checked to be the
  // small, well-formed document S3 takes, read within S3's own cap.
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  const text = await readXmlBody(ctx.req, CREATE_BUCKET_BODY_MAX, () => new S3Error("MaxMessageLengthExceeded", "Your request was too big."));
  if (text.trim() !== "" && parseXml(text, malformed).name !== "CreateBucketConfiguration") throw malformed();
  const created = await tenantStub(ctx.env, ctx.tenant).createBucket(bucket);
  forgetBucket(ctx.tenant, bucket);
  // Creating a bucket the caller already owns: us-east-1 answers 200 (S3's legacy behaviour,
  // which clients that create-then-use rely on there), every other region 409.
  if (!created && ctx.env.S3_REGION !== "us-east-1") {
    throw new S3Error("BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.", { BucketName: bucket });
  }
  return new Response(null, { status: 200, headers: { location: `/${bucket}` } });
}

export async function headBucket(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  return new Response(null, { status: 200, headers: { "x-amz-bucket-region": ctx.env.S3_REGION } });
}

export async function getBucketLocation(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  // us-east-1 is reported as an empty constraint, as S3 does.
  const region = ctx.env.S3_REGION === "us-east-1" ? "" : ctx.env.S3_REGION;
  return new Response(`<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${region}</LocationConstraint>`, {
    headers: { "content-type": "application/xml" },
  });
}

/**
 * Refused while any shard lists a current object in the bucket. A PUT racing this check can
 * land in a bucket that is being deleted; the object then stays listed by name and the bucket
 * can be recreated to reach it (documented in docs/architecture.md).
 */
export async function deleteBucket(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const nonEmpty = await Promise.all(
    Array.from({ length: ctx.cfg.shardCount }, (_, s) => shardStub(ctx.env, s).hasObjects(ctx.tenant, bucket)),
  );
  if (nonEmpty.some(Boolean)) throw new S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty", { BucketName: bucket });
  await tenantStub(ctx.env, ctx.tenant).deleteBucket(bucket);
  // A public bucket's name goes back to the shared pool with it.
  await registryStub(ctx.env).releasePublicBucket(bucket, ctx.tenant);
  forgetBucket(ctx.tenant, bucket);
  return new Response(null, { status: 204 });
}

export async function getBucketVersioning(ctx: RequestContext, bucket: string): Promise<Response> {
  const info = await requireBucket(ctx, bucket);
  // A bucket that never versioned answers an empty configuration, as S3 does.
  return xmlResponse("VersioningConfiguration", { Status: info.versioning === "Unversioned" ? null : info.versioning });
}

export async function putBucketVersioning(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  const root = parseXml(await readXmlBody(ctx.req, 64 * 1024, malformed), malformed);
  if (root.name !== "VersioningConfiguration") throw malformed();
  const status = childText(root, "Status")?.trim();
  if (childText(root, "MfaDelete")?.trim() === "Enabled") throw new S3Error("NotImplemented", "MFA Delete is not supported");
  if (status !== "Enabled" && status !== "Suspended") throw malformed();
  await tenantStub(ctx.env, ctx.tenant).setVersioning(bucket, status);
  forgetBucket(ctx.tenant, bucket);
  return new Response(null, { status: 200 });
}
