// A negotiating group. Edge runtimes have no multicast, so this object *is* the multicast group:
// each member target holds an outbound WebSocket to it, and it fans proposals out, collects
// bids, selects, relays payload and gathers acks (transfer.ts). It is also the single writer for
// the names that hash to it: it stamps their versions and hands each version record to the
// name's manifest shard before the write is acknowledged.
//
// The object is a shell over its parts, each with a narrow context: who is in (membership.ts),
// the chunk path (chunks.ts), names and versions (names.ts), multipart uploads (multipart.ts),
// a fork's merges (merge-commits.ts), keeping items at R (repair.ts) and reclaiming space
// (reclaim.ts). Which group it is comes from its own name; one alarm serves every part.

import { DurableObject } from "cloudflare:workers";
import { chidOf, shardOf, type Chid, type Nhid, type TargetId, type Uvid } from "../../common/ids.ts";
import type { ObjectChecksum, VersionBody, VersionManifest } from "../../common/manifest.ts";
import type { StoredRef } from "../../common/protocol.ts";
import { configOf, groupIndexOf, groupStub, type Env } from "../shared/env.ts";
import type { Refusal } from "../shared/refusal.ts";
import type { Versioning } from "../shared/versioning.ts";
import { AlarmClock } from "./alarm-clock.ts";
import { RefBook, type RefChange } from "./backrefs.ts";
import { Chunks } from "./chunks.ts";
import type { ListedPart, WriteCondition } from "./complete.ts";
import { ExpungeBook, type RemovedVersion } from "./expunge.ts";
import type { GroupHealth } from "./health.ts";
import { LeaseBook } from "./leases.ts";
import { MergeCommits } from "./merge-commits.ts";
import { MergeBook, type MergedVersion, type MergeItem } from "./merges.ts";
import { Membership } from "./membership.ts";
import { Multipart } from "./multipart.ts";
import { Names, OUTBOX_RETRY_MS } from "./names.ts";
import { LifecycleActions } from "./lifecycle-actions.ts";
import { StorageBudget } from "../shared/storage-budget.ts";
import { RepairPacer } from "./pacing.ts";
import { Reclaim } from "./reclaim.ts";
import { Repair } from "./repair.ts";
import type { GroupRpc, ItemVerdict, PutVersionResult, StoredVersion, WriteOptions, TagsAt, LifecycleBatch } from "./rpc.ts";
import { UploadBook, type PartRow, type PartSummary, type UploadAt, type UploadInfo } from "./uploads.ts";
import { CompletedUploads } from "./completed-uploads.ts";
import { VersionBook } from "./versions.ts";
import { TreeNodes } from "./tree-nodes.ts";
import { GroupSplit } from "./split.ts";
import type { HandOverAnswer, IdKind } from "./handover.ts";
import type { Tag } from "../shared/tags.ts";

export class NegotiatingGroup extends DurableObject<Env> implements GroupRpc {
  private readonly group: number;
  private readonly members: Membership;
  private readonly alarms: AlarmClock;
  private readonly leases: LeaseBook;
  private readonly chunks: Chunks;
  private readonly names: Names;
  private readonly uploads: Multipart;
  private readonly merges: MergeCommits;
  private readonly repair: Repair;
  private readonly reclaim: Reclaim;
  private readonly lifecycle: LifecycleActions;
  private readonly budget: StorageBudget;
  private readonly nodes: TreeNodes;
  private readonly split: GroupSplit;
  private readonly mergeBook: MergeBook;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    const group = (this.group = groupIndexOf(ctx.id.name));
    const alarms = (this.alarms = new AlarmClock(ctx.storage, group));
    const refs = new RefBook(sql);
    const expunges = new ExpungeBook(sql);
    const book = new VersionBook(sql, (v) => this.reclaim.removed(v));
    const mergeBook = (this.mergeBook = new MergeBook(sql));
    const leases = (this.leases = new LeaseBook(sql));
    const pacer = new RepairPacer();
    const budget = (this.budget = new StorageBudget(sql, configOf(env).storageBudgetBytes, `group ${group}`));
    this.members = new Membership({
      ctx,
      env,
      group,
      events: {
        joined: (m) => {
          this.repair.returned(m.id);
          // Deletions it missed while away go first, before any proposal can count a copy it must drop.
          this.reclaim.sendOwed(m);
        },
        left: (m) => this.repair.left(m.id),
        hello: (m, msg) => this.repair.hello(m, msg),
        damaged: (ref, why) => this.repair.soon(ref, why),
        reclaimed: (id, refs) => this.reclaim.confirmed(id, refs),
      },
    });
    const members = this.members;
    this.reclaim = new Reclaim({ group, env, sql, members, refs, expunges, book, merges: mergeBook, alarms, names: () => this.names, chunks: () => this.chunks, repair: () => this.repair, nodes: () => this.nodes, owns: (id) => this.split.owns(id), settled: () => this.split.settled(), claimChunks: (chids) => this.split.claim("chunk", chids) });
    const refOutbox = this.reclaim.outbox;
    const refsSoon = () => this.reclaim.soon();
    this.names = new Names({ group, env, members, book, refs, refOutbox, leases, merges: mergeBook, alarms, budget, refsSoon, sendOwedToAll: () => this.reclaim.sendOwedToAll() });
    this.chunks = new Chunks({ group, env, members, refs, pacer, refsSoon, repairSoon: (ref, why) => this.repair.soon(ref, why) });
    this.nodes = new TreeNodes({
      group,
      sql,
      refs,
      outbox: refOutbox,
      replicas: () => configOf(env).replicas,
      store: (chid, bytes, replicas) => this.chunks.put([{ chid, bytes }], replicas),
      read: (chid) => this.chunks.get(chid, null),
      refsSoon,
    });
    this.repair = new Repair({ group, env, sql, members, refs, book, expunges, chunks: this.chunks, names: this.names, pacer, alarms, owns: (id) => this.split.owns(id) });
    this.uploads = new Multipart({ group, env, uploads: new UploadBook(sql), completed: new CompletedUploads(sql), book, names: this.names, refOutbox, alarms, budget, refsSoon });
    this.lifecycle = new LifecycleActions({ env, names: this.names, book, uploads: this.uploads });
    this.split = new GroupSplit({
      group,
      env,
      sql,
      hooks: {
        layout: async () => (await this.members.groupView(true)).layout,
        busy: (kind, id) => (kind === "name" ? mergeBook.preparedIn(id as Nhid) !== null : this.chunks.isStoring(id as Chid) || this.repair.isRepairing({ kind: "chunk", chid: id as Chid })),
        flush: () => refs.flushHolds(),
        changed: (kind, id, uvids) => {
          if (kind === "chunk") {
            refs.rowsArrived();
            return this.chunks.forget(id as Chid);
          }
          book.uncache(id as Nhid);
          this.names.forget(id as Nhid);
          for (const u of uvids) book.witness(u as Uvid);
        },
        // Every id is here: copy its chunks from the members it inherited onto its own, and trim.
        complete: () => this.repair.membershipChanged(),
        wake: (at) => this.alarms.by(at),
        transaction: (fn) => ctx.storage.transactionSync(fn),
      },
    });
    this.merges = new MergeCommits({ group, env, members, book, merges: mergeBook, leases, names: this.names, refOutbox, alarms, refsSoon });
    // Work an earlier life left (records no shard confirmed, prepared merges, repairs, sweeps,
    // unpushed references), or a split whose ids are still to come in (or not yet known to be
    // none), brings the alarm back; set before any request is served.
    void ctx.blockConcurrencyWhile(async () => {
      await book.readdress(configOf(env).shardCount);
      const due = [this.names.resumeAt(), this.merges.resumeAt(), this.repair.resumeAt(), this.reclaim.resumeAt(), this.nodes.recountWaiting() ? Date.now() + OUTBOX_RETRY_MS : null, this.split.settled() ? null : Date.now()].filter((t): t is number => t !== null);
      if (due.length > 0) await this.alarms.by(Math.min(...due));
    });
  }

  // ---- targets' sockets (membership.ts) ----

  override fetch(request: Request): Promise<Response> {
    return this.members.connect(request);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    this.members.message(ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.members.closed(ws, `closed (${code} ${reason})`);
    ws.close();
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    this.members.closed(ws, `error: ${String(error)}`);
  }

  // ---- RPC: chunks (chunks.ts) ----

  async putChunks(items: { chid: Chid; bytes: Uint8Array }[], replicas: number | null = null): Promise<void> {
    await this.split.claim("chunk", items.map((i) => i.chid));
    return this.chunks.put(items, replicas);
  }

  getChunk(chid: Chid, near: string | null = null): Promise<Uint8Array> {
    return this.chunks.get(chid, near);
  }

  getChunks(chids: Chid[], near: string | null = null): Promise<Uint8Array[]> {
    return this.chunks.getMany(chids, near);
  }

  /** Store a manifest-tree node (tree-nodes.ts): its entries are referenced by it from now on. */
  async putNode(bytes: Uint8Array, replicas: number | null = null): Promise<void> {
    if (this.split.mayClaim()) await this.split.claim("chunk", [await chidOf(bytes)]);
    await this.nodes.put(bytes, replicas);
  }

  // ---- RPC: names and versions (names.ts) ----

  async putVersion(nhid: Nhid, body: VersionBody, versioning: Versioning, o: WriteOptions = {}): Promise<PutVersionResult | Refusal> {
    await this.split.claim("name", [nhid]);
    return this.names.write({ ...o, nhid, shard: this.shardOf(nhid), body, versioning });
  }

  async getVersion(nhid: Nhid, versionId: Uvid | "null" | null = null): Promise<StoredVersion | null> {
    await this.split.claim("name", [nhid]);
    return this.names.get(nhid, versionId);
  }

  /** A version the caller already located (a shard's record): it may be removed since, but its manifest is still on the targets. */
  async readVersion(nhid: Nhid, uvid: Uvid, vmChid: Chid): Promise<VersionManifest> {
    await this.split.claim("name", [nhid]);
    return this.names.manifest(nhid, uvid, vmChid);
  }

  async deleteName(nhid: Nhid, marker: VersionBody, versioning: Versioning): Promise<{ versionId: string | null; deleteMarker: boolean } | Refusal> {
    await this.split.claim("name", [nhid]);
    return this.names.deleteName(nhid, this.shardOf(nhid), marker, versioning);
  }

  async deleteVersion(nhid: Nhid, name: { tenant: string; bucket: string; key: string }, versionId: Uvid | "null"): Promise<{ versionId: string; deleteMarker: boolean } | Refusal | null> {
    await this.split.claim("name", [nhid]);
    return this.names.deleteVersion(nhid, this.shardOf(nhid), name, versionId);
  }

  async setVersionReplicas(nhid: Nhid, versionId: Uvid | "null" | null, replicas: number | null): Promise<{ uvid: Uvid } | null> {
    await this.split.claim("name", [nhid]);
    return this.names.setReplicas(nhid, versionId, replicas);
  }

  async setVersionTags(at: TagsAt, tags: Tag[]): Promise<{ uvid: Uvid; isNull: boolean } | null> {
    await this.split.claim("name", [at.nhid]);
    return this.names.setTags({ ...at, shard: this.shardOf(at.nhid) }, tags);
  }

  /**
   * A name's shard by this group's own SHARD_COUNT, whatever a caller says (one on another count
   * during a deploy, a session or merge begun before a split): a record queued for a shard
   * that no longer holds its name would be refused there for ever.
   */
  private shardOf(nhid: Nhid): number {
    return shardOf(nhid, configOf(this.env).shardCount);
  }

  /** A shard asks an idle group to move its cutoff; resolves once the shard has applied it. */
  advanceCutoff(shard: number): Promise<void> {
    return this.names.advanceCutoff(shard);
  }

  // ---- RPC: editing sessions ----

  /** Take (or renew) the lease on a name for an editing session; false while another session holds it. */
  async leaseName(nhid: Nhid, holder: string, ttlMs: number): Promise<boolean> {
    await this.split.claim("name", [nhid]);
    return this.leases.acquire(nhid, holder, ttlMs);
  }

  async releaseName(nhid: Nhid, holder: string): Promise<void> {
    await this.split.claim("name", [nhid]);
    this.leases.release(nhid, holder);
  }

  async commitEdit(nhid: Nhid, body: VersionBody, versioning: Versioning, o: { condition: WriteCondition | null; holder: string; replicas?: number | null }): Promise<PutVersionResult | Refusal> {
    await this.split.claim("name", [nhid]);
    return this.names.commitEdit({ ...o, nhid, shard: this.shardOf(nhid), body, versioning });
  }

  // ---- RPC: a fork's merge (merge-commits.ts) ----

  async prepareMerge(merge: string, items: MergeItem[]): Promise<{ hold: Uvid } | Refusal> {
    await this.split.claim("name", items.map((i) => i.nhid));
    return this.merges.prepare(merge, items.map((i) => ({ ...i, shard: this.shardOf(i.nhid) })));
  }

  async mergeStamp(atLeast: number): Promise<Uvid> {
    return this.merges.stamp(atLeast);
  }

  async commitMerge(merge: string, stamp: Uvid, nhids: Nhid[]): Promise<MergedVersion[]> {
    // Names prepared here before a split gave them away are this group's to finish (and to
    // answer for again, should the commit be retried after it finished).
    await this.split.claim("name", nhids.filter((n) => this.split.owns(n) && this.mergeBook.preparedIn(n) !== merge));
    return this.merges.commit(merge, stamp, nhids);
  }

  async abortMerge(merge: string): Promise<void> {
    this.merges.abort(merge);
  }

  // ---- RPC: multipart uploads (multipart.ts) ----

  async createUpload(nhid: Nhid, info: Omit<UploadInfo, "uploadId" | "initiated">): Promise<{ uploadId: string; initiated: number }> {
    await this.split.claim("name", [nhid]);
    return this.uploads.create(nhid, this.shardOf(nhid), info);
  }

  async uploadReplicas(nhid: Nhid, uploadId: string): Promise<{ replicas: number | null } | Refusal> {
    await this.split.claim("name", [nhid]);
    return this.uploads.replicas(nhid, uploadId);
  }

  async putPart(nhid: Nhid, uploadId: string, part: Omit<PartRow, "uploaded">): Promise<{ uploaded: number } | Refusal> {
    await this.split.claim("name", [nhid]);
    return this.uploads.putPart(nhid, uploadId, part);
  }

  async listParts(nhid: Nhid, uploadId: string, after: number, limit: number): Promise<{ upload: UploadInfo; parts: PartSummary[]; truncated: boolean } | Refusal> {
    await this.split.claim("name", [nhid]);
    return this.uploads.listParts(nhid, uploadId, after, limit);
  }

  async completeUpload(at: UploadAt, o: { listed: ListedPart[]; condition: WriteCondition | null; versioning: Versioning }): Promise<(PutVersionResult & { etag: string; checksum: ObjectChecksum | null }) | Refusal> {
    await this.split.claim("name", [at.nhid]);
    return this.uploads.complete({ ...at, shard: this.shardOf(at.nhid) }, o);
  }

  async abortUpload(at: UploadAt): Promise<Refusal | null> {
    await this.split.claim("name", [at.nhid]);
    return this.uploads.abort({ ...at, shard: this.shardOf(at.nhid) });
  }

  // ---- RPC: lifecycle rules (lifecycle-actions.ts) ----

  /** A shard's lifecycle pass found these due: returns how many still held and were done. */
  async expireByLifecycle(batch: LifecycleBatch): Promise<number> {
    await this.split.claim("name", batch.actions.map((a) => a.nhid));
    return this.lifecycle.run(batch);
  }

  // ---- RPC: validation and health (repair.ts) ----

  async verifyItems(refs: StoredRef[], replicas: number | null = null): Promise<ItemVerdict[]> {
    await this.split.claim("chunk", refs.flatMap((r) => (r.kind === "chunk" ? [r.chid] : [])));
    await this.split.claim("name", refs.flatMap((r) => (r.kind === "vm" ? [r.nhid] : [])));
    return this.repair.check(refs, replicas);
  }

  async health(): Promise<GroupHealth> {
    return { ...(await this.repair.health()), storage: this.budget.use(), split: await this.split.progress() };
  }

  /** The cluster changed who is in this group: copies on those who left move to those who came. */
  membershipChanged(): Promise<void> {
    return this.repair.membershipChanged();
  }

  // ---- RPC: space reclamation (reclaim.ts) ----

  async applyRefs(changes: RefChange[]): Promise<void> {
    // Changes queued before a split may name chunks it gave to other groups: passed on to them.
    const { own, passOn } = this.split.sortByOwner(changes);
    await Promise.all([...passOn].map(([g, sub]) => groupStub(this.env, g).applyRefs(sub)));
    await this.split.claim("chunk", own.flatMap((c) => c.chids));
    this.reclaim.apply(own);
  }

  async holdChunks(chids: Chid[]): Promise<Chid[]> {
    await this.split.claim("chunk", chids);
    return this.reclaim.holdChunks(chids);
  }

  async holdVersions(holder: string, versions: RemovedVersion[]): Promise<RemovedVersion[]> {
    await this.split.claim("name", versions.map((v) => v.nhid));
    return this.reclaim.holdVersions(holder, versions);
  }

  async releaseVersions(holder: string, versions: { nhid: Nhid; uvid: Uvid }[]): Promise<void> {
    await this.split.claim("name", versions.map((v) => v.nhid));
    return this.reclaim.releaseVersions(holder, versions);
  }

  async reclaimStatus(): Promise<{ backrefs: number; holds: number; reclaims: number; outbox: number; expunging: number }> {
    return this.reclaim.status();
  }

  // ---- RPC: a split's hand-over (split.ts), between groups ----

  handOver(to: number, kind: IdKind, ids: string[]): Promise<HandOverAnswer> {
    return this.split.handOver(to, kind, ids);
  }

  handOverNext(to: number, step: number, after: string): Promise<HandOverAnswer & { next: string | null }> {
    return this.split.handOverNext(to, step, after);
  }

  async handedOver(to: number, ids: { kind: IdKind; id: string }[]): Promise<void> {
    this.split.handedOver(to, ids);
  }

  closeHandover(to: number): Promise<void> {
    return this.split.closeHandover(to);
  }

  // ---- the alarm: every part's due work, each asking for the next alarm it needs ----

  override async alarm(): Promise<void> {
    this.alarms.fired();
    const failed = (what: string) => (e: unknown) => console.log(JSON.stringify({ msg: `${what} failed`, group: this.group, error: String(e) }));
    // Each step's failure is logged and the rest still run; a step that must run again asks
    // for an alarm itself (or its due list in storage brings it back on the next one).
    this.reclaim.flushHolds();
    // Ids a split gave this group come in first: until they are all here, sweeps wait.
    await this.split.walk().catch(async (e: unknown) => {
      failed("split walk")(e);
      await this.alarms.by(Date.now() + OUTBOX_RETRY_MS);
    });
    await this.reclaim.recoverHolds().catch(failed("hold recovery"));
    await this.merges.settle().catch(async (e: unknown) => {
      failed("merge settling")(e);
      await this.alarms.by(Date.now() + OUTBOX_RETRY_MS);
    });
    // Not awaited: a queued repair can wait up to a minute on a member that stopped answering,
    // and sweeps, deliveries and reclamation must not queue behind it. It sets the alarm for
    // its own retries, and one run at a time is its own rule.
    void this.repair.runQueue().catch(failed("queued repairs"));
    if (this.split.settled()) await this.repair.sweepIfDue().catch(failed("re-replication"));
    await this.names.flushOutbox().catch(failed("record delivery"));
    await this.uploads.expireDue().catch(failed("upload expiry"));
    await this.reclaim.expungeDue().catch(failed("expunge"));
    await this.nodes.recount().catch(async (e: unknown) => {
      failed("tree node recount")(e);
      await this.alarms.by(Date.now() + OUTBOX_RETRY_MS);
    });
    await this.reclaim.push().catch(async (e: unknown) => {
      failed("reference push")(e);
      await this.alarms.by(Date.now() + OUTBOX_RETRY_MS);
    });
    await this.reclaim.reclaimDue().catch(failed("reclamation"));
  }

  /** Connected members and their locations, for status pages and tests. */
  async liveMembers(): Promise<{ id: TargetId; location: string }[]> {
    return [...this.members.all()].map((m) => ({ id: m.id, location: m.location }));
  }
}
