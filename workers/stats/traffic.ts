// Recent S3 traffic of the whole cluster, for the status page's charts and the cluster metrics:
// requests, client and server errors, bytes in and out, in 10-second buckets over the last hour.
// One object: each gateway isolate sends it what it counted at most every few seconds
// (gateway/traffic.ts), never once per request.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../shared/env.ts";
import type { TrafficBucket, TrafficCounts, TrafficRpc } from "./rpc.ts";

export const BUCKET_MS = 10_000;
const KEEP_MS = 3_600_000;

export const ZERO: TrafficCounts = { requests: 0, errors4xx: 0, errors5xx: 0, bytesIn: 0, bytesOut: 0 };

export class TrafficStats extends DurableObject<Env> implements TrafficRpc {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS buckets (at INTEGER PRIMARY KEY, requests INTEGER NOT NULL, errors_4xx INTEGER NOT NULL,
      errors_5xx INTEGER NOT NULL, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL)`);
    // Totals since the cluster began, for Prometheus counters (which must never go down).
    this.sql.exec(`CREATE TABLE IF NOT EXISTS totals (k INTEGER PRIMARY KEY CHECK (k = 0), requests INTEGER NOT NULL, errors_4xx INTEGER NOT NULL,
      errors_5xx INTEGER NOT NULL, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL)`);
    this.sql.exec("INSERT OR IGNORE INTO totals VALUES (0, 0, 0, 0, 0, 0)");
  }

  async record(buckets: TrafficBucket[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      for (const b of buckets) {
        const at = b.at - (b.at % BUCKET_MS);
        this.sql.exec(
          `INSERT INTO buckets VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(at) DO UPDATE SET requests = requests + ?2,
             errors_4xx = errors_4xx + ?3, errors_5xx = errors_5xx + ?4, bytes_in = bytes_in + ?5, bytes_out = bytes_out + ?6`,
          at, b.requests, b.errors4xx, b.errors5xx, b.bytesIn, b.bytesOut,
        );
        this.sql.exec(
          "UPDATE totals SET requests = requests + ?, errors_4xx = errors_4xx + ?, errors_5xx = errors_5xx + ?, bytes_in = bytes_in + ?, bytes_out = bytes_out + ?",
          b.requests, b.errors4xx, b.errors5xx, b.bytesIn, b.bytesOut,
        );
      }
      this.sql.exec("DELETE FROM buckets WHERE at < ?", Date.now() - KEEP_MS);
    });
  }

  /** The last `ms` of buckets, oldest first, with empty buckets filled in, and the totals. */
  async recent(ms: number = 600_000): Promise<{ bucketMs: number; buckets: TrafficBucket[]; totals: TrafficCounts }> {
    const now = Date.now();
    const from = now - Math.min(ms, KEEP_MS);
    const start = from - (from % BUCKET_MS);
    const rows = new Map(this.sql.exec("SELECT * FROM buckets WHERE at >= ?", start).toArray().map((r) => [Number(r.at), r]));
    const buckets: TrafficBucket[] = [];
    for (let at = start; at <= now; at += BUCKET_MS) {
      const r = rows.get(at);
      buckets.push(r ? { at, ...countsOf(r) } : { at, ...ZERO });
    }
    return { bucketMs: BUCKET_MS, buckets, totals: countsOf(this.sql.exec("SELECT * FROM totals").one()) };
  }
}

function countsOf(r: Record<string, SqlStorageValue>): TrafficCounts {
  return { requests: Number(r.requests), errors4xx: Number(r.errors_4xx), errors5xx: Number(r.errors_5xx), bytesIn: Number(r.bytes_in), bytesOut: Number(r.bytes_out) };
}
