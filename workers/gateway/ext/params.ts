// The extension API's query parameters, parsed once as the router builds the endpoint (the S3
// operations' are in ../params.ts): a namespace query's filters and page, how long a snapshot
// commit waits, which stored chunk is asked for.

import { isUvid } from "../../../common/ids.ts";
import type { Mask, Qualifier, SelectCursor, Selection } from "../../manifest-shard/select.ts";
import { asOfParam, parseTime, waitMsOf, type AsOf } from "../params.ts";
import { bad } from "./json.ts";
import { parseMask, parseQualifier } from "./selection.ts";

/** A query's page limit: a larger max-keys is taken as this. */
export const QUERY_MAX_KEYS = 1000;
/** How long a commit waits for every group to promise past the snapshot's time, unless told. */
export const COMMIT_WAIT_DEFAULT_MS = 10_000;

/** GET /_query: what selects versions (the tenant is the caller's), one page of them, and as of when. */
export interface QueryParams {
  selection: Omit<Selection, "tenant" | "bound">;
  limit: number;
  /** Where the page starts: after this cursor (from the continuation token). */
  after: SelectCursor | null;
  asOf: AsOf | null;
}

function wholeNumber(q: URLSearchParams, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw bad(name, "must be a whole number");
  return Number(raw);
}

/** A query's continuation token: opaque to clients, base64url of the last entry's place. */
export function queryTokenOf(c: SelectCursor): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify([c.bucket, c.key, c.uvid])))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function cursorOfToken(t: string): SelectCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0))));
  } catch {
    throw bad("continuation-token", "not a token this API gave");
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw bad("continuation-token", "not a token this API gave");
  const [bucket, key, uvid] = parsed as unknown[];
  if (typeof bucket !== "string" || typeof key !== "string" || !(uvid === null || (typeof uvid === "string" && isUvid(uvid)))) throw bad("continuation-token", "not a token this API gave");
  return { bucket, key, uvid };
}

export function queryParams(q: URLSearchParams, headers: Headers): QueryParams {
  const qualifiers: Qualifier[] = [];
  for (const [k, v] of q) {
    if (k === "content-type") qualifiers.push(parseQualifier({ name: k, value: v }));
    else if (k.startsWith("meta-")) qualifiers.push(parseQualifier({ name: `x-amz-meta-${k.slice(5)}`, value: v }));
    else if (k.startsWith("tag-")) qualifiers.push(parseQualifier({ name: `tag:${k.slice(4)}`, value: v }));
  }
  const which = q.get("versions") ?? "all";
  if (which !== "all" && which !== "current") throw bad("versions", "all (every version) or current (each key's current version)");
  const created = (name: string) => {
    const raw = q.get(name);
    return raw === null ? undefined : parseTime(raw, name);
  };
  const mask: Mask = parseMask(`${q.get("bucket") ?? "*"}/${q.get("name") ?? "*"}`, "bucket");
  const limit = Math.min(wholeNumber(q, "max-keys") ?? QUERY_MAX_KEYS, QUERY_MAX_KEYS);
  if (limit === 0) throw bad("max-keys", "must be at least 1");
  const token = q.get("continuation-token");
  return {
    selection: {
      masks: [mask],
      keyPrefix: q.get("prefix") ?? undefined,
      qualifiers,
      which: which === "all" ? "versions" : "current",
      createdFrom: created("created-after"),
      createdBefore: created("created-before"),
      creator: q.get("creator") ?? undefined,
      sizeMin: wholeNumber(q, "min-size"),
      sizeMax: wholeNumber(q, "max-size"),
    },
    limit,
    after: token === null ? null : cursorOfToken(token),
    asOf: asOfParam(q, headers),
  };
}

/** POST /_snapshots/{id}/commit?wait=: how long to wait for the groups, in whole milliseconds. */
export function commitWaitOf(q: URLSearchParams): number {
  return waitMsOf(q.get("wait"), "wait", COMMIT_WAIT_DEFAULT_MS);
}

/** GET ...?chunk=N: which of a version's stored chunks (checked against its count where the version is read). */
export function chunkIndexOf(q: URLSearchParams): number {
  const raw = q.get("chunk") ?? "";
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw bad("chunk", "a whole number: the index of one of the version's chunks");
  return Number(raw);
}
