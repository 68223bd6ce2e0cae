// Object and bucket tags. Tags are not stored yet, so every object's tag set is empty and GET
// ?tagging says so (the aws CLI reads an object's tags before a multipart copy, to carry them
// over). Setting tags, by PUT ?tagging or by x-amz-tagging on a write, is NotImplemented and
// never silently dropped; clearing them (DELETE ?tagging, an empty TagSet) already holds.

import { subresourceVersion } from "./object-get.ts";
import type { VersionId } from "../params.ts";
import { requireBucket, type RequestContext } from "./context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { childrenNamed, parseXml, readXmlBody } from "./xml-read.ts";
import { xmlResponse } from "./xml.ts";

const notStored = () => new S3Error("NotImplemented", "Tags are not stored by this gateway yet: only an empty tag set can be set");

/** x-amz-tagging on PutObject, CopyObject or CreateMultipartUpload: empty, or refused. */
export function refuseTags(headers: Headers): void {
  const tags = headers.get("x-amz-tagging");
  if (tags !== null && tags.trim() !== "") throw notStored();
}

async function emptyTagSet(ctx: RequestContext): Promise<void> {
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  const root = parseXml(await readXmlBody(ctx.req, 64 * 1024, malformed), malformed);
  if (root.name !== "Tagging") throw malformed();
  const tagSets = childrenNamed(root, "TagSet");
  if (tagSets.length !== 1) throw malformed();
  if (childrenNamed(tagSets[0]!, "Tag").length > 0) throw notStored();
}

export async function getObjectTagging(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId }): Promise<Response> {
  return xmlResponse("Tagging", { TagSet: {} }, 200, await subresourceVersion(ctx, at));
}

export async function putObjectTagging(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId }): Promise<Response> {
  const headers = await subresourceVersion(ctx, at);
  await emptyTagSet(ctx);
  return new Response(null, { status: 200, headers });
}

export async function deleteObjectTagging(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId }): Promise<Response> {
  return new Response(null, { status: 204, headers: await subresourceVersion(ctx, at) });
}

export async function getBucketTagging(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  throw new S3Error("NoSuchTagSet", "The TagSet does not exist", { BucketName: bucket });
}

export async function putBucketTagging(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  await emptyTagSet(ctx);
  return new Response(null, { status: 204 });
}

export async function deleteBucketTagging(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  return new Response(null, { status: 204 });
}
