// The chunk path (seed 001): put chunk and get chunk for clients, over the group's members.
// Puts hold their chunks against reclamation before anything is proposed, place chunks the group
// has no record of without bids (eager-put.ts), and remember who confirmed each copy; gets go
// straight to a known holder (locations.ts) and fall back to a bid round. Every client call is
// timed, so repairs give way when clients slow down (pacing.ts).

import type { Chid } from "../../common/ids.ts";
import { nearestFirst } from "../../common/placement.ts";
import type { StoredRef } from "../../common/protocol.ts";
import { configOf, MAX_BATCH_BYTES, MAX_GET_BATCH, type Env } from "../shared/env.ts";
import type { RefBook } from "./backrefs.ts";
import { readRun } from "./get-many.ts";
import { getTransaction } from "./get.ts";
import { LocationCache } from "./locations.ts";
import type { Member } from "./member.ts";
import type { Membership } from "./membership.ts";
import type { RepairPacer } from "./pacing.ts";
import { putTransaction } from "./transfer.ts";
import { Unavailable } from "../shared/unavailable.ts";

export interface ChunkContext {
  readonly group: number;
  readonly env: Env;
  readonly members: Membership;
  readonly refs: RefBook;
  readonly pacer: RepairPacer;
  /** Holds taken in memory are written (and reference changes pushed) by an alarm soon. */
  refsSoon(): void;
  /** A holder answered a read without a good copy: restore R in the background. */
  repairSoon(ref: StoredRef, why: string): void;
}

export class Chunks {
  private readonly locations = new LocationCache();
  /**
   * Chunks a client put of this group is storing right now, with how many puts: like those
   * being repaired, they are not reclaimed meanwhile, even should their hold run out first.
   */
  private readonly storing = new Map<Chid, number>();
  private readonly c: ChunkContext;

  constructor(c: ChunkContext) {
    this.c = c;
  }

  /**
   * Put chunk for every item, R replicas each (`replicas`: a version's own count).
   *
   * Chunks come as RPC arguments, not as a stream: a chunk is at most CHUNK_MAX (<= 16 MiB, far
   * under the 32 MiB argument cap, and the batch is bounded the same way), the gateway already
   * holds it whole to hash it, and measured on one workerd thread a 64 MiB object's chunks cost
   * ~0 ms as arguments against ~230 ms as RPC byte streams (docs/performance.md).
   */
  put(items: { chid: Chid; bytes: Uint8Array }[], replicas: number | null): Promise<void> {
    return this.timed(() => this.store(items, replicas));
  }

  /** Get chunk for a client: the bytes, verified against the CHID. */
  get(chid: Chid, near: string | null): Promise<Uint8Array> {
    return this.timed(() => this.read(chid, near));
  }

  /**
   * Several chunks for a client at once (the run of an object it will send next), each verified
   * as `get`'s: one call instead of one per chunk. The caller keeps a call's chunks within
   * MAX_BATCH_BYTES: the reply is held here whole and crosses RPC whole.
   */
  getMany(chids: Chid[], near: string | null): Promise<Uint8Array[]> {
    if (chids.length > MAX_GET_BATCH) throw new Error(`at most ${MAX_GET_BATCH} chunks per call, not ${chids.length}`);
    return this.timed(() => this.readMany(chids, near));
  }

  /** A put of this chunk is storing copies right now. */
  isStoring(chid: Chid): boolean {
    return this.storing.has(chid);
  }

  /** These members were seen to hold the chunk (a repair placed copies on them). */
  seenOn(chid: Chid, holders: readonly Member[]): void {
    this.locations.add(chid, holders.map((m) => m.id));
  }

  /** The chunk is being deleted everywhere. */
  forget(chid: Chid): void {
    this.locations.forget(chid);
  }

  /**
   * Get chunk: the bytes, verified against the CHID, or an error if no good copy is reachable.
   * `near`: the reader's location; holders nearest to it serve first. Untimed: repairs read too.
   */
  async read(chid: Chid, near: string | null = null): Promise<Uint8Array> {
    const readers = await this.c.members.live("readers");
    const ref = { kind: "chunk", chid } as const;
    // Known holders first, starting from a different one each time to spread the reads (the
    // order stays among holders equally near).
    const known = nearestFirst(this.knownAmong(chid, new Set(readers)), near);
    const got = await getTransaction(this.c.members, readers, {
      propose: (txn) => ({ t: "propose-get", txn, chid }),
      refOf: () => ref,
      expect: chid,
      maxBytes: configOf(this.c.env).chunk.max,
      known: { members: known, ref },
      near,
    });
    if (!got) throw new Unavailable(`no live target of group ${this.c.group} holds chunk ${chid}`);
    for (const m of got.failed) this.locations.remove(chid, m.id);
    // A holder that answered but could not serve it held a bad copy (it quarantines those) or
    // none: restore R. One that timed out is hung, not short of a copy: re-replication's business.
    const broken = got.failed.filter((m) => !m.slow);
    if (broken.length > 0) this.c.repairSoon(ref, `${broken.length} holder(s) failed a read`);
    this.locations.add(chid, got.holders.map((m) => m.id));
    return got.bytes;
  }

  private async readMany(chids: readonly Chid[], near: string | null): Promise<Uint8Array[]> {
    const readers = new Set(await this.c.members.live("readers"));
    return readRun({
      host: this.c.members,
      chids,
      near,
      maxBytes: configOf(this.c.env).chunk.max,
      holders: (chid) => this.knownAmong(chid, readers),
      failed: (chid, holder) => {
        this.locations.remove(chid, holder.id);
        // A holder that answered but could not serve, or sent bad bytes: restore R (as `read` does).
        if (!holder.slow) this.c.repairSoon({ kind: "chunk", chid }, `target ${holder.id} failed a read`);
      },
      readOne: (chid) => this.read(chid, near),
    });
  }

  /** The chunk's known holders that are among `readers`, in the order to try them. */
  private knownAmong(chid: Chid, readers: ReadonlySet<Member>): Member[] {
    return this.locations.holders(chid).flatMap((id) => {
      const m = this.c.members.get(id);
      return m && readers.has(m) ? [m] : [];
    });
  }

  private async timed<T>(op: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    try {
      return await op();
    } finally {
      this.c.pacer.client(Date.now() - t0, Date.now());
    }
  }

  private async store(items: { chid: Chid; bytes: Uint8Array }[], replicas: number | null): Promise<void> {
    const cfg = configOf(this.c.env);
    let total = 0;
    for (const it of items) {
      if (it.bytes.length > cfg.chunk.max) throw new Error(`chunk ${it.chid} is ${it.bytes.length} bytes, more than CHUNK_MAX ${cfg.chunk.max}`);
      total += it.bytes.length;
    }
    if (total > MAX_BATCH_BYTES) throw new Error(`a batch of ${total} bytes exceeds ${MAX_BATCH_BYTES}`);
    // Chunks this group has no record of are on no member: they are placed without bids (eager-put.ts)
    // (none while lost holds are being recovered: backrefs.ts unknown).
    // Asked before the hold below, which makes every one of them known. Concurrent puts of one
    // chunk find the first one's hold and negotiate, as before.
    const unknown = this.c.refs.unknown(items.map((it) => it.chid));
    // A chunk twice in one batch (an object of zeros) is placed once; the second finds the first.
    const first = new Map<Chid, number>();
    items.forEach((it, i) => first.has(it.chid) || first.set(it.chid, i));
    const fresh = new Set(items.flatMap((it, i) => (unknown.has(it.chid) && !this.storing.has(it.chid) && first.get(it.chid) === i ? [i] : [])));
    // Held before anything is proposed: a chunk being deleted is alive again from here, and its
    // version's back-reference has until the hold runs out to arrive.
    this.c.refs.hold(items.map((it) => it.chid), Date.now() + cfg.chunkHoldMs);
    this.c.refsSoon();
    for (const it of items) this.storing.set(it.chid, (this.storing.get(it.chid) ?? 0) + 1);
    try {
      const writers = await this.c.members.clientWriters();
      const holders = await putTransaction(
        this.c.members,
        writers,
        items.map((it) => ({ item: { kind: "chunk", chid: it.chid, size: it.bytes.length }, bytes: it.bytes })),
        replicas ?? cfg.replicas,
        { correlation: cfg.correlation, chain: cfg.chain, fresh },
      );
      items.forEach((it, i) => this.locations.add(it.chid, holders[i]!.map((m) => m.id)));
    } finally {
      for (const it of items) {
        const n = this.storing.get(it.chid)! - 1;
        if (n > 0) this.storing.set(it.chid, n);
        else this.storing.delete(it.chid);
      }
    }
  }
}
