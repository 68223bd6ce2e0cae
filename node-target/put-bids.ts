// A target's bids for the items a group proposes to put: honest, from what it holds, its free
// space and its queue; and a "have" carries proof of possession over the group's nonce.

import { storedRefOf, type Bid, type PutItem } from "../common/protocol.ts";
import { log } from "./log.ts";
import type { ChunkStore } from "./store.ts";

/** Assumed sustained write rate for the acceptance windows we bid; refined by measurement later. */
const WRITE_RATE_BYTES_PER_MS = 200_000;
/** Space kept free beyond what a bid would use. */
const FREE_RESERVE = 64 * 1024 * 1024;

/** What a target's links to its groups share. */
export interface TargetContext {
  store: ChunkStore;
  capacity: number;
  /** Bytes accepted but not yet written, across all groups: what a new bid must queue behind. */
  queue: { bytes: number };
}

/**
 * The bid for item `i`. Synchronous (stat, cached statfs): a put-eager's frames follow its
 * message at once and must find the decision made, and a bid is cheaper without a round
 * through the thread pool.
 */
export function bidPut(ctx: TargetContext, item: PutItem, i: number): Bid {
  if (ctx.store.has(storedRefOf(item))) return { item: i, bid: "have" };
  const free = ctx.store.freeBytes(ctx.capacity);
  if (free < item.size + FREE_RESERVE) return { item: i, bid: "refuse", reason: `only ${free} bytes free` };
  const t0 = Date.now() + Math.ceil(ctx.queue.bytes / WRITE_RATE_BYTES_PER_MS);
  return { item: i, bid: "accept", window: [t0, t0 + Math.ceil(item.size / WRITE_RATE_BYTES_PER_MS)] };
}

/**
 * A "have" bid with its proof of possession over the group's nonce (common/possession.ts),
 * which means reading the copy: one that does not read back is no copy to offer.
 */
export async function provenBid(ctx: TargetContext, bid: Bid, asked: { item: PutItem; nonce: string | undefined; group: number }): Promise<Bid> {
  const { item, nonce, group } = asked;
  if (bid.bid !== "have" || nonce === undefined) return bid;
  const proof = await ctx.store.proveHolding(storedRefOf(item), nonce).catch((e: unknown) => {
    log("warn", "could not read a copy to prove holding it", { group, chid: item.chid, error: String(e) });
    return null;
  });
  return proof === null ? { item: bid.item, bid: "refuse", reason: "its copy here could not be read" } : { ...bid, proof };
}
