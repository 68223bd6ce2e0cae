// Point-in-time reads (docs/snapshots.md): ListObjects (v1, v2), ListObjectVersions and
// GetObject/HeadObject answer "as of time T" when asked with `as-of` (query) or
// `x-edgestore-as-of` (header). The answer is only given once it is complete and final: every
// group whose records it draws on has promised it will never send a version stamped at or before
// T. Until then it waits, up to `as-of-wait` / `x-edgestore-as-of-wait` milliseconds, and then
// answers 503 PointInTimeIncomplete, naming the groups it still waits for: never a partial answer.

import { shardStub } from "../../shared/env.ts";
import type { NamePlace, RequestContext } from "./context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { isoTime } from "./xml.ts";
import type { AsOf } from "../params.ts";

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
