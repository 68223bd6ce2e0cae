// Point-in-time reads (docs/snapshots.md): ListObjects (v1, v2), ListObjectVersions and
// GetObject/HeadObject answer "as of time T" when asked with `as-of` (query) or
// `x-edgestore-as-of` (header). The answer is only given once it is complete and final: every
// group whose records it draws on has promised it will never send a version stamped at or before
// T. Until then it waits, up to `as-of-wait` / `x-edgestore-as-of-wait` milliseconds, and then
// answers 503 PointInTimeIncomplete, naming the groups it still waits for: never a partial answer.

import { formatUvid, type Uvid } from "../../../common/ids.ts";
import { AS_OF_WAIT_MAX_MS } from "../../manifest-shard/shard.ts";
import { shardStub } from "../../shared/env.ts";
import type { NamePlace, RequestContext } from "./context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { isoTime } from "./xml.ts";

/** Enough for idle groups to answer a shard's request to advance (one round trip each). */
export const AS_OF_WAIT_DEFAULT_MS = 2_000;

export interface AsOf {
  /** T, ms since the epoch. */
  ms: number;
  /** The first UVID after T: every version stamped at or before T sorts below it. */
  bound: Uvid;
  waitMs: number;
}

function param(ctx: RequestContext, query: string, header: string): string | null {
  return ctx.url.searchParams.get(query) ?? ctx.req.headers.get(header);
}

/** An ISO 8601 time or milliseconds since the epoch, as ms. */
export function parseTime(raw: string, name: string): number {
  const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new S3Error("InvalidArgument", `${name} must be an ISO 8601 time or milliseconds since the epoch`, { ArgumentName: name, ArgumentValue: raw });
  }
  return ms;
}

/** A point in time with the wait the caller allows for it. */
export function asOfAt(ms: number, waitMs: number): AsOf {
  return { ms, bound: formatUvid({ ms: ms + 1, seq: 0, group: 0 }), waitMs };
}

/** The request's point in time, or null for an ordinary (current) read. */
export function asOfOf(ctx: RequestContext): AsOf | null {
  const raw = param(ctx, "as-of", "x-edgestore-as-of");
  if (raw === null) return null;
  const ms = parseTime(raw, "as-of");
  const waitRaw = param(ctx, "as-of-wait", "x-edgestore-as-of-wait");
  let waitMs = AS_OF_WAIT_DEFAULT_MS;
  if (waitRaw !== null) {
    waitMs = Number(waitRaw);
    if (!/^\d+$/.test(waitRaw) || waitMs > AS_OF_WAIT_MAX_MS) {
      throw new S3Error("InvalidArgument", `as-of-wait must be whole milliseconds, at most ${AS_OF_WAIT_MAX_MS}`, { ArgumentName: "as-of-wait", ArgumentValue: waitRaw });
    }
  }
  return asOfAt(ms, waitMs);
}

/** Echoed on every point-in-time answer, so a client sees which time it got. */
export function asOfHeaders(a: AsOf): Record<string, string> {
  return { "x-edgestore-as-of": isoTime(a.ms) };
}

function incomplete(a: AsOf, lagging: number[]): never {
  throw new S3Error(
    "PointInTimeIncomplete",
    `The answer as of ${isoTime(a.ms)} is not complete yet: group(s) ${lagging.join(", ")} have not promised past that time. Retry later, or wait longer with as-of-wait.`,
    { AsOf: isoTime(a.ms), WaitingFor: lagging.map((g) => `group ${g}`).join(", ") },
    { "retry-after": "1", ...asOfHeaders(a) },
  );
}

/** Every shard complete through T (for a listing), or PointInTimeIncomplete. */
export async function settleAll(ctx: RequestContext, a: AsOf): Promise<void> {
  const answers = await Promise.all(Array.from({ length: ctx.cfg.shardCount }, (_, s) => shardStub(ctx.env, s).settle(s, a.bound, a.waitMs)));
  const lagging = [...new Set(answers.flatMap((x) => x.lagging))].sort((x, y) => x - y);
  if (lagging.length > 0) incomplete(a, lagging);
}

/** One name complete through T: only its own group's promise matters. */
export async function settleName(ctx: RequestContext, place: NamePlace, a: AsOf): Promise<void> {
  const { lagging } = await shardStub(ctx.env, place.shard).settle(place.shard, a.bound, a.waitMs, place.group);
  if (lagging.length > 0) incomplete(a, lagging);
}
