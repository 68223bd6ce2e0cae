// A request's query parameters, and the extension headers that stand in for some of them,
// parsed once into typed values as the router builds the endpoint (router.ts). Handlers are
// given these and never read the URL; each refusal is the error S3 gives for that parameter.

import { formatUvid, isUvid, type Uvid } from "../../common/ids.ts";
import { compareKeys } from "../../common/keys.ts";
import { S3Error } from "../../common/s3/errors.ts";
import { AS_OF_WAIT_MAX_MS } from "../manifest-shard/as-of.ts";

/** S3's page limits: a larger max-keys (max-uploads, max-parts) is taken as this. */
export const MAX_KEYS = 1000;
export const MAX_UPLOADS_LISTED = 1000;
export const MAX_PARTS_LISTED = 1000;
/** Enough for idle groups to answer a shard's request to advance (one round trip each). */
export const AS_OF_WAIT_DEFAULT_MS = 2_000;

/** ?versionId=: one version by its id, the null version, or (null) the current one. */
export type VersionId = Uvid | "null" | null;

/** A point in time a read answers as of (s3/as-of.ts settles it). */
export interface AsOf {
  /** T, ms since the epoch. */
  ms: number;
  /** The first UVID after T: every version stamped at or before T sorts below it. */
  bound: Uvid;
  waitMs: number;
}

/** What ListObjects, ListObjectsV2 and ListObjectVersions share. */
interface ListCommon {
  prefix: string;
  delimiter: string;
  maxKeys: number;
  /** "url": keys, prefixes and delimiters in the answer are URL-encoded. */
  encodingType: "url" | null;
  asOf: AsOf | null;
}

export interface ListObjectsParams extends ListCommon {
  marker: string;
  /** List through this committed snapshot instead of the live namespace. */
  snapshot: string | null;
}

export interface ListObjectsV2Params extends ListCommon {
  /** As sent, to echo. */
  continuationToken: string | null;
  startAfter: string | null;
  /** Where the page starts: after the later of start-after and the token's key. */
  after: string;
  snapshot: string | null;
  /** Each object's Owner in the answer (ListObjects always sends it; V2 only when asked). */
  fetchOwner: boolean;
}

export interface ListVersionsParams extends ListCommon {
  keyMarker: string;
  versionIdMarker: string;
}

export interface ListUploadsParams {
  prefix: string;
  delimiter: string;
  keyMarker: string;
  uploadIdMarker: string;
  maxUploads: number;
}

export interface ListPartsParams {
  maxParts: number;
  partNumberMarker: number;
}

/** GetObject and HeadObject: which version, which part, and headers the answer is to carry instead of the stored ones. */
export interface ReadParams {
  versionId: VersionId;
  asOf: AsOf | null;
  snapshot: string | null;
  partNumber: number | null;
  overrides: [name: string, value: string][];
}

function invalid(name: string, value: string, message: string): S3Error {
  return new S3Error("InvalidArgument", message, { ArgumentName: name, ArgumentValue: value });
}

/** A UVID or "null"; anything else is refused as S3 refuses it. */
export function versionIdParam(raw: string | null, name = "versionId"): VersionId {
  if (raw === null) return null;
  if (raw === "null") return "null";
  if (isUvid(raw)) return raw;
  throw invalid(name, raw, "Invalid version id specified");
}

/** S3's part numbers: 1 to 10,000. */
export function partNumberOf(raw: string | null): number {
  const n = Number(raw);
  if (raw === null || !/^\d+$/.test(raw) || n < 1 || n > 10_000) {
    throw invalid("partNumber", raw ?? "", "Part number must be an integer between 1 and 10000, inclusive");
  }
  return n;
}

/** An ISO 8601 time or milliseconds since the epoch, as ms. */
export function parseTime(raw: string, name: string): number {
  const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isSafeInteger(ms) || ms < 0) throw invalid(name, raw, `${name} must be an ISO 8601 time or milliseconds since the epoch`);
  return ms;
}

/** Whole milliseconds to wait for a point in time to settle, at most what a shard waits. */
export function waitMsOf(raw: string | null, name: string, dflt: number): number {
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > AS_OF_WAIT_MAX_MS) throw invalid(name, raw, `${name} must be whole milliseconds, at most ${AS_OF_WAIT_MAX_MS}`);
  return n;
}

/** A point in time with the wait the caller allows for it. */
export function asOfAt(ms: number, waitMs: number): AsOf {
  return { ms, bound: formatUvid({ ms: ms + 1, seq: 0, group: 0 }), waitMs };
}

/** `as-of` (query) or `x-edgestore-as-of` (header); null for an ordinary (current) read. */
export function asOfParam(q: URLSearchParams, headers: Headers): AsOf | null {
  const raw = q.get("as-of") ?? headers.get("x-edgestore-as-of");
  if (raw === null) return null;
  return asOfAt(parseTime(raw, "as-of"), waitMsOf(q.get("as-of-wait") ?? headers.get("x-edgestore-as-of-wait"), "as-of-wait", AS_OF_WAIT_DEFAULT_MS));
}

/** A whole number (from a query parameter or a header) no larger than `max`: a larger one is taken as `max`, as S3 does. */
function limitOf(raw: string | null, name: string, dflt: number, max: number): number {
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw invalid(name, raw, `Provided ${name} not an integer or within integer range`);
  return Math.min(n, max);
}

function encodingTypeOf(q: URLSearchParams): "url" | null {
  const enc = q.get("encoding-type");
  if (enc === null || enc === "url") return enc;
  throw invalid("encoding-type", enc, "Invalid Encoding Method specified in Request");
}

function snapshotWith(q: URLSearchParams, asOf: AsOf | null): string | null {
  const id = q.get("snapshot");
  if (id !== null && asOf) throw invalid("as-of", q.get("as-of") ?? "", "A snapshot already has its time: as-of cannot be combined with snapshot");
  return id;
}

function listCommon(q: URLSearchParams, headers: Headers): ListCommon {
  return { prefix: q.get("prefix") ?? "", delimiter: q.get("delimiter") ?? "", maxKeys: limitOf(q.get("max-keys"), "max-keys", MAX_KEYS, MAX_KEYS), encodingType: encodingTypeOf(q), asOf: asOfParam(q, headers) };
}

export function listObjectsParams(q: URLSearchParams, headers: Headers): ListObjectsParams {
  const common = listCommon(q, headers);
  return { ...common, marker: q.get("marker") ?? "", snapshot: snapshotWith(q, common.asOf) };
}

/** The key a ListObjectsV2 continuation token carries: opaque to clients, base64url of the last key listed. */
export function continuationTokenOf(key: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(key))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function keyOfToken(token: string): string {
  try {
    const bin = atob(token.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    throw invalid("continuation-token", token, "The continuation token provided is incorrect");
  }
}

export function listObjectsV2Params(q: URLSearchParams, headers: Headers): ListObjectsV2Params {
  const common = listCommon(q, headers);
  const continuationToken = q.get("continuation-token");
  const startAfter = q.get("start-after");
  let after = startAfter ?? "";
  if (continuationToken !== null) {
    const t = keyOfToken(continuationToken);
    if (compareKeys(t, after) > 0) after = t;
  }
  return { ...common, continuationToken, startAfter, after, snapshot: snapshotWith(q, common.asOf), fetchOwner: q.get("fetch-owner") === "true" };
}

export function listVersionsParams(q: URLSearchParams, headers: Headers): ListVersionsParams {
  if (q.has("snapshot")) throw invalid("snapshot", q.get("snapshot")!, "A snapshot holds one version per key: list it with ListObjects or ListObjectsV2");
  const common = listCommon(q, headers);
  const keyMarker = q.get("key-marker") ?? "";
  // S3 ignores a version-id-marker without a key-marker.
  const raw = keyMarker ? (q.get("version-id-marker") ?? "") : "";
  if (raw !== "") versionIdParam(raw, "version-id-marker");
  return { ...common, keyMarker, versionIdMarker: raw };
}

export function listUploadsParams(q: URLSearchParams): ListUploadsParams {
  const keyMarker = q.get("key-marker") ?? "";
  return {
    prefix: q.get("prefix") ?? "",
    delimiter: q.get("delimiter") ?? "",
    keyMarker,
    uploadIdMarker: keyMarker ? (q.get("upload-id-marker") ?? "") : "",
    maxUploads: limitOf(q.get("max-uploads"), "max-uploads", MAX_UPLOADS_LISTED, MAX_UPLOADS_LISTED),
  };
}

export function listPartsParams(q: URLSearchParams): ListPartsParams {
  return { maxParts: limitOf(q.get("max-parts"), "max-parts", MAX_PARTS_LISTED, MAX_PARTS_LISTED), partNumberMarker: limitOf(q.get("part-number-marker"), "part-number-marker", 0, 10_000) };
}

/**
 * The response-* parameters of a signed GET or HEAD replace the stored header of that name in
 * this one answer (S3's response header overrides), so a presigned link can make a browser
 * download under another name or type without rewriting the object.
 */
const RESPONSE_OVERRIDES = ["content-type", "content-language", "expires", "cache-control", "content-disposition", "content-encoding"];

export function readParams(q: URLSearchParams, headers: Headers): ReadParams {
  const versionId = versionIdParam(q.get("versionId"));
  const asOf = asOfParam(q, headers);
  if ((asOf || q.has("snapshot")) && versionId !== null) {
    throw invalid(asOf ? "as-of" : "snapshot", (asOf ? q.get("as-of") : q.get("snapshot")) ?? "", "A version id already names one version: as-of and snapshot cannot be combined with it");
  }
  const snapshot = snapshotWith(q, asOf);
  const part = q.get("partNumber");
  const overrides = RESPONSE_OVERRIDES.flatMap((name): [string, string][] => {
    const v = q.get(`response-${name}`);
    return v === null ? [] : [[name, v]];
  });
  return { versionId, asOf, snapshot, partNumber: part === null ? null : partNumberOf(part), overrides };
}

/** What GetObjectAttributes can be asked for (x-amz-object-attributes). */
export const OBJECT_ATTRIBUTES = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"] as const;
export type ObjectAttribute = (typeof OBJECT_ATTRIBUTES)[number];

/** GetObjectAttributes: which version, which attributes, and a page of its parts. */
export interface AttributesParams {
  versionId: VersionId;
  attributes: ReadonlySet<ObjectAttribute>;
  maxParts: number;
  partNumberMarker: number;
}

export function attributesParams(q: URLSearchParams, headers: Headers): AttributesParams {
  const raw = headers.get("x-amz-object-attributes");
  if (raw === null || raw.trim() === "") throw invalid("x-amz-object-attributes", "", "x-amz-object-attributes names at least one attribute");
  const attributes = new Set<ObjectAttribute>();
  for (const a of raw.split(",").map((s) => s.trim())) {
    if (!OBJECT_ATTRIBUTES.includes(a as ObjectAttribute)) throw invalid("x-amz-object-attributes", a, `Invalid attribute name specified: ${a}`);
    attributes.add(a as ObjectAttribute);
  }
  return { versionId: versionIdParam(q.get("versionId")), attributes, maxParts: limitOf(headers.get("x-amz-max-parts"), "x-amz-max-parts", MAX_PARTS_LISTED, MAX_PARTS_LISTED), partNumberMarker: limitOf(headers.get("x-amz-part-number-marker"), "x-amz-part-number-marker", 0, 10_000) };
}
