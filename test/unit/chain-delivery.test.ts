// A chained delivery (negotiating-group/txn.ts deliverChained) sends a target down the chain
// its frames directly once it has stayed silent fallbackMs after the head had them: an eager
// round gives a fallback shorter than its own deadline, or the fallback would never come.

import { describe, expect, it } from "vitest";
import { deferred } from "../../common/deferred.ts";
import { Deadlines } from "../../workers/negotiating-group/deadlines.ts";
import type { Member } from "../../workers/negotiating-group/member.ts";
import { deliverChained } from "../../workers/negotiating-group/txn.ts";

function fakeMember(id: string): Member & { frames: number } {
  const m = { id, frames: 0, sendFrame: async () => void m.frames++ };
  return m as unknown as Member & { frames: number };
}

describe("chained delivery", () => {
  it("sends directly to a silent target down the chain after fallbackMs", async () => {
    const head = fakeMember("head");
    const tail = fakeMember("tail");
    const tailSaved = deferred<void>();
    const t0 = Date.now();
    const done = deliverChained({
      txn: 1,
      item: 0,
      bytes: new Uint8Array(10),
      chain: [head, tail],
      ack: (m) => (m === head ? Promise.resolve() : tailSaved.promise),
      broken: new Promise(() => {}),
      deadlines: new Deadlines(),
      fallbackMs: 30,
    });
    await new Promise((r) => setTimeout(r, 80));
    expect(head.frames).toBe(1);
    expect(tail.frames).toBe(1);
    tailSaved.resolve();
    const results = await done;
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled"]);
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});
