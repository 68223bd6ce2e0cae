// What a put transaction's two rounds share (eager-put.ts places without bids, transfer.ts
// negotiates): the items, each one's progress so far, and the caller's options. Kept apart so
// neither round imports the other's module for them.

import type { Correlation } from "../../common/correlation.ts";
import type { PutItem } from "../../common/protocol.ts";
import type { Member } from "./member.ts";
import type { TxnHost } from "./txn.ts";

export interface PutPayload {
  item: PutItem;
  bytes: Uint8Array;
}

export interface ItemState {
  /** Members confirmed to hold the item, with their locations. */
  confirmed: Map<Member, string>;
  tried: Set<Member>;
}

export interface PutOptions {
  correlation: Correlation;
  /** Leave out members that timed out lately while enough others remain (client writes: true). */
  skipSlow?: boolean;
  /** Chain a chunk's copies through its targets when all of them advertise a peer address (CHAIN_REPLICATION). */
  chain?: boolean;
  /** A repair's copy: targets count its bytes as repair traffic. */
  repair?: boolean;
  /**
   * Items (by index) that no member can hold already, so they need no bids: chunks their group
   * has no record of. Version manifests up to EAGER_MAX are always such.
   */
  fresh?: ReadonlySet<number>;
}

/** One put transaction as its rounds share it: who takes part, what is put, how many copies, and who has confirmed what so far. */
export interface PutRun {
  host: TxnHost;
  members: readonly Member[];
  payloads: readonly PutPayload[];
  replicas: number;
  /** Per payload, filled in by each round. */
  state: ItemState[];
  opts: PutOptions;
}
