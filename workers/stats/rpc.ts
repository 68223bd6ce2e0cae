// What the traffic counter answers over RPC, and the data its calls carry. Stubs are typed by this
// interface rather than by the TrafficStats class (traffic.ts `implements` it), so shared/env.ts
// can name the binding without importing the object, which itself needs env.ts.

export interface TrafficCounts {
  requests: number;
  errors4xx: number;
  errors5xx: number;
  bytesIn: number;
  bytesOut: number;
}

export interface TrafficBucket extends TrafficCounts {
  /** Start of the bucket, ms since the epoch (a multiple of traffic.ts's BUCKET_MS). */
  at: number;
}

/** traffic.ts says what each call does. */
export interface TrafficRpc extends Rpc.DurableObjectBranded {
  record(buckets: TrafficBucket[]): Promise<void>;
  recent(ms?: number): Promise<{ bucketMs: number; buckets: TrafficBucket[]; totals: TrafficCounts }>;
}
