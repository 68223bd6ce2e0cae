// What every transaction of a group over its members' sockets shares: routing replies to a
// transaction by its id, a promise settled from outside, timeouts, and sending an item's
// payload frames under each member's credit.

import { FRAME_PUT_DATA, framesOf, type FrameHeader, type ToGroup } from "../../common/protocol.ts";
import type { Deadlines } from "./deadlines.ts";
import type { Member } from "./member.ts";

/** What a transaction needs from its group: a way to route replies to it by transaction id, and its timeouts. */
export interface TxnHost {
  open(handler: TxnHandler): number;
  close(txn: number): void;
  readonly deadlines: Deadlines;
}

export interface TxnHandler {
  onMessage(from: Member, msg: ToGroup): void;
  onFrame(from: Member, header: FrameHeader, payload: Uint8Array): void;
  onGone(member: Member): void;
}

/** A member that timed out is skipped by reads and client writes this long, or until it speaks. */
export const SLOW_MS = 30_000;

export { deferred, type Deferred } from "../../common/deferred.ts";

/** Send one item's frames to several targets; each target's send completes independently. */
export function sendPayload(txn: number, item: number, bytes: Uint8Array, targets: readonly Member[]): Map<Member, Promise<void>> {
  const frames = [...framesOf(FRAME_PUT_DATA, txn, item, bytes)];
  const out = new Map<Member, Promise<void>>();
  for (const t of targets) {
    out.set(
      t,
      (async () => {
        for (const f of frames) await t.sendFrame(f);
      })(),
    );
  }
  return out;
}

/** How long a target down a chain may take to save an item after the head had all of it, before the group sends it directly. */
const CHAIN_ACK_MS = 5_000;

/**
 * Chain replication (seed 004): the frames go once, to the head, which passes them down the
 * chain (node-target/peer-link.ts). Every target of the chain has been told its part (a
 * select-put or put-eager with the chain's id) before this is called. A target further down
 * that has not saved the item once the chain broke, or a while (fallbackMs) after the head had
 * every frame, gets them from the group directly (fan-out); it keeps each frame once, so a
 * resend after a partial delivery is safe.
 */
export interface ChainedDelivery {
  txn: number;
  item: number;
  bytes: Uint8Array;
  chain: readonly Member[];
  ack: (m: Member) => Promise<void>;
  /** Resolves when a target of the chain says it could not pass the item on. */
  broken: Promise<void>;
  deadlines: Deadlines;
  /**
   * How long, once the head had every frame, those down the chain may take to save the item
   * before the group sends it directly: CHAIN_ACK_MS unless the caller gives up sooner itself.
   */
  fallbackMs?: number;
}

export async function deliverChained(d: ChainedDelivery): Promise<PromiseSettledResult<unknown>[]> {
  const { txn, item, bytes, ack } = d;
  const [head, ...down] = d.chain;
  const sentHead = sendPayload(txn, item, bytes, [head!]).get(head!)!;
  let late: (() => void) | null = null;
  const fallBack = Promise.race([d.broken, sentHead.then(() => new Promise<void>((r) => (late = d.deadlines.after(d.fallbackMs ?? CHAIN_ACK_MS, r))), () => undefined)]);
  try {
    return await Promise.allSettled([
      Promise.all([sentHead, ack(head!)]),
      ...down.map(async (m) => {
        const saved = ack(m);
        const viaChain = await Promise.race([saved.then(() => true), fallBack.then(() => false)]);
        if (viaChain) return;
        console.log(JSON.stringify({ msg: "chain fell back to sending directly", txn, item, target: m.id }));
        await Promise.all([sendPayload(txn, item, bytes, [m]).get(m)!, saved]);
      }),
    ]);
  } finally {
    // Saved down the whole chain: the lateness deadline has nothing left to do.
    (late as (() => void) | null)?.();
  }
}
