// CopyObject and UploadPartCopy.
//
// CopyObject writes no chunk data: the copy is a new, independent version manifest of the
// destination name that references the source's chunks (seed 002: no identity is shared
// between the two names, so deleting either never needs to find the other). UploadPartCopy
// reads the source range and puts it as a part through the ordinary chunking path: its MD5 is
// the part's ETag, and content-defined chunking realigns within a chunk or two, so the interior
// chunks deduplicate against the source's and only the edges are stored anew.

import type { VersionBody, VersionManifest } from "../../../common/manifest.ts";
import { groupStub } from "../../shared/env.ts";
import { holdNamedChunks } from "../data/references.ts";
import { isRefusal } from "../../shared/refusal.ts";
import { ingest } from "../data/ingest.ts";
import { objectBody } from "../data/read.ts";
import { placeOf, requireBucket, validateKey, type RequestContext, requireScope } from "./context.ts";
import { refused } from "./refused.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { requireRoom } from "./quota.ts";
import { recordPart, uploadReplicas, type PartAt } from "./multipart.ts";
import { evaluateConditions, existingVersion, versionHeader } from "./object-get.ts";
import { versionIdParam } from "../params.ts";
import { PUT_MAX } from "../../../common/s3/put-object.ts";
import { metadataOf, replicasOf, writeConditionOf } from "./object-put.ts";
import { ensureReplicas } from "../ext/validate.ts";
import { isoTime, xmlResponse } from "./xml.ts";
import type { XmlNode } from "../../../common/s3/xml.ts";
import { refuseUnkeptWriteOptions } from "./write-options.ts";
import { tagsOfHeader, type Tag } from "../../shared/tags.ts";

export interface CopySource {
  bucket: string;
  key: string;
  versionId: string | null;
}

/** x-amz-copy-source: "bucket/key" or "/bucket/key", URL-encoded, optionally "?versionId=…". */
export function parseCopySource(raw: string): CopySource {
  const bad = () => new S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey", { ArgumentName: "x-amz-copy-source", ArgumentValue: raw });
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = q < 0 ? "" : raw.slice(q + 1);
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.replace(/^\//, ""));
  } catch {
    throw bad();
  }
  const slash = decoded.indexOf("/");
  if (slash <= 0 || slash === decoded.length - 1) throw bad();
  const versionId = new URLSearchParams(query).get("versionId");
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1), versionId };
}

interface Source {
  vm: VersionManifest;
  /** Its tags, which a copy takes unless x-amz-tagging-directive says REPLACE. */
  tags: Tag[];
  /** The source's version id as the response names it (none in a bucket that never versioned). */
  versionHeader: Record<string, string>;
}

/** The source version, checked against the x-amz-copy-source-if-* conditions. */
async function sourceVersion(ctx: RequestContext, src: CopySource): Promise<Source> {
  // A delete marker cannot be copied: S3 answers as if the key (or version) were absent.
  const { info, vm, isNull, tags } = await existingVersion(ctx, src.bucket, src.key, versionIdParam(src.versionId));
  const vh = versionHeader(info, vm.uvid, isNull);
  const versionHeaderOut: Record<string, string> = {};
  if (vh["x-amz-version-id"]) versionHeaderOut["x-amz-copy-source-version-id"] = vh["x-amz-version-id"];
  // The copy-source conditions are GET's conditions under other names; S3 answers 412 for all.
  const h = ctx.req.headers;
  const cond = new Headers();
  for (const [from, to] of [
    ["x-amz-copy-source-if-match", "if-match"],
    ["x-amz-copy-source-if-none-match", "if-none-match"],
    ["x-amz-copy-source-if-modified-since", "if-modified-since"],
    ["x-amz-copy-source-if-unmodified-since", "if-unmodified-since"],
  ] as const) {
    const v = h.get(from);
    if (v !== null) cond.set(to, v);
  }
  if (evaluateConditions(cond, `"${vm.etag}"`, vm.created) !== null) {
    throw new S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", { Condition: "x-amz-copy-source-if-*" });
  }
  return { vm, tags, versionHeader: versionHeaderOut };
}

/**
 * A new, independent version body for `name` with the same content as `vm`: the same chunks (or
 * inline body), ETag, parts and checksum; only the name, the metadata and the creator are new.
 * CopyObject and a snapshot restore write these: no data is read or copied.
 */
export function sameContent(
  vm: VersionManifest,
  name: { tenant: string; bucket: string; key: string },
  creator: string,
  meta: { userMeta: Record<string, string>; httpMeta: Record<string, string>; contentType: string } = vm,
): VersionBody {
  return {
    ...name,
    size: vm.size,
    etag: vm.etag,
    contentType: meta.contentType,
    userMeta: meta.userMeta,
    httpMeta: meta.httpMeta,
    chunks: vm.chunks,
    inline: vm.inline,
    deleteMarker: false,
    creator,
    ...(vm.checksum ? { checksum: vm.checksum } : {}),
    ...(vm.parts ? { parts: vm.parts } : {}),
  };
}

export async function copyObject(ctx: RequestContext, bucket: string, key: string): Promise<Response> {
  validateKey(key);
  const h = ctx.req.headers;
  const src = parseCopySource(h.get("x-amz-copy-source")!);
  requireScope(ctx, "read", src.bucket, src.key);
  const directive = (h.get("x-amz-metadata-directive") ?? "COPY").toUpperCase();
  if (directive !== "COPY" && directive !== "REPLACE") throw new S3Error("InvalidArgument", "Unknown metadata directive.", { ArgumentName: "x-amz-metadata-directive", ArgumentValue: directive });
  const tagDirective = (h.get("x-amz-tagging-directive") ?? "COPY").toUpperCase();
  if (tagDirective !== "COPY" && tagDirective !== "REPLACE") throw new S3Error("InvalidArgument", "Unknown tagging directive.", { ArgumentName: "x-amz-tagging-directive", ArgumentValue: tagDirective });
  const newTags = tagsOfHeader(h.get("x-amz-tagging"));
  const condition = writeConditionOf(h);
  refuseUnkeptWriteOptions(h);
  const info = await requireBucket(ctx, bucket);
  const { vm, tags: sourceTags, versionHeader: sourceHeader } = await sourceVersion(ctx, src);
  if (vm.size > PUT_MAX) {
    throw new S3Error("InvalidRequest", `The specified copy source is larger than the maximum allowable size for a copy source: ${PUT_MAX}`);
  }
  await requireRoom(ctx, vm.size);
  if (src.bucket === bucket && src.key === key && directive === "COPY" && src.versionId === null) {
    throw new S3Error(
      "InvalidRequest",
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const meta = directive === "REPLACE" ? { ...metadataOf(h), contentType: h.get("content-type") ?? "binary/octet-stream" } : { userMeta: vm.userMeta, httpMeta: vm.httpMeta, contentType: vm.contentType };
  const body = sameContent(vm, { tenant: ctx.tenant, bucket, key }, ctx.auth.accessKey, meta);
  const place = await placeOf(ctx, bucket, key);
  // A copy shares its source's chunks: a replication count of its own raises their copies to
  // it (never lowers them) before the copy commits, so the copy never has fewer than it asked.
  const replicas = replicasOf(h.get("x-edgestore-replicas"), ctx.cfg);
  if (replicas !== null) await ensureReplicas(ctx, vm.chunks, replicas);
  // The copy is a version of its own with references of its own (seed 002): deleting the source
  // later never touches it. Until its references are in, a hold keeps the shared chunks.
  await holdNamedChunks(ctx.env, ctx.cfg, body.chunks);
  const tags = tagDirective === "REPLACE" ? newTags : sourceTags;
  const put = await groupStub(ctx.env, place.group).putVersion(place.nhid, body, info.versioning, { condition, replicas, tags });
  if (isRefusal(put)) refused(put);
  const result: XmlNode = { ETag: `"${vm.etag}"`, LastModified: isoTime(put.created) };
  if (vm.checksum) {
    result[`Checksum${vm.checksum.algorithm}`] = vm.checksum.value;
    result.ChecksumType = vm.checksum.type;
  }
  return xmlResponse("CopyObjectResult", result, 200, { ...sourceHeader, ...versionHeader(info, put.uvid, put.versionId === "null") });
}

/** x-amz-copy-source-range: "bytes=first-last", inclusive, within the source. */
function copyRange(raw: string | null, size: number): { start: number; end: number } {
  if (raw === null) return { start: 0, end: size };
  const m = /^bytes=(\d+)-(\d+)$/.exec(raw.trim());
  if (!m || Number(m[2]) < Number(m[1])) throw new S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy", { ArgumentName: "x-amz-copy-source-range", ArgumentValue: raw });
  const start = Number(m[1]);
  const end = Number(m[2]) + 1;
  if (end > size) throw new S3Error("InvalidRange", "The requested range is not satisfiable", { RangeRequested: raw, ActualObjectSize: String(size) });
  return { start, end };
}

export async function uploadPartCopy(ctx: RequestContext, at: PartAt): Promise<Response> {
  const { bucket, key, uploadId } = at;
  validateKey(key);
  const h = ctx.req.headers;
  const src = parseCopySource(h.get("x-amz-copy-source")!);
  requireScope(ctx, "read", src.bucket, src.key);
  await requireBucket(ctx, bucket);
  const { vm, versionHeader: sourceHeader } = await sourceVersion(ctx, src);
  const { start, end } = copyRange(h.get("x-amz-copy-source-range"), vm.size);
  if (end - start > PUT_MAX) throw new S3Error("InvalidRequest", `A part copied may be at most ${PUT_MAX} bytes`);
  await requireRoom(ctx, end - start);
  const source = objectBody(ctx, vm, { start, end });
  await source.ready;
  const replicas = await uploadReplicas(ctx, bucket, key, uploadId);
  const result = await ingest(ctx.env, ctx.cfg, source.stream, { sha256: false, sizeHint: end - start, checksum: null, noInline: true, replicas });
  const res = await recordPart(ctx, at, { result, checksum: null, replicas });
  return xmlResponse("CopyPartResult", { ETag: res.headers.get("etag"), LastModified: isoTime(Date.now()) }, 200, sourceHeader);
}
