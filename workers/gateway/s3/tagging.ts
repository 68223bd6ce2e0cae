// Object and bucket tags. An object's tags belong to one version, kept beside it by the name's
// group (set by x-amz-tagging on PutObject, CopyObject and CreateMultipartUpload, or by PUT
// ?tagging later); a bucket's are kept by the tenant's directory. S3's limits are checked in
// shared/tags.ts.

import { S3Error } from "../../../common/s3/errors.ts";
import { groupStub, tenantStub } from "../../shared/env.ts";
import { BUCKET_TAGS_MAX, checkedTags, OBJECT_TAGS_MAX, type Tag } from "../../shared/tags.ts";
import type { VersionId } from "../params.ts";
import { placeOf, requireBucket, validateKey, type RequestContext } from "./context.ts";
import { existingVersion, versionHeader } from "./object-get.ts";
import { childrenNamed, childText, parseXml, readXmlBody } from "./xml-read.ts";
import { xmlResponse } from "./xml.ts";

/** A Tagging document is small: 50 tags of 128 + 256 characters, with their markup. */
const TAGGING_BODY_MAX = 64 * 1024;

type ObjectAt = { bucket: string; key: string; versionId: VersionId };

/** The tag set of a PUT ?tagging body, checked against `max`. */
async function tagSetOf(ctx: RequestContext, max: number): Promise<Tag[]> {
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  return tagsOfXml(await readXmlBody(ctx.req, TAGGING_BODY_MAX, malformed), max);
}

/** A Tagging document (a PUT ?tagging body, a form upload's tagging field), checked against `max`. */
export function tagsOfXml(xml: string, max: number): Tag[] {
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  const root = parseXml(xml, malformed);
  if (root.name !== "Tagging") throw malformed();
  const sets = childrenNamed(root, "TagSet");
  if (sets.length !== 1) throw malformed();
  const tags = childrenNamed(sets[0]!, "Tag").map((t) => {
    const key = childText(t, "Key");
    const value = childText(t, "Value");
    if (key === null || value === null) throw malformed();
    return { key, value };
  });
  return checkedTags(tags, max);
}

const tagSetXml = (tags: readonly Tag[]) => ({ TagSet: { Tag: tags.map((t) => ({ Key: t.key, Value: t.value })) } });

/** Tags of the version asked for, with its version header as S3 echoes it. */
export async function getObjectTagging(ctx: RequestContext, at: ObjectAt): Promise<Response> {
  const { info, vm, isNull, tags } = await existingVersion(ctx, at.bucket, at.key, at.versionId);
  return xmlResponse("Tagging", tagSetXml(tags), 200, versionHeader(info, vm.uvid, isNull));
}

/** Replace (or, with `tags` empty, remove) the tags of the version asked for. */
async function setObjectTags(ctx: RequestContext, at: ObjectAt, tags: Tag[]): Promise<Record<string, string>> {
  validateKey(at.key);
  const info = await requireBucket(ctx, at.bucket);
  const place = await placeOf(ctx, at.bucket, at.key);
  const r = await groupStub(ctx.env, place.group).setVersionTags({ nhid: place.nhid, shard: place.shard, name: { tenant: ctx.tenant, bucket: at.bucket, key: at.key }, versionId: at.versionId }, tags);
  if (!r) {
    if (at.versionId !== null) throw new S3Error("NoSuchVersion", "The specified version does not exist.", { Key: at.key, VersionId: at.versionId });
    throw new S3Error("NoSuchKey", "The specified key does not exist.", { Key: at.key });
  }
  return versionHeader(info, r.uvid, r.isNull);
}

export async function putObjectTagging(ctx: RequestContext, at: ObjectAt): Promise<Response> {
  const tags = await tagSetOf(ctx, OBJECT_TAGS_MAX);
  return new Response(null, { status: 200, headers: await setObjectTags(ctx, at, tags) });
}

export async function deleteObjectTagging(ctx: RequestContext, at: ObjectAt): Promise<Response> {
  return new Response(null, { status: 204, headers: await setObjectTags(ctx, at, []) });
}

export async function getBucketTagging(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const tags = await tenantStub(ctx.env, ctx.tenant).getBucketTags(bucket);
  if (!tags || tags.length === 0) throw new S3Error("NoSuchTagSet", "The TagSet does not exist", { BucketName: bucket });
  return xmlResponse("Tagging", tagSetXml(tags));
}

export async function putBucketTagging(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const tags = await tagSetOf(ctx, BUCKET_TAGS_MAX);
  if (!(await tenantStub(ctx.env, ctx.tenant).setBucketTags(bucket, tags))) throw new S3Error("NoSuchBucket", "The specified bucket does not exist", { BucketName: bucket });
  return new Response(null, { status: 204 });
}

export async function deleteBucketTagging(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  await tenantStub(ctx.env, ctx.tenant).setBucketTags(bucket, []);
  return new Response(null, { status: 204 });
}
