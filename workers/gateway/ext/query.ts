// Queries over the namespace manifest (seed 000): versions by scope (bucket, prefix), name
// pattern, creation time, creator, size and metadata, optionally as of a time. Every shard
// answers its slice in parallel, in (bucket, key, newest version first) order, and the pages
// are merged. Example (the seed's): every version named *.mp3 created in 2025 by one user:
//   GET /_query?name=*.mp3&created-after=2025-01-01T00:00:00Z&created-before=2026-01-01T00:00:00Z&creator=AKID

import { compareKeys } from "../../../common/keys.ts";
import type { Qualifier, Selected, Selection, SelectCursor, SelectPage } from "../../manifest-shard/select.ts";
import { shardStub } from "../../shared/env.ts";
import { versionIdOf } from "../../shared/versioning.ts";
import { asOfHeaders, asOfOf, parseTime, settleAll } from "../s3/as-of.ts";
import type { RequestContext } from "../s3/context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { isoTime } from "../s3/xml.ts";
import { bad, jsonResponse } from "./json.ts";
import { parseMask, parseQualifier } from "./selection.ts";

const MAX_KEYS = 1000;

function cmpCursor(a: SelectCursor, b: SelectCursor): number {
  if (a.bucket !== b.bucket) return compareKeys(a.bucket, b.bucket);
  if (a.key !== b.key) return compareKeys(a.key, b.key);
  // Newest first within a key; null ("after every version") sorts last.
  if (a.uvid === b.uvid) return 0;
  if (a.uvid === null) return 1;
  if (b.uvid === null) return -1;
  return a.uvid > b.uvid ? -1 : 1;
}

const cursorOf = (e: Selected): SelectCursor => ({ bucket: e.bucket, key: e.key, uvid: e.uvid });

function encodeToken(c: SelectCursor): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify([c.bucket, c.key, c.uvid])))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeToken(t: string): SelectCursor {
  try {
    const [bucket, key, uvid] = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)))) as [string, string, string | null];
    if (typeof bucket !== "string" || typeof key !== "string") throw new Error();
    return { bucket, key, uvid };
  } catch {
    throw bad("continuation-token", "not a token this API gave");
  }
}

function intParam(q: URLSearchParams, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw bad(name, "must be a whole number");
  return Number(raw);
}

/** Parses the query's filters from the URL. */
function selectionOf(ctx: RequestContext): Selection {
  const q = ctx.url.searchParams;
  const qualifiers: Qualifier[] = [];
  for (const [k, v] of q) {
    if (k === "content-type") qualifiers.push(parseQualifier({ name: k, value: v }));
    else if (k.startsWith("meta-")) qualifiers.push(parseQualifier({ name: `x-amz-meta-${k.slice(5)}`, value: v }));
  }
  const which = q.get("versions") ?? "all";
  if (which !== "all" && which !== "current") throw bad("versions", "all (every version) or current (each key's current version)");
  const created = (name: string) => (q.get(name) === null ? undefined : parseTime(q.get(name)!, name));
  const mask = parseMask(`${q.get("bucket") ?? "*"}/${q.get("name") ?? "*"}`, "bucket");
  return {
    tenant: ctx.tenant,
    masks: [mask],
    keyPrefix: q.get("prefix") ?? undefined,
    qualifiers,
    which: which === "all" ? "versions" : "current",
    createdFrom: created("created-after"),
    createdBefore: created("created-before"),
    creator: q.get("creator") ?? undefined,
    sizeMin: intParam(q, "min-size"),
    sizeMax: intParam(q, "max-size"),
  };
}

export async function queryVersions(ctx: RequestContext): Promise<Response> {
  const q = ctx.url.searchParams;
  const sel = selectionOf(ctx);
  const limit = Math.min(intParam(q, "max-keys") ?? MAX_KEYS, MAX_KEYS);
  if (limit === 0) throw bad("max-keys", "must be at least 1");
  const token = q.get("continuation-token");
  const after = token === null ? null : decodeToken(token);
  const asOf = asOfOf(ctx);
  if (asOf) {
    await settleAll(ctx, asOf);
    sel.bound = asOf.bound;
  }
  const pages: SelectPage[] = await Promise.all(Array.from({ length: ctx.cfg.shardCount }, (_, s) => shardStub(ctx.env, s).select(sel, after, limit)));
  // A shard that stopped early (its page filled, or its scan budget ran out) may still hold
  // entries after where it stopped: only entries up to the nearest such stop are certain.
  let frontier: SelectCursor | null = null;
  for (const p of pages) if (p.next && (!frontier || cmpCursor(p.next, frontier) < 0)) frontier = p.next;
  const merged = pages
    .flatMap((p) => p.entries)
    .sort((a, b) => cmpCursor(cursorOf(a), cursorOf(b)))
    .filter((e) => !frontier || cmpCursor(cursorOf(e), frontier) <= 0);
  const entries = merged.slice(0, limit);
  const truncated = frontier !== null || merged.length > limit;
  const next = !truncated ? null : entries.length > 0 ? cursorOf(entries.at(-1)!) : frontier;
  if (truncated && next === null) throw new S3Error("InternalError", "query made no progress");
  const res = jsonResponse({
    versions: entries.map((e) => ({
      bucket: e.bucket,
      key: e.key,
      versionId: versionIdOf(e.uvid, e.isNull),
      size: e.size,
      etag: `"${e.etag}"`,
      lastModified: isoTime(e.lastModified),
      contentType: e.contentType,
      creator: e.creator,
    })),
    isTruncated: truncated,
    nextContinuationToken: next ? encodeToken(next) : null,
  });
  if (asOf) for (const [k, v] of Object.entries(asOfHeaders(asOf))) res.headers.set(k, v);
  return res;
}
