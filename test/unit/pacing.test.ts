import { describe, expect, it } from "vitest";
import { RepairPacer } from "../../workers/negotiating-group/pacing.ts";

describe("repair pacing by client latency", () => {
  it("goes at full speed while no client is active", () => {
    const p = new RepairPacer();
    p.begin();
    for (let i = 0; i < 10; i++) p.adapt(10_000 + i * 100);
    expect(p.batch).toBe(64);
    expect(p.pauseMs).toBe(0);
  });

  it("gives way while clients see more than their baseline, and speeds up again when they do not", () => {
    const p = new RepairPacer();
    let now = 0;
    for (let i = 0; i < 50; i++) p.client(4, (now += 10));
    p.begin();
    // Clients slow to 20 ms during the repair: batches shrink to one, pauses grow.
    for (let i = 0; i < 10; i++) {
      p.client(20, (now += 10));
      p.adapt(now);
    }
    expect(p.batch).toBe(1);
    expect(p.pauseMs).toBeGreaterThanOrEqual(320);
    const slowPause = p.pauseMs;
    // Back to their usual 4 ms: the repair takes more again.
    for (let i = 0; i < 20; i++) {
      p.client(4, (now += 10));
      p.adapt(now);
    }
    expect(p.batch).toBeGreaterThan(16);
    expect(p.pauseMs).toBeLessThan(slowPause);
  });

  it("keeps the baseline from what clients saw without a repair", () => {
    const p = new RepairPacer();
    let now = 0;
    for (let i = 0; i < 50; i++) p.client(4, (now += 10));
    p.begin();
    // A repair that makes clients slow must not teach the pacer that slow is normal.
    for (let i = 0; i < 200; i++) p.client(40, (now += 10));
    p.adapt(now);
    expect(p.batch).toBeLessThan(16);
  });
});
