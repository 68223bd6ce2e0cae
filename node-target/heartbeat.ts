// What a heartbeat says (seed 004: register with a report, then heartbeat with increments). The
// register message carries the full report; each heartbeat after it on the same connection
// carries only what changed since the one before: the counters when they moved, the groups the
// target started or stopped holding data for. Nothing changed: no heartbeat at all, except one
// every KEEPALIVE_MS to refresh the cluster's "last seen" — liveness itself is the open socket
// (pinged without waking the Cluster object), so an idle cluster's object stays asleep.
// A WebSocket delivers in order and a reconnect starts with a new report, so increments need
// no sequence numbers.

import type { HeartbeatMsg } from "../common/protocol.ts";

export const KEEPALIVE_MS = 30_000;
/** Free space moves with whatever else uses the disk: only a change this large is news. */
const FREE_STEP = 16 * 1024 * 1024;

export interface TargetFigures {
  free: number;
  chunks: number;
  bytes: number;
  queue: number;
  held: readonly number[];
}

export class Heartbeats {
  private last: (Omit<TargetFigures, "held"> & { held: Set<number>; at: number }) | null = null;

  /** The full report just went out (register): increments start from it. */
  reported(figures: TargetFigures, now: number): void {
    this.last = { ...figures, held: new Set(figures.held), at: now };
  }

  /** The heartbeat to send now, or null when there is nothing new and the keepalive is not due. */
  next(figures: TargetFigures, now: number): HeartbeatMsg | null {
    const last = this.last;
    if (last === null) return null;
    const held = new Set(figures.held);
    const added = [...held].filter((g) => !last.held.has(g)).sort((a, b) => a - b);
    const dropped = [...last.held].filter((g) => !held.has(g)).sort((a, b) => a - b);
    const moved = figures.chunks !== last.chunks || figures.bytes !== last.bytes || Math.abs(figures.free - last.free) >= FREE_STEP || figures.queue !== last.queue;
    if (!moved && added.length === 0 && dropped.length === 0 && now - last.at < KEEPALIVE_MS) return null;
    this.last = { ...figures, held, at: now };
    return {
      t: "heartbeat",
      free: figures.free,
      chunks: figures.chunks,
      bytes: figures.bytes,
      queue: figures.queue,
      ...(added.length > 0 || dropped.length > 0 ? { held: { added, dropped } } : {}),
    };
  }
}
