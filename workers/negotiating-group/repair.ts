// Keeping every item of this group at R on its members (seed 003). Three ways in: a check of
// given items (validation, and the background repair a bad read or a member's scrub starts),
// the sweep once a member has been gone past the grace period (every member's inventory is
// counted and whatever is short is copied back up, paced so clients come first), and members
// that drain or lose data (copied off them while they still serve). Copies on returned
// non-members that are surplus are trimmed. Also what the group reports of its health.

import { distinctDomains } from "../../common/correlation.ts";
import { groupOf, type Chid, type Nhid, type TargetId } from "../../common/ids.ts";
import { encodeManifest } from "../../common/manifest.ts";
import { storedRefKey, type HelloMsg, type PutItem, type StoredRef } from "../../common/protocol.ts";
import { configOf, groupStub, type Env } from "../shared/env.ts";
import type { AlarmClock } from "./alarm-clock.ts";
import type { RefBook } from "./backrefs.ts";
import type { Chunks } from "./chunks.ts";
import { stateOf, type GroupHealth, type SweepReport } from "./health.ts";
import type { Member } from "./member.ts";
import type { Membership } from "./membership.ts";
import { OUTBOX_RETRY_MS, type Names } from "./names.ts";
import type { RepairPacer } from "./pacing.ts";
import { RepairQueue, type QueuedRepair } from "./repair-queue.ts";
import { copiesByItem, GoneBook, inventoryOf, OutsideBook, SweepRequests, underReplicated, type Holding } from "./rereplicate.ts";
import type { ItemVerdict } from "./rpc.ts";
import { putTransaction } from "./transfer.ts";
import { verifyTransaction } from "./verify.ts";
import type { ExpungeBook } from "./expunge.ts";
import type { VersionBook } from "./versions.ts";
import { FOREIGN_WAIT_MS } from "./split.ts";

/** Queued repairs run this many at a time. */
const REPAIR_BATCH = 8;
/** A queued repair of an item another check is copying now is looked at again this much later. */
const RECHECK_MS = 1_000;
/** A non-member's copies are counted (and its surplus trimmed) this long after it says hello or the members change. */
const TRIM_DELAY_MS = 5_000;
/** A drain sweep that left items short is tried again this much later. */
const DRAIN_RETRY_MS = 60_000;
/** ...and one whose draining target is still its member (not replaced yet), this much later. */
const DRAIN_MEMBER_RETRY_MS = 300_000;

export interface RepairContext {
  /** Whether this group acts on the id: not once a split gave it to another group (split.ts). */
  readonly owns: (id: Nhid | Chid) => boolean;
  readonly group: number;
  readonly env: Env;
  readonly sql: SqlStorage;
  readonly members: Membership;
  readonly refs: RefBook;
  readonly book: VersionBook;
  readonly expunges: ExpungeBook;
  readonly chunks: Chunks;
  readonly names: Names;
  readonly pacer: RepairPacer;
  readonly alarms: AlarmClock;
}

export class Repair {
  /**
   * Members that went away, and when: past the grace period their items are re-replicated.
   * Kept in storage (table `gone`), so an evicted or restarted group still knows.
   */
  private readonly goneSince: GoneBook;
  /** Sweeps asked for besides those of departures (a member lost data, drains, came back). */
  private readonly sweeps: SweepRequests;
  /** Items waiting for a repair, in storage, with their retries. */
  private readonly queue: RepairQueue;
  /** What the last sweep left on each non-member reader (the rebalance status). */
  private readonly outside: OutsideBook;
  /** Members that said they are draining (hello): told `drained` once a sweep left none of their items short. */
  private readonly draining = new Set<TargetId>();
  /** Items whose repair runs in this instance now: a reclaim of them waits (reclaim.ts). */
  private readonly running = new Set<string>();
  private queueRunning = false;
  private sweeping = false;
  /** The running sweep's progress and the last one's result (health.ts; memory only, for status). */
  private sweepProgress: { short: number; done: number; repaired: number } | null = null;
  private lastSweep: SweepReport | null = null;
  private readonly c: RepairContext;

  constructor(c: RepairContext) {
    this.c = c;
    this.goneSince = new GoneBook(c.sql);
    this.sweeps = new SweepRequests(c.sql);
    this.queue = new RepairQueue(c.sql);
    this.outside = new OutsideBook(c.sql);
  }

  /** When the alarm must come for work an earlier life of the object left (null: none). */
  resumeAt(): number | null {
    const due = [this.queue.nextDue(), this.sweeps.nextDue(), this.goneSince.size > 0 ? Date.now() + OUTBOX_RETRY_MS : null].filter((t): t is number => t !== null);
    return due.length > 0 ? Math.min(...due) : null;
  }

  /** Copies of this item are being written by a repair right now: no reclaim may go out. */
  isRepairing(ref: StoredRef): boolean {
    return this.running.has(storedRefKey(ref));
  }

  /** A member is back: nothing of its to re-replicate. */
  returned(id: TargetId): void {
    this.goneSince.delete(id);
  }

  /** A member went away: past the grace period its items are restored elsewhere. */
  left(id: TargetId): void {
    this.goneSince.set(id, Date.now());
    this.c.alarms.soon(Date.now() + configOf(this.c.env).rereplicateAfterMs);
  }

  /**
   * A member that lost data it cannot name (run-journal.ts on the target) is, for this group's
   * items, like a member gone for good: recount every item's copies and restore R now. So is a
   * draining one (no longer a writer here): the recount counts copies on writers only, so its
   * items are copied to the members while it still serves them.
   */
  hello(m: Member, msg: HelloMsg): void {
    if (msg.draining) this.draining.add(m.id);
    if (!msg.lost && !msg.draining) {
      // A newcomer may be what a non-member's copies wait for; a non-member itself (replaced
      // while away, or moved out for a newcomer) has copies to count and trim.
      // Without the view nothing moves now; the next sweep counts its copies anyway.
      void this.rebalanceSoon(false).catch((e: unknown) => console.log(JSON.stringify({ msg: "could not check the group's membership", group: this.c.group, member: m.id, error: String(e) })));
      return;
    }
    console.log(JSON.stringify({ msg: msg.lost ? "member lost data: recounting copies" : "member draining: copying its items to the members", group: this.c.group, member: m.id }));
    this.sweeps.request(m.id, Date.now(), msg.lost ? "lost data" : "draining");
    this.c.alarms.soon(Date.now());
  }

  /** The cluster changed this group's members: a fresh view, and a sweep if copies must move. */
  async membershipChanged(): Promise<void> {
    await this.c.members.groupView(true);
    await this.rebalanceSoon(true);
  }

  /**
   * Connected readers that are not members (a newcomer took their place, or they were replaced
   * while away) hold copies the members should have: a sweep a little later (so a newcomer's
   * link is up) copies what the members lack, and a later one trims what they have enough of.
   * Unless the members changed, a reader whose last sweep left only copies nothing references
   * (reclamation deletes those) is not swept again.
   */
  private async rebalanceSoon(changed: boolean): Promise<void> {
    const writers = new Set((await this.c.members.live("writers")).map((w) => w.id));
    const outside = (await this.c.members.live("readers")).filter((r) => {
      if (writers.has(r.id) || this.draining.has(r.id)) return false;
      if (changed) this.outside.clear(r.id);
      const last = this.outside.get(r.id);
      return last === null || last.left > last.unreferenced;
    });
    if (outside.length === 0) return;
    const at = Date.now() + TRIM_DELAY_MS;
    for (const r of outside) this.sweeps.request(r.id, at, "non-member holds copies");
    await this.c.alarms.by(at);
  }

  /**
   * Restore an item's replica count in the background (a target's scrub or a read found a bad
   * or missing copy): the same check-then-copy as validation. One repair per item at a time.
   * Restores to the cluster's R: a version's own count is known to its name's group, not here.
   */
  soon(ref: StoredRef, why: string): void {
    if (this.c.refs.reclaiming(ref)) return;
    this.queue.add(ref, why, Date.now());
    // The row is in storage: a run that fails here is picked up again by the next alarm.
    void this.runQueue().catch((e: unknown) => console.log(JSON.stringify({ msg: "queued repairs failed", group: this.c.group, error: String(e) })));
  }

  /**
   * Run the queued repairs that are due, a few at a time, until none is; what fails waits for
   * its retry, and the alarm comes back for it. One run at a time per instance.
   */
  async runQueue(): Promise<void> {
    if (this.queueRunning) return;
    this.queueRunning = true;
    try {
      for (let batch = this.queue.due(Date.now(), REPAIR_BATCH); batch.length > 0; batch = this.queue.due(Date.now(), REPAIR_BATCH)) {
        await Promise.all(batch.map((q) => this.repairOne(q)));
      }
    } finally {
      this.queueRunning = false;
    }
    const next = this.queue.nextDue();
    if (next !== null) await this.c.alarms.by(next);
  }

  private async repairOne(q: QueuedRepair): Promise<void> {
    const { ref, why } = q;
    const key = storedRefKey(ref);
    const log = (fields: Record<string, unknown>) => console.log(JSON.stringify({ msg: "repair", group: this.c.group, kind: ref.kind, chid: ref.chid, why, ...fields }));
    // Being deleted meanwhile: nothing to restore.
    if (this.c.refs.reclaiming(ref)) return this.queue.done(ref);
    // A split gave it to another group: that group checks and repairs it (taking its rows in first).
    const id = ref.kind === "chunk" ? ref.chid : ref.nhid;
    if (!this.c.owns(id)) {
      const owner = groupOf(id, configOf(this.c.env).groupCount);
      try {
        await groupStub(this.c.env, owner).verifyItems([ref]);
        return this.queue.done(ref);
      } catch (e) {
        log({ passedOnTo: owner, error: String(e) });
        return this.queue.postpone(ref, Date.now() + FOREIGN_WAIT_MS);
      }
    }
    // Another check (validation, a sweep) is copying it now: two placements at once would each
    // add the missing copies. Counted again once that one is done.
    if (this.running.has(key)) return this.queue.postpone(ref, Date.now() + RECHECK_MS);
    this.running.add(key);
    try {
      const [v] = await this.check([ref]);
      log({ good: v?.good, bad: v?.bad, repaired: v?.repaired, errors: q.errors });
      // Short with a good copy left: placing failed now (too few takers), try again later. No
      // good copy at all: nothing to copy from, and the verdict says so.
      if (v && v.short && v.good > 0) this.queue.failed(ref, Date.now());
      else this.queue.done(ref);
    } catch (e) {
      log({ error: String(e), errors: q.errors + 1 });
      this.queue.failed(ref, Date.now());
    } finally {
      this.running.delete(key);
    }
  }

  /**
   * Validate items in place: every live target re-hashes its own copies, and an item with fewer
   * than R good copies but at least one is copied back up to R from a good one (check, then copy
   * only what is missing). Nothing is sent to the caller but the counts.
   */
  async check(refs: StoredRef[], replicas: number | null = null, fill: Map<TargetId, number> | null = null): Promise<ItemVerdict[]> {
    const cfg = configOf(this.c.env);
    const want = replicas ?? cfg.replicas;
    const readers = await this.c.members.live("readers");
    const checks = await verifyTransaction(this.c.members, readers, refs);
    const writers = await this.c.members.live("writers");
    return Promise.all(
      refs.map(async (ref, i): Promise<ItemVerdict> => {
        const { good, bad } = checks[i]!;
        const verdict: ItemVerdict = { good: good.length, bad: bad.length, repaired: 0, short: false };
        // R counts copies on members: one on a target that is only a reader (draining, replaced) is a source, not a replica.
        const counted = good.filter((m) => writers.some((w) => w.id === m.id));
        const onWriters = counted.length;
        // And in failure domains: two copies on one host's devices are one replica, where the members span enough.
        const reach = this.domainReach(writers, want);
        const domains = distinctDomains(counted.map((m) => m.location), cfg.correlation);
        if (onWriters >= want && domains >= reach) return verdict;
        verdict.short = true;
        if (good.length === 0) return verdict;
        // A reclaimed chunk whose copies are still being deleted is not short, it is going.
        if (ref.kind === "chunk" && this.c.refs.reclaimed(ref.chid)) return { ...verdict, short: false };
        // Short in domains only: one more copy per missing domain, placed least correlated (the
        // extra copy on a member stays: trimming takes only non-members' copies).
        const place = Math.max(want, onWriters + Math.max(0, reach - domains));
        // This is the repair: a read below that meets the copy just quarantined must not start another.
        const key = storedRefKey(ref);
        const mine = !this.running.has(key);
        this.running.add(key);
        try {
          const bytes = ref.kind === "chunk" ? await this.c.chunks.read(ref.chid) : encodeManifest(await this.c.names.manifest(ref.nhid, ref.uvid, ref.chid));
          const item: PutItem = ref.kind === "chunk" ? { kind: "chunk", chid: ref.chid, size: bytes.length } : { kind: "vm", chid: ref.chid, size: bytes.length, nhid: ref.nhid, uvid: ref.uvid };
          // No reclaim of it goes out while it is `running` (reclaim.ts: copying).
          const put = (to: readonly Member[]) => putTransaction(this.c.members, to, [{ item, bytes }], place, { correlation: cfg.correlation, skipSlow: false, chain: cfg.chain, repair: true });
          const emptiest = fill ? this.emptiest(writers, counted, place - onWriters, fill, want) : null;
          // The emptiest members first (a sweep that moves copies fills a newcomer), else any.
          const holders = emptiest ? await put(emptiest).catch(() => put(writers)) : await put(writers);
          if (fill) for (const h of holders[0]!) if (!counted.some((c) => c.id === h.id)) fill.set(h.id, (fill.get(h.id) ?? 0) + 1);
          verdict.repaired = Math.max(0, holders[0]!.length - onWriters);
          verdict.short = false;
          if (ref.kind === "chunk") this.c.chunks.seenOn(ref.chid, holders[0]!);
        } catch {
          // Left as it is: the verdict says how many good copies remain.
        } finally {
          if (mine) this.running.delete(key);
        }
        return verdict;
      }),
    );
  }

  /**
   * The alarm's part: once a member has been gone for the grace period, restore R for every
   * item of this group that now has fewer than R copies on live members (rereplicate.ts). A
   * member that comes back before then costs nothing; one that comes back after finds its
   * copies surplus, and they are trimmed.
   */
  async sweepIfDue(): Promise<void> {
    // The running sweep asks for the next one when it ends.
    if (this.sweeping) return;
    const cfg = configOf(this.c.env);
    const due = [...this.goneSince].filter(([, t]) => Date.now() - t >= cfg.rereplicateAfterMs).map(([id]) => id);
    const asked = this.sweeps.take(Date.now());
    if (due.length === 0 && asked.length === 0) return this.sweepLater();
    this.sweeping = true;
    const t0 = Date.now();
    try {
      const readers = await this.c.members.live("readers");
      const writers = new Set((await this.c.members.live("writers")).map((m) => m.id));
      const inventories = await Promise.all(readers.map((m) => inventoryOf(this.c.members, m, { group: this.c.group, groupCount: cfg.groupCount, since: null })));
      const answered = readers.flatMap((m, i) => (inventories[i] ? [{ id: m.id, refs: inventories[i]!, location: m.location, counts: writers.has(m.id) }] : []));
      // Copies count on writers only: a reader that is no longer a member (draining, replaced) is a source to copy from.
      // Items being deleted (reclaimed, some member has yet to confirm) are not restored.
      // Each item to the most copies any user of it asked for, so an object kept at more than R
      // keeps its extra copies when the copies move (and its non-member copy is then trimmed).
      const members = readers.filter((m) => writers.has(m.id));
      // Read once for the sweep: a query per item would hold the group's thread for every item it has.
      const raised = this.c.refs.raised(cfg.replicas);
      const ownCounts = this.c.book.ownCounts();
      const wantOf = (ref: StoredRef) => (ref.kind === "chunk" ? raised.get(ref.chid) : ownCounts.get(`${ref.nhid}/${ref.uvid}`)) ?? cfg.replicas;
      const short = underReplicated(answered, wantOf, (w) => this.domainReach(members, w), cfg.correlation).filter((s) => !this.c.refs.reclaiming(s.ref));
      // Copies of this group's items each member holds: the sweep's copies go to the emptiest.
      const fill = new Map(answered.filter((h) => h.counts).map((h) => [h.id, h.refs.length]));
      let repaired = 0;
      let lost = 0;
      const stillShort = new Set<string>();
      // Small batches, one after another, with a pause between them: this object serves the
      // group's client reads and writes on the same thread, and must keep doing so.
      this.c.pacer.begin();
      this.sweepProgress = { short: short.length, done: 0, repaired: 0 };
      for (let i = 0; i < short.length; ) {
        const batch = short.slice(i, i + this.c.pacer.batch).map((s) => s.ref);
        i += batch.length;
        const verdicts = await this.checkEach(batch, wantOf, fill);
        verdicts.forEach((v, j) => {
          repaired += v.repaired;
          lost += v.good === 0 ? 1 : 0;
          if (v.short) stillShort.add(storedRefKey(batch[j]!));
        });
        this.sweepProgress = { short: short.length, done: i, repaired };
        await this.paced();
      }
      for (const id of due) this.goneSince.delete(id);
      this.lastSweep = { at: Date.now(), short: short.length, repaired, lost, ms: Date.now() - t0 };
      console.log(JSON.stringify({ msg: "re-replicated", group: this.c.group, gone: due, asked: asked.map((a) => `${a.id}: ${a.why}`), members: readers.length, short: short.length, repaired, lost, ms: Date.now() - t0 }));
      this.reportDrained(readers.flatMap((m, i) => (inventories[i] && this.draining.has(m.id) ? [{ m, refs: inventories[i]!, member: writers.has(m.id) }] : [])), stillShort);
      const returned = readers.flatMap((m, i) => (inventories[i] && !writers.has(m.id) && !this.draining.has(m.id) ? [{ m, refs: inventories[i]! }] : []));
      const trimmed = returned.length > 0 ? await this.trimSurplus(returned, answered, new Set(short.map((x) => storedRefKey(x.ref)))) : 0;
      // What this sweep copied was short when it counted, so it is not trimmed yet: the next one
      // does. Only after progress, so a group that cannot reach R does not sweep in a loop.
      if (repaired > 0 || trimmed > 0) {
        for (const { m } of returned) if ((this.outside.get(m.id)?.left ?? 1) > (this.outside.get(m.id)?.unreferenced ?? 0)) this.sweeps.request(m.id, Date.now() + TRIM_DELAY_MS, "trim what was copied off a non-member");
      }
    } finally {
      this.sweeping = false;
      this.sweepProgress = null;
      this.c.pacer.end();
    }
    await this.sweepLater();
  }

  /** Ask for the alarm when the next sweep falls due: a departure past its grace, or a request. */
  private async sweepLater(): Promise<void> {
    const grace = configOf(this.c.env).rereplicateAfterMs;
    const next = Math.min(...[...this.goneSince.values()].map((t) => t + grace), this.sweeps.nextDue() ?? Number.POSITIVE_INFINITY);
    if (Number.isFinite(next)) await this.c.alarms.by(Math.max(next, Date.now() + OUTBOX_RETRY_MS));
  }

  /** Members, liveness and whether the items are at R (health.ts), for status and metrics. */
  async health(): Promise<GroupHealth> {
    const view = await this.c.members.groupView();
    const live = new Set([...this.c.members.all()].filter((m) => !m.gone).map((m) => m.id));
    const members = view.writers.map((m) => ({ id: m.id, location: m.location, live: live.has(m.id) }));
    // Down members the sweep has yet to cover.
    const gone = new Map(this.goneSince);
    const pending = members.filter((m) => !m.live && gone.has(m.id)).map((m) => ({ id: m.id, since: gone.get(m.id)! }));
    const repair = this.sweepProgress;
    const writers = new Set(view.writers.map((m) => m.id));
    const ids = view.readers.filter((m) => !writers.has(m.id)).map((m) => m.id);
    this.outside.keepOnly(ids);
    const outside = ids.map((id) => ({ id, left: this.outside.get(id) }));
    return { group: this.c.group, state: stateOf({ pending, repair }), members, readers: outside.length, outside, pending, repair, lastSweep: this.lastSweep };
  }

  /** How many failure domains `want` copies can span on these members: R, or fewer on a group with too few hosts. */
  private domainReach(members: readonly Member[], want: number): number {
    return Math.min(want, distinctDomains(members.map((m) => m.location), configOf(this.c.env).correlation));
  }

  /** Between repair batches: adapt to what clients see, and give way for as long as that says. */
  private async paced(): Promise<void> {
    this.c.pacer.adapt(Date.now());
    if (this.c.pacer.pauseMs > 0) await new Promise((r) => setTimeout(r, this.c.pacer.pauseMs));
  }

  /**
   * Surplus copies on readers that are no longer members (a replaced target that came back):
   * an item whose copies on live members number at least the most any user of it asked for
   * (`RefBook.wanted`, the version's own count for a manifest), over as many failure domains as
   * the members allow, has its copy there deleted (a `reclaim` to that target alone, kept in
   * `trims` until confirmed), in paced batches. Anything short at the sweep's start, being
   * deleted, or referenced by nothing (reclamation's) is left alone. How many trims are newly owed.
   */
  private async trimSurplus(returned: { m: Member; refs: readonly StoredRef[] }[], holdings: readonly Holding[], wasShort: ReadonlySet<string>): Promise<number> {
    const cfg = configOf(this.c.env);
    const writers = await this.c.members.live("writers");
    // Copies on members still live now: one that went since the inventories counts for nothing.
    const live = new Set(writers.map((w) => w.id));
    const onMembers = copiesByItem(holdings, (h) => h.counts && live.has(h.id));
    // Trims newly owed, not those sent again: a member that never confirms must not look like progress.
    let newly = 0;
    for (const { m, refs } of returned) {
      // Why copies stay, for the log: an operator watching a rebalance asks.
      const kept = { short: 0, unreferenced: 0, fewer: 0 };
      const surplus = refs.filter((ref) => {
        const k = storedRefKey(ref);
        if (wasShort.has(k) || this.c.refs.reclaiming(ref)) return void kept.short++, false;
        const want = this.wanted(ref);
        if (want === null) return void kept.unreferenced++, false;
        const at = onMembers.get(k)?.at ?? [];
        const enough = at.length >= want && distinctDomains(at, cfg.correlation) >= this.domainReach(writers, want);
        if (!enough) kept.fewer++;
        return enough;
      });
      for (let i = 0; i < surplus.length && !m.gone; ) {
        const batch = surplus.slice(i, i + this.c.pacer.batch);
        i += batch.length;
        newly += this.c.refs.trim(batch, m.id);
        m.send({ t: "reclaim", refs: batch });
        await this.paced();
      }
      console.log(JSON.stringify({ msg: "trimmed surplus copies", group: this.c.group, member: m.id, held: refs.length, trimmed: surplus.length, kept }));
      this.outside.set(m.id, { left: refs.length - surplus.length, unreferenced: kept.unreferenced });
    }
    return newly;
  }

  /**
   * The most copies any user of an item asked for: a chunk's back-references (RefBook.wanted), a
   * manifest's version; null for one nothing references (reclamation's business).
   */
  private wanted(ref: StoredRef): number | null {
    const r = configOf(this.c.env).replicas;
    if (ref.kind === "chunk") return this.c.refs.wanted(ref.chid, r);
    const row = this.c.book.find(ref.nhid, ref.uvid);
    if (row) return row.replicas ?? r;
    // Removed but kept for reads as of a time, or for a snapshot, until it is expunged.
    return this.c.expunges.retained(ref.nhid, ref.uvid) ? r : null;
  }

  /**
   * The holders and the `need` non-holders holding the fewest of this group's copies (`fill`):
   * where a sweep's copies go, so copies moved off a member that left fill the emptiest members
   * (a newcomer) first. Null where those would span fewer failure domains than all the writers
   * would: safety before balance.
   */
  private emptiest(writers: readonly Member[], holders: readonly Member[], need: number, fill: ReadonlyMap<TargetId, number>, want: number): Member[] | null {
    const cfg = configOf(this.c.env);
    const others = writers.filter((w) => !holders.some((h) => h.id === w.id)).sort((a, b) => (fill.get(a.id) ?? 0) - (fill.get(b.id) ?? 0));
    const chosen = [...writers.filter((w) => holders.some((h) => h.id === w.id)), ...others.slice(0, need)];
    const reach = this.domainReach(writers, want);
    return distinctDomains(chosen.map((m) => m.location), cfg.correlation) >= reach ? chosen : null;
  }

  /** check() of items that may want different counts: one call per count, verdicts in the items' order. */
  private async checkEach(refs: readonly StoredRef[], wantOf: (ref: StoredRef) => number, fill: Map<TargetId, number>): Promise<ItemVerdict[]> {
    const out: ItemVerdict[] = new Array(refs.length);
    const byWant = new Map<number, number[]>();
    refs.forEach((ref, i) => {
      const want = wantOf(ref);
      const at = byWant.get(want);
      if (at) at.push(i);
      else byWant.set(want, [i]);
    });
    for (const [want, at] of byWant) {
      const verdicts = await this.check(at.map((i) => refs[i]!), want, fill);
      at.forEach((i, j) => (out[i] = verdicts[j]!));
    }
    return out;
  }

  /**
   * A draining target whose every item here is at R on the members is told so (it logs "drain
   * complete" once every group it holds data for has); one with an item still short is swept
   * again in a minute.
   */
  private reportDrained(drainers: { m: Member; refs: readonly StoredRef[]; member: boolean }[], stillShort: ReadonlySet<string>): void {
    for (const { m, refs, member } of drainers) {
      const left = refs.filter((r) => stillShort.has(storedRefKey(r))).length;
      if (member) {
        // Not replaced here yet (the new map is on its way, or no live target can take its place): its copies still count.
        console.log(JSON.stringify({ msg: "draining target is still a member: sweeping again later", group: this.c.group, member: m.id }));
        this.sweeps.request(m.id, Date.now() + DRAIN_MEMBER_RETRY_MS, "draining, still a member");
      } else if (left === 0) {
        m.send({ t: "drained" });
        this.draining.delete(m.id);
        console.log(JSON.stringify({ msg: "drained", group: this.c.group, member: m.id, items: refs.length }));
      } else {
        console.log(JSON.stringify({ msg: "drain incomplete: sweeping again", group: this.c.group, member: m.id, short: left }));
        this.sweeps.request(m.id, Date.now() + DRAIN_RETRY_MS, "drain incomplete");
      }
    }
  }
}
