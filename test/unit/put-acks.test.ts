// A put transaction's acks (negotiating-group/put-acks.ts): named by the item's number in the
// transaction, so a departing target fails exactly the acks it owed, whatever payloads they are.

import { describe, expect, it } from "vitest";
import type { Member } from "../../workers/negotiating-group/member.ts";
import { PutAcks } from "../../workers/negotiating-group/put-acks.ts";

const member = (id: string) => ({ id }) as unknown as Member;
const settled = (p: Promise<void>) => p.then(() => "saved", (e: Error) => e.message);

describe("put acks", () => {
  it("fails on departure every ack the target owed, by the transaction's item numbers", async () => {
    const acks = new PutAcks();
    const a = member("a");
    const b = member("b");
    // A negotiated round's proposal numbers items 0, 1 while they are payloads 3 and 5 of the put.
    acks.expect(a, 0);
    acks.expect(a, 1);
    acks.expect(b, 0);
    acks.onMessage(a, { t: "saved", txn: 1, items: [1] });
    acks.onGone(a);
    acks.onMessage(b, { t: "saved", txn: 1, item: 0 });
    expect(await settled(acks.saved(a, 0))).toBe("target a disconnected");
    expect(await settled(acks.saved(a, 1))).toBe("saved");
    expect(await settled(acks.saved(b, 0))).toBe("saved");
  });

  it("fails an ack on save-failed, and only unsettled ones on failAll", async () => {
    const acks = new PutAcks();
    const a = member("a");
    for (const i of [0, 1, 2]) acks.expect(a, i);
    acks.onMessage(a, { t: "save-failed", txn: 1, item: 0, reason: "disk full" });
    acks.onMessage(a, { t: "saved", txn: 1, items: [1] });
    acks.failAll((m, i) => `timed out: ${m.id}/${i}`);
    expect(await Promise.all([0, 1, 2].map((i) => settled(acks.saved(a, i))))).toEqual(["target a: disk full", "saved", "timed out: a/2"]);
  });

  it("tells the current chain of an item that it broke", async () => {
    const acks = new PutAcks();
    const first = acks.chainBroken(4);
    acks.onMessage(member("a"), { t: "chain-broken", txn: 1, item: 4, to: "b:1", reason: "refused" });
    await expect(first).resolves.toBeUndefined();
  });
});
