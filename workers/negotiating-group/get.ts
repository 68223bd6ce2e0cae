// The seed-001 get transactions as a group runs them over its members' WebSockets: ask known
// holders first, else propose to every reader, select the nearest and least busy holder, and
// take its credited frames, checked against the CHID the caller expected.

import { deferred, type Deferred } from "../../common/deferred.ts";
import type { Chid, Uvid } from "../../common/ids.ts";
import { sharedDepth } from "../../common/placement.ts";
import type { StoredRef, ToTarget } from "../../common/protocol.ts";
import { BidCollector } from "./bids.ts";
import { badCopy, FIRST_FRAME_TIMEOUT_MS, FrameAssembler, GET_TIMEOUT_MS } from "./delivery.ts";
import { broadcast, type Member } from "./member.ts";
import { SLOW_MS, type TxnHandler, type TxnHost } from "./txn.ts";
import { Unavailable } from "../shared/unavailable.ts";

interface GetBid {
  member: Member;
  chid: Chid;
  /** For a version manifest: the version the bidder holds. */
  uvid: Uvid | null;
  queue: number;
}

interface GetRequest {
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

interface GetResult {
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
  if (members.length === 0) throw new Unavailable(`no target of this group is live`);
  let bids: BidCollector<GetBid> | null = null;
  let current: { member: Member; frames: FrameAssembler; done: Deferred<Uint8Array>; started: Deferred<void> } | null = null;
  const handler: TxnHandler = {
    onMessage(from, msg) {
      if (msg.t === "bid-get") bids?.record(from, msg.have && req.expect ? { member: from, chid: req.expect, uvid: null, queue: msg.queue } : null);
      // A bidder offers what it holds under its own name for it; only the manifest the group
      // expects counts, or a target could answer with another version's, self-consistently hashed.
      else if (msg.t === "bid-get-vm") bids?.record(from, msg.chid && (req.expect === null || msg.chid === req.expect) ? { member: from, chid: msg.chid, uvid: msg.uvid, queue: 0 } : null);
      else if (msg.t === "get-failed" && current?.member === from) current.done.reject(new Error(`target ${from.id}: ${msg.reason}`));
    },
    onFrame(from, header, payload) {
      if (!current || current.member !== from) return;
      current.started.resolve();
      const got = current.frames.add(header, payload);
      if (got === null) return;
      if ("bad" in got) current.done.reject(new Error(`target ${from.id} ${got.bad}`));
      else current.done.resolve(got.bytes);
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
    const attempt = { member, frames: new FrameAssembler(req.maxBytes), done: deferred<Uint8Array>(), started: deferred<void>() };
    current = attempt;
    member.send(ask);
    try {
      await host.deadlines.within(Promise.race([attempt.started.promise, attempt.done.promise]), patient ? GET_TIMEOUT_MS : FIRST_FRAME_TIMEOUT_MS, "the first frame").catch((e: unknown) => {
        if (String(e).includes("timed out")) member.markSlow(SLOW_MS);
        throw e;
      });
      const bytes = await host.deadlines.within(attempt.done.promise, GET_TIMEOUT_MS, "delivery");
      const bad = await badCopy(member, ref, bytes);
      if (bad === null) return bytes;
      errors.push(bad);
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
      bids = new BidCollector<GetBid>(ask, host.deadlines);
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
    throw new Unavailable(`every copy failed: ${errors.join("; ")}`);
  } finally {
    if (asked.length > 0) broadcast(asked, { t: "release", txn });
    host.close(txn);
  }
}
