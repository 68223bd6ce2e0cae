// Queries over the namespace manifest (seed 000): versions by scope (bucket, prefix), name
// pattern, creation time, creator, size and metadata, optionally as of a time. Every shard
// answers its slice in parallel, in (bucket, key, newest version first) order, and the pages
// are merged. Example (the seed's): every version named *.mp3 created in 2025 by one user:
//   GET /_query?name=*.mp3&created-after=2025-01-01T00:00:00Z&created-before=2026-01-01T00:00:00Z&creator=AKID

import { compareKeys } from "../../../common/keys.ts";
import type { Selected, Selection, SelectCursor, SelectPage } from "../../manifest-shard/select.ts";
import { shardStub } from "../../shared/env.ts";
import { versionIdOf } from "../../shared/versioning.ts";
import { asOfHeaders, settleAll } from "../s3/as-of.ts";
import { queryTokenOf, type QueryParams } from "./params.ts";
import type { RequestContext } from "../s3/context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { isoTime } from "../s3/xml.ts";
import { jsonResponse } from "./json.ts";

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

export async function queryVersions(ctx: RequestContext, query: QueryParams): Promise<Response> {
  const { limit, after, asOf } = query;
  // A scoped key's query reads nothing outside its grants: no answer, count or token tells of them.
  const sel: Selection = { ...query.selection, tenant: ctx.tenant, ...(ctx.scope ? { within: ctx.scope.grants } : {}) };
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
    nextContinuationToken: next ? queryTokenOf(next) : null,
  });
  if (asOf) for (const [k, v] of Object.entries(asOfHeaders(asOf))) res.headers.set(k, v);
  return res;
}
