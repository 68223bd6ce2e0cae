// What this isolate served, counted in memory per 10-second bucket and sent to the cluster's
// TrafficStats object every FLUSH_MS while there is traffic, in the background of a request
// (waitUntil): the status page's charts cost no request a round trip. Counts of an isolate
// that is evicted before its flush are lost; that is the price of not writing per request.

import type { TrafficBucket } from "../stats/rpc.ts";
import { BUCKET_MS } from "../stats/traffic.ts";
import { trafficStub, type Env } from "../shared/env.ts";

const FLUSH_MS = 5_000;

const pending = new Map<number, TrafficBucket>();
let scheduled = false;

function lengthOf(h: Headers): number {
  const n = Number(h.get("content-length") ?? 0);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function add(b: TrafficBucket): void {
  const y = pending.get(b.at);
  pending.set(b.at, y ? { at: b.at, requests: b.requests + y.requests, errors4xx: b.errors4xx + y.errors4xx, errors5xx: b.errors5xx + y.errors5xx, bytesIn: b.bytesIn + y.bytesIn, bytesOut: b.bytesOut + y.bytesOut } : b);
}

/**
 * Count one answered request. The first count after a flush schedules the next one FLUSH_MS
 * later, in the background of that request (waitUntil keeps it alive that long): counts are
 * at most that stale, and an isolate makes at most one call per FLUSH_MS.
 */
export function countRequest(env: Env, req: Request, res: Response, waitUntil: (p: Promise<unknown>) => void): void {
  const now = Date.now();
  add({
    at: now - (now % BUCKET_MS),
    requests: 1,
    errors4xx: res.status >= 400 && res.status < 500 ? 1 : 0,
    errors5xx: res.status >= 500 ? 1 : 0,
    bytesIn: lengthOf(req.headers),
    bytesOut: lengthOf(res.headers),
  });
  if (scheduled) return;
  scheduled = true;
  waitUntil(
    new Promise((r) => setTimeout(r, FLUSH_MS)).then(async () => {
      scheduled = false;
      const batch = [...pending.values()];
      pending.clear();
      // A failed send keeps its counts for the next flush: it loses nothing but time.
      await trafficStub(env).record(batch).catch(() => batch.forEach(add));
    }),
  );
}
