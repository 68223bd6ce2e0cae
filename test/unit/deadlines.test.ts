// A group's timeouts on one runtime timer (negotiating-group/deadlines.ts): each fires once, in
// order of its time, unless cancelled first, and a deadline added later than the armed one needs
// no new timer.

import { afterEach, describe, expect, it, vi } from "vitest";
import { Deadlines } from "../../workers/negotiating-group/deadlines.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("deadlines", () => {
  it("fires each live deadline once, in order of its time, and never a cancelled one", async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    d.after(40, () => fired.push("c"));
    const cancelB = d.after(20, () => fired.push("b"));
    d.after(5, () => fired.push("a"));
    for (let i = 0; i < 100; i++) d.after(30, () => fired.push("x"))();
    cancelB();
    await sleep(80);
    expect(fired).toEqual(["a", "c"]);
  });

  it("settles like the promise given, or times out", async () => {
    const d = new Deadlines();
    await expect(d.within(Promise.resolve(7), 50, "seven")).resolves.toBe(7);
    await expect(d.within(new Promise(() => {}), 10, "nothing")).rejects.toThrow(/timed out after 10 ms waiting for nothing/);
    await expect(d.within(Promise.reject(new Error("own")), 50, "x")).rejects.toThrow("own");
  });

  it("keeps firing later deadlines after the earliest went", async () => {
    const d = new Deadlines();
    const fired: number[] = [];
    for (const ms of [30, 10, 20, 50, 40]) d.after(ms, () => fired.push(ms));
    await sleep(90);
    expect(fired).toEqual([10, 20, 30, 40, 50]);
  });

  it("lets go of cancelled deadlines: none held and no timer once nothing is live", async () => {
    const d = new Deadlines();
    const reads = Array.from({ length: 50 }, () => d.within(Promise.resolve(new Uint8Array(1024)), 30_000, "a chunk"));
    await Promise.all(reads);
    expect(d.held).toBe(0);
    expect(d.armed).toBe(false);
    const cancels = Array.from({ length: 10 }, (_, i) => d.after(1_000 + i, () => {}));
    expect(d.held).toBe(10);
    for (const c of cancels) c();
    expect(d.held).toBe(0);
    expect(d.armed).toBe(false);
  });

  it("sweeps cancelled deadlines out while one stays live, and still fires that one", async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    d.after(30, () => fired.push("live"));
    for (let i = 0; i < 1_000; i++) d.after(20_000, () => fired.push("cancelled"))();
    expect(d.held).toBeLessThan(100);
    await sleep(60);
    expect(fired).toEqual(["live"]);
    expect(d.held).toBe(0);
    expect(d.armed).toBe(false);
  });

  it("still fires a live deadline after a timed-out within() is cancelled by its own finally", async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    // Two live: the within's, which fires, then is cancelled again by the within's finally;
    // that second cancel must not count the other one out and stop its timer.
    d.after(60, () => fired.push("later"));
    await expect(d.within(new Promise(() => {}), 10, "nothing")).rejects.toThrow(/timed out/);
    d.after(5_000, () => fired.push("much later"))();
    await sleep(90);
    expect(fired).toEqual(["later"]);
  });

  describe("with a callback that throws", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("keeps the timer armed for the deadlines after it", () => {
      vi.useFakeTimers();
      const d = new Deadlines();
      const fired: number[] = [];
      d.after(10, () => {
        throw new Error("boom");
      });
      d.after(10, () => fired.push(10));
      d.after(20, () => fired.push(20));
      expect(() => vi.advanceTimersByTime(10)).toThrow("boom");
      vi.advanceTimersByTime(20);
      expect(fired).toEqual([10, 20]);
      expect(d.held).toBe(0);
      expect(d.armed).toBe(false);
    });
  });
});
