// A group's timeouts on one runtime timer (negotiating-group/deadlines.ts): each fires once, in
// order of its time, unless cancelled first, and a deadline added later than the armed one needs
// no new timer.

import { describe, expect, it } from "vitest";
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
});
