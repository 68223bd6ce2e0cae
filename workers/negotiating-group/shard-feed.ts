// Hands version and upload records to their manifest shards. Per shard, at most one applyRecords call from
// this group is in flight; records committed meanwhile wait and go together in the next call,
// so concurrent PUTs on one group share one call and one shard transaction instead of paying
// one each, and an idle group's record goes at once. A call with no record (`advance`) still
// sends a batch, so that an idle group can move its cutoff forward when a shard asks; it goes
// after every record queued before it, so the cutoff it carries never overtakes one of them.

import type { ShardRecord } from "../manifest-shard/records.ts";

export type SendBatch = (shard: number, records: ShardRecord[]) => Promise<void>;

interface Waiting {
  record: ShardRecord | null;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class ShardFeed {
  private readonly send: SendBatch;
  private readonly queues = new Map<number, { busy: boolean; waiting: Waiting[] }>();

  constructor(send: SendBatch) {
    this.send = send;
  }

  /** Resolves once the shard has applied `record` (in some batch), rejects if that batch failed. */
  deliver(shard: number, record: ShardRecord): Promise<void> {
    return this.enqueue(shard, record);
  }

  /** Resolves once a batch sent after this call, with the cutoff of that moment, is applied. */
  advance(shard: number): Promise<void> {
    return this.enqueue(shard, null);
  }

  private enqueue(shard: number, record: ShardRecord | null): Promise<void> {
    let q = this.queues.get(shard);
    if (!q) this.queues.set(shard, (q = { busy: false, waiting: [] }));
    const done = new Promise<void>((resolve, reject) => q.waiting.push({ record, resolve, reject }));
    this.pump(shard);
    return done;
  }

  private pump(shard: number): void {
    const q = this.queues.get(shard)!;
    if (q.busy || q.waiting.length === 0) return;
    const batch = q.waiting.splice(0);
    q.busy = true;
    this.send(shard, batch.flatMap((w) => (w.record ? [w.record] : [])))
      .then(
        () => batch.forEach((w) => w.resolve()),
        (e: unknown) => batch.forEach((w) => w.reject(e)),
      )
      .finally(() => {
        q.busy = false;
        this.pump(shard);
      });
  }
}
