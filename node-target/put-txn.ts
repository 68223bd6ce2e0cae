// A put transaction as a target holds it while the group's frames arrive: the items it was
// selected for, each item's write and the frames that came ahead of their turn.

import type { FrameHeader, PutItem } from "../common/protocol.ts";
import type { PendingWrite } from "./store.ts";
import type { WsClient as WebSocket } from "./ws-client.ts";

/** One item being received: its write, and which of its frames are in. */
export interface Inbound {
  write: PendingWrite;
  /**
   * Offset of the next frame to write. A frame below it is one kept already (the group resends
   * a whole item to a target whose chain broke); one above it came early and waits in `ahead`.
   */
  next: number;
  ahead: Map<number, Pending>;
  /** Chain replication: peers to pass each frame on to (set by select-put), and the chain's id. */
  forward: string[];
  chain: string | null;
}

/** A frame waiting its turn, with what it owes: credit to its socket, the pass down the chain. */
export interface Pending {
  header: FrameHeader;
  payload: Uint8Array;
  credit: { ws: WebSocket; bytes: number } | null;
  passed: Promise<void>;
}

export interface PutTxn {
  /** The connection it was proposed on: its acks go there, never to a later connection (whose txn ids are new). */
  ws: WebSocket;
  /** An eager put ends when its last write does: the group sends no release for it. */
  eager: boolean;
  items: PutItem[];
  writes: Map<number, Inbound>;
  /** Per-item promise chain: frames of one item are written in offset order. */
  order: Map<number, Promise<void>>;
  /** Bids accepted and items selected (metrics: the difference is bids lost). */
  accepted: number;
  selected: number;
  /** A repair's copy (the group said so), counted apart from client writes. */
  repair: boolean;
}

