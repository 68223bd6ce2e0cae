// The seed-001 put transaction as a group runs it over its members' WebSockets. Items no member
// can hold already go without bids (eager-put.ts); the rest, and whatever the eager round could
// not place, are negotiated here: propose to every live writer, collect bids, select, move the
// payload in credited frames (down a chain where the targets can pass it on), gather acks.

import { selectReplicas, type Offer } from "../../common/placement.ts";
import { storedRefOf, type Bid, type ToTarget } from "../../common/protocol.ts";
import { BidCollector } from "./bids.ts";
import { eagerRound } from "./eager-put.ts";
import { broadcast, type Member } from "./member.ts";
import { PutAcks } from "./put-acks.ts";
import { deliverChained, sendPayload, type TxnHandler, type TxnHost } from "./txn.ts";
import { newNonce, possessionProof } from "../../common/possession.ts";
import type { ItemState, PutOptions, PutPayload, PutRun } from "./put-items.ts";
import { Unavailable } from "../shared/unavailable.ts";

export type { TxnHandler, TxnHost } from "./txn.ts";
export type { PutPayload } from "./put-items.ts";

const SAVE_TIMEOUT_MS = 60_000;

/**
 * Version manifests up to this size skip the bid round (eager-put.ts): a manifest is small and
 * unique to its version, so no copy can exist elsewhere and the extra round trip buys nothing.
 */
export const EAGER_MAX = 64 * 1024;

/**
 * Put chunk / put version manifest: store every item on `replicas` distinct members (counting
 * those that already hold it), least correlated first. Resolves when every item is confirmed
 * saved on enough members, with the members that hold each item; retries on other bidders when
 * a selected one fails.
 */
export async function putTransaction(host: TxnHost, members: readonly Member[], payloads: readonly PutPayload[], replicas: number, opts: PutOptions): Promise<Member[][]> {
  if (members.length < replicas) {
    throw new Unavailable(`only ${members.length} of the ${replicas} targets needed for a write are live in this group`);
  }
  // Members that timed out lately are left out of a client's write while enough others remain:
  // a hung host would otherwise cost every write a bid timeout. Not out of a repair: a copy the
  // slow member already holds would go uncounted, and the repair would place one too many.
  const healthy = members.filter((m) => !m.slow);
  if ((opts.skipSlow ?? true) && healthy.length >= replicas) members = healthy;
  const state: ItemState[] = payloads.map(() => ({ confirmed: new Map(), tried: new Set() }));
  const eager = payloads.flatMap((p, i) => ((p.item.kind === "vm" && p.item.size <= EAGER_MAX) || opts.fresh?.has(i) ? [i] : []));
  const run: PutRun = { host, members, payloads, replicas, state, opts };
  await eagerRound(run, eager);
  const rest = payloads.flatMap((_, i) => (state[i]!.confirmed.size < replicas ? [i] : []));
  if (rest.length > 0) await negotiatedRound(run, rest);
  return state.map((s) => [...s.confirmed.keys()]);
}

async function negotiatedRound(run: PutRun, items: readonly number[]): Promise<void> {
  const { host, members, payloads, replicas, state, opts } = run;
  const model = opts.correlation;
  const bids = new BidCollector<Bid[]>(members, host.deadlines);
  // Acks are expected at selection time, under the item's place in the proposal.
  const acks = new PutAcks();
  const handler: TxnHandler = {
    onMessage(from, msg) {
      if (msg.t === "bid-put") bids.record(from, msg.bids);
      else acks.onMessage(from, msg);
    },
    onFrame() {},
    onGone(member) {
      bids.record(member, null);
      acks.onGone(member);
    },
  };
  const txn = host.open(handler);
  // Bids name items by their place in the proposal. A "have" counts only with a proof over this nonce.
  const nonce = newNonce();
  const proposal: ToTarget = { t: "propose-put", txn, items: items.map((i) => payloads[i]!.item), nonce, ...(opts.repair ? { repair: true as const } : {}) };
  try {
    broadcast(members, proposal);
    const replies = await bids.wait();

    const work = items.map(async (i, n) => {
      const p = payloads[i]!;
      const st = state[i]!;
      const offers: (Offer & { member: Member })[] = [];
      // Why members said no (a full disk, most often): the operator's next step is in the refusal.
      const refusals: string[] = [];
      // What an honest holder's proof is: computed once per item, and only if someone claims to hold it.
      let expected: Promise<string> | null = null;
      for (const [m, b] of replies) {
        const bid = b?.find((x) => x.item === n);
        if (!bid || m.gone) continue;
        if (bid.bid === "have") {
          st.tried.add(m);
          expected ??= possessionProof(nonce, p.bytes);
          if (bid.proof !== undefined && bid.proof === (await expected)) {
            st.confirmed.set(m, m.location);
            continue;
          }
          // Claimed without proof, or with a wrong one: not a copy. If its copy is damaged, the
          // target finds out (bad-copy: it re-reads and quarantines), and a copy goes elsewhere.
          console.log(JSON.stringify({ msg: "a member's claim to hold an item failed its proof: not counted", txn, item: n, chid: p.item.chid, member: m.id, proof: bid.proof !== undefined }));
          m.send({ t: "bad-copy", ref: storedRefOf(p.item) });
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
          throw new Unavailable(`could only place ${st.confirmed.size} of ${replicas} replicas of ${p.item.chid}: not enough targets accepted${refusals.length > 0 ? ` (${refusals.join("; ")})` : ""}`);
        }
        for (const o of picked) {
          st.tried.add(o.member);
          acks.expect(o.member, n);
        }
        const ack = (m: Member) => host.deadlines.within(acks.saved(m, n), SAVE_TIMEOUT_MS, `save of ${p.item.chid}`);
        const chained = opts.chain && picked.length > 1 && picked.every((o) => o.member.peer !== null);
        let results: PromiseSettledResult<unknown>[];
        if (chained) {
          const chain = picked.map((o) => o.member);
          const id = crypto.randomUUID();
          const broken = acks.chainBroken(n);
          // Each target of the chain is told the peers after it (it passes frames on to no one
          // else). Those down the chain learn first: frames reaching them earlier are kept until then anyway.
          for (let j = chain.length - 1; j >= 0; j--) chain[j]!.send({ t: "select-put", txn, items: [n], forward: chain.slice(j + 1).map((m) => m.peer!.address), chain: id });
          results = await deliverChained({ txn, item: n, bytes: p.bytes, chain, ack, broken, deadlines: host.deadlines });
        } else {
          for (const o of picked) o.member.send({ t: "select-put", txn, items: [n] });
          const sent = sendPayload(txn, n, p.bytes, picked.map((o) => o.member));
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
