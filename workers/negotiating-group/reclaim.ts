// Space reclamation for this group's items (backrefs.ts, ref-outbox.ts, expunge.ts): the
// back-references other groups' versions, uploads and snapshots hold on this group's chunks,
// and the holds puts and commits take; the references this group owes other groups; removed
// versions expunged once their retention and every snapshot's hold have passed; and the
// deletions each member owes, sent until it confirms them. Holds an earlier life of this object
// kept only in memory are recovered from the members' inventories.

import { parseUvid, type Chid, type Nhid, type TargetId, type Uvid } from "../../common/ids.ts";
import { storedRefKey, type StoredRef } from "../../common/protocol.ts";
import { configOf, groupStub, type Env } from "../shared/env.ts";
import type { AlarmClock } from "./alarm-clock.ts";
import { versionRef, type RefBook, type RefChange } from "./backrefs.ts";
import type { Chunks } from "./chunks.ts";
import type { ExpungeBook, RemovedVersion } from "./expunge.ts";
import type { Member } from "./member.ts";
import type { Membership } from "./membership.ts";
import type { MergeBook } from "./merges.ts";
import { OUTBOX_RETRY_MS, type Names } from "./names.ts";
import { FOREIGN_WAIT_MS } from "./split.ts";
import { RefOutbox } from "./ref-outbox.ts";
import type { Repair } from "./repair.ts";
import type { TreeNodes } from "./tree-nodes.ts";
import { inventoryOf } from "./rereplicate.ts";
import type { VersionBook } from "./versions.ts";

/** Chunks deleted, and removed versions expunged, per alarm round. */
const RECLAIM_BATCH = 512;
const EXPUNGE_BATCH = 64;
/** How long recovery of lost holds waits for every writer of the group to be back. */
const RECOVERY_WAIT_MS = 10 * 60_000;
/** Targets' clocks may run behind the group's: recovery asks for chunks written this much before. */
const CLOCK_MARGIN_MS = 10 * 60_000;
/** Commits within this long share one reference push per chunk group. */
const REF_PUSH_DELAY_MS = 5_000;
/** A removed version whose manifest could not be read to expunge it is tried again this much later. */
const EXPUNGE_RETRY_MS = 60_000;
/** A reclaim or expunge of an item being copied looks again this much later. */
const COPY_WAIT_MS = 1_000;

export interface ReclaimContext {
  /** Whether this group acts on the id: not once a split gave it to another group (split.ts). */
  readonly owns: (id: Nhid | Chid) => boolean;
  /** Every id this group owns is here (split.ts): until then a manifest it has no row for may be one still to come. */
  readonly settled: () => boolean;
  /** Take in from older groups the rows of these chunks of this group's (split.ts), before changing them. */
  readonly claimChunks: (chids: Chid[]) => Promise<void>;
  readonly group: number;
  readonly env: Env;
  readonly sql: SqlStorage;
  readonly members: Membership;
  readonly refs: RefBook;
  readonly expunges: ExpungeBook;
  readonly book: VersionBook;
  readonly merges: MergeBook;
  readonly alarms: AlarmClock;
  // Late-bound: these parts are made after this one and use it.
  names(): Names;
  chunks(): Chunks;
  repair(): Repair;
  nodes(): TreeNodes;
}

export class Reclaim {
  /** Back-reference changes this group owes other groups' chunks. */
  readonly outbox: RefOutbox;
  /** When this instance started: a manifest stamped before and never committed is an earlier life's leftover. */
  private readonly bornAt = Date.now();
  private readonly c: ReclaimContext;

  constructor(c: ReclaimContext) {
    this.c = c;
    this.outbox = new RefOutbox(c.sql, configOf(c.env).groupCount, async (g, changes) => {
      if (g !== c.group) return groupStub(c.env, g).applyRefs(changes);
      // Its own chunks may still have their rows in an older group (split.ts): in first.
      await c.claimChunks(changes.flatMap((ch) => ch.chids));
      this.apply(changes);
    });
  }

  /** When the alarm must come for changes an earlier life left unpushed, or holds it lost (null: none). */
  resumeAt(): number | null {
    const first = [this.outbox.waiting().length > 0 || this.c.refs.lostSince() !== null ? Date.now() + OUTBOX_RETRY_MS : null, this.c.refs.nextDue(), this.c.expunges.nextDue()].filter((t): t is number => t !== null);
    return first.length > 0 ? Math.min(...first) : null;
  }

  /**
   * Have queued reference changes pushed (and holds kept in memory written) by the alarm,
   * REF_PUSH_DELAY_MS from now: every commit meanwhile joins the same call per chunk group. Safe
   * to delay, since the chunks are held far longer (the delay is at most an eighth of
   * CHUNK_HOLD_SECONDS); and cheaper than any timer per commit: measured, pushing on a 200 ms
   * timer cost a 1 MiB PUT ~5 ms of workerd CPU (40 wake-ups a second across eight groups),
   * against ~1 ms for one alarm per group every 5 s.
   */
  soon(): void {
    this.c.alarms.soon(Date.now() + Math.min(REF_PUSH_DELAY_MS, configOf(this.c.env).chunkHoldMs / 8));
  }

  /** Another group's versions (or uploads, or a snapshot) start or stop using chunks of this group, in the order they happened there. */
  apply(changes: readonly RefChange[]): void {
    const cfg = configOf(this.c.env);
    const late = this.c.refs.apply(changes, Date.now(), cfg.reclaimGraceMs);
    this.c.nodes().changed(changes.flatMap((c) => c.chids));
    if (late.length > 0) console.log(JSON.stringify({ msg: "reference to a reclaimed chunk", group: this.c.group, chids: late.slice(0, 16), count: late.length }));
    const next = this.c.refs.nextDue();
    if (next !== null) this.c.alarms.soon(next);
  }

  /**
   * Keep these chunks for a while (a copy or a session's commit names chunks it did not store):
   * returns those already deleted, which a new version must not name. The rest cannot be
   * deleted before the hold runs out, by when the new version's references are here.
   */
  holdChunks(chids: Chid[]): Chid[] {
    const gone = new Set(this.c.refs.gone(chids));
    const until = Date.now() + configOf(this.c.env).chunkHoldMs;
    this.c.refs.hold(chids.filter((c) => !gone.has(c)), until);
    this.c.alarms.soon(until);
    return [...gone];
  }

  /** A snapshot names these versions: keep their data until it lets go. Returns those already expunged. */
  holdVersions(holder: string, versions: RemovedVersion[]): RemovedVersion[] {
    const missing = versions.filter((v) => !this.c.book.find(v.nhid, v.uvid) && !this.c.expunges.retained(v.nhid, v.uvid));
    const lost = new Set(missing.map((v) => `${v.nhid}/${v.uvid}`));
    this.c.expunges.hold(holder, versions.filter((v) => !lost.has(`${v.nhid}/${v.uvid}`)));
    return missing;
  }

  /** A snapshot is deleted: versions it alone kept, and that are no longer in the namespace, are expunged. */
  async releaseVersions(holder: string, versions: { nhid: Nhid; uvid: Uvid }[]): Promise<void> {
    const now = Date.now();
    for (const v of this.c.expunges.release(holder, versions)) if (!this.c.book.find(v.nhid, v.uvid)) this.c.expunges.schedule(v, now);
    await this.c.alarms.by(now);
  }

  /** A version left the namespace: expunge it once its retention has passed. */
  removed(v: RemovedVersion): void {
    const due = Date.now() + configOf(this.c.env).removedRetainMs;
    this.c.expunges.schedule(v, due);
    this.c.alarms.soon(due);
  }

  /** Counts of the reclamation tables, for tests and status pages. */
  status(): { backrefs: number; holds: number; reclaims: number; outbox: number; expunging: number } {
    const n = (q: string) => Number(this.c.sql.exec(q).toArray()[0]!.n);
    return { ...this.c.refs.counts(), outbox: n("SELECT count(*) AS n FROM ref_outbox"), expunging: n("SELECT count(*) AS n FROM expunge") };
  }

  /** A member deleted what it was told to. */
  confirmed(id: TargetId, refs: StoredRef[]): void {
    this.c.refs.confirmed(id, refs);
  }

  /** Send every live member the deletions it owes (after recording new ones). */
  sendOwedToAll(): void {
    for (const m of this.c.members.all()) if (!m.gone) this.sendOwed(m);
  }

  /** Send a member the deletions it has not confirmed (on connect, and each reclamation round). */
  sendOwed(m: Member): void {
    const owed = this.c.refs.pendingFor(m.id, 4096);
    if (owed.length > 0) m.send({ t: "reclaim", refs: owed });
  }

  /** Holds taken in memory since the last alarm, to storage. */
  flushHolds(): void {
    this.c.refs.flushHolds();
  }

  /**
   * An earlier life of this object kept holds in memory it never wrote (backrefs.ts hold): the
   * chunks its members stored since then, and that have no row here, are held now, so that
   * those no version references are reclaimed like any other. Asks each member for only the
   * chunks of this group written since (by file time, with a margin for clock skew); waits
   * until every writer of the group is back, or gives up after RECOVERY_WAIT_MS (a leak).
   */
  async recoverHolds(): Promise<void> {
    const since = this.c.refs.lostSince();
    if (since === null) return;
    const cfg = configOf(this.c.env);
    const view = await this.c.members.groupView(true);
    const readers = await this.c.members.live("readers");
    const missing = view.writers.filter((w) => !readers.some((m) => m.id === w.id));
    if (missing.length > 0 && Date.now() - since < RECOVERY_WAIT_MS) {
      await this.c.alarms.by(Date.now() + 5 * OUTBOX_RETRY_MS);
      return;
    }
    const inventories = await Promise.all(readers.map((m) => inventoryOf(this.c.members, m, { group: this.c.group, groupCount: cfg.groupCount, since: since - CLOCK_MARGIN_MS })));
    if (inventories.some((i) => i === null)) {
      await this.c.alarms.by(Date.now() + 5 * OUTBOX_RETRY_MS);
      return;
    }
    const chids = inventories.flatMap((inv) => inv!.flatMap((r) => (r.kind === "chunk" ? [r.chid] : [])));
    const orphans = this.c.settled() ? this.uncommittedManifests(inventories.flatMap((inv) => inv!)) : [];
    if (orphans.length > 0) {
      this.c.refs.reclaim(orphans, readers.map((m) => m.id), Date.now());
      this.sendOwedToAll();
    }
    const held = this.c.refs.recovered(chids, Date.now() + cfg.chunkHoldMs);
    console.log(JSON.stringify({ msg: "holds recovered", group: this.c.group, since, found: chids.length, held, orphans: orphans.length, members: readers.length, missing: missing.length }));
    const next = this.c.refs.nextDue();
    if (next !== null) await this.c.alarms.by(next);
  }

  /** Push the reference changes this group owes other groups. */
  async push(): Promise<void> {
    await this.outbox.push();
  }

  /** Delete, on every member that may hold them, chunks whose holds ran out with nothing referencing them. */
  async reclaimDue(): Promise<void> {
    // Until a split's ids are all in, a hold (a recovered one above all) may be on a chunk whose
    // references are still to come: nothing is reclaimed before the walk is over.
    if (!this.c.settled()) return;
    const first = this.c.refs.nextDue();
    if ((first === null || first > Date.now()) && !this.c.refs.owesAny()) {
      if (first !== null) await this.c.alarms.by(first);
      return;
    }
    // Tree nodes among them let go of their entries as they go: those are read first, since
    // from `due` on nothing may await.
    await this.c.nodes().prepare(this.c.refs.due(Date.now(), RECLAIM_BATCH));
    // The view first: from `due` to `reclaim` nothing may await, or a put could hold a chunk in between.
    const view = await this.c.members.groupView(true);
    const readers = view.readers.map((m) => m.id);
    this.c.refs.forgetMembersExcept(readers);
    const now = Date.now();
    const all = this.c.refs.due(now, RECLAIM_BATCH);
    // A chunk a split gave to another group is reclaimed there, once its rows are handed over.
    const foreign = all.filter((chid) => !this.c.owns(chid));
    if (foreign.length > 0) this.c.refs.postpone(foreign, now + FOREIGN_WAIT_MS);
    const found = all.filter((chid) => this.c.owns(chid));
    // A chunk being copied (repaired, or stored by a put that outlived its hold) waits: copies
    // landing after the reclaim went out would belong to nothing. Once the copy is over it is
    // reclaimed from every member, new copies too, unless a reference came meanwhile.
    const copying = new Set(found.filter((chid) => this.copying({ kind: "chunk", chid })));
    if (copying.size > 0) this.c.refs.postpone([...copying], now + COPY_WAIT_MS);
    const { go: due, wait } = this.c.nodes().release(found.filter((chid) => !copying.has(chid)), now);
    for (const w of wait) this.c.refs.postpone([w.chid], w.until);
    if (due.length > 0) {
      this.c.refs.reclaim(due.map((chid) => ({ kind: "chunk", chid })), readers, now);
      for (const chid of due) this.c.chunks().forget(chid);
      console.log(JSON.stringify({ msg: "reclaiming chunks", group: this.c.group, count: due.length }));
    }
    this.sendOwedToAll();
    const next = all.length === RECLAIM_BATCH ? now : this.c.refs.nextDue();
    if (next !== null) await this.c.alarms.by(Math.max(next, now + 10));
  }

  /** Expunge removed versions past their retention: drop their chunks' references, delete their manifests. */
  async expungeDue(): Promise<void> {
    const cfg = configOf(this.c.env);
    const due = this.c.expunges.due(Date.now(), EXPUNGE_BATCH);
    let done = 0;
    for (const v of due) {
      if (!this.c.owns(v.nhid)) {
        this.c.expunges.postpone(v, Date.now() + FOREIGN_WAIT_MS);
        continue;
      }
      let chids: Chid[];
      try {
        chids = (await this.c.names().manifest(v.nhid, v.uvid, v.vmChid)).chunks.map((c) => c.chid);
      } catch (e) {
        // Its chunks are known only from its manifest: without one, try later rather than guess.
        console.log(JSON.stringify({ msg: "expunge postponed", group: this.c.group, uvid: v.uvid, error: String(e) }));
        this.c.expunges.postpone(v, Date.now() + EXPUNGE_RETRY_MS);
        continue;
      }
      const view = await this.c.members.groupView();
      // A snapshot may have taken hold of it while its manifest was read.
      if (!this.c.expunges.stillDue(v)) continue;
      // Its manifest being repaired waits, as a chunk being copied does (reclaimDue).
      if (this.copying({ kind: "vm", chid: v.vmChid, nhid: v.nhid, uvid: v.uvid })) {
        this.c.expunges.postpone(v, Date.now() + COPY_WAIT_MS);
        continue;
      }
      this.outbox.queue("-", versionRef(v.nhid, v.uvid), chids);
      this.c.refs.reclaim([{ kind: "vm", chid: v.vmChid, nhid: v.nhid, uvid: v.uvid }], view.readers.map((m) => m.id), Date.now());
      this.c.expunges.done(v);
      done++;
    }
    if (done > 0) {
      this.sendOwedToAll();
      console.log(JSON.stringify({ msg: "expunged", group: this.c.group, versions: done }));
      await this.outbox.push();
    }
    const next = due.length === EXPUNGE_BATCH ? Date.now() : this.c.expunges.nextDue();
    if (next !== null) await this.c.alarms.by(Math.max(next, Date.now() + 10));
  }

  /** Copies of this item are being written by this group right now (a put or a repair): no reclaim may go out. */
  private copying(ref: StoredRef): boolean {
    return this.c.repair().isRepairing(ref) || (ref.kind === "chunk" && this.c.chunks().isStoring(ref.chid));
  }

  /**
   * Of the manifests members hold, those an earlier life of this object wrote and never
   * committed: stamped before this one started, and neither a version, nor removed and kept
   * for expunging, nor the decided write of a merge still to be finished.
   */
  private uncommittedManifests(found: readonly StoredRef[]): (StoredRef & { kind: "vm" })[] {
    const merging = new Set(this.c.merges.all().flatMap((r) => (r.decided ? [r.decided] : [])));
    const out = new Map<string, StoredRef & { kind: "vm" }>();
    for (const r of found) {
      if (r.kind !== "vm" || parseUvid(r.uvid).ms >= this.bornAt || merging.has(r.uvid)) continue;
      if (this.c.book.find(r.nhid, r.uvid) || this.c.expunges.retained(r.nhid, r.uvid)) continue;
      out.set(storedRefKey(r), r);
    }
    return [...out.values()];
  }
}
