import { describe, expect, it } from "vitest";
import { Heartbeats, KEEPALIVE_MS } from "../../node-target/heartbeat.ts";

const figures = (over: Partial<{ free: number; chunks: number; bytes: number; queue: number; held: number[] }> = {}) => ({
  free: 10 * 2 ** 30,
  chunks: 100,
  bytes: 12_800_000,
  queue: 0,
  held: [1, 4],
  ...over,
});

describe("heartbeats with increments", () => {
  it("sends nothing before the report, and nothing while nothing changed", () => {
    const h = new Heartbeats();
    expect(h.next(figures(), 0)).toBeNull();
    h.reported(figures(), 0);
    expect(h.next(figures(), 2_000)).toBeNull();
    // Free space drifting by a little is not news.
    expect(h.next(figures({ free: 10 * 2 ** 30 - 2 ** 20 }), 4_000)).toBeNull();
  });

  it("carries the counters when they moved, and the held groups only as added and dropped", () => {
    const h = new Heartbeats();
    h.reported(figures(), 0);
    expect(h.next(figures({ chunks: 101, bytes: 12_900_000 }), 2_000)).toEqual({ t: "heartbeat", free: 10 * 2 ** 30, chunks: 101, bytes: 12_900_000, queue: 0 });
    expect(h.next(figures({ chunks: 101, bytes: 12_900_000, held: [4, 6, 2] }), 4_000)).toMatchObject({ held: { added: [2, 6], dropped: [1] } });
    // Each increment is on the one before.
    expect(h.next(figures({ chunks: 101, bytes: 12_900_000, held: [2, 4, 6] }), 6_000)).toBeNull();
  });

  it("still beats once per keepalive so the cluster's last-seen stays fresh", () => {
    const h = new Heartbeats();
    h.reported(figures(), 0);
    expect(h.next(figures(), KEEPALIVE_MS - 1)).toBeNull();
    const keepalive = h.next(figures(), KEEPALIVE_MS);
    expect(keepalive).toEqual({ t: "heartbeat", free: 10 * 2 ** 30, chunks: 100, bytes: 12_800_000, queue: 0 });
    expect(h.next(figures(), KEEPALIVE_MS + 2_000)).toBeNull();
  });

  it("starts again from a new report after a reconnect", () => {
    const h = new Heartbeats();
    h.reported(figures(), 0);
    h.reported(figures({ held: [7] }), 1_000);
    expect(h.next(figures({ held: [7, 8] }), 3_000)).toMatchObject({ held: { added: [8], dropped: [] } });
  });
});
