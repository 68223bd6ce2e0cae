// Multipart upload: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
// AbortMultipartUpload, ListParts and ListMultipartUploads. Parts are chunked and deduplicated
// like any body; the name's group keeps the upload and its parts, and completing it joins the
// parts' chunk lists into one version manifest: no byte is copied.

import { compareKeys } from "../../../common/keys.ts";
import type { UploadEntry, UploadPage } from "../../manifest-shard/uploads.ts";
import type { ListedPart } from "../../negotiating-group/complete.ts";
import { groupStub, shardStub } from "../../shared/env.ts";
import { isRefusal } from "../../shared/refusal.ts";
import type { IngestResult } from "../data/ingest.ts";
import { asTree } from "../data/tree.ts";
import { CHECKSUM_ALGORITHMS, headerOf, parseAlgorithm } from "../../../common/s3/checksums.ts";
import { placeOf, requireBucket, validateKey, type NamePlace, type RequestContext } from "./context.ts";
import { refused } from "./refused.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { versionHeader } from "./object-get.ts";
import { requireRoomFor } from "./quota.ts";
import { metadataOf, receiveBody, replicasOf, writeConditionOf, type ReceivedBody } from "./object-put.ts";
import { childrenNamed, childText, parseXml, readXmlBody } from "./xml-read.ts";
import { isoTime, xmlResponse } from "./xml.ts";
import type { XmlNode } from "../../../common/s3/xml.ts";
import { refuseUnkeptWriteOptions } from "./write-options.ts";
import { MAX_PARTS_LISTED, type ListPartsParams, type ListUploadsParams } from "../params.ts";
import { awaitedLater } from "../../../common/deferred.ts";
import { tagsOfHeader } from "../../shared/tags.ts";

/** A CompleteMultipartUpload body for 10,000 parts with checksums stays well under this. */
const COMPLETE_BODY_MAX = 4 * 1024 * 1024;

function owner(ctx: RequestContext): XmlNode {
  return { ID: ctx.tenant, DisplayName: ctx.tenant };
}

export async function createMultipartUpload(ctx: RequestContext, bucket: string, key: string): Promise<Response> {
  validateKey(key);
  await requireBucket(ctx, bucket);
  const h = ctx.req.headers;
  refuseUnkeptWriteOptions(h);
  const { userMeta, httpMeta } = metadataOf(h);
  const alg = h.get("x-amz-checksum-algorithm");
  const typeRaw = h.get("x-amz-checksum-type");
  let checksum: { algorithm: ReturnType<typeof parseAlgorithm>; type: "FULL_OBJECT" | "COMPOSITE" } | null = null;
  if (alg !== null) {
    const algorithm = parseAlgorithm(alg);
    // S3's defaults: CRC64NVME only combines (full object); the others default to composite.
    const type = (typeRaw?.toUpperCase() ?? (algorithm === "CRC64NVME" ? "FULL_OBJECT" : "COMPOSITE")) as "FULL_OBJECT" | "COMPOSITE";
    if (type !== "FULL_OBJECT" && type !== "COMPOSITE") throw new S3Error("InvalidRequest", `Value for x-amz-checksum-type header is invalid: ${typeRaw}`);
    if (type === "FULL_OBJECT" && (algorithm === "SHA1" || algorithm === "SHA256")) {
      throw new S3Error("InvalidRequest", `The FULL_OBJECT checksum type cannot be used with the ${algorithm} checksum algorithm.`);
    }
    if (type === "COMPOSITE" && algorithm === "CRC64NVME") {
      throw new S3Error("InvalidRequest", "The COMPOSITE checksum type cannot be used with the CRC64NVME checksum algorithm.");
    }
    checksum = { algorithm, type };
  } else if (typeRaw !== null) {
    throw new S3Error("InvalidRequest", "x-amz-checksum-type requires x-amz-checksum-algorithm");
  }
  const place = await placeOf(ctx, bucket, key);
  const { uploadId } = await groupStub(ctx.env, place.group).createUpload(place.nhid, {
    tenant: ctx.tenant,
    bucket,
    key,
    creator: ctx.auth.accessKey,
    contentType: h.get("content-type") ?? "binary/octet-stream",
    userMeta,
    httpMeta,
    checksum,
    replicas: replicasOf(h.get("x-edgestore-replicas"), ctx.cfg),
    tags: tagsOfHeader(h.get("x-amz-tagging")),
  });
  const headers: Record<string, string> = {};
  if (checksum) {
    headers["x-amz-checksum-algorithm"] = checksum.algorithm;
    headers["x-amz-checksum-type"] = checksum.type;
  }
  return xmlResponse("InitiateMultipartUploadResult", { Bucket: bucket, Key: key, UploadId: uploadId }, 200, headers);
}

/** Which part of which upload a request names. */
export interface PartAt {
  bucket: string;
  key: string;
  uploadId: string;
  partNumber: number;
}

export async function uploadPart(ctx: RequestContext, at: PartAt): Promise<Response> {
  const { bucket, key, uploadId } = at;
  validateKey(key);
  const bucketCheck = awaitedLater(requireBucket(ctx, bucket));
  // The part's chunks get the upload's replication count: asked for while the bucket is checked.
  const replicas = await uploadReplicas(ctx, bucket, key, uploadId);
  // Parts are never inline: completing joins chunk lists, so every part must have one.
  const { result, checksum } = await receiveBody(ctx, true, bucketCheck, replicas);
  return recordPart(ctx, at, { result, checksum, replicas });
}

/** The replication count the upload was created with (NoSuchUpload if there is none). */
export async function uploadReplicas(ctx: RequestContext, bucket: string, key: string, uploadId: string): Promise<number | null> {
  const place = await placeOf(ctx, bucket, key);
  const r = await groupStub(ctx.env, place.group).uploadReplicas(place.nhid, uploadId);
  if (isRefusal(r)) refused(r);
  return r.replicas;
}

/**
 * A part whose chunks are being stored becomes part `partNumber` of the upload once they are.
 * A part of more than one chunk is kept as one tree node: its row stays small, and the upload's
 * manifest has one entry per part, whatever the parts' sizes.
 */
export async function recordPart(ctx: RequestContext, at: PartAt, body: { result: IngestResult; checksum: ReceivedBody["checksum"]; replicas: number | null }): Promise<Response> {
  const { uploadId, partNumber } = at;
  const { result, checksum } = body;
  const place = await placeOf(ctx, at.bucket, at.key);
  await result.stored;
  const r = await groupStub(ctx.env, place.group).putPart(place.nhid, uploadId, {
    partNumber,
    etag: result.md5,
    size: result.size,
    chunks: await asTree(ctx, result.chunks, { maxTop: 1, replicas: body.replicas }),
    checksum: checksum?.value ?? null,
  });
  if (isRefusal(r)) refused(r);
  const headers: Record<string, string> = { etag: `"${result.md5}"` };
  if (checksum) headers[headerOf(checksum.algorithm)] = checksum.value;
  return new Response(null, { status: 200, headers });
}

/** The parts a CompleteMultipartUpload body lists. */
function listedParts(xml: string): ListedPart[] {
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  const root = parseXml(xml, malformed);
  if (root.name !== "CompleteMultipartUpload") throw malformed();
  return childrenNamed(root, "Part").map((p) => {
    const n = childText(p, "PartNumber");
    const etag = childText(p, "ETag");
    if (n === null || etag === null || !/^\d+$/.test(n.trim())) throw malformed();
    let checksum: string | null = null;
    for (const a of CHECKSUM_ALGORITHMS) {
      const v = childText(p, `Checksum${a}`);
      if (v !== null) checksum = v.trim();
    }
    return { partNumber: Number(n.trim()), etag: etag.trim(), checksum };
  });
}

export async function completeMultipartUpload(ctx: RequestContext, bucket: string, key: string, uploadId: string): Promise<Response> {
  validateKey(key);
  const info = await requireBucket(ctx, bucket);
  const xml = await readXmlBody(ctx.req, COMPLETE_BODY_MAX, () => new S3Error("EntityTooLarge", "The CompleteMultipartUpload document is too large"));
  const parts = listedParts(xml);
  const place = await placeOf(ctx, bucket, key);
  await requireRoomFor(ctx, () => listedSize(ctx, place, uploadId, parts.map((p) => p.partNumber)));
  const r = await groupStub(ctx.env, place.group).completeUpload({ nhid: place.nhid, shard: place.shard, uploadId }, { listed: parts, condition: writeConditionOf(ctx.req.headers), versioning: info.versioning });
  if (isRefusal(r)) refused(r);
  const body: XmlNode = { Location: `${ctx.url.origin}/${bucket}/${encodeURI(key)}`, Bucket: bucket, Key: key, ETag: `"${r.etag}"` };
  const headers: Record<string, string> = { ...versionHeader(info, r.uvid, r.versionId === "null") };
  if (r.checksum) {
    body[`Checksum${r.checksum.algorithm}`] = r.checksum.value;
    body.ChecksumType = r.checksum.type;
    headers[headerOf(r.checksum.algorithm)] = r.checksum.value;
    headers["x-amz-checksum-type"] = r.checksum.type;
  }
  return xmlResponse("CompleteMultipartUploadResult", body, 200, headers);
}

/** The bytes the parts a Complete lists hold: what the version it makes will count against the quota. */
async function listedSize(ctx: RequestContext, place: NamePlace, uploadId: string, listed: number[]): Promise<number> {
  const want = new Set(listed);
  let total = 0;
  let marker = 0;
  // 10,000 parts at most, a page of MAX_PARTS_LISTED each: the bound only guards a group's bug.
  for (let page = 0; page < 10_000 / MAX_PARTS_LISTED + 1; page++) {
    const r = await groupStub(ctx.env, place.group).listParts(place.nhid, uploadId, marker, MAX_PARTS_LISTED);
    // No upload: the Complete itself answers, with an earlier Complete's result (a retry stores
    // nothing new) or NoSuchUpload.
    if (isRefusal(r) && r.refused === "NoSuchUpload") return 0;
    if (isRefusal(r)) refused(r);
    for (const p of r.parts) if (want.has(p.partNumber)) total += p.size;
    if (!r.truncated || r.parts.length === 0) break;
    marker = r.parts[r.parts.length - 1]!.partNumber;
  }
  return total;
}

export async function abortMultipartUpload(ctx: RequestContext, bucket: string, key: string, uploadId: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const place = await placeOf(ctx, bucket, key);
  const r = await groupStub(ctx.env, place.group).abortUpload({ nhid: place.nhid, shard: place.shard, uploadId });
  if (r) refused(r);
  return new Response(null, { status: 204 });
}

export async function listParts(ctx: RequestContext, at: { bucket: string; key: string; uploadId: string }, list: ListPartsParams): Promise<Response> {
  const { bucket, key, uploadId } = at;
  const { maxParts, partNumberMarker: marker } = list;
  await requireBucket(ctx, bucket);
  const place = await placeOf(ctx, bucket, key);
  const r = await groupStub(ctx.env, place.group).listParts(place.nhid, uploadId, marker, maxParts);
  if (isRefusal(r)) refused(r);
  const alg = r.upload.checksum?.algorithm;
  const last = r.parts[r.parts.length - 1];
  return xmlResponse("ListPartsResult", {
    Bucket: bucket,
    Key: key,
    UploadId: uploadId,
    PartNumberMarker: marker,
    NextPartNumberMarker: last ? last.partNumber : marker,
    MaxParts: maxParts,
    IsTruncated: r.truncated,
    ChecksumAlgorithm: alg ?? null,
    ChecksumType: r.upload.checksum?.type ?? null,
    Part: r.parts.map((p) => ({
      PartNumber: p.partNumber,
      LastModified: isoTime(p.uploaded),
      ETag: `"${p.etag}"`,
      Size: p.size,
      ...(alg && p.checksum ? { [`Checksum${alg}`]: p.checksum } : {}),
    })),
    Initiator: owner(ctx),
    Owner: owner(ctx),
    StorageClass: "STANDARD",
  });
}

const entryKey = (e: UploadEntry) => (e.kind === "upload" ? e.key : e.prefix);

function compareEntries(a: UploadEntry, b: UploadEntry): number {
  const k = compareKeys(entryKey(a), entryKey(b));
  if (k !== 0 || a.kind !== "upload" || b.kind !== "upload") return k;
  return a.initiated - b.initiated || (a.uploadId < b.uploadId ? -1 : a.uploadId > b.uploadId ? 1 : 0);
}

export async function listMultipartUploads(ctx: RequestContext, bucket: string, list: ListUploadsParams): Promise<Response> {
  const { prefix, delimiter, keyMarker, uploadIdMarker, maxUploads } = list;
  await requireBucket(ctx, bucket);
  const pages: UploadPage[] = await Promise.all(
    Array.from({ length: ctx.cfg.shardCount }, (_, s) =>
      shardStub(ctx.env, s).listUploads({ tenant: ctx.tenant, bucket, prefix, delimiter, keyMarker, uploadIdMarker, limit: maxUploads }),
    ),
  );
  const all = pages.flatMap((p) => p.entries).sort(compareEntries);
  const entries: UploadEntry[] = [];
  for (const e of all) {
    const last = entries[entries.length - 1];
    if (last && last.kind === "prefix" && e.kind === "prefix" && last.prefix === e.prefix) continue;
    entries.push(e);
  }
  const truncated = entries.length > maxUploads || pages.some((p) => p.truncated);
  const page = entries.slice(0, maxUploads);
  const last = page[page.length - 1];
  return xmlResponse("ListMultipartUploadsResult", {
    Bucket: bucket,
    KeyMarker: keyMarker,
    UploadIdMarker: uploadIdMarker,
    NextKeyMarker: truncated && last ? entryKey(last) : null,
    NextUploadIdMarker: truncated && last?.kind === "upload" ? last.uploadId : null,
    Delimiter: delimiter || null,
    Prefix: prefix,
    MaxUploads: maxUploads,
    IsTruncated: truncated,
    Upload: page.flatMap((e) =>
      e.kind === "upload"
        ? [{ Key: e.key, UploadId: e.uploadId, Initiator: { ID: e.creator, DisplayName: e.creator }, Owner: owner(ctx), StorageClass: "STANDARD", Initiated: isoTime(e.initiated) }]
        : [],
    ),
    CommonPrefixes: page.flatMap((e) => (e.kind === "prefix" ? [{ Prefix: e.prefix }] : [])),
  });
}
