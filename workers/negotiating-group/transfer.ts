// The seed-001 transactions as a group runs them over its members' WebSockets: propose to every
// live member, collect bids, select, move the payload in credited frames, and gather acks.

import { chidOf, type Chid, type Uvid } from "../../common/ids.ts";
import type { Correlation } from "../../common/correlation.ts";
import { selectReplicas, sharedDepth, type Offer } from "../../common/placement.ts";
import {
  FRAME_PUT_DATA,
  framesOf,
  type Bid,
  type FrameHeader,
  type PutItem,
  type StoredRef,
  type ToGroup,
  type ToTarget,
} from "../../common/protocol.ts";
import { UNAVAILABLE } from "../shared/env.ts";
import { broadcast, type Member } from "./member.ts";

const BID_TIMEOUT_MS = 5_000;
const SAVE_TIMEOUT_MS = 60_000;
/**
 * A manifest put without bids (at most EAGER_MAX bytes) is saved in milliseconds by a healthy
 * target; one silent this long is taken as hung (a frozen host picked before any group saw it
 * time out) and the copy goes to a bidder instead.
 */
const EAGER_SAVE_TIMEOUT_MS = 3_000;
const GET_TIMEOUT_MS = 30_000;
/**
 * A holder that has sent nothing of a chunk this long after being asked is taken as hung and
 * the read goes to another copy; it is then skipped by reads for SLOW_MS, or until it speaks.
 * A chunk is at most CHUNK_MAX (512 KiB): its first frame comes in milliseconds from a healthy
 * target, so the bound is generous for a busy one.
 */
const FIRST_FRAME_TIMEOUT_MS = 2_000;
const SLOW_MS = 30_000;

/** What a transaction needs from its group: a way to route replies to it by transaction id. */
export interface TxnHost {
  open(handler: TxnHandler): number;
  close(txn: number): void;
}

export interface TxnHandler {
  onMessage(from: Member, msg: ToGroup): void;
  onFrame(from: Member, header: FrameHeader, payload: Uint8Array): void;
  onGone(member: Member): void;
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Wait for one reply from each member (or its departure), up to a deadline. */
class BidCollector<B> {
  private readonly replies = new Map<Member, B | null>();
  private readonly done = deferred<void>();
  private readonly members: readonly Member[];

  constructor(members: readonly Member[]) {
    this.members = members;
    if (members.length === 0) this.done.resolve();
  }

  record(from: Member, bid: B | null): void {
    if (!this.members.includes(from) || this.replies.has(from)) return;
    this.replies.set(from, bid);
    if (this.replies.size === this.members.length) this.done.resolve();
  }

  async wait(): Promise<Map<Member, B | null>> {
    await withTimeout(this.done.promise, BID_TIMEOUT_MS, "bids").catch(() => {});
    for (const m of this.members) if (!this.replies.has(m)) m.markSlow(SLOW_MS);
    return this.replies;
  }
}

export interface PutPayload {
  item: PutItem;
  bytes: Uint8Array;
}

/**
 * Version manifests up to this size skip the bid round: the group picks targets itself and
 * sends the payload with the selection. Bidding exists to schedule bulk transfers and to find
 * existing copies; a manifest is small and unique to its version (no copy can exist elsewhere),
 * so the extra round trip buys nothing. Chunks always negotiate, or dedup would be lost. A
 * target that refuses or fails falls back to the negotiated path below.
 */
export const EAGER_MAX = 64 * 1024;

interface ItemState {
  /** Members confirmed to hold the item, with their locations. */
  confirmed: Map<Member, string>;
  tried: Set<Member>;
}

/**
 * Put chunk / put version manifest: store every item on `replicas` distinct members (counting
 * those that already hold it), least correlated first. Resolves when every item is confirmed
 * saved on enough members, with the members that hold each item; retries on other bidders when
 * a selected one fails.
 */
export async function putTransaction(
  host: TxnHost,
  members: readonly Member[],
  payloads: readonly PutPayload[],
  replicas: number,
  opts: PutOptions,
): Promise<Member[][]> {
  if (members.length < replicas) {
    throw new Error(`${UNAVAILABLE}only ${members.length} of the ${replicas} targets needed for a write are live in this group`);
  }
  // Members that timed out lately are left out of a client's write while enough others remain:
  // a hung host would otherwise cost every write a bid timeout. Not out of a repair: a copy the
  // slow member already holds would go uncounted, and the repair would place one too many.
  const healthy = members.filter((m) => !m.slow);
  if ((opts.skipSlow ?? true) && healthy.length >= replicas) members = healthy;
  const state: ItemState[] = payloads.map(() => ({ confirmed: new Map(), tried: new Set() }));
  const holders = () => state.map((s) => [...s.confirmed.keys()]);
  if (payloads.every((p) => p.item.kind === "vm" && p.item.size <= EAGER_MAX)) {
    await eagerRound(host, members, payloads, replicas, state, opts);
    if (state.every((s) => s.confirmed.size >= replicas)) return holders();
  }
  await negotiatedRound(host, members, payloads, replicas, state, opts);
  return holders();
}

export interface PutOptions {
  correlation: Correlation;
  /** Leave out members that timed out lately while enough others remain (client writes: true). */
  skipSlow?: boolean;
  /** Chain a chunk's copies through its targets when all of them advertise a peer address (CHAIN_REPLICATION). */
  chain?: boolean;
  /** A repair's copy: targets count its bytes as repair traffic. */
  repair?: boolean;
}

/** Rotate the starting member so that eager puts spread over the group. */
let eagerTurn = 0;

async function eagerRound(host: TxnHost, members: readonly Member[], payloads: readonly PutPayload[], replicas: number, state: ItemState[], opts: PutOptions): Promise<void> {
  const model = opts.correlation;
  const rotated = members.map((m, i) => ({ id: m.id, location: m.location, start: (i - eagerTurn + members.length) % members.length, member: m }));
  eagerTurn = (eagerTurn + 1) % 1_000_000;
  const picked = selectReplicas([], rotated, replicas, model);
  const acks = new Map<string, ReturnType<typeof deferred<void>>>();
  const key = (m: Member, i: number) => `${m.id}/${i}`;
  const handler: TxnHandler = {
    onMessage(from, msg) {
      if (msg.t === "saved") acks.get(key(from, msg.item))?.resolve();
      else if (msg.t === "save-failed") acks.get(key(from, msg.item))?.reject(new Error(`target ${from.id}: ${msg.reason}`));
    },
    onFrame() {},
    onGone(member) {
      for (let i = 0; i < payloads.length; i++) acks.get(key(member, i))?.reject(new Error(`target ${member.id} disconnected`));
    },
  };
  const txn = host.open(handler);
  try {
    const items = payloads.map((p) => p.item);
    for (const o of picked) {
      for (let i = 0; i < payloads.length; i++) {
        acks.set(key(o.member, i), deferred<void>());
        state[i]!.tried.add(o.member);
      }
      o.member.send({ t: "put-eager", txn, items, ...(opts.repair ? { repair: true as const } : {}) });
    }
    const sends = payloads.map((p, i) => sendPayload(txn, i, p.bytes, picked.map((o) => o.member)));
    await Promise.all(
      payloads.flatMap((_, i) =>
        picked.map(async (o) => {
          try {
            await Promise.all([sends[i]!.get(o.member)!, withTimeout(acks.get(key(o.member, i))!.promise, EAGER_SAVE_TIMEOUT_MS, "eager save")]);
            state[i]!.confirmed.set(o.member, o.location);
          } catch (e) {
            // A hung target picked without a bid would hold the write for a full save timeout:
            // it counts as slow, and the negotiated round places what is missing elsewhere.
            if (String(e).includes("timed out")) o.member.markSlow(SLOW_MS);
          }
        }),
      ),
    );
  } finally {
    // A target ends an eager put by itself once its writes are done; only one that did not
    // confirm everything (failed, timed out) may still hold state for it.
    const unsure = picked.filter((o) => state.some((s) => !s.confirmed.has(o.member)));
    broadcast(unsure.map((o) => o.member), { t: "release", txn });
    host.close(txn);
  }
}

async function negotiatedRound(host: TxnHost, members: readonly Member[], payloads: readonly PutPayload[], replicas: number, state: ItemState[], opts: PutOptions): Promise<void> {
  const model = opts.correlation;
  const bids = new BidCollector<Bid[]>(members);
  // saved[(member,item)] promises, created at selection time.
  const acks = new Map<string, ReturnType<typeof deferred<void>>>();
  // Chain replication: an item's chain broke somewhere (chain-broken from one of its targets).
  const brokenFor = new Map<number, ReturnType<typeof deferred<void>>>();
  const key = (m: Member, i: number) => `${m.id}/${i}`;
  const handler: TxnHandler = {
    onMessage(from, msg) {
      if (msg.t === "bid-put") bids.record(from, msg.bids);
      else if (msg.t === "chain-broken") brokenFor.get(msg.item)?.resolve();
      else if (msg.t === "saved") acks.get(key(from, msg.item))?.resolve();
      else if (msg.t === "save-failed") acks.get(key(from, msg.item))?.reject(new Error(`target ${from.id}: ${msg.reason}`));
    },
    onFrame() {},
    onGone(member) {
      bids.record(member, null);
      for (let i = 0; i < payloads.length; i++) acks.get(key(member, i))?.reject(new Error(`target ${member.id} disconnected`));
    },
  };
  const txn = host.open(handler);
  const proposal: ToTarget = { t: "propose-put", txn, items: payloads.map((p) => p.item), ...(opts.repair ? { repair: true as const } : {}) };
  try {
    broadcast(members, proposal);
    const replies = await bids.wait();

    const work = payloads.map(async (p, i) => {
      const st = state[i]!;
      const offers: (Offer & { member: Member })[] = [];
      // Why members said no (a full disk, most often): the operator's next step is in the refusal.
      const refusals: string[] = [];
      for (const [m, b] of replies) {
        const bid = b?.find((x) => x.item === i);
        if (!bid || m.gone) continue;
        if (bid.bid === "have") {
          st.confirmed.set(m, m.location);
          st.tried.add(m);
        } else if (bid.bid === "accept" && !st.tried.has(m)) {
          // Equal windows are common (idle targets): break ties by rotation, or the quickest
          // bidder would take every chunk.
          offers.push({ id: m.id, location: m.location, start: bid.window[0] + ((members.indexOf(m) + txn) % members.length) / members.length, member: m });
        } else if (bid.bid === "refuse") {
          refusals.push(`target ${m.id} refused: ${bid.reason}`);
        }
      }
      while (st.confirmed.size < replicas) {
        const remaining = offers.filter((o) => !st.tried.has(o.member) && !o.member.gone);
        const picked = selectReplicas([...st.confirmed.values()], remaining, replicas - st.confirmed.size, model);
        if (picked.length === 0) {
          throw new Error(`${UNAVAILABLE}could only place ${st.confirmed.size} of ${replicas} replicas of ${p.item.chid}: not enough targets accepted${refusals.length > 0 ? ` (${refusals.join("; ")})` : ""}`);
        }
        for (const o of picked) {
          st.tried.add(o.member);
          acks.set(key(o.member, i), deferred<void>());
        }
        const ack = (m: Member) => withTimeout(acks.get(key(m, i))!.promise, SAVE_TIMEOUT_MS, `save of ${p.item.chid}`);
        const chained = opts.chain && picked.length > 1 && picked.every((o) => o.member.peer !== null);
        let results: PromiseSettledResult<unknown>[];
        if (chained) {
          const broken = deferred<void>();
          brokenFor.set(i, broken);
          results = await chainPut(txn, i, p.bytes, picked.map((o) => o.member), ack, broken.promise);
          brokenFor.delete(i);
        } else {
          for (const o of picked) o.member.send({ t: "select-put", txn, items: [i] });
          const sent = sendPayload(txn, i, p.bytes, picked.map((o) => o.member));
          results = await Promise.allSettled(picked.map((o) => Promise.all([sent.get(o.member)!, ack(o.member)])));
        }
        results.forEach((r, j) => {
          if (r.status === "fulfilled") st.confirmed.set(picked[j]!.member, picked[j]!.location);
        });
      }
    });
    await Promise.all(work);
  } finally {
    broadcast(members, { t: "release", txn });
    host.close(txn);
  }
}

/**
 * Chain replication (seed 004): the frames go once, to the head, which passes them down the
 * chain (node-target/peer-link.ts). A target further down that has not saved the item once the
 * chain broke, or CHAIN_ACK_MS after the head had every frame, gets them from the group
 * directly (fan-out); it keeps each frame once, so a resend after a partial delivery is safe.
 */
async function chainPut(txn: number, item: number, bytes: Uint8Array, chain: Member[], ack: (m: Member) => Promise<void>, broken: Promise<void>): Promise<PromiseSettledResult<unknown>[]> {
  const [head, ...down] = chain;
  const id = crypto.randomUUID();
  // Those down the chain learn they are selected first: frames reaching them earlier are kept until then anyway.
  for (const m of down) m.send({ t: "select-put", txn, items: [item], chain: id });
  head!.send({ t: "select-put", txn, items: [item], forward: down.map((m) => m.peer!), chain: id });
  const sentHead = sendPayload(txn, item, bytes, [head!]).get(head!)!;
  let late: ReturnType<typeof setTimeout> | null = null;
  const fallBack = Promise.race([broken, sentHead.then(() => new Promise<void>((r) => (late = setTimeout(r, CHAIN_ACK_MS))), () => undefined)]);
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
    // Saved down the whole chain: the lateness timer has nothing left to do.
    if (late !== null) clearTimeout(late);
  }
}

/** How long a target down a chain may take to save an item after the head had all of it, before the group sends it directly. */
const CHAIN_ACK_MS = 5_000;

/** Send one item's frames to several targets; each target's send completes independently. */
function sendPayload(txn: number, item: number, bytes: Uint8Array, targets: Member[]): Map<Member, Promise<void>> {
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

export interface GetBid {
  member: Member;
  chid: Chid;
  /** For a version manifest: the version the bidder holds. */
  uvid: Uvid | null;
  queue: number;
}

export interface GetRequest {
  /** The proposal every reader is asked to bid on. */
  propose(txn: number): ToTarget;
  /** The stored item a bid offers, to name it in fetch and bad-copy messages. */
  refOf(bid: GetBid): StoredRef;
  /** The CHID the bytes must hash to, when the caller knows it. */
  expect: Chid | null;
  maxBytes: number;
  /** Members believed to hold `ref`: each is asked with a fetch, without a bid round, first. */
  known?: { members: readonly Member[]; ref: StoredRef };
  /** The reader's location: of the bidders, the nearest serve first (then the least busy). */
  near?: string | null;
}


export interface GetResult {
  bytes: Uint8Array;
  chid: Chid;
  from: Member;
  /** Members seen to hold the item (the sender, and every "have" bidder). */
  holders: Member[];
  /** Known members that failed to deliver it. */
  failed: Member[];
}

/**
 * Get chunk / get version manifest. Known holders are asked first, one `fetch` each; otherwise
 * (or when they fail) every other reader is asked to bid and the least busy holder is selected.
 * Whatever arrives is hashed against the expected CHID: a bad copy is reported to its holder
 * (bad-copy) and the next one is tried, so corrupt bytes are never returned.
 */
export async function getTransaction(host: TxnHost, members: readonly Member[], req: GetRequest): Promise<GetResult | null> {
  if (members.length === 0) throw new Error(`${UNAVAILABLE}no target of this group is live`);
  let bids: BidCollector<GetBid> | null = null;
  let current: { member: Member; buf: Uint8Array | null; received: number; done: ReturnType<typeof deferred<Uint8Array>>; started: ReturnType<typeof deferred<void>> } | null = null;
  const handler: TxnHandler = {
    onMessage(from, msg) {
      if (msg.t === "bid-get") bids?.record(from, msg.have && req.expect ? { member: from, chid: req.expect, uvid: null, queue: msg.queue } : null);
      else if (msg.t === "bid-get-vm") bids?.record(from, msg.chid ? { member: from, chid: msg.chid, uvid: msg.uvid, queue: 0 } : null);
      else if (msg.t === "get-failed" && current?.member === from) current.done.reject(new Error(`target ${from.id}: ${msg.reason}`));
    },
    onFrame(from, header, payload) {
      if (!current || current.member !== from) return;
      if (header.total > req.maxBytes) {
        current.done.reject(new Error(`target ${from.id} sent ${header.total} bytes, more than the ${req.maxBytes} granted`));
        return;
      }
      current.buf ??= new Uint8Array(header.total);
      current.started.resolve();
      if (header.offset !== current.received || header.offset + payload.length > header.total) {
        current.done.reject(new Error(`target ${from.id} sent a frame out of order`));
        return;
      }
      current.buf.set(payload, header.offset);
      current.received += payload.length;
      if (header.last) current.done.resolve(current.buf.subarray(0, current.received));
    },
    onGone(member) {
      bids?.record(member, null);
      if (current?.member === member) current.done.reject(new Error(`target ${member.id} disconnected`));
    },
  };
  const txn = host.open(handler);
  const errors: string[] = [];
  const tried = new Set<Member>();
  const failed: Member[] = [];
  let asked: Member[] = [];

  // One delivery from one member; null (with the reason in `errors`) if it fails or is bad.
  const receive = async (member: Member, ask: ToTarget, ref: StoredRef, patient = false): Promise<Uint8Array | null> => {
    tried.add(member);
    const attempt = { member, buf: null, received: 0, done: deferred<Uint8Array>(), started: deferred<void>() };
    current = attempt;
    member.send(ask);
    try {
      await withTimeout(Promise.race([attempt.started.promise, attempt.done.promise]), patient ? GET_TIMEOUT_MS : FIRST_FRAME_TIMEOUT_MS, "the first frame").catch((e: unknown) => {
        if (String(e).includes("timed out")) member.markSlow(SLOW_MS);
        throw e;
      });
      const bytes = await withTimeout(attempt.done.promise, GET_TIMEOUT_MS, "delivery");
      const actual = await chidOf(bytes);
      if (actual === ref.chid) return bytes;
      errors.push(`target ${member.id} returned bytes hashing to ${actual}, not ${ref.chid}`);
      member.send({ t: "bad-copy", ref });
    } catch (e) {
      errors.push(String(e instanceof Error ? e.message : e));
    } finally {
      if (current === attempt) current = null;
    }
    return null;
  };

  try {
    for (const m of req.known?.members ?? []) {
      if (m.gone || m.slow || !members.includes(m)) continue;
      const ref = req.known!.ref;
      const bytes = await receive(m, { t: "fetch", txn, ref, credit: req.maxBytes }, ref);
      if (bytes) return { bytes, chid: ref.chid, from: m, holders: [m], failed };
      failed.push(m);
    }
    const untried = members.filter((m) => !tried.has(m) && !m.gone);
    // A slow member is asked only when no other can be.
    const round = async (ask: Member[], patient: boolean): Promise<GetResult | null> => {
      asked = [...new Set([...asked, ...ask])];
      bids = new BidCollector<GetBid>(ask);
      broadcast(ask, req.propose(txn));
      const replies = await bids.wait();
      for (const [m, b] of replies) if (b === null) lacking.add(m);
      const offers = [...replies.values()].filter((b): b is GetBid => b !== null && !b.member.gone);
      // Nearest first, then least busy; idle holders tie, so rotate among them or the quickest
      // bidder serves all.
      const turn = (b: GetBid) => (members.indexOf(b.member) + txn) % members.length;
      const near = req.near;
      const depth = (b: GetBid) => (near ? sharedDepth(b.member.location, near) : 0);
      offers.sort((a, b) => depth(b) - depth(a) || a.queue - b.queue || turn(a) - turn(b));
      for (const offer of offers) {
        const ref = req.refOf(offer);
        const bytes = await receive(offer.member, { t: "select-get", txn, credit: req.maxBytes }, ref, patient);
        if (bytes) return { bytes, chid: ref.chid, from: offer.member, holders: offers.map((o) => o.member), failed };
      }
      return null;
    };
    const lacking = new Set<Member>();
    const first = untried.some((m) => !m.slow) ? untried.filter((m) => !m.slow) : untried;
    if (first.length > 0) {
      const got = await round(first, false);
      if (got) return got;
    }
    // Nobody served in time. Under load (targets busy writing, a kill's repair traffic) every
    // holder can be slower to bid than the hung-target limits: ask once more every live member
    // not asked to send yet that did not say it lacks the item, slow ones included, and wait as
    // long as a delivery may take. (One asked already may still be sending on this txn: its
    // frames would mix with a new stream.) A hung target costs this only when no one else
    // holds the item.
    const again = members.filter((m) => !m.gone && !lacking.has(m) && !tried.has(m));
    if (again.length > 0) {
      const got = await round(again, true);
      if (got) return got;
    }
    if (errors.length === 0) return null;
    throw new Error(`${UNAVAILABLE}every copy failed: ${errors.join("; ")}`);
  } finally {
    if (asked.length > 0) broadcast(asked, { t: "release", txn });
    host.close(txn);
  }
}
