// A manifest shard: one slice of the namespace manifest (seed 000). It holds every version
// record of the names that hash to it, the current version of each name for listings, the
// multipart uploads in progress on those names, and the cutoff each initiating group has
// promised (sources.ts), which says how far back its answers as of a time are complete.

import { DurableObject } from "cloudflare:workers";
import type { Uvid } from "../../common/ids.ts";
import { configOf, groupStub, type Env } from "../shared/env.ts";
import { AS_OF_WAIT_MAX_MS, versionAt, type VersionAt } from "./as-of.ts";
import { listCurrent, type ListQuery, type ListPage } from "./listing.ts";
import { RecordTables } from "./apply.ts";
import { LifecyclePass } from "./lifecycle.ts";
import type { StorageUse } from "../shared/storage-budget.ts";
import { isRemovalRecord, isTagsRecord, isUploadRecord, type ShardRecord, type SourceCutoff } from "./records.ts";
import { selectVersions, type SelectCursor, type Selection, type SelectPage } from "./select.ts";
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

export class ManifestShard extends DurableObject<Env> implements ShardRpc {
  private readonly sql: SqlStorage;
  private readonly sources: SourceBook;
  private readonly layout: GroupLayout;
  private readonly usage: UsageBook;
  private readonly records: RecordTables;
  private readonly lifecycle: LifecyclePass;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    RecordTables.createTables(this.sql);
    this.usage = new UsageBook(this.sql);
    this.records = new RecordTables(this.sql, this.usage);
    this.sources = new SourceBook(this.sql);
    this.lifecycle = new LifecyclePass({ sql: this.sql, env });
    // The lifecycle pass is this object's only timed work: its alarm is set before any request.
    void ctx.blockConcurrencyWhile(async () => {
      if ((await ctx.storage.getAlarm()) === null) await ctx.storage.setAlarm(this.lifecycle.resumeAt());
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
   * nothing. A batch from a group this shard does not expect is refused whole (answered, not
   * thrown, so that the group can say why): applying it would let its records arrive after a
   * point-in-time answer that did not wait for them.
   */
  async applyRecords(records: ShardRecord[], source: SourceCutoff): Promise<{ refused: string } | null> {
    if (!this.sources.expects(source.group)) {
      return { refused: `this shard expects records from groups 0..${this.sources.all().length - 1}, not from group ${source.group}: GROUP_COUNT differs between the group and the shard` };
    }
    try {
      this.ctx.storage.transactionSync(() => {
        for (const r of records) {
          if (isUploadRecord(r)) this.records.applyUpload(r);
          else if (isRemovalRecord(r)) this.records.applyRemoval(r);
          else if (isTagsRecord(r)) this.records.applyTags(r);
          else this.records.applyVersion(r);
        }
        this.usage.settle();
        this.sources.promise(source.group, source.cutoff);
      });
    } catch (e) {
      // Rolled back: what is kept in memory of the tables goes back with them.
      this.usage.discard();
      this.sources.reload();
      this.records.recount();
      throw e;
    }
    return null;
  }

  override async alarm(): Promise<void> {
    let next: number;
    try {
      next = await this.lifecycle.step();
    } catch (e) {
      // The pass keeps its place in storage: the step is tried again by the next alarm.
      console.log(JSON.stringify({ event: "lifecycle-step-error", error: String(e) }));
      next = Date.now() + LIFECYCLE_RETRY_MS;
    }
    await this.ctx.storage.setAlarm(next);
  }

  /** Start a lifecycle pass now instead of at the next day boundary. */
  async runLifecycle(): Promise<void> {
    await this.lifecycle.startNow();
    await this.ctx.storage.setAlarm(Date.now());
  }

  async lifecycleProgress(): Promise<LifecycleProgress> {
    return this.lifecycle.progress();
  }

  /** `bound`: as of the time just before it (call `settle` first); absent: now. */
  async listVersions(q: VersionQuery, bound?: Uvid): Promise<VersionPage> {
    return listVersions(this.sql, q, bound);
  }

  async listUploads(q: UploadQuery): Promise<UploadPage> {
    return listUploads(this.sql, q);
  }

  /** `bound`: as of the time just before it (call `settle` first); absent: now. */
  async list(q: ListQuery, bound?: Uvid): Promise<ListPage> {
    return listCurrent(this.sql, q, bound);
  }

  /** The version of a key current just before `bound`, delete marker included (call `settle` first). */
  async versionAt(tenant: string, bucket: string, key: string, bound: Uvid): Promise<VersionAt | null> {
    return versionAt(this.sql, { tenant, bucket, key }, bound);
  }

  /**
   * Waits, up to `waitMs`, until every expected source (or only group `only`, for one name's
   * answer) has promised past `bound`, asking each lagging group to advance its cutoff. Returns
   * the groups still lagging: none means answers below the bound are complete and final.
   * `shard` is this shard's own number, which the groups address it by.
   */
  async settle(shard: number, bound: Uvid, waitMs: number, only?: number): Promise<{ lagging: number[] }> {
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
  async select(sel: Selection, after: SelectCursor | null, limit: number): Promise<SelectPage> {
    return selectVersions(this.sql, sel, after, limit);
  }

  /** The expected sources and their cutoffs, for status and tests. */
  async sourceStates(): Promise<SourceState[]> {
    return this.sources.all();
  }

  /** For the status page: versions and bytes held (every tenant's) and how many groups feed it. */
  async stats(): Promise<{ versions: number; bytes: number; sources: number; storage: StorageUse }> {
    const total = this.usage.total();
    return { versions: total.objects, bytes: total.bytes, sources: this.sources.all().length, storage: { bytes: this.sql.databaseSize, budget: configOf(this.env).storageBudgetBytes } };
  }

  /** What a tenant keeps in this shard (usage.ts). */
  async tenantUsage(tenant: string): Promise<Usage> {
    return this.usage.of(tenant);
  }

  /** Whether a bucket has anything in this shard: a version of any key, delete markers included (S3's rule for DeleteBucket). */
  async hasObjects(tenant: string, bucket: string): Promise<boolean> {
    return this.sql.exec("SELECT 1 FROM current WHERE tenant = ? AND bucket = ? LIMIT 1", tenant, bucket).toArray().length > 0;
  }
}
