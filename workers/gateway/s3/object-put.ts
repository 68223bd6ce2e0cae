// PutObject: authenticate the body as it streams (signed payload hash, aws-chunked signatures
// and trailers, Content-MD5), chunk it into its groups, then commit one version manifest on the
// name's group. Nothing becomes visible unless every check passed: a failed or interrupted
// upload leaves only unreferenced chunks behind, never a version.

import { base64Encode, type ChecksumAlgorithm, type VersionBody } from "../../../common/manifest.ts";
import { groupStub } from "../../shared/env.ts";
import { decodeAwsChunked, parseTrailerNames } from "../../../common/s3/aws-chunked.ts";
import { PUT_MAX, STORED_HEADERS, storedContentEncoding } from "../../../common/s3/put-object.ts";
import { isStreamingMode } from "../../../common/s3/sigv4.ts";
import { digestStreams } from "../data/digest-stream.ts";
import { ingest, type IngestResult } from "../data/ingest.ts";
import { asTree } from "../data/tree.ts";
import type { WriteCondition } from "../../negotiating-group/complete.ts";
import { isRefusal } from "../../shared/refusal.ts";
import { badDigest, headerOf, requestedChecksum, type RequestedChecksum } from "../../../common/s3/checksums.ts";
import { placeOf, requireBucket, validateKey, type RequestContext } from "./context.ts";
import { refused } from "./refused.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { requireRoom } from "./quota.ts";
import { versionHeader } from "./object-get.ts";
import { refuseUnkeptWriteOptions } from "./write-options.ts";
import { awaitedLater } from "../../../common/deferred.ts";
import { tagsOfHeader, type Tag } from "../../shared/tags.ts";
import type { BucketInfo } from "../../tenant/rpc.ts";

/** S3 limits user metadata to 2 KB (names and values, UTF-8). */
export const USER_META_MAX = 2048;

export function metadataOf(headers: Headers): { userMeta: Record<string, string>; httpMeta: Record<string, string> } {
  const userMeta: Record<string, string> = {};
  const httpMeta: Record<string, string> = {};
  let metaBytes = 0;
  for (const [name, value] of headers) {
    if (name.startsWith("x-amz-meta-")) {
      const k = name.slice("x-amz-meta-".length);
      userMeta[k] = value;
      metaBytes += new TextEncoder().encode(k + value).length;
    } else if (STORED_HEADERS.includes(name)) {
      const v = name === "content-encoding" ? storedContentEncoding(value) : value;
      if (v) httpMeta[name] = v;
    }
  }
  if (metaBytes > USER_META_MAX) throw new S3Error("InvalidArgument", `user metadata is ${metaBytes} bytes; S3 allows ${USER_META_MAX}`);
  return { userMeta, httpMeta };
}

/**
 * The body's length as the request declares it; null for a body sent with Transfer-Encoding:
 * chunked and no length (a pipe, `curl -T -`), which is counted as it streams instead.
 */
export function declaredLength(ctx: RequestContext, streaming: boolean): number | null {
  const h = ctx.req.headers;
  const raw = streaming ? h.get("x-amz-decoded-content-length") : h.get("content-length");
  if (raw === null) {
    if (streaming) throw new S3Error("MissingContentLength", "x-amz-decoded-content-length is required with aws-chunked bodies");
    if (ctx.req.body !== null && /\bchunked\b/i.test(h.get("transfer-encoding") ?? "")) return null;
    throw new S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.");
  }
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new S3Error("InvalidArgument", `invalid length ${raw}`);
  if (n > PUT_MAX) throw new S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size (5 GiB for a single PUT)");
  return n;
}

function contentMd5(headers: Headers): string | null {
  const v = headers.get("content-md5");
  if (v === null) return null;
  let bytes: string;
  try {
    bytes = atob(v.trim());
  } catch {
    throw new S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.");
  }
  if (bytes.length !== 16) throw new S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.");
  return [...bytes].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

/**
 * A conditional write (S3 since 2024): If-None-Match: * creates only if the key has no current
 * object, If-Match: <etag> replaces only that version. Enforced by the name's group.
 */
export function writeConditionOf(h: Headers): WriteCondition | null {
  const none = h.get("if-none-match");
  const match = h.get("if-match");
  if (none !== null && match !== null) throw new S3Error("NotImplemented", "If-Match and If-None-Match together are not supported on writes");
  if (none !== null) {
    if (none.trim() !== "*") throw new S3Error("NotImplemented", "A header you provided implies functionality that is not implemented: If-None-Match on a write accepts only *");
    return { ifNoneMatch: true };
  }
  return match !== null ? { ifMatch: match.trim() } : null;
}

/**
 * The request's body as object bytes: aws-chunked framing decoded and verified (chunk
 * signatures, trailing checksums) as it streams, and the checksum the request declares.
 */
export function requestBody(
  ctx: RequestContext,
  streaming: boolean,
  length: number,
): { body: ReadableStream<Uint8Array> | null; trailers: Promise<Record<string, string>> | null; checksum: RequestedChecksum | null } {
  const h = ctx.req.headers;
  const trailerNames = parseTrailerNames(h.get("x-amz-trailer"));
  const checksum = requestedChecksum(h, trailerNames);
  if (!streaming) {
    if (checksum?.trailer) throw new S3Error("InvalidRequest", "x-amz-trailer needs an aws-chunked body");
    return { body: ctx.req.body, trailers: null, checksum };
  }
  const payloadHash = ctx.auth.payloadHash;
  if (!isStreamingMode(payloadHash)) {
    throw new S3Error("InvalidArgument", `unsupported x-amz-content-sha256 value ${payloadHash}`);
  }
  if (!ctx.req.body) throw new S3Error("IncompleteBody", "aws-chunked request has no body");
  const decoded = decodeAwsChunked(ctx.req.body, { mode: payloadHash, decodedLength: length, signing: ctx.auth, trailerNames, digests: digestStreams });
  return { body: decoded.stream, trailers: awaitedLater(decoded.trailers), checksum };
}

/** The additional checksum to keep: checked against a header value, or the verified trailer. */
export async function verifiedChecksum(requested: RequestedChecksum | null, result: IngestResult, trailers: Promise<Record<string, string>> | null): Promise<string | null> {
  if (!requested) return null;
  if (requested.trailer) {
    // The decoder has already compared it with what it computed; a mismatch errored the body.
    return (await trailers!)[headerOf(requested.algorithm)] ?? null;
  }
  if (requested.expected !== null && requested.expected !== result.checksum) throw badDigest(requested.algorithm);
  return result.checksum;
}

/** A body received and checked: length, signed SHA-256, Content-MD5, additional checksum. */
export interface ReceivedBody {
  result: IngestResult;
  /** The verified additional checksum (base64) and its algorithm, if the request had one. */
  checksum: { algorithm: ChecksumAlgorithm; value: string } | null;
}

/**
 * Read a PUT's body into chunks and check everything the request declared about it. Every
 * check runs before the caller commits anything, so a bad body leaves only unreferenced chunks.
 */
/**
 * x-edgestore-replicas: copies of this version's chunks and manifest, at least 1 and at most
 * GROUP_MEMBERS (a group has no more targets). Kept outside the manifest; null: the cluster's R.
 */
export function replicasOf(raw: string | null, cfg: { groupMembers: number }): number | null {
  if (raw === null) return null;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > cfg.groupMembers) {
    throw new S3Error("InvalidArgument", `x-edgestore-replicas must be a whole number from 1 to ${cfg.groupMembers} (GROUP_MEMBERS)`, { ArgumentName: "x-edgestore-replicas", ArgumentValue: raw });
  }
  return n;
}

export async function receiveBody(ctx: RequestContext, noInline: boolean, beforeRead: Promise<unknown> = Promise.resolve(), replicas: number | null = null): Promise<ReceivedBody> {
  const h = ctx.req.headers;
  const payloadHash = ctx.auth.payloadHash;
  const streaming = payloadHash.startsWith("STREAMING-");
  const length = declaredLength(ctx, streaming);
  const md5Expected = contentMd5(h);
  await Promise.all([beforeRead, requireRoom(ctx, length ?? 0)]);
  const { body, trailers, checksum: requested } = requestBody(ctx, streaming, length ?? 0);
  const signedHash = /^[0-9a-f]{64}$/i.test(payloadHash) ? payloadHash.toLowerCase() : null;
  const result = await ingest(ctx.env, ctx.cfg, body, {
    sha256: signedHash !== null,
    // Undeclared: read in full-sized pieces and counted against S3's cap as it arrives.
    sizeHint: length ?? PUT_MAX,
    checksum: requested && !requested.trailer ? requested.algorithm : null,
    noInline,
    replicas,
    ...(length === null ? { maxSize: PUT_MAX } : {}),
  });
  // Only now is an undeclared body's size known: the quota is checked before anything commits.
  if (length === null) await requireRoom(ctx, result.size);
  if (length !== null && result.size !== length) {
    throw new S3Error("IncompleteBody", `You did not provide the number of bytes specified by the Content-Length HTTP header (${result.size} of ${length})`);
  }
  if (signedHash !== null && result.sha256 !== signedHash) {
    throw new S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.", {
      ClientComputedContentSHA256: signedHash,
      S3ComputedContentSHA256: result.sha256 ?? "",
    });
  }
  if (md5Expected !== null && md5Expected !== result.md5) {
    throw new S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.");
  }
  const value = await verifiedChecksum(requested, result, trailers);
  return { result, checksum: value && requested ? { algorithm: requested.algorithm, value } : null };
}

/** How a whole object is to be written, from a PUT's headers or a form upload's fields: read before its body. */
export interface ObjectOptions {
  condition: WriteCondition | null;
  contentType: string;
  userMeta: Record<string, string>;
  httpMeta: Record<string, string>;
  replicas: number | null;
  tags: Tag[];
}

export function objectOptionsOf(h: Headers, cfg: RequestContext["cfg"]): ObjectOptions {
  const condition = writeConditionOf(h);
  refuseUnkeptWriteOptions(h);
  const { userMeta, httpMeta } = metadataOf(h);
  return { condition, contentType: h.get("content-type") ?? "binary/octet-stream", userMeta, httpMeta, replicas: replicasOf(h.get("x-edgestore-replicas"), cfg), tags: tagsOfHeader(h.get("x-amz-tagging")) };
}

/** Commit a received body as the newest version of `key`; the answer's headers (ETag, version id, checksum). */
export async function commitObject(ctx: RequestContext, at: { bucket: string; key: string }, w: { opts: ObjectOptions; received: ReceivedBody; info: Promise<BucketInfo> }): Promise<Record<string, string>> {
  const { bucket, key } = at;
  const { opts, received } = w;
  const { result, checksum } = received;
  const place = await placeOf(ctx, bucket, key);
  // A chunk list past a node's worth is kept as a tree, so no manifest grows with its object.
  const chunks = await asTree(ctx, result.chunks, { maxTop: ctx.cfg.manifestNodeEntries, replicas: opts.replicas });
  const vbody: VersionBody = {
    tenant: ctx.tenant,
    bucket,
    key,
    size: result.size,
    etag: result.md5,
    contentType: opts.contentType,
    userMeta: opts.userMeta,
    httpMeta: opts.httpMeta,
    chunks,
    inline: result.inline ? base64Encode(result.inline) : null,
    deleteMarker: false,
    creator: ctx.auth.accessKey,
    ...(checksum ? { checksum: { ...checksum, type: "FULL_OBJECT" as const } } : {}),
  };
  // The manifest goes to its targets while the last chunks are still being saved; the group
  // commits the version only once `chunksStored` resolves (a callback over RPC into this request).
  const chunksStored = () => result.stored;
  const info = await w.info;
  const [, put] = await Promise.all([
    result.stored,
    groupStub(ctx.env, place.group).putVersion(place.nhid, vbody, info.versioning, { chunksStored: chunks.length > 0 ? chunksStored : null, condition: opts.condition, replicas: opts.replicas, tags: opts.tags }),
  ]);
  if (isRefusal(put)) refused(put);
  const out: Record<string, string> = { etag: `"${result.md5}"`, ...versionHeader(info, put.uvid, put.versionId === "null") };
  if (checksum) {
    out[headerOf(checksum.algorithm)] = checksum.value;
    out["x-amz-checksum-type"] = "FULL_OBJECT";
  }
  return out;
}

export async function putObject(ctx: RequestContext, bucket: string, key: string): Promise<Response> {
  validateKey(key);
  const info = awaitedLater(requireBucket(ctx, bucket));
  const opts = objectOptionsOf(ctx.req.headers, ctx.cfg);
  const received = await receiveBody(ctx, false, info, opts.replicas);
  return new Response(null, { status: 200, headers: await commitObject(ctx, { bucket, key }, { opts, received, info }) });
}
