// The initiator's cutoff (seed 000): with each batch to a shard the group promises "no record
// earlier than C will ever come from me to you". That holds only if C stays below every stamp
// that could still reach that shard: stamps taken but not yet in the outbox (a write between
// its stamp and its commit, which may be waiting for a client's last chunks), and records in
// the outbox the shard has not applied (queued behind a batch in flight, or left by a failed
// one for the alarm to retry). A stamp that will never be used is let go explicitly.

import type { Uvid } from "../../common/ids.ts";

export class CutoffTracker {
  /** Stamped, not yet committed to the outbox: could go to any shard. */
  private readonly stamped = new Set<Uvid>();
  /** In the outbox for a shard, not yet applied by it. */
  private readonly unapplied = new Map<number, Set<Uvid>>();

  /** A stamp was taken for a record not yet in the outbox. */
  hold(uvid: Uvid): void {
    this.stamped.add(uvid);
  }

  /** The stamp will never make a record (the write failed or was refused). */
  release(uvid: Uvid): void {
    this.stamped.delete(uvid);
  }

  /** The record is in the outbox for `shard` (its stamp, if held, moves with it). */
  queued(shard: number, uvid: Uvid): void {
    this.stamped.delete(uvid);
    let s = this.unapplied.get(shard);
    if (!s) this.unapplied.set(shard, (s = new Set()));
    s.add(uvid);
  }

  /** The shard applied these. */
  applied(shard: number, uvids: readonly Uvid[]): void {
    const s = this.unapplied.get(shard);
    if (!s) return;
    for (const u of uvids) s.delete(u);
  }

  /**
   * The cutoff to send to `shard` with a batch carrying `sending`: below the clock's `floor`, every
   * held stamp and every record for that shard not in this batch.
   */
  cutoffFor(shard: number, floor: Uvid, sending: ReadonlySet<Uvid>): Uvid {
    let low = floor;
    for (const u of this.stamped) if (u < low) low = u;
    for (const u of this.unapplied.get(shard) ?? []) if (u < low && !sending.has(u)) low = u;
    return low;
  }
}
