// A reader's run of chunks from one holder the group already knows, in one transaction: one
// `fetch-many` message, the items' frames back one after the other, each checked against its
// CHID. What fails (no copy, a bad copy, a silent holder) comes back as null, and the caller
// gets it the full way (get.ts: other holders, bids), so nothing here decides alone that a chunk
// is missing.

import { chidOf, type Chid } from "../../common/ids.ts";
import { nearestFirst } from "../../common/placement.ts";
import type { StoredRef } from "../../common/protocol.ts";
import type { Member } from "./member.ts";
import { deferred, SLOW_MS, type Deferred, type TxnHandler, type TxnHost } from "./txn.ts";

/** As get.ts's: a healthy holder's first frame comes in milliseconds; one silent this long is hung. */
const FIRST_FRAME_TIMEOUT_MS = 2_000;
const GET_TIMEOUT_MS = 30_000;

interface Item {
  buf: Uint8Array | null;
  received: number;
  done: Deferred<Uint8Array | null>;
}

/** One result per chid: its verified bytes, or null (the caller reads it another way). `bad`: holders that sent bytes not matching their name. */
export async function fetchMany(host: TxnHost, holder: Member, chids: readonly Chid[], maxBytes: number): Promise<{ bytes: (Uint8Array | null)[]; bad: Chid[] }> {
  const items: Item[] = chids.map(() => ({ buf: null, received: 0, done: deferred<Uint8Array | null>() }));
  const started = deferred<void>();
  const failFrom = (k: number) => {
    for (let i = k; i < items.length; i++) items[i]!.done.resolve(null);
  };
  const handler: TxnHandler = {
    onMessage(from, msg) {
      if (from !== holder || msg.t !== "get-failed") return;
      started.resolve();
      if (msg.item === undefined) failFrom(0);
      else items[msg.item]?.done.resolve(null);
    },
    onFrame(from, header, payload) {
      if (from !== holder) return;
      started.resolve();
      const it = items[header.item];
      if (!it) return;
      if (header.total > maxBytes) return it.done.resolve(null);
      // One frame (nearly every chunk): its payload as received, no copy.
      if (header.offset === 0 && header.last && it.buf === null) return it.done.resolve(payload.length === header.total ? payload : null);
      it.buf ??= new Uint8Array(header.total);
      if (header.offset !== it.received || header.offset + payload.length > header.total) return it.done.resolve(null);
      it.buf.set(payload, header.offset);
      it.received += payload.length;
      if (header.last) it.done.resolve(it.buf.subarray(0, it.received));
    },
    onGone(member) {
      if (member === holder) failFrom(0);
    },
  };
  const txn = host.open(handler);
  try {
    const refs: StoredRef[] = chids.map((chid) => ({ kind: "chunk", chid }));
    holder.send({ t: "fetch-many", txn, refs, credit: maxBytes });
    const all = Promise.all(items.map((it) => it.done.promise));
    await host.deadlines.within(started.promise, FIRST_FRAME_TIMEOUT_MS, "the first frame").catch(() => {
      holder.markSlow(SLOW_MS);
      failFrom(0);
    });
    await host.deadlines.within(all, GET_TIMEOUT_MS, "a run of chunks").catch(() => failFrom(0));
    const got = await all;
    const bad: Chid[] = [];
    const bytes = await Promise.all(
      got.map(async (b, i) => {
        if (!b) return null;
        if ((await chidOf(b)) === chids[i]) return b;
        bad.push(chids[i]!);
        holder.send({ t: "bad-copy", ref: { kind: "chunk", chid: chids[i]! } });
        return null;
      }),
    );
    return { bytes, bad };
  } finally {
    // Items still on their way are dropped with the transaction: the target sends what it was asked for and stops.
    host.close(txn);
  }
}

export interface RunRead {
  host: TxnHost;
  chids: readonly Chid[];
  /** The reader's location: each chunk is asked of its nearest known holder. */
  near: string | null;
  maxBytes: number;
  /** Live members believed to hold a chunk, in the order reads of it take turns. */
  holders(chid: Chid): Member[];
  /** A known holder did not bring a chunk back (no copy, a bad one, silence). */
  failed(chid: Chid, holder: Member): void;
  /** Read one chunk the full way (other holders, bids). */
  readOne(chid: Chid): Promise<Uint8Array>;
}

/**
 * A reader's run of chunks: those whose holders are known are asked of them, one fetch-many per
 * holder (the nearest known healthy holder of each); whatever that does not bring back is read
 * the full way, one by one.
 */
export async function readRun(r: RunRead): Promise<Uint8Array[]> {
  const out: (Uint8Array | null)[] = r.chids.map(() => null);
  const byHolder = new Map<Member, number[]>();
  r.chids.forEach((chid, i) => {
    const first = nearestFirst(r.holders(chid).filter((m) => !m.slow && m.proto >= 2), r.near)[0];
    if (first) byHolder.set(first, [...(byHolder.get(first) ?? []), i]);
  });
  await Promise.all(
    [...byHolder].map(async ([holder, idx]) => {
      const got = await fetchMany(r.host, holder, idx.map((i) => r.chids[i]!), r.maxBytes);
      const missed = new Set<Chid>();
      idx.forEach((i, k) => {
        if (got.bytes[k]) out[i] = got.bytes[k];
        else missed.add(r.chids[i]!);
      });
      for (const chid of missed) r.failed(chid, holder);
    }),
  );
  return Promise.all(out.map((b, i) => b ?? r.readOne(r.chids[i]!)));
}
