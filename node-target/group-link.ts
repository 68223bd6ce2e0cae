// The target's side of the seed-001 transactions with one negotiating group: it bids honestly
// from what it holds, its queue and its free space, receives the payload it was selected for,
// and serves the chunks and version manifests it holds.

import type { WsClient as WebSocket } from "./ws-client.ts";
import {
  FRAME_HEADER,
  FRAME_PUT_DATA,
  PUT_WINDOW,
  GROUP_PROTOCOL_HEADER,
  decodeFrame,
  storedRefOf,
  type ChainHop,
  type CopyState,
  type PutItem,
  type StoredRef,
  type ToGroup,
  type ToTarget,
} from "../common/protocol.ts";
import { decodeToTarget } from "../common/wire-decode.ts";
import { log } from "./log.ts";
import type { Hop, PeerLink } from "./peer-link.ts";
import { metrics } from "./metrics.ts";
import { AckBatch } from "./ack-batch.ts";
import { ChainRelay } from "./chain-relay.ts";
import { bidPut, provenBid, type TargetContext } from "./put-bids.ts";
import type { Inbound, Pending, PutTxn } from "./put-txn.ts";
import { ReconnectingSocket } from "./socket.ts";

export type { TargetContext } from "./put-bids.ts";

/**
 * Credit goes back in batches of this much (or at the end of an item), not per frame: each
 * credit message is an event on the group's thread. Far below PUT_WINDOW, so the group always
 * has room for the next frame while credit is held back.
 */
const CREDIT_BATCH = 4 * 1024 * 1024;

interface GetTxn {
  ref: StoredRef;
}

/** How a group link dials its group and introduces itself, and who hears of what it learns. */
export interface GroupLinkOptions {
  /** Sent with every dial (the target's credential). */
  headers: Record<string, string>;
  /** The first message on every connection. */
  hello: ToGroup;
  /** The group has every item it needed from this draining target. */
  onDrained?: (group: number) => void;
  /** Chain replication's link to other targets; null: frames are never passed on. */
  peer?: PeerLink | null;
}

/** What the group granted a read: the transaction its frames name, and the bytes it may send. */
interface ReadGrant {
  txn: number;
  credit: number;
}

export class GroupLink {
  readonly group: number;
  private readonly ctx: TargetContext;
  private readonly socket: ReconnectingSocket;
  private puts = new Map<number, PutTxn>();
  private gets = new Map<number, GetTxn>();
  private creditOwed = 0;
  private creditSoon = false;
  /** The protocol the group answered with: from 2, credit rides on acks. */
  private groupProto = 1;
  /** Acks of saved items, sent together at the end of a turn. */
  private readonly acks = new AckBatch((ws, msg) => this.send(ws, msg));
  private readonly peer: PeerLink | null;
  /** Frames of chains this target has not been told of yet, and items it only relays. */
  private readonly chains = new ChainRelay((hop, data) => this.passOn(hop, data));

  private readonly onDrained: (group: number) => void;

  constructor(group: number, url: string, ctx: TargetContext, o: GroupLinkOptions) {
    const { headers, hello, onDrained = () => {}, peer = null } = o;
    this.group = group;
    this.peer = peer;
    this.ctx = ctx;
    this.onDrained = onDrained;
    this.socket = new ReconnectingSocket(`group-${group}`, url, headers, {
      onOpen: (ws, headers) => {
        this.groupProto = Number(headers.get(GROUP_PROTOCOL_HEADER) ?? 1) || 1;
        this.send(ws, hello);
        this.send(ws, { t: "credit", bytes: PUT_WINDOW });
      },
      onText: (ws, text) => {
        const msg = decodeToTarget(text);
        if ("malformed" in msg) {
          log("warn", "ignored a malformed message from the group", { group, why: msg.malformed });
          return;
        }
        void this.onText(ws, msg).catch((e) => log("error", "message handling failed", { group, error: String(e) }));
      },
      onBinary: (ws, data, done) => this.onBinary(ws, data, done),
      onClose: () => {
        // A new connection starts from a fresh window.
        this.creditOwed = 0;
        this.dropAll();
      },
    });
  }

  /** Whether the link to the group is up now. */
  get up(): boolean {
    return this.socket.socket !== null;
  }

  /** Tell the group a copy this target held is damaged; false if the link is down (the next pass reports it). */
  reportDamaged(ref: StoredRef, reason: string): boolean {
    const ws = this.socket.socket;
    if (!ws) return false;
    this.send(ws, { t: "damaged", ref, reason });
    return true;
  }

  close(): void {
    this.socket.close();
    this.peer?.dropRoster(this.group);
  }

  private send(ws: WebSocket, msg: ToGroup): void {
    ws.send(JSON.stringify(msg));
  }

  private async onText(ws: WebSocket, msg: ToTarget): Promise<void> {
    switch (msg.t) {
      case "propose-put": {
        const txn: PutTxn = { ws, eager: false, items: msg.items, writes: new Map(), order: new Map(), accepted: 0, selected: 0, repair: msg.repair === true };
        this.puts.set(msg.txn, txn);
        const bids = await Promise.all(msg.items.map((item, i) => provenBid(this.ctx, bidPut(this.ctx, item, i), { item, nonce: msg.nonce, group: this.group })));
        for (const b of bids) metrics.bids.inc({ bid: b.bid });
        txn.accepted = bids.filter((b) => b.bid === "accept").length;
        this.send(ws, { t: "bid-put", txn: msg.txn, bids });
        return;
      }
      case "put-eager": {
        // Decided synchronously, so the frames that follow this message always find their
        // write reserved or know it was declined. Items go by the transaction's numbers (`at`).
        const items: PutItem[] = [];
        msg.items.forEach((item, k) => (items[msg.at?.[k] ?? k] = item));
        const txn: PutTxn = { ws, eager: true, items, writes: new Map(), order: new Map(), accepted: 0, selected: 0, repair: msg.repair === true };
        this.puts.set(msg.txn, txn);
        msg.items.forEach((item, k) => {
          const i = msg.at?.[k] ?? k;
          const bid = bidPut(this.ctx, item, i);
          metrics.bids.inc({ bid: bid.bid });
          if (bid.bid === "accept") {
            // Placed without bids: the group chose this target, as a selection would.
            metrics.bidsWon.inc();
            txn.selected++;
            this.select(msg.txn, txn, i, msg.chains?.[k] ?? null);
          } else {
            const hop = msg.chains?.[k];
            if (hop) this.chains.relayOnly(msg.txn, i, hop);
            if (bid.bid === "have") this.acks.saved(ws, msg.txn, i);
            else this.send(ws, { t: "save-failed", txn: msg.txn, item: i, reason: `refused: ${bid.reason}` });
          }
        });
        if (txn.writes.size === 0) this.puts.delete(msg.txn);
        return;
      }
      case "select-put": {
        const txn = this.puts.get(msg.txn);
        if (!txn) return;
        metrics.bidsWon.inc(msg.items.length);
        txn.selected += msg.items.length;
        const hop = msg.chain != null ? { forward: msg.forward ?? [], chain: msg.chain } : null;
        for (const i of msg.items) this.select(msg.txn, txn, i, hop);
        return;
      }
      case "release": {
        await this.releasePut(msg.txn);
        this.gets.delete(msg.txn);
        return;
      }
      case "propose-get": {
        const have = await this.ctx.store.hasChunk(msg.chid);
        if (have) this.gets.set(msg.txn, { ref: { kind: "chunk", chid: msg.chid } });
        this.send(ws, { t: "bid-get", txn: msg.txn, have, size: 0, queue: this.ctx.queue.bytes });
        return;
      }
      case "propose-get-vm": {
        const vm = this.ctx.store.findVm(msg.nhid, msg.uvid);
        if (vm) this.gets.set(msg.txn, { ref: { kind: "vm", nhid: msg.nhid, uvid: vm.uvid, chid: vm.chid } });
        this.send(ws, {
          t: "bid-get-vm",
          txn: msg.txn,
          uvid: vm?.uvid ?? null,
          chid: vm?.chid ?? null,
          size: vm?.size ?? 0,
        });
        return;
      }
      case "select-get": {
        const get = this.gets.get(msg.txn);
        this.gets.delete(msg.txn);
        if (!get) {
          this.send(ws, { t: "get-failed", txn: msg.txn, reason: "no such transaction" });
          return;
        }
        await this.serve(ws, get.ref, msg);
        return;
      }
      case "fetch": {
        await this.serve(ws, msg.ref, msg);
        return;
      }
      case "fetch-many": {
        // One after the other: the group takes each item's frames in order.
        for (const [k, ref] of msg.refs.entries()) await this.serve(ws, ref, msg, k);
        return;
      }
      case "verify": {
        // One at a time, in order: a verify re-reads whole items, and a scrub-like burst should
        // not crowd out serving.
        const results: CopyState[] = [];
        for (const ref of msg.refs) {
          if (!this.ctx.store.has(ref)) results.push("missing");
          else results.push((await this.ctx.store.readVerified(ref, "check")) !== null ? "ok" : "bad");
        }
        this.send(ws, { t: "verified", txn: msg.txn, results });
        return;
      }
      case "inventory": {
        const page = this.ctx.store.inventory(msg.group, msg.groupCount, { after: msg.after, limit: Math.min(msg.limit, 4096), since: msg.since ?? null });
        this.send(ws, { t: "inventory-page", txn: msg.txn, refs: page.refs, next: page.next });
        return;
      }
      case "reclaim": {
        // Every item stops being held before the first await: see ReclaimMsg.
        const freed = msg.refs.map((ref) => this.ctx.store.remove(ref));
        const bytes = (await Promise.all(freed)).reduce((a, b) => a + b, 0);
        metrics.reclaimed.inc(bytes);
        log("info", "reclaimed", { group: this.group, items: msg.refs.length, bytes });
        this.send(ws, { t: "reclaimed", refs: msg.refs, bytes });
        return;
      }
      case "peers": {
        this.peer?.setRoster(this.group, msg.peers);
        return;
      }
      case "drained": {
        log("info", "drained", { group: this.group });
        this.onDrained(this.group);
        return;
      }
      case "bad-copy": {
        // readVerified quarantines the copy if it really is bad; a good one stays.
        const ok = (await this.ctx.store.readVerified(msg.ref, "read")) !== null;
        log(ok ? "warn" : "error", "group reported a bad copy", { group: this.group, chid: msg.ref.chid, still_good: ok });
        return;
      }
    }
  }

  /** Reserve the write of item `i` this target was selected for (`hop`: its place in the item's chain, if any), and take the frames a peer passed on ahead of the selection. */
  private select(txnId: number, txn: PutTxn, i: number, hop: ChainHop | null): void {
    const inb = this.inbound(txn.items[i]!, hop);
    txn.writes.set(i, inb);
    if (hop === null) return;
    // Frames a peer passed on before this message arrived: on down the chain now, and written here.
    for (const frame of this.chains.takeEarly(hop, txnId, i)) {
      const { header, payload } = decodeFrame(frame.data);
      void this.accept(txn, inb, { header, payload, credit: null, passed: frame.passed });
    }
  }

  /** Pass a frame on to the next of `hop` (nothing to do at a chain's end). */
  private passOn(hop: Hop, data: Buffer): Promise<void> {
    if (hop.rest.length === 0 || !this.peer) return Promise.resolve();
    return this.peer.forward(hop.rest[0]!, { chain: hop.chain, rest: hop.rest.slice(1) }, this.group, data);
  }

  /**
   * Send a stored item as GET_DATA frames of `item` (0 but in a fetch-many), or get-failed.
   * `grant` is the group's message itself: a fetch-many serves every item under one.
   */
  private async serve(ws: WebSocket, ref: StoredRef, grant: ReadGrant, item?: number): Promise<void> {
    const { txn, credit } = grant;
    const which = item === undefined ? {} : { item };
    const read = await this.ctx.store.readFrames(ref, txn, item ?? 0).catch((e: unknown) => {
      log("warn", "read failed", { group: this.group, chid: ref.chid, error: String(e) });
      return null;
    });
    if (!read) {
      this.send(ws, { t: "get-failed", txn, reason: `no copy of ${ref.kind} ${ref.chid} here`, ...which });
      return;
    }
    try {
      if (read.size > credit) {
        this.send(ws, { t: "get-failed", txn, reason: `item is ${read.size} bytes, credit ${credit}`, ...which });
        return;
      }
      // The group granted credit for the whole item, so every frame may go at once.
      await Promise.all(read.frames.map((frame) => ws.sendAsync(frame)));
      metrics.served.inc(read.size);
    } finally {
      read.release();
    }
  }

  /** A frame from the group, in a reused block: given back once the frame is written (or passed on). */
  private onBinary(ws: WebSocket, data: Buffer, done: () => void): void {
    void this.takeFrame(data, ws, null).finally(done);
  }

  /** A frame a peer passed on (chain replication), with its chain and the peers still to pass it to. */
  peerFrame(frame: Buffer, hop: Hop): Promise<void> {
    return this.takeFrame(frame, null, hop);
  }

  /** Tell the group that this target could not pass an item on to the next of its chain. */
  chainBroken(txn: number, item: number, to: string, reason: string): void {
    log("warn", "could not pass an item on down its chain", { group: this.group, txn, item, to, reason });
    const ws = this.socket.socket;
    if (ws) this.send(ws, { t: "chain-broken", txn, item, to, reason });
  }

  /**
   * A put frame from the group (`ws`) or from a peer (`hop`). Passed on down the chain first,
   * so the next copy is written while this one is; then written here in offset order, once.
   * Resolves when both are done: a peer's socket is paused while too many are under way.
   */
  private takeFrame(data: Buffer, ws: WebSocket | null, hop: Hop | null): Promise<void> {
    if (data.length < FRAME_HEADER) {
      log("warn", "ignored a frame shorter than its header", { group: this.group, bytes: data.length, from: hop ? "peer" : "group" });
      return Promise.resolve();
    }
    const { header, payload } = decodeFrame(data);
    if (header.kind !== FRAME_PUT_DATA) return Promise.resolve();
    const txn = this.puts.get(header.txn);
    let inb = txn?.writes.get(header.item);
    // A peer's frame belongs only to the chain it was sent down (not to a same-numbered txn of a later life of the group).
    if (hop && inb && inb.chain !== hop.chain) inb = undefined;
    const relay = inb ? null : this.chains.relayOf(header.txn, header.item, hop?.chain ?? null);
    // A frame goes on down the chain this target's group told it of (a write or a relay here),
    // as the group told it, whatever list a peer's record carries. A peer's frame ahead of that
    // word goes on at once only to a member of one of this target's groups (peer-roster.ts);
    // else it waits below, not passed on, for the word. The peer link dials no other address.
    const told = inb?.chain ? { chain: inb.chain, rest: inb.forward } : relay ? { chain: relay.chain, rest: relay.forward } : null;
    const early = hop !== null && told === null && (this.peer?.knows(hop.rest[0] ?? "") ?? false);
    const onward = told ?? (early ? hop : null);
    const known = told !== null || early;
    const passed = onward ? this.passOn(onward, data) : Promise.resolve();
    if (!txn || !inb) {
      if (relay && header.last) this.chains.relayed(header.txn, header.item);
      // Not selected, already released, or held here already: still return the credit, or the group's window shrinks forever.
      if (ws) this.returnCredit(ws, data.length, true);
      // From a peer, ahead of this target's select-put or put-eager: kept for it.
      else if (hop && !relay) this.chains.keepEarly(hop, { txn: header.txn, item: header.item, passedOn: known }, data);
      return passed;
    }
    return this.accept(txn, inb, { header, payload, credit: ws ? { ws, bytes: data.length } : null, passed });
  }

  /**
   * Take frame `f` of `inb` in offset order. `f` is made by the caller for this frame alone and
   * is what waits or is written: one object per frame, as the queue needed anyway.
   */
  private accept(txn: PutTxn, inb: Inbound, f: Pending): Promise<void> {
    const { header, credit, passed } = f;
    if (header.offset < inb.next) {
      // Kept already: a resend after a chain broke.
      return passed.then(() => this.creditBack(credit, false));
    }
    if (header.offset > inb.next) {
      // Kept past this call, so copied: a frame from the group lives in a block that is reused.
      f.payload = Buffer.from(f.payload);
      inb.ahead.set(header.offset, f);
      return passed;
    }
    const done = this.enqueue(txn, inb, f);
    for (let a = inb.ahead.get(inb.next); a; a = inb.ahead.get(inb.next)) {
      inb.ahead.delete(a.header.offset);
      void this.enqueue(txn, inb, a);
    }
    return done;
  }

  private creditBack(credit: Pending["credit"], now: boolean): void {
    // Credit belongs to the connection the frame came on; a new one started a fresh window.
    if (credit && credit.ws === this.socket.socket) this.returnCredit(credit.ws, credit.bytes, now);
  }

  /** Write one frame in turn; at the last, commit and say saved (or save-failed) to the group. */
  private enqueue(txn: PutTxn, inb: Inbound, f: Pending): Promise<void> {
    const { header, payload, credit, passed } = f;
    inb.next = header.offset + payload.length;
    const write = inb.write;
    // On the connection the put was proposed on only: a later one's transaction ids are new.
    const say = (msg: ToGroup) => {
      if (txn.ws === this.socket.socket) this.send(txn.ws, msg);
    };
    const prev = txn.order.get(header.item) ?? Promise.resolve();
    const next = prev.then(async () => {
      // An earlier frame of this item failed (and said so): drop the rest, keep the window.
      if (txn.writes.get(header.item) !== inb) {
        await passed;
        this.creditBack(credit, true);
        return;
      }
      try {
        await write.write(header.offset, payload);
      } catch (e) {
        await passed;
        this.creditBack(credit, true);
        throw e;
      }
      await passed;
      if (!header.last) {
        this.creditBack(credit, false);
        return;
      }
      this.ctx.queue.bytes -= write.size;
      txn.writes.delete(header.item);
      if (txn.eager && txn.writes.size === 0) this.puts.delete(header.txn);
      try {
        await write.commit();
        metrics.written.inc({ kind: txn.items[header.item]!.kind }, write.size);
        if (txn.repair) metrics.repair.inc(write.size);
        if (txn.ws === this.socket.socket) this.acks.saved(txn.ws, header.txn, header.item);
      } catch (e) {
        log("warn", "save failed", { group: this.group, chid: write.chid, error: String(e) });
        say({ t: "save-failed", txn: header.txn, item: header.item, reason: String(e) });
      } finally {
        // An item's last frame is credited once the item is durable (or failed): writes wait in
        // memory for their pack batch, and the window then bounds what waits, not just what is in flight.
        this.creditBack(credit, true);
      }
    });
    const settled = next.catch((e) => {
      log("warn", "frame write failed", { group: this.group, chid: write.chid, error: String(e) });
      if (txn.writes.get(header.item) === inb) {
        txn.writes.delete(header.item);
        this.ctx.queue.bytes -= write.size;
        if (txn.eager && txn.writes.size === 0) this.puts.delete(header.txn);
      }
      void write.abort();
      say({ t: "save-failed", txn: header.txn, item: header.item, reason: String(e) });
    });
    txn.order.set(header.item, settled);
    return settled;
  }

  private inbound(item: PutItem, hop: ChainHop | null): Inbound {
    this.ctx.queue.bytes += item.size;
    return { write: this.ctx.store.beginWrite(storedRefOf(item), item.size), next: 0, ahead: new Map(), forward: hop?.forward ?? [], chain: hop?.chain ?? null };
  }

  private returnCredit(ws: WebSocket, bytes: number, now: boolean): void {
    this.creditOwed += bytes;
    if (!now && this.creditOwed < CREDIT_BATCH) return;
    // Credit due now goes at the end of this turn, with whatever else falls due in it: one
    // message for the frames of several items written together, and with the acks of the turn.
    if (this.groupProto >= 2) {
      this.acks.credit(ws, this.creditOwed);
      this.creditOwed = 0;
      return;
    }
    if (this.creditSoon) return;
    this.creditSoon = true;
    setImmediate(() => {
      this.creditSoon = false;
      if (this.creditOwed === 0 || ws !== this.socket.socket) return;
      this.send(ws, { t: "credit", bytes: this.creditOwed });
      this.creditOwed = 0;
    });
  }

  private async releasePut(txnId: number): Promise<void> {
    const txn = this.puts.get(txnId);
    if (!txn) return;
    this.puts.delete(txnId);
    if (!txn.eager) metrics.bidsLost.inc(Math.max(0, txn.accepted - txn.selected));
    this.chains.dropTxn(txnId);
    await Promise.all(txn.order.values());
    for (const w of txn.writes.values()) {
      this.ctx.queue.bytes -= w.write.size;
      await w.write.abort();
    }
  }

  /** A dropped link ends every transaction on it: the group retries elsewhere. */
  private dropAll(): void {
    for (const id of [...this.puts.keys()]) void this.releasePut(id);
    this.chains.clear();
    this.gets.clear();
  }
}
