// ListObjects (v1), ListObjectsV2 and ListObjectVersions: every manifest shard lists its slice
// from the same cursor, and the pages are merged in UTF-8 key order (common prefixes
// deduplicated, since the keys under one prefix spread over every shard).

import { compareKeys } from "../../../common/keys.ts";
import type { ListEntry, ListPage, ListQuery } from "../../manifest-shard/listing.ts";
import type { VersionEntry, VersionPage } from "../../manifest-shard/versions.ts";
import { versionIdOf } from "../../shared/versioning.ts";
import { shardStub } from "../../shared/env.ts";
import { listSnapshotBucket, openSnapshot } from "../ext/snapshot-read.ts";
import { asOfHeaders, settleAll } from "./as-of.ts";
import { continuationTokenOf, type AsOf, type ListObjectsParams, type ListObjectsV2Params, type ListVersionsParams } from "../params.ts";
import { requireBucket, type RequestContext } from "./context.ts";
import { isoTime, xmlResponse } from "./xml.ts";
import type { XmlNode } from "../../../common/s3/xml.ts";

interface Merged {
  entries: ListEntry[];
  truncated: boolean;
}

const entryKey = (e: ListEntry) => (e.kind === "object" ? e.key : e.prefix);

/** `asOf`: as of that time (its completeness already settled); null: now. */
export async function listMerged(ctx: RequestContext, q: Omit<ListQuery, "tenant">, asOf: AsOf | null = null): Promise<Merged> {
  const { limit } = q;
  const pages: ListPage[] = await Promise.all(Array.from({ length: ctx.cfg.shardCount }, (_, s) => shardStub(ctx.env, s).list({ ...q, tenant: ctx.tenant }, asOf?.bound)));
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

/** Keys, prefixes and delimiters as the answer carries them: URL-encoded (encoding-type=url) as S3 does, keeping '/'. */
function encoderOf(encodingType: "url" | null): (s: string) => string {
  if (encodingType === null) return (s) => s;
  return (s) => encodeURIComponent(s).replace(/%2F/g, "/").replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `owner`: named on each object (ListObjects always, ListObjectsV2 with fetch-owner=true); a tenant owns everything in its buckets. */
function contents(entries: ListEntry[], enc: (s: string) => string, owner: XmlNode | null): { Contents: XmlNode[]; CommonPrefixes: XmlNode[] } {
  const Contents: XmlNode[] = [];
  const CommonPrefixes: XmlNode[] = [];
  for (const e of entries) {
    if (e.kind === "prefix") CommonPrefixes.push({ Prefix: enc(e.prefix) });
    else Contents.push({ Key: enc(e.key), LastModified: isoTime(e.lastModified), ETag: `"${e.etag}"`, Size: e.size, StorageClass: "STANDARD", Owner: owner });
  }
  return { Contents, CommonPrefixes };
}

const ownerOf = (ctx: RequestContext): XmlNode => ({ ID: ctx.tenant, DisplayName: ctx.tenant });

/** The page of entries a listing answers: through a snapshot, as of a time, or now. */
async function listingPage(ctx: RequestContext, bucket: string, list: Pick<ListObjectsParams, "prefix" | "delimiter" | "maxKeys" | "asOf" | "snapshot">, after: string): Promise<Merged & { asOf: AsOf | null; snapshot: string | null }> {
  const { prefix, delimiter, maxKeys, asOf, snapshot } = list;
  if (snapshot !== null) {
    const snap = await openSnapshot(ctx, snapshot);
    if (maxKeys === 0) return { entries: [], truncated: false, asOf: null, snapshot: snap.info.id };
    return { ...(await listSnapshotBucket(ctx, snap, { bucket, prefix, delimiter, after, limit: maxKeys })), asOf: null, snapshot: snap.info.id };
  }
  await requireBucket(ctx, bucket);
  // max-keys=0 asks for no entries: S3 answers an empty page that is not truncated.
  if (maxKeys === 0) return { entries: [], truncated: false, asOf, snapshot: null };
  // Settled before any shard lists, so every page is complete.
  if (asOf) await settleAll(ctx, asOf);
  return { ...(await listMerged(ctx, { bucket, prefix, delimiter, after, limit: maxKeys }, asOf)), asOf, snapshot: null };
}

function withAsOf(res: Response, a: AsOf | null, snapshot: string | null = null): Response {
  if (a) for (const [k, v] of Object.entries(asOfHeaders(a))) res.headers.set(k, v);
  if (snapshot) res.headers.set("x-edgestore-snapshot", snapshot);
  return res;
}

export async function listObjectsV2(ctx: RequestContext, bucket: string, list: ListObjectsV2Params): Promise<Response> {
  const { prefix, delimiter, maxKeys } = list;
  const enc = encoderOf(list.encodingType);
  const { entries, truncated, asOf, snapshot } = await listingPage(ctx, bucket, list, list.after);
  const last = entries[entries.length - 1];
  return withAsOf(xmlResponse("ListBucketResult", {
    Name: bucket,
    Prefix: enc(prefix),
    Delimiter: delimiter ? enc(delimiter) : null,
    MaxKeys: maxKeys,
    KeyCount: entries.length,
    IsTruncated: truncated,
    EncodingType: list.encodingType,
    ContinuationToken: list.continuationToken,
    NextContinuationToken: truncated && last ? continuationTokenOf(entryKey(last)) : null,
    StartAfter: list.startAfter !== null ? enc(list.startAfter) : null,
    ...contents(entries, enc, list.fetchOwner ? ownerOf(ctx) : null),
  }), asOf, snapshot);
}

export async function listObjectsV1(ctx: RequestContext, bucket: string, list: ListObjectsParams): Promise<Response> {
  const { prefix, delimiter, maxKeys, marker } = list;
  const enc = encoderOf(list.encodingType);
  const { entries, truncated, asOf, snapshot } = await listingPage(ctx, bucket, list, marker);
  const last = entries[entries.length - 1];
  return withAsOf(xmlResponse("ListBucketResult", {
    Name: bucket,
    Prefix: enc(prefix),
    Marker: enc(marker),
    // S3 sends NextMarker only when a delimiter is given; clients otherwise use the last key.
    NextMarker: truncated && delimiter && last ? enc(entryKey(last)) : null,
    MaxKeys: maxKeys,
    Delimiter: delimiter ? enc(delimiter) : null,
    EncodingType: list.encodingType,
    IsTruncated: truncated,
    ...contents(entries, enc, ownerOf(ctx)),
  }), asOf, snapshot);
}

const versionEntryKey = (e: VersionEntry) => (e.kind === "version" ? e.key : e.prefix);

function compareVersionEntries(a: VersionEntry, b: VersionEntry): number {
  const k = compareKeys(versionEntryKey(a), versionEntryKey(b));
  if (k !== 0 || a.kind !== "version" || b.kind !== "version") return k;
  // Newest first within a key.
  return a.uvid < b.uvid ? 1 : a.uvid > b.uvid ? -1 : 0;
}

export async function listObjectVersions(ctx: RequestContext, bucket: string, list: ListVersionsParams): Promise<Response> {
  const { prefix, delimiter, maxKeys, keyMarker, versionIdMarker, asOf } = list;
  const enc = encoderOf(list.encodingType);
  await requireBucket(ctx, bucket);
  if (asOf) await settleAll(ctx, asOf);
  // max-keys=0: an empty page, not truncated (as for the object listings).
  const pages: VersionPage[] = await Promise.all(
    Array.from({ length: maxKeys === 0 ? 0 : ctx.cfg.shardCount }, (_, s) =>
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
  const owner = ownerOf(ctx);
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
    EncodingType: list.encodingType,
    IsTruncated: truncated,
    Version,
    DeleteMarker,
    CommonPrefixes: page.flatMap((e) => (e.kind === "prefix" ? [{ Prefix: enc(e.prefix) }] : [])),
  }), asOf);
}
