// A manifest shard: one slice of the namespace manifest (seed 000). It holds every version
// record of the names that hash to it, the current version of each name for listings, the
// multipart uploads in progress on those names, and the cutoff each initiating group has
// promised (sources.ts), which says how far back its answers as of a time are complete. A shard
// made by a split answers through the shard it came from until it has taken its names in
// (split.ts).

import { DurableObject } from "cloudflare:workers";
import type { Uvid } from "../../common/ids.ts";
import { configOf, groupStub, shardIndexOf, type Env } from "../shared/env.ts";
import { AS_OF_WAIT_MAX_MS, versionAt, type VersionAt } from "./as-of.ts";
import { listCurrent, type ListQuery, type ListPage } from "./listing.ts";
import { RecordTables } from "./apply.ts";
import { LifecyclePass } from "./lifecycle.ts";
import type { StorageUse } from "../shared/storage-budget.ts";
import type { ShardRecord, SourceCutoff } from "./records.ts";
import { selectVersions, type SelectCursor, type Selection, type SelectPage } from "./select.ts";
import { inPart, nameHashOf, partCond, type NamePart } from "./name-part.ts";
import { isHandedOver, ShardSplit, type HandOverPage, type ShardSplitProgress } from "./split.ts";
import type { SplitTable } from "./apply.ts";
import type { RowKey } from "./table-pages.ts";
import { UsageBook, type Usage } from "./usage.ts";
import type { LifecycleProgress, ShardRpc } from "./rpc.ts";
import { SourceBook, type SourceState } from "./sources.ts";
import { ancestorsOf, GroupLayout } from "../shared/group-layout.ts";
import { listVersions, type VersionPage, type VersionQuery } from "./versions.ts";
import { listUploads, type UploadPage, type UploadQuery } from "./uploads.ts";

/** How long a shard waits between asking lagging groups to advance. */
const ADVANCE_RETRY_MS = 50;
/** A lifecycle step that threw is tried again this much later. */
const LIFECYCLE_RETRY_MS = 10_000;
/** A new or restarted shard looks for split work (a hash to fill in, names to take in or drop) this soon. */
const SPLIT_FIRST_LOOK_MS = 1_000;

export class ManifestShard extends DurableObject<Env> implements ShardRpc {
  private readonly sql: SqlStorage;
  private readonly sources: SourceBook;
  private readonly layout: GroupLayout;
  private readonly usage: UsageBook;
  private readonly records: RecordTables;
  private readonly lifecycle: LifecyclePass;
  private readonly split: ShardSplit;
  private readonly index: number | null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.index = shardIndexOf(ctx.id.name);
    RecordTables.createTables(this.sql);
    this.usage = new UsageBook(this.sql);
    this.records = new RecordTables(this.sql, this.usage);
    this.sources = new SourceBook(this.sql);
    this.split = new ShardSplit({
      sql: this.sql,
      env,
      index: this.index,
      hooks: {
        adoptGroups: (history) => this.layout.adopt(history),
        recount: () => this.records.recount(),
        recountUsage: () => this.usage.recount(),
        dropUsage: (part) => this.usage.drop(partCond("", part)!),
        transaction: (fn) => ctx.storage.transactionSync(fn),
      },
    });
    this.lifecycle = new LifecyclePass({ sql: this.sql, env, part: () => this.split.ownPart() });
    // The lifecycle pass and a split's steps are this object's timed work: the alarm is set before any request.
    // Every start looks for split work soon: a count changes only with a restart.
    void ctx.blockConcurrencyWhile(async () => {
      const set = await ctx.storage.getAlarm();
      await ctx.storage.setAlarm(Math.min(set ?? this.lifecycle.resumeAt(), Date.now() + SPLIT_FIRST_LOOK_MS));
    });
    const groups = configOf(env).groupCount;
    this.layout = new GroupLayout(this.sql);
    try {
      const expected = this.sql.exec("SELECT max(grp) + 1 AS n FROM sources").one().n;
      this.layout.observe(groups, Date.now(), expected === null ? null : Number(expected));
    } catch (e) {
      // The Cluster object refuses such a count and with it every target; the shard still
      // answers for what it holds, waiting on the groups it is told of.
      console.error(JSON.stringify({ msg: "group count refused", error: String(e) }));
    }
    const changed = this.sources.expect(groups);
    // A new shard adds every group at once: only a change to an existing set is news.
    if (changed.removed.length > 0 || (changed.added.length > 0 && changed.added.length !== groups)) {
      console.log(JSON.stringify({ event: "shard-sources-changed", added: changed.added, removed: changed.removed }));
    }
  }

  /**
   * Apply a batch of records from one group. Idempotent: a record or batch applied twice changes
   * nothing. A batch from a group this shard does not expect, or with a name that is not this
   * shard's, is refused whole (answered, not thrown, so that the group can say why): applying it
   * would let its records arrive after a point-in-time answer that did not wait for them.
   */
  async applyRecords(records: ShardRecord[], source: SourceCutoff): Promise<{ refused: string; stray?: true } | null> {
    if (!this.sources.expects(source.group)) {
      return { refused: `this shard expects records from groups 0..${this.sources.all().length - 1}, not from group ${source.group}: GROUP_COUNT differs between the group and the shard` };
    }
    await this.split.load();
    const hashes = await hashesOf(records);
    const own = this.split.ownPart();
    const stray = own === null ? -1 : hashes.findIndex((h) => !inPart(h, own));
    if (own !== null && stray >= 0) {
      return { refused: `a record for ${records[stray]!.bucket}/${records[stray]!.key} belongs to shard ${hashes[stray]! % own.count} of ${own.count}, not ${own.index}: SHARD_COUNT differs between the group and the shard`, stray: true };
    }
    if (!this.split.taking()) {
      this.applyHere(records, hashes, source);
      return null;
    }
    // While taking its names in, the shard it came from gets every record first.
    await this.split.exclusive(async () => {
      await this.forwardUp(records, own!);
      this.applyHere(records, hashes, source);
    });
    return null;
  }

  /** A batch to the shard this one came from, if it still takes its names in; done taking if that shard says so. */
  private async forwardUp(records: ShardRecord[], part: NamePart): Promise<void> {
    const up = this.split.upstream();
    if (up === null) return;
    try {
      await up.applyForwarded(records, part);
    } catch (e) {
      // Handed over: the walk has ended and every row is here; the batch is applied here alone.
      if (!isHandedOver(e)) throw e;
      this.split.finishTaking();
    }
  }

  /** Records a new shard of this one's was sent: kept here too while it takes its names in (split.ts). */
  async applyForwarded(records: ShardRecord[], part: NamePart): Promise<void> {
    await this.split.load();
    this.split.checkDescends(part, false);
    const hashes = await hashesOf(records);
    this.split.checkInPart(hashes, part);
    this.split.checkNotGiven(part);
    if (!this.split.taking()) return this.applyHere(records, hashes, null);
    await this.split.exclusive(async () => {
      await this.forwardUp(records, part);
      this.applyHere(records, hashes, null);
    });
  }

  /** The batch in one transaction, with the group's promise if it came from one. */
  private applyHere(records: ShardRecord[], hashes: readonly number[], source: SourceCutoff | null): void {
    try {
      this.ctx.storage.transactionSync(() => {
        records.forEach((r, i) => this.records.apply(r, hashes[i]!));
        this.usage.settle();
        if (source !== null) this.sources.promise(source.group, source.cutoff);
      });
    } catch (e) {
      // Rolled back: what is kept in memory of the tables goes back with them.
      this.usage.discard();
      this.sources.reload();
      this.records.recount();
      throw e;
    }
  }

  override async alarm(): Promise<void> {
    let next: number;
    let split: number | null = null;
    try {
      split = await this.split.step();
    } catch (e) {
      // A split keeps its place in storage: the step is tried again.
      console.log(JSON.stringify({ event: "shard-split-step-error", error: String(e) }));
      split = Date.now() + LIFECYCLE_RETRY_MS;
    }
    try {
      // A shard still taking in its names has not all of them to judge: its pass waits.
      next = this.split.loaded() && this.split.taking() ? Date.now() + LIFECYCLE_RETRY_MS : await this.lifecycle.step();
    } catch (e) {
      // The pass keeps its place in storage: the step is tried again by the next alarm.
      console.log(JSON.stringify({ event: "lifecycle-step-error", error: String(e) }));
      next = Date.now() + LIFECYCLE_RETRY_MS;
    }
    await this.ctx.storage.setAlarm(split === null ? next : Math.min(next, split));
  }

  /** Start a lifecycle pass now instead of at the next day boundary. */
  async runLifecycle(): Promise<void> {
    await this.lifecycle.startNow();
    await this.ctx.storage.setAlarm(Date.now());
  }

  async lifecycleProgress(): Promise<LifecycleProgress> {
    return this.lifecycle.progress();
  }

  /**
   * Answered by the shard this one came from while it takes its names in, for this shard's
   * names alone; by this one from its own tables after. `part`: asked for a new shard of this
   * one's (its names only); absent: this shard's own names.
   */
  private async answer<T>(part: NamePart | undefined, there: (up: DurableObjectStub<ShardRpc>, p: NamePart) => Promise<T>, here: (p: NamePart | null) => T): Promise<T> {
    await this.split.load();
    if (part !== undefined) {
      this.split.checkDescends(part, false);
      this.split.checkNotGiven(part);
    }
    // Rows whose hash is not known yet are this shard's own answer alone, never a new shard's.
    const p = part !== undefined ? { ...part, unhashed: false } : this.split.ownPart();
    const up = this.split.upstream();
    if (up !== null && p !== null) {
      try {
        return await there(up, { ...p, unhashed: false });
      } catch (e) {
        // Handed over since: the walk has ended and every row is here now.
        if (!isHandedOver(e)) throw e;
        this.split.finishTaking();
      }
    }
    return here(p);
  }

  /** `bound`: as of the time just before it (call `settle` first); absent: now. */
  async listVersions(q: VersionQuery, bound?: Uvid, part?: NamePart): Promise<VersionPage> {
    return this.answer(part, (up, p) => up.listVersions(q, bound, p), (p) => listVersions(this.sql, q, bound, p));
  }

  async listUploads(q: UploadQuery, part?: NamePart): Promise<UploadPage> {
    return this.answer(part, (up, p) => up.listUploads(q, p), (p) => listUploads(this.sql, q, p));
  }

  /** `bound`: as of the time just before it (call `settle` first); absent: now. */
  async list(q: ListQuery, bound?: Uvid, part?: NamePart): Promise<ListPage> {
    return this.answer(part, (up, p) => up.list(q, bound, p), (p) => listCurrent(this.sql, q, bound, p));
  }

  /** The version of a key current just before `bound`, delete marker included (call `settle` first). */
  async versionAt(tenant: string, bucket: string, key: string, bound: Uvid): Promise<VersionAt | null> {
    await this.split.load();
    const up = this.split.upstream();
    if (up !== null) {
      try {
        return await up.versionAt(tenant, bucket, key, bound);
      } catch (e) {
        // Handed over since: the walk has ended and every row is here now.
        if (!isHandedOver(e)) throw e;
        this.split.finishTaking();
      }
    } else if (this.split.gaveAway()) {
      this.split.checkNameNotGiven(await nameHashOf(tenant, bucket, key));
    }
    return versionAt(this.sql, { tenant, bucket, key }, bound);
  }

  /**
   * Waits, up to `waitMs`, until every expected source (or only group `only`, for one name's
   * answer) has promised past `bound`, asking each lagging group to advance its cutoff. Returns
   * the groups still lagging: none means answers below the bound are complete and final.
   * `shard` is this shard's own number, which the groups address it by. While the shard takes
   * its names in, the promises made to the shard it came from count too: its answers come from there.
   */
  async settle(shard: number, bound: Uvid, waitMs: number, only?: number): Promise<{ lagging: number[] }> {
    await this.split.load();
    const up = this.split.upstream();
    const parent = this.split.parentIndex();
    if (up === null || parent === null) return this.settleHere(shard, bound, waitMs, only);
    const [here, there] = await Promise.all([this.settleHere(shard, bound, waitMs, only), up.settle(parent, bound, waitMs, only)]);
    return { lagging: [...new Set([...here.lagging, ...there.lagging])] };
  }

  private async settleHere(shard: number, bound: Uvid, waitMs: number, only?: number): Promise<{ lagging: number[] }> {
    const deadline = Date.now() + Math.min(Math.max(waitMs, 0), AS_OF_WAIT_MAX_MS);
    // A name's records before a split came from the groups it was in then: those groups may
    // still deliver them (their outboxes stay theirs), so their promises count too.
    const among = only === undefined ? undefined : [only, ...ancestorsOf(only, this.layout.history())];
    for (;;) {
      const lagging = this.sources.lagging(bound, among);
      if (lagging.length === 0 || Date.now() >= deadline) return { lagging };
      // An idle group answers in one round trip; one that cannot (unreachable, or a write of
      // its stamped before the bound still in flight) is asked again until the deadline.
      const asked = Promise.allSettled(lagging.map((g) => groupStub(this.env, g).advanceCutoff(shard)));
      await Promise.race([asked, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
      if (this.sources.lagging(bound, among).length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, Math.min(ADVANCE_RETRY_MS, Math.max(0, deadline - Date.now()))));
      }
    }
  }

  /** Versions matching a selection (snapshots, queries), in (bucket, key, newest first) order. Settle first for a selection as of a time. */
  async select(sel: Selection, after: SelectCursor | null, limit: number, part?: NamePart): Promise<SelectPage> {
    return this.answer(part, (up, p) => up.select(sel, after, limit, p), (p) => selectVersions(this.sql, sel, { after, limit, part: p }));
  }

  /** The expected sources and their cutoffs, for status and tests. */
  async sourceStates(): Promise<SourceState[]> {
    return this.sources.all();
  }

  /** For the status page: versions and bytes held (every tenant's) and how many groups feed it. */
  async stats(): Promise<{ versions: number; bytes: number; sources: number; storage: StorageUse; split: ShardSplitProgress }> {
    await this.split.load();
    // While taking its names in, what it keeps is counted by the shard it came from.
    const total = this.split.taking() ? { objects: 0, bytes: 0 } : this.usage.total();
    return { versions: total.objects, bytes: total.bytes, sources: this.sources.all().length, storage: { bytes: this.sql.databaseSize, budget: configOf(this.env).storageBudgetBytes }, split: this.split.progress() };
  }

  /** What a tenant keeps in this shard (usage.ts); nothing while it takes its names in (the shard it came from counts them). */
  async tenantUsage(tenant: string): Promise<Usage> {
    await this.split.load();
    return this.split.taking() ? { bytes: 0, objects: 0 } : this.usage.of(tenant);
  }

  /** Whether a bucket has anything among this shard's names: a version of any key, delete markers included (S3's rule for DeleteBucket). */
  async hasObjects(tenant: string, bucket: string, part?: NamePart): Promise<boolean> {
    return this.answer(
      part,
      (up, p) => up.hasObjects(tenant, bucket, p),
      (p) => {
        const own = partCond("", p);
        return this.sql.exec(`SELECT 1 FROM current WHERE tenant = ? AND bucket = ? ${own === null ? "" : `AND ${own.sql}`} LIMIT 1`, tenant, bucket, ...(own?.args ?? [])).toArray().length > 0;
      },
    );
  }

  // ---- a split's hand-over, asked by a new shard of this one's (split.ts) ----

  async handOverPage(part: NamePart, table: SplitTable, after: RowKey | null): Promise<HandOverPage> {
    await this.split.load();
    return this.split.handOverPage(part, table, after);
  }

  async handedOver(part: NamePart): Promise<void> {
    await this.split.load();
    this.split.handedOver(part);
    await this.ctx.storage.setAlarm(Date.now());
  }
}

/** Each record's name hash (name-part.ts), a name hashed once however many records it has. */
async function hashesOf(records: readonly ShardRecord[]): Promise<number[]> {
  const byName = new Map<string, Promise<number>>();
  return Promise.all(
    records.map((r) => {
      const k = JSON.stringify([r.tenant, r.bucket, r.key]);
      let h = byName.get(k);
      if (!h) byName.set(k, (h = nameHashOf(r.tenant, r.bucket, r.key)));
      return h;
    }),
  );
}
