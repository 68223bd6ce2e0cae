// GetObject and HeadObject: find the newest version through the name's group (or, as of a
// time, through the name's manifest shard), answer conditional and range requests as S3 does,
// and stream the chunks in order.

import type { VersionManifest } from "../../../common/manifest.ts";
import { manifestToken, payloadToken } from "../../shared/tokens.ts";
import type { StoredVersion } from "../../negotiating-group/rpc.ts";
import { groupStub, shardStub } from "../../shared/env.ts";
import { objectBody } from "../data/read.ts";
import { entryOf, openSnapshot } from "../ext/snapshot-read.ts";
import { asOfHeaders, settleName } from "./as-of.ts";
import type { AsOf, ReadParams, VersionId } from "../params.ts";
import { checksumResponseHeaders } from "../../../common/s3/checksums.ts";
import { placeOf, requireBucket, validateKey, type NamePlace, type RequestContext } from "./context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { httpTime } from "./xml.ts";
import type { Chid } from "../../../common/ids.ts";
import type { BucketInfo } from "../../tenant/rpc.ts";
import { versionIdOf } from "../../shared/versioning.ts";
import { awaitedLater } from "../../../common/deferred.ts";
import type { Tag } from "../../shared/tags.ts";

export interface ByteRange {
  start: number;
  /** Exclusive. */
  end: number;
}

/**
 * Parse a Range header against an object size. Returns null when the header is absent or not a
 * single byte range we understand (served as a plain 200, as S3 does); throws InvalidRange (416)
 * when it is well-formed but cannot be satisfied.
 */
export function parseRange(header: string | null, size: number): ByteRange | null {
  if (header === null) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  const unsatisfiable = () =>
    new S3Error("InvalidRange", "The requested range is not satisfiable", { RangeRequested: header, ActualObjectSize: String(size) }, { "content-range": `bytes */${size}` });
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  if (m[2] !== "" && Number(m[2]) < start) return null;
  if (start >= size) throw unsatisfiable();
  const end = m[2] === "" ? size : Math.min(size, Number(m[2]) + 1);
  return { start, end };
}

/**
 * RFC 7232: If-Match compares strongly (a weak W/ tag never matches), If-None-Match weakly.
 * Quotes are optional on the client's side, as S3 accepts both forms.
 */
function etagMatches(list: string, etag: string, weak: boolean): boolean {
  const bare = etag.replace(/^"|"$/g, "");
  return list.split(",").some((t) => {
    let v = t.trim();
    if (v === "*") return true;
    if (v.startsWith("W/")) {
      if (!weak) return false;
      v = v.slice(2);
    }
    return v.replace(/^"|"$/g, "") === bare;
  });
}

/** RFC 7232 evaluation in S3's order; returns the status to answer with, or null to proceed. */
export function evaluateConditions(headers: Headers, etag: string, lastModified: number): 304 | 412 | null {
  const ifMatch = headers.get("if-match");
  const ifNoneMatch = headers.get("if-none-match");
  const ifModifiedSince = headers.get("if-modified-since");
  const ifUnmodifiedSince = headers.get("if-unmodified-since");
  // Compare at one-second precision: HTTP dates carry no milliseconds.
  const lm = Math.floor(lastModified / 1000) * 1000;
  if (ifMatch !== null) {
    if (!etagMatches(ifMatch, etag, false)) return 412;
  } else if (ifUnmodifiedSince !== null) {
    const t = Date.parse(ifUnmodifiedSince);
    if (!Number.isNaN(t) && lm > t) return 412;
  }
  if (ifNoneMatch !== null) {
    if (etagMatches(ifNoneMatch, etag, true)) return 304;
  } else if (ifModifiedSince !== null) {
    const t = Date.parse(ifModifiedSince);
    if (!Number.isNaN(t) && lm <= t) return 304;
  }
  return null;
}

/**
 * GET/HEAD ?partNumber=N: the bytes of part N, as a range. A single-part object has one part,
 * the whole object. x-amz-mp-parts-count is sent only for a multipart object, as S3 does.
 */
function partRange(vm: VersionManifest, n: number, hasRange: boolean, headers: Headers): ByteRange {
  if (hasRange) throw new S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter");
  const sizes = vm.parts ?? [vm.size];
  if (n > sizes.length) throw new S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", { PartNumberRequested: String(n), ActualPartCount: String(sizes.length) });
  if (vm.parts) headers.set("x-amz-mp-parts-count", String(vm.parts.length));
  let start = 0;
  for (let i = 0; i < n - 1; i++) start += sizes[i]!;
  return { start, end: start + sizes[n - 1]! };
}

function objectHeaders(vm: VersionManifest): Headers {
  const h = new Headers({
    etag: `"${vm.etag}"`,
    "last-modified": httpTime(vm.created),
    "content-type": vm.contentType,
    "accept-ranges": "bytes",
  });
  for (const [k, v] of Object.entries(vm.httpMeta)) h.set(k, v);
  for (const [k, v] of Object.entries(vm.userMeta)) h.set(`x-amz-meta-${k}`, v);
  return h;
}

/** x-amz-version-id for a version: none in a bucket that never versioned, "null" for a null version. */
export function versionHeader(info: Pick<BucketInfo, "versioning">, uvid: string, isNull: boolean): Record<string, string> {
  return info.versioning === "Unversioned" ? {} : { "x-amz-version-id": versionIdOf(uvid, isNull) };
}

/**
 * A version that can be read: the current one, or the one asked for by id. Absent, or a delete
 * marker, is NoSuchKey (NoSuchVersion when asked for by id), as S3 answers for sub-resources
 * and copy sources.
 */
export async function existingVersion(ctx: RequestContext, bucket: string, key: string, versionId: VersionId): Promise<{ info: BucketInfo; vm: VersionManifest; vmChid: Chid; isNull: boolean; replicas: number; tags: Tag[] }> {
  validateKey(key);
  const info = await requireBucket(ctx, bucket);
  const place = await placeOf(ctx, bucket, key);
  const stored = await groupStub(ctx.env, place.group).getVersion(place.nhid, versionId);
  if (!stored || stored.vm.deleteMarker) {
    if (versionId !== null) throw new S3Error("NoSuchVersion", "The specified version does not exist.", { Key: key, VersionId: versionId });
    throw new S3Error("NoSuchKey", "The specified key does not exist.", { Key: key });
  }
  return { info, vm: stored.vm, vmChid: stored.vmChid, isNull: stored.isNull, replicas: stored.replicas ?? ctx.cfg.replicas, tags: stored.tags ?? [] };
}

/** For a sub-resource of an object (?acl, ?tagging): the version named by ?versionId must exist; its version header, as S3 echoes it. */
export async function subresourceVersion(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId }): Promise<Record<string, string>> {
  const { info, vm, isNull } = await existingVersion(ctx, at.bucket, at.key, at.versionId);
  return versionHeader(info, vm.uvid, isNull);
}

/** A key with where it lives. */
interface PlacedName {
  bucket: string;
  key: string;
  place: NamePlace;
}

/** The version of a name current at a point in time, once that answer is final (as-of.ts). */
async function versionAsOf(ctx: RequestContext, name: PlacedName, asOf: AsOf): Promise<StoredVersion | null> {
  const { bucket, key, place } = name;
  await settleName(ctx, place, asOf);
  const at = await shardStub(ctx.env, place.shard).versionAt(ctx.tenant, bucket, key, asOf.bound);
  if (!at) return null;
  const vm = await groupStub(ctx.env, place.group).readVersion(place.nhid, at.uvid, at.vmChid);
  return { vm, vmChid: at.vmChid, isNull: at.isNull };
}

/** The version a snapshot holds for a name (readable while the snapshot exists, whatever happened to the name since). */
async function versionInSnapshot(ctx: RequestContext, name: PlacedName, id: string): Promise<StoredVersion | null> {
  const { bucket, key, place } = name;
  const snap = await openSnapshot(ctx, id);
  const e = await entryOf(ctx, snap, bucket, key);
  if (!e) return null;
  const vm = await groupStub(ctx.env, place.group).readVersion(place.nhid, e.uvid, e.vmChid);
  return { vm, vmChid: e.vmChid, isNull: e.isNull };
}

export async function getObject(ctx: RequestContext, at: { bucket: string; key: string; head: boolean }, read: ReadParams): Promise<Response> {
  const { bucket, key, head } = at;
  const { versionId, asOf, snapshot } = read;
  // A snapshot is read even if its bucket was deleted since; its versions are shown by id.
  const bucketCheck: Promise<Pick<BucketInfo, "versioning">> = awaitedLater<Pick<BucketInfo, "versioning">>(snapshot !== null ? Promise.resolve({ versioning: "Enabled" }) : requireBucket(ctx, bucket));
  const place = await placeOf(ctx, bucket, key);
  const vmP = awaitedLater(
    snapshot !== null
      ? versionInSnapshot(ctx, { bucket, key, place }, snapshot)
      : asOf
        ? versionAsOf(ctx, { bucket, key, place }, asOf)
        : groupStub(ctx.env, place.group).getVersion(place.nhid, versionId),
  );
  const info = await bucketCheck;
  const stored = await vmP;
  if (!stored) {
    if (versionId !== null) throw new S3Error("NoSuchVersion", "The specified version does not exist.", { Key: key, VersionId: versionId });
    throw new S3Error("NoSuchKey", "The specified key does not exist.", { Key: key });
  }
  const { vm, isNull } = stored;
  if (vm.deleteMarker) {
    // S3: the current version is a delete marker -> 404; a delete marker asked for by id -> 405.
    const h = { "x-amz-delete-marker": "true", ...versionHeader(info, vm.uvid, isNull) };
    if (versionId !== null) throw new S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.", { Method: ctx.req.method, ResourceType: "DeleteMarker" }, h);
    throw new S3Error("NoSuchKey", "The specified key does not exist.", { Key: key }, h);
  }

  const headers = objectHeaders(vm);
  const extra = {
    ...(asOf ? asOfHeaders(asOf) : {}),
    ...(snapshot !== null ? { "x-edgestore-snapshot": snapshot } : {}),
    ...(stored.replicas !== undefined ? { "x-edgestore-replicas": String(stored.replicas) } : {}),
    ...(stored.tags && stored.tags.length > 0 ? { "x-amz-tagging-count": String(stored.tags.length) } : {}),
  };
  for (const [k, v] of Object.entries({ ...versionHeader(info, vm.uvid, isNull), ...extra })) headers.set(k, v);
  if (ctx.req.headers.get("x-edgestore-tokens") === "true") {
    headers.set("x-edgestore-manifest-token", await manifestToken(ctx.env.TOKEN_KEY, stored.vmChid));
    headers.set("x-edgestore-payload-token", await payloadToken(ctx.env.TOKEN_KEY, vm.size, vm.chunks, vm.inline));
  }
  for (const [name, value] of read.overrides) headers.set(name, value);
  const cond = evaluateConditions(ctx.req.headers, `"${vm.etag}"`, vm.created);
  if (cond === 304) return new Response(null, { status: 304, headers });
  if (cond === 412) throw new S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", { Condition: "If-Match" });

  const range = read.partNumber !== null ? partRange(vm, read.partNumber, ctx.req.headers.get("range") !== null, headers) : parseRange(ctx.req.headers.get("range"), vm.size);
  const start = range?.start ?? 0;
  const end = range?.end ?? vm.size;
  headers.set("content-length", String(end - start));
  if (range && end > start) headers.set("content-range", `bytes ${start}-${end - 1}/${vm.size}`);
  // A checksum describes the whole object, so a range gets none (as S3).
  else for (const [k, v] of Object.entries(checksumResponseHeaders(vm.checksum, ctx.req.headers))) headers.set(k, v);
  const status = range ? 206 : 200;
  if (head || end === start) return new Response(head ? null : new Uint8Array(0), { status, headers });

  const source = objectBody(ctx, vm, { start, end });
  // Fail with a status while we still can: wait for the first chunk before sending headers.
  await source.ready;
  const { readable, writable } = new FixedLengthStream(end - start);
  ctx.waitUntil(source.stream.pipeTo(writable).catch(() => {}));
  return new Response(readable, { status, headers });
}
