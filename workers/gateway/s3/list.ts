// ListObjects (v1), ListObjectsV2 and ListObjectVersions: every manifest shard lists its slice
// from the same cursor, and the pages are merged in UTF-8 key order (common prefixes
// deduplicated, since the keys under one prefix spread over every shard).

import { isUvid } from "../../../common/ids.ts";
import { compareKeys } from "../../../common/keys.ts";
import type { ListEntry, ListPage } from "../../manifest-shard/listing.ts";
import type { VersionEntry, VersionPage } from "../../manifest-shard/versions.ts";
import { versionIdOf } from "../../shared/versioning.ts";
import { shardStub } from "../../shared/env.ts";
import { listSnapshotBucket, openSnapshot, type OpenSnapshot } from "../ext/snapshot-read.ts";
import { asOfHeaders, asOfOf, settleAll, type AsOf } from "./as-of.ts";
import { requireBucket, type RequestContext } from "./context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { isoTime, xmlResponse } from "./xml.ts";
import type { XmlNode } from "../../../common/s3/xml.ts";

const MAX_KEYS = 1000;

interface Merged {
  entries: ListEntry[];
  truncated: boolean;
}

const entryKey = (e: ListEntry) => (e.kind === "object" ? e.key : e.prefix);

/** `asOf`: as of that time (its completeness already settled); null: now. */
export async function listMerged(ctx: RequestContext, bucket: string, prefix: string, delimiter: string, after: string, limit: number, asOf: AsOf | null = null): Promise<Merged> {
  const pages: ListPage[] = await Promise.all(
    Array.from({ length: ctx.cfg.shardCount }, (_, s) => shardStub(ctx.env, s).list({ tenant: ctx.tenant, bucket, prefix, delimiter, after, limit }, asOf?.bound)),
  );
  const all = pages.flatMap((p) => p.entries).sort((a, b) => compareKeys(entryKey(a), entryKey(b)));
  const entries: ListEntry[] = [];
  for (const e of all) {
    const last = entries[entries.length - 1];
    if (last && last.kind === "prefix" && e.kind === "prefix" && last.prefix === e.prefix) continue;
    entries.push(e);
  }
  // A shard that stopped at `limit` may hold keys that sort before another shard's later ones,
  // so only the first `limit` merged entries are certain.
  const truncated = entries.length > limit || pages.some((p) => p.truncated);
  return { entries: entries.slice(0, limit), truncated };
}

function maxKeysOf(q: URLSearchParams): number {
  const raw = q.get("max-keys");
  if (raw === null) return MAX_KEYS;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new S3Error("InvalidArgument", "Provided max-keys not an integer or within integer range", { ArgumentName: "max-keys", ArgumentValue: raw });
  return Math.min(n, MAX_KEYS);
}

function encodingOf(q: URLSearchParams): (s: string) => string {
  const enc = q.get("encoding-type");
  if (enc === null) return (s) => s;
  if (enc !== "url") throw new S3Error("InvalidArgument", "Invalid Encoding Method specified in Request", { ArgumentName: "encoding-type", ArgumentValue: enc });
  // S3 url-encodes like application/x-www-form-urlencoded but keeps '/'.
  return (s) => encodeURIComponent(s).replace(/%2F/g, "/").replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function contents(entries: ListEntry[], enc: (s: string) => string): { Contents: XmlNode[]; CommonPrefixes: XmlNode[] } {
  const Contents: XmlNode[] = [];
  const CommonPrefixes: XmlNode[] = [];
  for (const e of entries) {
    if (e.kind === "prefix") CommonPrefixes.push({ Prefix: enc(e.prefix) });
    else Contents.push({ Key: enc(e.key), LastModified: isoTime(e.lastModified), ETag: `"${e.etag}"`, Size: e.size, StorageClass: "STANDARD" });
  }
  return { Contents, CommonPrefixes };
}

/** ?snapshot=: list through a committed snapshot instead of the live namespace. */
async function snapshotOf(ctx: RequestContext): Promise<OpenSnapshot | null> {
  const id = ctx.url.searchParams.get("snapshot");
  if (id === null) return null;
  if (asOfOf(ctx)) throw new S3Error("InvalidArgument", "A snapshot already has its time: as-of cannot be combined with snapshot", { ArgumentName: "as-of" });
  return openSnapshot(ctx, id);
}

/** The page of entries a listing answers: through a snapshot, as of a time, or now. */
async function listingPage(ctx: RequestContext, bucket: string, prefix: string, delimiter: string, after: string, limit: number): Promise<Merged & { asOf: AsOf | null; snapshot: string | null }> {
  const snap = await snapshotOf(ctx);
  if (snap) return { ...(await listSnapshotBucket(ctx, snap, bucket, prefix, delimiter, after, limit)), asOf: null, snapshot: snap.info.id };
  await requireBucket(ctx, bucket);
  const asOf = await settledAsOf(ctx);
  return { ...(await listMerged(ctx, bucket, prefix, delimiter, after, limit, asOf)), asOf, snapshot: null };
}

/** A listing's point in time, settled before any shard lists (so every page is complete). */
async function settledAsOf(ctx: RequestContext): Promise<AsOf | null> {
  const a = asOfOf(ctx);
  if (a) await settleAll(ctx, a);
  return a;
}

function withAsOf(res: Response, a: AsOf | null, snapshot: string | null = null): Response {
  if (a) for (const [k, v] of Object.entries(asOfHeaders(a))) res.headers.set(k, v);
  if (snapshot) res.headers.set("x-edgestore-snapshot", snapshot);
  return res;
}

function encodeToken(cursor: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(cursor))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeToken(token: string): string {
  try {
    const bin = atob(token.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    throw new S3Error("InvalidArgument", "The continuation token provided is incorrect", { ArgumentName: "continuation-token" });
  }
}

export async function listObjectsV2(ctx: RequestContext, bucket: string): Promise<Response> {
  const q = ctx.url.searchParams;
  const prefix = q.get("prefix") ?? "";
  const delimiter = q.get("delimiter") ?? "";
  const maxKeys = maxKeysOf(q);
  const enc = encodingOf(q);
  const token = q.get("continuation-token");
  const startAfter = q.get("start-after") ?? "";
  let after = startAfter;
  if (token !== null) {
    const t = decodeToken(token);
    if (compareKeys(t, after) > 0) after = t;
  }
  const { entries, truncated, asOf, snapshot } = await listingPage(ctx, bucket, prefix, delimiter, after, maxKeys);
  const last = entries[entries.length - 1];
  return withAsOf(xmlResponse("ListBucketResult", {
    Name: bucket,
    Prefix: enc(prefix),
    Delimiter: delimiter ? enc(delimiter) : null,
    MaxKeys: maxKeys,
    KeyCount: entries.length,
    IsTruncated: truncated,
    EncodingType: q.get("encoding-type"),
    ContinuationToken: token,
    NextContinuationToken: truncated && last ? encodeToken(entryKey(last)) : null,
    StartAfter: q.has("start-after") ? enc(startAfter) : null,
    ...contents(entries, enc),
  }), asOf, snapshot);
}

export async function listObjectsV1(ctx: RequestContext, bucket: string): Promise<Response> {
  const q = ctx.url.searchParams;
  const prefix = q.get("prefix") ?? "";
  const delimiter = q.get("delimiter") ?? "";
  const maxKeys = maxKeysOf(q);
  const enc = encodingOf(q);
  const marker = q.get("marker") ?? "";
  const { entries, truncated, asOf, snapshot } = await listingPage(ctx, bucket, prefix, delimiter, marker, maxKeys);
  const last = entries[entries.length - 1];
  return withAsOf(xmlResponse("ListBucketResult", {
    Name: bucket,
    Prefix: enc(prefix),
    Marker: enc(marker),
    // S3 sends NextMarker only when a delimiter is given; clients otherwise use the last key.
    NextMarker: truncated && delimiter && last ? enc(entryKey(last)) : null,
    MaxKeys: maxKeys,
    Delimiter: delimiter ? enc(delimiter) : null,
    EncodingType: q.get("encoding-type"),
    IsTruncated: truncated,
    ...contents(entries, enc),
  }), asOf, snapshot);
}

const versionEntryKey = (e: VersionEntry) => (e.kind === "version" ? e.key : e.prefix);

function compareVersionEntries(a: VersionEntry, b: VersionEntry): number {
  const k = compareKeys(versionEntryKey(a), versionEntryKey(b));
  if (k !== 0 || a.kind !== "version" || b.kind !== "version") return k;
  // Newest first within a key.
  return a.uvid < b.uvid ? 1 : a.uvid > b.uvid ? -1 : 0;
}

export async function listObjectVersions(ctx: RequestContext, bucket: string): Promise<Response> {
  const q = ctx.url.searchParams;
  const prefix = q.get("prefix") ?? "";
  const delimiter = q.get("delimiter") ?? "";
  const maxKeys = maxKeysOf(q);
  const enc = encodingOf(q);
  const keyMarker = q.get("key-marker") ?? "";
  const versionIdMarker = keyMarker ? (q.get("version-id-marker") ?? "") : "";
  if (versionIdMarker && versionIdMarker !== "null" && !isUvid(versionIdMarker)) {
    throw new S3Error("InvalidArgument", "Invalid version id specified", { ArgumentName: "version-id-marker", ArgumentValue: versionIdMarker });
  }
  if (q.has("snapshot")) throw new S3Error("InvalidArgument", "A snapshot holds one version per key: list it with ListObjects or ListObjectsV2", { ArgumentName: "snapshot" });
  await requireBucket(ctx, bucket);
  const asOf = await settledAsOf(ctx);
  const pages: VersionPage[] = await Promise.all(
    Array.from({ length: ctx.cfg.shardCount }, (_, s) =>
      shardStub(ctx.env, s).listVersions({ tenant: ctx.tenant, bucket, prefix, delimiter, keyMarker, versionIdMarker, limit: maxKeys }, asOf?.bound),
    ),
  );
  const all = pages.flatMap((p) => p.entries).sort(compareVersionEntries);
  const entries: VersionEntry[] = [];
  for (const e of all) {
    const last = entries[entries.length - 1];
    if (last && last.kind === "prefix" && e.kind === "prefix" && last.prefix === e.prefix) continue;
    entries.push(e);
  }
  const truncated = entries.length > maxKeys || pages.some((p) => p.truncated);
  const page = entries.slice(0, maxKeys);
  const last = page[page.length - 1];
  const owner = { ID: ctx.tenant, DisplayName: ctx.tenant };
  const Version: XmlNode[] = [];
  const DeleteMarker: XmlNode[] = [];
  for (const e of page) {
    if (e.kind !== "version") continue;
    const common = { Key: enc(e.key), VersionId: versionIdOf(e.uvid, e.isNull), IsLatest: e.isLatest, LastModified: isoTime(e.lastModified), Owner: owner };
    if (e.deleteMarker) DeleteMarker.push(common);
    else Version.push({ ...common, ETag: `"${e.etag}"`, Size: e.size, StorageClass: "STANDARD" });
  }
  return withAsOf(xmlResponse("ListVersionsResult", {
    Name: bucket,
    Prefix: enc(prefix),
    KeyMarker: enc(keyMarker),
    VersionIdMarker: versionIdMarker,
    NextKeyMarker: truncated && last ? enc(versionEntryKey(last)) : null,
    NextVersionIdMarker: truncated && last?.kind === "version" ? versionIdOf(last.uvid, last.isNull) : null,
    MaxKeys: maxKeys,
    Delimiter: delimiter ? enc(delimiter) : null,
    EncodingType: q.get("encoding-type"),
    IsTruncated: truncated,
    Version,
    DeleteMarker,
    CommonPrefixes: page.flatMap((e) => (e.kind === "prefix" ? [{ Prefix: enc(e.prefix) }] : [])),
  }), asOf);
}
