// A reader's run of chunks from one holder the group already knows, in one transaction: one
// `fetch-many` message, the items' frames back one after the other, each checked against its
// CHID. What fails (no copy, a bad copy, a silent holder) comes back as null, and the caller
// gets it the full way (get.ts: other holders, bids), so nothing here decides alone that a chunk
// is missing.

import { deferred, type Deferred } from "../../common/deferred.ts";
import type { Chid } from "../../common/ids.ts";
import { nearestFirst } from "../../common/placement.ts";
import type { StoredRef } from "../../common/protocol.ts";
import { badCopy, FIRST_FRAME_TIMEOUT_MS, FrameAssembler, GET_TIMEOUT_MS } from "./delivery.ts";
import type { Member } from "./member.ts";
import { SLOW_MS, type TxnHandler, type TxnHost } from "./txn.ts";

interface Item {
  frames: FrameAssembler;
  done: Deferred<Uint8Array | null>;
}

/** One result per chid: its verified bytes, or null (the caller reads it another way). */
async function fetchMany(host: TxnHost, holder: Member, chids: readonly Chid[], maxBytes: number): Promise<(Uint8Array | null)[]> {
  const items: Item[] = chids.map(() => ({ frames: new FrameAssembler(maxBytes), done: deferred<Uint8Array | null>() }));
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
      const got = it.frames.add(header, payload);
      if (got !== null) it.done.resolve("bad" in got ? null : got.bytes);
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
    return await Promise.all(got.map(async (b, i) => (b && (await badCopy(holder, refs[i]!, b)) === null ? b : null)));
  } finally {
    // Items still on their way are dropped with the transaction: the target sends what it was asked for and stops.
    host.close(txn);
  }
}

interface RunRead {
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
        if (got[k]) out[i] = got[k];
        else missed.add(r.chids[i]!);
      });
      for (const chid of missed) r.failed(chid, holder);
    }),
  );
  return Promise.all(out.map((b, i) => b ?? r.readOne(r.chids[i]!)));
}
