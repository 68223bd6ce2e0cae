// What a group keeps of its repair work in storage (workers/negotiating-group/repair-queue.ts,
// rereplicate.ts: SweepRequests), in workerd against real Durable Object SQLite: queued repairs
// survive the object, come due in order, wait longer after each failure and leave when done;
// sweep requests keep the earliest time per member and are taken once. End to end, on real
// targets: test/integration/s3-cluster.test.ts (integrity) and rereplicate.test.ts.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Chid, TargetId } from "../../common/ids.ts";
import type { StoredRef } from "../../common/protocol.ts";
import { RepairQueue } from "../../workers/negotiating-group/repair-queue.ts";
import { SweepRequests } from "../../workers/negotiating-group/rereplicate.ts";

let n = 0;
const group = () => env.GROUP.get(env.GROUP.idFromName(`group-0-repairs-${n++}`));
const ref = (c: string): StoredRef => ({ kind: "chunk", chid: c.repeat(64) as Chid });

describe("the repair queue", () => {
  it("keeps queued repairs in storage, once each, earliest first", async () => {
    const g = group();
    await runInDurableObject(g, (_o, state) => {
      const q = new RepairQueue(state.storage.sql);
      q.add(ref("b"), "scrub", 2_000);
      q.add(ref("a"), "read", 1_000);
      q.add(ref("a"), "read again", 500);
      expect(q.size).toBe(2);
      expect(q.due(1_500, 10).map((r) => [r.ref.chid[0], r.why])).toEqual([["a", "read"]]);
      expect(q.nextDue()).toBe(1_000);
    });
    // Another instance over the same storage (an evicted object's next life) finds them.
    await runInDurableObject(g, (_o, state) => {
      const q = new RepairQueue(state.storage.sql);
      expect(q.due(5_000, 10).map((r) => r.ref)).toEqual([ref("a"), ref("b")]);
    });
  });

  it("waits twice as long after each failure, and forgets a repair once done", async () => {
    await runInDurableObject(group(), (_o, state) => {
      const q = new RepairQueue(state.storage.sql);
      q.add(ref("c"), "read", 0);
      q.failed(ref("c"), 10_000);
      expect(q.nextDue()).toBe(11_000);
      q.failed(ref("c"), 20_000);
      expect(q.nextDue()).toBe(22_000);
      expect(q.due(22_000, 1)[0]?.errors).toBe(2);
      for (let i = 0; i < 30; i++) q.failed(ref("c"), 0);
      // Never more than ten minutes apart.
      expect(q.nextDue()).toBe(600_000);
      q.done(ref("c"));
      expect(q.size).toBe(0);
      expect(q.nextDue()).toBeNull();
    });
  });
});

describe("sweep requests", () => {
  it("keep the earliest time per member, and are taken once when due", async () => {
    await runInDurableObject(group(), (_o, state) => {
      const s = new SweepRequests(state.storage.sql);
      const [T1, T2] = ["t1" as TargetId, "t2" as TargetId];
      s.request(T1, 5_000, "drain incomplete");
      s.request(T1, 1_000, "draining");
      s.request(T2, 9_000, "returned non-member");
      expect(s.nextDue()).toBe(1_000);
      expect(s.take(2_000)).toEqual([{ id: T1, why: "draining" }]);
      expect(s.take(2_000)).toEqual([]);
      expect(s.nextDue()).toBe(9_000);
    });
  });
});
