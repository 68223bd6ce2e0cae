// One connected target as a group sees it: its socket and the payload credit it has granted.
// A Durable Object gets no backpressure from WebSocket.send, so every payload frame waits here
// for credit; a slow target makes its sender wait instead of making the object's memory grow.

import type { TargetId } from "../../common/ids.ts";
import type { PeerEntry, PeersMsg, ToTarget } from "../../common/protocol.ts";

interface Waiter {
  need: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface MemberOptions {
  id: TargetId;
  location: string;
  ws: WebSocket;
  /** Payload credit it has granted so far (a fresh connection grants its window in its first message). */
  credit: number;
  /** Where other targets reach it for chain replication, and the certificate it shows them; null if it takes no part. */
  peer: PeerEntry | null;
  /** The wire protocol it speaks (TARGET_PROTOCOL_HEADER). */
  proto: number;
}

export class Member {
  readonly id: TargetId;
  readonly location: string;
  readonly ws: WebSocket;
  /** Where other targets reach it for chain replication, and the certificate it shows them; null if it takes no part. */
  readonly peer: PeerEntry | null;
  readonly proto: number;
  private credit = 0;
  /**
   * Payload bytes sent to it (or waiting for credit) that it has not yet written: its queue as
   * this group sees it, which places writes without asking for bids.
   */
  private unwritten = 0;
  private waiters: Waiter[] = [];
  private goneReason: string | null = null;
  /** Until then the member counts as slow: it timed out, so reads ask others first. */
  private slowUntil = 0;

  constructor(o: MemberOptions) {
    this.id = o.id;
    this.location = o.location;
    this.ws = o.ws;
    this.peer = o.peer;
    this.proto = o.proto;
    this.credit = o.credit;
  }

  /** Bytes this group has sent it that it has not written yet. */
  get backlog(): number {
    return this.unwritten;
  }

  get gone(): boolean {
    return this.goneReason !== null;
  }

  /** Timed out lately (a hung host keeps its socket open): skipped by reads while others can serve. */
  get slow(): boolean {
    return Date.now() < this.slowUntil;
  }

  markSlow(ms: number): void {
    this.slowUntil = Date.now() + ms;
  }

  /** It spoke: whatever made it slow is over. */
  heard(): void {
    this.slowUntil = 0;
  }

  send(msg: ToTarget | string): void {
    if (this.goneReason === null) this.ws.send(typeof msg === "string" ? msg : JSON.stringify(msg));
  }

  grant(bytes: number): void {
    this.credit += bytes;
    this.unwritten = Math.max(0, this.unwritten - bytes);
    while (this.waiters.length > 0 && this.credit >= this.waiters[0]!.need) {
      const w = this.waiters.shift()!;
      this.credit -= w.need;
      w.resolve();
    }
  }

  /** Wait until `bytes` of credit are available and take them. FIFO, so frames keep their order. */
  acquire(bytes: number): Promise<void> {
    if (this.goneReason !== null) return Promise.reject(new Error(`target ${this.id} is gone: ${this.goneReason}`));
    if (this.waiters.length === 0 && this.credit >= bytes) {
      this.credit -= bytes;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiters.push({ need: bytes, resolve, reject }));
  }

  /** Send one payload frame once credit allows. */
  async sendFrame(frame: Uint8Array): Promise<void> {
    this.unwritten += frame.length;
    await this.acquire(frame.length);
    if (this.goneReason !== null) throw new Error(`target ${this.id} is gone: ${this.goneReason}`);
    this.ws.send(frame);
  }

  markGone(reason: string): void {
    if (this.goneReason !== null) return;
    this.goneReason = reason;
    const err = new Error(`target ${this.id} is gone: ${reason}`);
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
  }
}

/** The same control message to several members, encoded once. */
export function broadcast(members: Iterable<Member>, msg: ToTarget): void {
  const text = JSON.stringify(msg);
  for (const m of members) m.send(text);
}

/** The members that take part in chain replication, as every member is told them (PeersMsg). */
export function rosterOf(members: Iterable<Member>): PeersMsg {
  const peers: PeerEntry[] = [];
  for (const m of members) if (m.peer && !m.gone) peers.push(m.peer);
  return { t: "peers", peers };
}
