// Puts without a bid round, for items no member can hold already: a version manifest (unique to
// its version) and a chunk its group has no record of (never stored, or reclaimed). Bids exist
// to find existing copies and to schedule bulk transfers; for these there is nothing to find,
// and the group knows each member's queue from what it has sent it and not yet had credited
// (Member.backlog), so it places each item itself: least correlated first, then the least
// backlog, then an order of members that turns every TURN_MS (spread). One transaction covers the
// whole batch; each chosen target gets one `put-eager` naming its items (and its place in each
// item's chain), then their frames; acks that fall due together come back in one `saved`.
// Anything not confirmed in time goes to the negotiated round (transfer.ts), which places it
// on other bidders.

import { selectReplicas } from "../../common/placement.ts";
import type { ChainHop, PutEagerMsg } from "../../common/protocol.ts";
import { broadcast, type Member } from "./member.ts";
import { PutAcks } from "./put-acks.ts";
import { deliverChained, sendPayload, SLOW_MS, type TxnHandler } from "./txn.ts";
import type { PutRun } from "./put-items.ts";

/**
 * A healthy target saves an eager item within this long of its frames, plus the time its share
 * of the batch takes at EAGER_MIN_RATE; one silent longer is taken as hung (a frozen host
 * picked before any group saw it time out) and its items go to bidders instead.
 */
const EAGER_SAVE_TIMEOUT_MS = 3_000;
const EAGER_MIN_RATE = 20_000; // bytes per ms

/**
 * A 0..1 order of members that every group shares for TURN_MS at a time: equal members take
 * turns, and while one's turn lasts, the chunks of an object (which hash to many groups) tend to
 * land on the same target and be written there in one pack batch, not one batch each on six
 * targets (measured, 1 MiB PUT at R=1: targets' CPU per op -22%). Load and correlation come
 * first; over time the turns spread data evenly.
 */
function spread(member: string, turn: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < member.length; i++) h = Math.imul(h ^ member.charCodeAt(i), 0x01000193);
  for (let i = 0; i < turn.length; i++) h = Math.imul(h ^ turn.charCodeAt(i), 0x01000193);
  return (h >>> 0) / 2 ** 32;
}
const TURN_MS = 50;

interface Plan {
  item: number;
  targets: readonly Member[];
  /** The chain's id when its copies go down a chain. */
  chain: string | null;
}

/** What one target is told: its items, by the transaction's numbers, and its place in their chains. */
interface Share {
  at: number[];
  chains: (ChainHop | null)[];
  bytes: number;
}

/**
 * Place and send `items` (indexes into `payloads`) on `replicas` members each; record in `state`
 * who confirmed. Never throws for a target's failure: what is not confirmed is left to the caller.
 */
export async function eagerRound(run: PutRun, items: readonly number[]): Promise<void> {
  const { host, members, payloads, replicas, state, opts } = run;
  if (items.length === 0) return;
  // Every item of the batch sees the same members, backlogs and turn, so they all go to the same
  // targets: chosen once (this runs for every put), each item with a chain of its own.
  const turn = String(Math.floor(Date.now() / TURN_MS));
  const offers = members.map((m) => ({ id: m.id, location: m.location, start: m.backlog + spread(m.id, turn), member: m }));
  const targets = selectReplicas([], offers, replicas, opts.correlation).map((o) => o.member);
  const chained = opts.chain === true && targets.length > 1 && targets.every((m) => m.peer !== null && m.proto >= 2);
  const plans: Plan[] = items.map((i) => ({ item: i, targets, chain: chained ? crypto.randomUUID() : null }));
  const shares = new Map<Member, Share>();
  for (const p of plans) {
    p.targets.forEach((m, k) => {
      const s = shares.get(m) ?? { at: [], chains: [], bytes: 0 };
      s.at.push(p.item);
      s.chains.push(p.chain ? { forward: p.targets.slice(k + 1).map((t) => t.peer!.address), chain: p.chain } : null);
      s.bytes += payloads[p.item]!.bytes.length;
      shares.set(m, s);
    });
  }
  const acks = new PutAcks();
  const handler: TxnHandler = {
    onMessage: (from, msg) => acks.onMessage(from, msg),
    onFrame() {},
    onGone: (member) => acks.onGone(member),
  };
  const txn = host.open(handler);
  const told = new Set<Member>();
  // One deadline for the whole round, not a timer per item: an ack still missing then is from a hung target.
  let longest = 0;
  for (const s of shares.values()) longest = Math.max(longest, s.bytes);
  const deadlineMs = EAGER_SAVE_TIMEOUT_MS + longest / EAGER_MIN_RATE;
  // A chain's direct-send fallback must come well inside the round's deadline, or it never would.
  const fallbackMs = deadlineMs / 2;
  const cancelDeadline = host.deadlines.after(deadlineMs, () => {
    acks.failAll((m, i) => `timed out waiting for the eager save of item ${i} on target ${m.id}`);
  });
  try {
    for (const [m, s] of shares) {
      const local = s.at.every((i, k) => i === k) && s.chains.every((c) => c === null);
      // A protocol-1 target numbers a put-eager's items 0, 1, 2... and knows no chains: it only takes what it can read.
      if (m.proto < 2 && !local) continue;
      for (const i of s.at) acks.expect(m, i);
      const msg: PutEagerMsg = {
        t: "put-eager",
        txn,
        items: s.at.map((i) => payloads[i]!.item),
        ...(local ? {} : { at: s.at }),
        ...(s.chains.some((c) => c !== null) ? { chains: s.chains } : {}),
        ...(opts.repair ? { repair: true as const } : {}),
      };
      m.send(msg);
      told.add(m);
      for (const i of s.at) state[i]!.tried.add(m);
    }
    await Promise.all(
      plans.map(async (p) => {
        const st = state[p.item]!;
        const bytes = payloads[p.item]!.bytes;
        const to = p.targets.filter((m) => told.has(m));
        const ack = (m: Member) => acks.saved(m, p.item);
        let results: PromiseSettledResult<unknown>[];
        if (p.chain && to.length === p.targets.length) {
          results = await deliverChained({ txn, item: p.item, bytes, chain: to, ack, broken: acks.chainBroken(p.item), deadlines: host.deadlines, fallbackMs });
        } else {
          const sent = sendPayload(txn, p.item, bytes, to);
          results = await Promise.allSettled(to.map((m) => Promise.all([sent.get(m)!, ack(m)])));
        }
        results.forEach((r, j) => {
          const m = to[j]!;
          if (r.status === "fulfilled") {
            st.confirmed.set(m, m.location);
            return;
          }
          if (!String(r.reason).includes("timed out")) return;
          // A hung target picked without a bid would hold the write for a full save timeout: it
          // counts as slow, and the negotiated round places what is missing elsewhere. Down a
          // chain, though, silence may be a hung target's above: only the head's (or a direct
          // send's) is its own, and one further down may never have had the frames, so the
          // negotiated round may ask it again.
          if (p.chain === null || j === 0) m.markSlow(SLOW_MS);
          else st.tried.delete(m);
        });
      }),
    );
  } finally {
    cancelDeadline();
    // A target ends an eager put by itself once its writes are done; only one that did not
    // confirm everything (failed, timed out) may still hold state for it.
    const unsure = [...told].filter((m) => shares.get(m)!.at.some((i) => !state[i]!.confirmed.has(m)));
    broadcast(unsure, { t: "release", txn });
    host.close(txn);
  }
}
