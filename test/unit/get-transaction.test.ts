// A group's get of a version manifest believes no bidder's own word for what the manifest is:
// only an offer of the CHID the group expects is taken. A rogue member offering another
// manifest, with bytes that hash to its own offer, is never selected; an honest one serves.

import { describe, expect, it } from "vitest";
import { chidOf, type Chid, type Nhid, type Uvid } from "../../common/ids.ts";
import { decodeFrame, framesOf, FRAME_GET_DATA, type ToTarget } from "../../common/protocol.ts";
import { Deadlines } from "../../workers/negotiating-group/deadlines.ts";
import { getTransaction } from "../../workers/negotiating-group/get.ts";
import type { Member } from "../../workers/negotiating-group/member.ts";
import type { TxnHandler, TxnHost } from "../../workers/negotiating-group/txn.ts";

const NHID = "a".repeat(64) as Nhid;
const UVID = "00000000000100000000000a" as Uvid;

/** A member that bids `offer` (a CHID and the bytes it would send) on every proposal. */
function member(id: string, offer: { chid: Chid; bytes: Uint8Array } | null, handler: () => TxnHandler): Member & { selected: number } {
  const m = {
    id,
    location: `/${id}`,
    gone: false,
    slow: false,
    selected: 0,
    markSlow() {},
    send(msg: ToTarget | string) {
      const cmd = (typeof msg === "string" ? JSON.parse(msg) : msg) as ToTarget;
      queueMicrotask(() => {
        const h = handler();
        if (cmd.t === "propose-get-vm") h.onMessage(m as unknown as Member, { t: "bid-get-vm", txn: cmd.txn, uvid: offer ? UVID : null, chid: offer?.chid ?? null } as never);
        if (cmd.t === "select-get" && offer) {
          m.selected++;
          for (const f of framesOf(FRAME_GET_DATA, cmd.txn, 0, offer.bytes)) {
            const { header, payload } = decodeFrame(f);
            h.onFrame(m as unknown as Member, header, payload);
          }
        }
      });
    },
  };
  return m as unknown as Member & { selected: number };
}

describe("getting a version manifest", () => {
  it("takes only an offer of the CHID the group expects, whatever hashes consistently", async () => {
    const wanted = new TextEncoder().encode("the manifest the group recorded");
    const other = new TextEncoder().encode("another version's manifest");
    const [wantedChid, otherChid] = await Promise.all([chidOf(wanted), chidOf(other)]);
    let h: TxnHandler | null = null;
    const host: TxnHost = { deadlines: new Deadlines(), open: (handler) => ((h = handler), 1), close: () => {} };
    const rogue = member("rogue", { chid: otherChid, bytes: other }, () => h!);
    const honest = member("honest", { chid: wantedChid, bytes: wanted }, () => h!);
    const request = {
      propose: (txn: number): ToTarget => ({ t: "propose-get-vm", txn, nhid: NHID, uvid: UVID }),
      refOf: (bid: { chid: Chid; uvid: Uvid | null }) => ({ kind: "vm" as const, chid: bid.chid, nhid: NHID, uvid: bid.uvid ?? UVID }),
      expect: wantedChid,
      maxBytes: 1 << 20,
    };
    const got = await getTransaction(host, [rogue, honest], request);
    expect(got?.chid).toBe(wantedChid);
    expect(new TextDecoder().decode(got!.bytes)).toBe("the manifest the group recorded");
    expect(rogue.selected).toBe(0);
    // With only the rogue, there is nothing to take.
    const alone = member("rogue-alone", { chid: otherChid, bytes: other }, () => h!);
    expect(await getTransaction(host, [alone], request)).toBeNull();
    expect(alone.selected).toBe(0);
  });
});
