// Put/Get/DeleteBucketLifecycleConfiguration. The rules are kept by the tenant's directory with
// the bucket; each manifest shard fetches them when its daily pass starts and applies them to
// the names it holds (manifest-shard/lifecycle.ts), so a change takes effect from the next pass.
// The tenant is noted in the accounts registry, which is how a shard finds whose rules to fetch.

import { S3Error } from "../../../common/s3/errors.ts";
import type { XmlNode } from "../../../common/s3/xml.ts";
import { registryStub, tenantStub } from "../../shared/env.ts";
import { LIFECYCLE_RULES_MAX, NEWER_NONCURRENT_MAX, type LifecycleFilter, type LifecycleRule } from "../../shared/lifecycle-rules.ts";
import { checkedTags, OBJECT_TAGS_MAX, type Tag } from "../../shared/tags.ts";
import { requireBucket, type RequestContext } from "./context.ts";
import { childrenNamed, childText, parseXml, readXmlBody, type XmlElement } from "./xml-read.ts";
import { isoTime, xmlResponse } from "./xml.ts";

/** A thousand rules with long prefixes and ten tags each fit. */
const LIFECYCLE_BODY_MAX = 1024 * 1024;
const ID_MAX = 255;
const DAY_MS = 86_400_000;

const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
const invalid = (message: string) => new S3Error("InvalidArgument", message);

/** An element that may appear once: its element, or null. */
function once(el: XmlElement, name: string): XmlElement | null {
  const found = childrenNamed(el, name);
  if (found.length > 1) throw malformed();
  return found[0] ?? null;
}

function positive(el: XmlElement, name: string, what: string): number | null {
  const text = childText(el, name);
  if (text === null) return null;
  const n = /^\s*\d{1,9}\s*$/.test(text) ? Number(text) : NaN;
  if (!(n > 0)) throw invalid(`'${name}' for ${what} must be a positive integer`);
  return n;
}

function size(el: XmlElement, name: string): number | null {
  const text = childText(el, name);
  if (text === null) return null;
  if (!/^\s*\d{1,16}\s*$/.test(text)) throw invalid(`${name} must be a non-negative integer`);
  return Number(text);
}

function tagOf(el: XmlElement): Tag {
  const key = childText(el, "Key");
  const value = childText(el, "Value");
  if (key === null || value === null) throw malformed();
  return { key, value };
}

/** Filter: one condition, or several under And; the legacy Prefix beside it is the other way to say a prefix. */
function filterOf(rule: XmlElement): LifecycleFilter {
  const filter = once(rule, "Filter");
  const legacy = childText(rule, "Prefix");
  if (filter !== null && legacy !== null) throw malformed();
  if (filter === null) {
    if (legacy === null) throw malformed();
    return { prefix: legacy, tags: [], sizeGreaterThan: null, sizeLessThan: null };
  }
  const and = once(filter, "And");
  const conditions = filter.children.filter((c) => c.name !== "And").length;
  if (and !== null && conditions > 0) throw malformed();
  if (and === null && conditions > 1) throw malformed();
  const from = and ?? filter;
  const f: LifecycleFilter = {
    prefix: childText(from, "Prefix") ?? "",
    tags: checkedTags(childrenNamed(from, "Tag").map(tagOf), OBJECT_TAGS_MAX),
    sizeGreaterThan: size(from, "ObjectSizeGreaterThan"),
    sizeLessThan: size(from, "ObjectSizeLessThan"),
  };
  if (and === null && f.tags.length > 1) throw malformed();
  if (f.sizeGreaterThan !== null && f.sizeLessThan !== null && f.sizeGreaterThan >= f.sizeLessThan) {
    throw invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan");
  }
  return f;
}

function expirationOf(rule: XmlElement): Pick<LifecycleRule, "expiration" | "expiredObjectDeleteMarker"> {
  const e = once(rule, "Expiration");
  if (e === null) return { expiration: null, expiredObjectDeleteMarker: false };
  const days = positive(e, "Days", "Expiration action");
  const dateText = childText(e, "Date");
  const marker = childText(e, "ExpiredObjectDeleteMarker");
  if (marker !== null && !/^\s*(true|false)\s*$/.test(marker)) throw malformed();
  const set = [days !== null, dateText !== null, marker !== null].filter(Boolean).length;
  if (set !== 1) throw malformed();
  if (dateText !== null) {
    const date = Date.parse(dateText.trim());
    if (!Number.isFinite(date) || !/^\d{4}-\d{2}-\d{2}/.test(dateText.trim())) throw invalid("'Date' must be an ISO 8601 date");
    if (date % DAY_MS !== 0) throw invalid("'Date' must be at midnight GMT");
    return { expiration: { date }, expiredObjectDeleteMarker: false };
  }
  if (days !== null) return { expiration: { days }, expiredObjectDeleteMarker: false };
  return { expiration: null, expiredObjectDeleteMarker: marker!.trim() === "true" };
}

function noncurrentOf(rule: XmlElement): LifecycleRule["noncurrentExpiration"] {
  const n = once(rule, "NoncurrentVersionExpiration");
  if (n === null) return null;
  const days = positive(n, "NoncurrentDays", "NoncurrentVersionExpiration action");
  if (days === null) throw malformed();
  const newer = positive(n, "NewerNoncurrentVersions", "NoncurrentVersionExpiration action") ?? 0;
  if (newer > NEWER_NONCURRENT_MAX) throw invalid(`NewerNoncurrentVersions must be at most ${NEWER_NONCURRENT_MAX}`);
  return { days, newer };
}

function ruleOf(rule: XmlElement): LifecycleRule {
  for (const unsupported of ["Transition", "NoncurrentVersionTransition"]) {
    if (once(rule, unsupported) !== null) throw new S3Error("NotImplemented", `${unsupported} is not supported: this store has a single storage class, so there is nothing to move objects to`);
  }
  const status = childText(rule, "Status")?.trim();
  if (status !== "Enabled" && status !== "Disabled") throw malformed();
  const id = childText(rule, "ID") ?? crypto.randomUUID();
  if ([...id].length > ID_MAX) throw invalid(`ID length should not exceed allowed limit of ${ID_MAX}`);
  const filter = filterOf(rule);
  const abort = once(rule, "AbortIncompleteMultipartUpload");
  const abortUploadDays = abort === null ? null : positive(abort, "DaysAfterInitiation", "AbortIncompleteMultipartUpload action");
  if (abort !== null && abortUploadDays === null) throw malformed();
  const r: LifecycleRule = { id, enabled: status === "Enabled", filter, ...expirationOf(rule), noncurrentExpiration: noncurrentOf(rule), abortUploadDays };
  if (r.expiration === null && !r.expiredObjectDeleteMarker && r.noncurrentExpiration === null && r.abortUploadDays === null) {
    throw new S3Error("InvalidRequest", "At least one action needs to be specified in a rule");
  }
  if (filter.tags.length > 0 && r.expiredObjectDeleteMarker) throw new S3Error("InvalidRequest", "ExpiredObjectDeleteMarker cannot be specified with object tags");
  if (filter.tags.length > 0 && r.abortUploadDays !== null) throw new S3Error("InvalidRequest", "AbortIncompleteMultipartUpload cannot be specified with object tags");
  // An upload has no size until it completes: a size filter cannot take or leave it.
  if ((filter.sizeGreaterThan !== null || filter.sizeLessThan !== null) && r.abortUploadDays !== null) {
    throw new S3Error("InvalidRequest", "AbortIncompleteMultipartUpload cannot be specified with an object size filter");
  }
  return r;
}

/** A LifecycleConfiguration document as S3 takes it: the rules, or the S3 error S3 gives. */
export function lifecycleRulesOf(xml: string): LifecycleRule[] {
  const root = parseXml(xml, malformed);
  if (root.name !== "LifecycleConfiguration") throw malformed();
  const rules = childrenNamed(root, "Rule").map(ruleOf);
  if (rules.length === 0) throw malformed();
  if (rules.length > LIFECYCLE_RULES_MAX) throw invalid(`A lifecycle configuration holds at most ${LIFECYCLE_RULES_MAX} rules`);
  const ids = new Set(rules.map((r) => r.id));
  if (ids.size !== rules.length) throw invalid("Rule ID must be unique. Found same ID for more than one rule");
  return rules;
}

function filterXml(f: LifecycleFilter): XmlNode {
  const parts: XmlNode = {};
  let count = 0;
  if (f.prefix !== "") (parts.Prefix = f.prefix), count++;
  if (f.tags.length > 0) (parts.Tag = f.tags.map((t) => ({ Key: t.key, Value: t.value }))), (count += f.tags.length);
  if (f.sizeGreaterThan !== null) (parts.ObjectSizeGreaterThan = f.sizeGreaterThan), count++;
  if (f.sizeLessThan !== null) (parts.ObjectSizeLessThan = f.sizeLessThan), count++;
  if (count === 0) return { Prefix: "" };
  return count === 1 ? parts : { And: parts };
}

function ruleXml(r: LifecycleRule): XmlNode {
  const e = r.expiration;
  return {
    ID: r.id,
    Filter: filterXml(r.filter),
    Status: r.enabled ? "Enabled" : "Disabled",
    Expiration: e !== null ? ("date" in e ? { Date: isoTime(e.date) } : { Days: e.days }) : r.expiredObjectDeleteMarker ? { ExpiredObjectDeleteMarker: true } : undefined,
    NoncurrentVersionExpiration: r.noncurrentExpiration ? { NoncurrentDays: r.noncurrentExpiration.days, NewerNoncurrentVersions: r.noncurrentExpiration.newer || undefined } : undefined,
    AbortIncompleteMultipartUpload: r.abortUploadDays !== null ? { DaysAfterInitiation: r.abortUploadDays } : undefined,
  };
}

export async function putBucketLifecycle(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const tooLarge = () => new S3Error("MaxMessageLengthExceeded", "Your request was too big.");
  const rules = lifecycleRulesOf(await readXmlBody(ctx.req, LIFECYCLE_BODY_MAX, tooLarge));
  // Noted first: rules a shard cannot find would never run, a tenant noted without rules costs a shard one call a day.
  await registryStub(ctx.env).noteLifecycleTenant(ctx.tenant);
  await tenantStub(ctx.env, ctx.tenant).setBucketLifecycle(bucket, rules);
  return new Response(null, { status: 200 });
}

export async function getBucketLifecycle(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const rules = await tenantStub(ctx.env, ctx.tenant).getBucketLifecycle(bucket);
  if (!rules) throw new S3Error("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist", { BucketName: bucket });
  return xmlResponse("LifecycleConfiguration", { Rule: rules.map(ruleXml) });
}

export async function deleteBucketLifecycle(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  await tenantStub(ctx.env, ctx.tenant).setBucketLifecycle(bucket, null);
  return new Response(null, { status: 204 });
}
