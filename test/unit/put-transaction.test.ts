// The put transaction as a group runs it (negotiating-group/transfer.ts, eager-put.ts), against
// scripted targets behind real Member objects: fresh items go without bids; bids are counted as
// the protocol says (a holder only with its proof of possession, an accept only once saved);
// a failed save is replaced by the next bidder; too few takers is Unavailable, naming why.

import { describe, expect, it } from "vitest";
import { depthCorrelation } from "../../common/correlation.ts";
import { chidOf } from "../../common/ids.ts";
import { possessionProof } from "../../common/possession.ts";
import { decodeFrame, type Bid, type PutItem, type ToGroup, type ToTarget } from "../../common/protocol.ts";
import { Deadlines } from "../../workers/negotiating-group/deadlines.ts";
import { Member } from "../../workers/negotiating-group/member.ts";
import { putTransaction, type PutPayload } from "../../workers/negotiating-group/transfer.ts";
import type { TxnHandler, TxnHost } from "../../workers/negotiating-group/txn.ts";
import { unavailableReason } from "../../workers/shared/unavailable.ts";

/** How a scripted target answers a proposal of an item. */
type Answer = "accept" | "have" | "have-wrong-proof" | "have-no-proof" | { refuse: string };

interface Script {
  /** Its bid for each item proposed (by the item's CHID); accept if not named. */
  bids?: Map<string, Answer>;
  /** Answer save-failed instead of saved. */
  failSave?: boolean;
}

interface Target {
  member: Member;
  /** Every control message the group sent it, decoded. */
  told: ToTarget[];
  /** Items it saved (by CHID). */
  saved: string[];
}

class Group implements TxnHost {
  readonly deadlines = new Deadlines();
  private readonly txns = new Map<number, TxnHandler>();
  private next = 1;
  open(handler: TxnHandler): number {
    this.txns.set(this.next, handler);
    return this.next++;
  }
  close(txn: number): void {
    this.txns.delete(txn);
  }
  /** A target's reply, as Membership routes it. */
  reply(from: Member, msg: ToGroup): void {
    if ("txn" in msg) this.txns.get(msg.txn)?.onMessage(from, msg);
  }
}

/** A target behind a real Member, answering as `script` says. */
function target(group: Group, id: string, script: Script = {}): Target {
  const t: Target = { member: null as unknown as Member, told: [], saved: [] };
  // What each open put transaction holds for this target: items (by the transaction's numbers), bytes so far.
  const puts = new Map<number, { items: Map<number, PutItem>; got: Map<number, number> }>();
  const ws = {
    send(data: string | Uint8Array) {
      if (typeof data !== "string") return onFrame(data);
      const msg = JSON.parse(data) as ToTarget;
      t.told.push(msg);
      queueMicrotask(() => void onText(msg));
    },
  } as unknown as WebSocket;
  t.member = new Member({ id: id as never, location: `/zone-${id}/rack/host/disk`, ws, credit: 1 << 30, peer: null, proto: 2 });

  async function onText(msg: ToTarget): Promise<void> {
    if (msg.t === "put-eager") {
      const items = new Map<number, PutItem>();
      msg.items.forEach((it, k) => items.set(msg.at?.[k] ?? k, it));
      puts.set(msg.txn, { items, got: new Map() });
    } else if (msg.t === "propose-put") {
      const items = new Map(msg.items.map((it, i) => [i, it] as const));
      puts.set(msg.txn, { items, got: new Map() });
      const bids: Bid[] = await Promise.all(
        msg.items.map(async (it, i): Promise<Bid> => {
          const a = script.bids?.get(it.chid) ?? "accept";
          if (a === "accept") return { item: i, bid: "accept", window: [0, 1] };
          if (a === "have-no-proof") return { item: i, bid: "have" };
          if (a === "have-wrong-proof") return { item: i, bid: "have", proof: "0".repeat(64) };
          if (a === "have") return { item: i, bid: "have", proof: await possessionProof(msg.nonce!, held.get(it.chid)!) };
          return { item: i, bid: "refuse", reason: a.refuse };
        }),
      );
      group.reply(t.member, { t: "bid-put", txn: msg.txn, bids });
    }
  }

  function onFrame(frame: Uint8Array): void {
    const { header, payload } = decodeFrame(frame);
    const put = puts.get(header.txn);
    const item = put?.items.get(header.item);
    if (!put || !item) return;
    const got = (put.got.get(header.item) ?? 0) + payload.length;
    put.got.set(header.item, got);
    if (got < item.size) return;
    queueMicrotask(() => {
      if (script.failSave) return group.reply(t.member, { t: "save-failed", txn: header.txn, item: header.item, reason: "disk failed" });
      t.saved.push(item.chid);
      group.reply(t.member, { t: "saved", txn: header.txn, items: [header.item] });
    });
  }
  return t;
}

/** Bytes a target holds already, by CHID: what a truthful "have" proves over. */
const held = new Map<string, Uint8Array>();

async function payload(seed: number, size = 3000): Promise<PutPayload> {
  const bytes = new Uint8Array(size).map((_, i) => (i * 7 + seed) & 0xff);
  const chid = await chidOf(bytes);
  held.set(chid, bytes);
  return { item: { kind: "chunk", chid, size }, bytes };
}

const ids = (ms: readonly Member[]) => ms.map((m) => m.id).sort();

describe("a put transaction", () => {
  it("places items no member can hold without a bid round, on R members each, counted once saved", async () => {
    const group = new Group();
    const ts = ["a", "b", "c", "d"].map((id) => target(group, id));
    const items = [await payload(1), await payload(2)];
    const holders = await putTransaction(group, ts.map((t) => t.member), items, 3, { correlation: depthCorrelation, fresh: new Set([0, 1]) });
    expect(holders.map((h) => h.length)).toEqual([3, 3]);
    for (const t of ts) expect(t.told.some((m) => m.t === "propose-put")).toBe(false);
    // Each holder saved what it is counted for, and nobody else did.
    for (const [i, h] of holders.entries()) expect(ids(h)).toEqual(ts.filter((t) => t.saved.includes(items[i]!.item.chid)).map((t) => t.member.id).sort());
  });

  it("counts a holder only with its proof over the proposal's nonce, and tells one whose claim failed", async () => {
    const group = new Group();
    const p = await payload(3);
    const bids = (a: Answer) => ({ bids: new Map([[p.item.chid, a]]) });
    const honest = target(group, "honest", bids("have"));
    const liar = target(group, "liar", bids("have-wrong-proof"));
    const silent = target(group, "silent", bids("have-no-proof"));
    const others = ["x", "y"].map((id) => target(group, id));
    const [holders] = await putTransaction(group, [honest, liar, silent, ...others].map((t) => t.member), [p], 3, { correlation: depthCorrelation });
    expect(ids(holders!)).toEqual(["honest", "x", "y"]);
    // The proposal carried a fresh nonce; the claims that failed were answered with bad-copy.
    const proposal = honest.told.find((m) => m.t === "propose-put");
    expect(proposal && "nonce" in proposal ? proposal.nonce : "").toMatch(/^[0-9a-f]{32}$/);
    for (const t of [liar, silent]) expect(t.told.some((m) => m.t === "bad-copy" && m.ref.chid === p.item.chid)).toBe(true);
    expect(honest.told.some((m) => m.t === "bad-copy")).toBe(false);
    // Nobody was sent the bytes but the two placed.
    expect([honest, liar, silent].some((t) => t.saved.length > 0)).toBe(false);
  });

  it("replaces a selected member whose save failed with the next bidder", async () => {
    const group = new Group();
    const p = await payload(4);
    const failing = target(group, "failing", { failSave: true });
    const good = ["g1", "g2"].map((id) => target(group, id));
    const [holders] = await putTransaction(group, [failing, ...good].map((t) => t.member), [p], 2, { correlation: depthCorrelation });
    expect(ids(holders!)).toEqual(["g1", "g2"]);
  });

  it("is Unavailable when too few members take the item, naming why the others refused", async () => {
    const group = new Group();
    const p = await payload(5);
    const full = target(group, "full", { bids: new Map([[p.item.chid, { refuse: "only 0 bytes free" }]]) });
    const one = target(group, "one");
    const err = await putTransaction(group, [full, one].map((t) => t.member), [p], 2, { correlation: depthCorrelation }).catch((e: unknown) => e);
    expect(unavailableReason(err)).toMatch(/could only place 1 of 2 replicas .*target full refused: only 0 bytes free/);
  });

  it("refuses at once when fewer members are live than copies wanted", async () => {
    const group = new Group();
    const err = await putTransaction(group, [target(group, "only").member], [await payload(6)], 3, { correlation: depthCorrelation }).catch((e: unknown) => e);
    expect(unavailableReason(err)).toMatch(/only 1 of the 3 targets needed/);
  });
});
