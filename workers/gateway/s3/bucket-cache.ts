// Bucket lookups, remembered for a moment in each isolate. Every request checks its bucket (and
// reads its versioning state), and each check was a call to the tenant's directory object: on
// the local cluster a sixth of a small PUT's work on the Worker's thread, in production a round
// trip to wherever that object lives. Only buckets that exist are remembered, so a bucket just
// created is found at once everywhere; changes made through this isolate forget its entry at
// once; other isolates see a deletion or a versioning change within BUCKET_CACHE_MS, inside the
// time S3 itself asks clients to allow for a versioning change to propagate.
//
// A lookup under way when its bucket is forgotten may have read the state from before the
// change: it answers its own request, but is not remembered.

import type { BucketInfo } from "../../tenant/rpc.ts";
import { tenantStub, type Env } from "../../shared/env.ts";

const BUCKET_CACHE_MS = 1_000;
const CACHE_MAX = 4_096;

const known = new Map<string, { info: BucketInfo; until: number }>();

/** Counts lookups and forgets, so each can tell which came first. */
let clock = 0;
/** When each key was last forgotten, oldest first; at most CACHE_MAX keys. */
const forgotten = new Map<string, number>();
/** The latest forget no longer in `forgotten`: a key not found there may have been forgotten this late. */
let forgottenFloor = 0;

/** Takes only what a lookup needs, so context.ts (whose requireBucket calls this) is not imported back. */
export async function bucketInfo(ctx: { env: Env; tenant: string }, bucket: string): Promise<BucketInfo | null> {
  const key = `${ctx.tenant}/${bucket}`;
  const hit = known.get(key);
  if (hit && hit.until > Date.now()) return hit.info;
  const started = ++clock;
  const info = await tenantStub(ctx.env, ctx.tenant).getBucket(bucket);
  if ((forgotten.get(key) ?? forgottenFloor) > started) return info;
  known.delete(key);
  if (info) {
    known.set(key, { info, until: Date.now() + BUCKET_CACHE_MS });
    if (known.size > CACHE_MAX) known.delete(known.keys().next().value!);
  }
  return info;
}

/** This isolate changed the bucket (created, deleted, versioning): the next check asks again. */
export function forgetBucket(tenant: string, bucket: string): void {
  const key = `${tenant}/${bucket}`;
  known.delete(key);
  forgotten.delete(key);
  forgotten.set(key, ++clock);
  if (forgotten.size > CACHE_MAX) {
    const [oldest, at] = forgotten.entries().next().value!;
    forgotten.delete(oldest);
    forgottenFloor = at;
  }
}
