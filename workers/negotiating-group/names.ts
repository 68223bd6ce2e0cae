// The names that hash to this group, and their versions: this group is their single writer. A
// write stamps the version, stores its manifest on R members, commits it (versions.ts) and
// hands its record to the name's manifest shard before the write is acknowledged, so a GET or a
// listing right after sees it. Conditional writes, editing sessions' leases and removals go
// through here too; reads find a version's manifest on the members (a cache keeps the current
// ones of recently used names).

import { chidOf, parseUvid, type Chid, type Nhid, type Uvid } from "../../common/ids.ts";
import { decodeManifest, encodeManifest, MANIFEST_FORMAT, type VersionBody, type VersionManifest } from "../../common/manifest.ts";
import type { StoredRef } from "../../common/protocol.ts";
import { recordOf, type RemovalRecord, type ShardRecord, type TagsRecord } from "../manifest-shard/records.ts";
import { configOf, shardStub, type Env } from "../shared/env.ts";
import { refusal, type Refusal } from "../shared/refusal.ts";
import { versionIdOf, type Versioning } from "../shared/versioning.ts";
import type { AlarmClock } from "./alarm-clock.ts";
import { versionRef, type RefBook } from "./backrefs.ts";
import { conditionFails } from "./complete.ts";
import { getTransaction } from "./get.ts";
import type { LeaseBook } from "./leases.ts";
import type { MergeBook } from "./merges.ts";
import type { Membership } from "./membership.ts";
import type { RefOutbox } from "./ref-outbox.ts";
import type { PutVersionResult, StoredVersion, TagsAt, WriteOptions } from "./rpc.ts";
import { ShardFeed } from "./shard-feed.ts";
import { putTransaction } from "./transfer.ts";
import type { VersionBook, VersionRow } from "./versions.ts";
import { Unavailable } from "../shared/unavailable.ts";
import type { Tag } from "../shared/tags.ts";
import type { StorageBudget } from "../shared/storage-budget.ts";

/** Largest version manifest we accept back from a target. */
const VM_MAX_BYTES = 32 * 1024 * 1024;
const VM_CACHE_ENTRIES = 2048;
/** A record a shard did not take is handed over again by the alarm this much later. */
export const OUTBOX_RETRY_MS = 1_000;

/** A version to write: the name, where its records go, and how. */
export interface VersionWrite extends WriteOptions {
  nhid: Nhid;
  shard: number;
  body: VersionBody;
  versioning: Versioning;
  /** Runs in the commit's own transaction (an upload's parts dropped and its result kept, a lease released), told what is being committed. */
  beforeCommit?: (v: PutVersionResult) => void;
  /** A refusal that must still not hold at the commit (a session's lease lost). */
  guard?: () => Refusal | null;
  /** The write frees more storage than it takes (a multipart completion): a full group still takes it. */
  freesRoom?: boolean;
}

export interface NameContext {
  readonly group: number;
  readonly env: Env;
  readonly members: Membership;
  readonly book: VersionBook;
  readonly refs: RefBook;
  readonly refOutbox: RefOutbox;
  readonly leases: LeaseBook;
  readonly merges: MergeBook;
  readonly alarms: AlarmClock;
  readonly budget: StorageBudget;
  /** Reference changes queued: have an alarm push them soon. */
  refsSoon(): void;
  /** New deletions were recorded: tell every member what it owes. */
  sendOwedToAll(): void;
}

export class Names {
  /** Current version of recently used names; a cache only, the names table is the truth. */
  private readonly vmCache = new Map<Nhid, StoredVersion>();
  private readonly feed: ShardFeed;
  private readonly c: NameContext;

  constructor(c: NameContext) {
    this.c = c;
    this.feed = new ShardFeed(async (s, records) => {
      const refused = await shardStub(c.env, s).applyRecords(records, { group: c.group, cutoff: c.book.cutoffFor(s, records) });
      // Queued for a shard that no longer holds the name (a merge prepared before a split): the
      // outbox is addressed again by this count, and the alarm sends the records there.
      if (refused?.stray) await c.book.readdress(configOf(c.env).shardCount, { force: true });
      if (refused) throw new Error(refused.refused);
      c.book.delivered(s, records.map((r) => r.uvid));
    });
  }

  /**
   * Put version manifest: stamp the version, store its manifest on R targets, then record it and
   * hand its record to the name's manifest shard. Returns only when the shard has it.
   */
  async write(w: VersionWrite): Promise<PutVersionResult | Refusal> {
    const { nhid, shard, body, condition = null } = w;
    const guard = w.guard ?? (() => null);
    const isNull = w.versioning !== "Enabled";
    const inMerge = () => this.inMerge(nhid, body.key);
    // A delete marker is what frees room: only new data waits for it.
    const full = body.deleteMarker || w.freesRoom ? null : this.c.budget.full();
    const early = full ?? inMerge() ?? conditionFails(condition, this.c.book.current(nhid)) ?? guard();
    if (early) return early;
    const cfg = configOf(this.c.env);
    const replicas = w.replicas ?? null;
    const uvid = this.c.book.stamp(this.c.group);
    const vm: VersionManifest = { ...body, format: MANIFEST_FORMAT, uvid, created: parseUvid(uvid).ms };
    const bytes = encodeManifest(vm);
    const vmChid = await chidOf(bytes);
    const record = recordOf(vm, vmChid, { isNull, tags: w.tags });
    let removed: RemovalRecord[] = [];
    let stored: Promise<unknown> | null = null;
    let committed = false;
    try {
      const writers = await this.c.members.clientWriters();
      this.c.refs.writing(uvid);
      stored = putTransaction(this.c.members, writers, [{ item: { kind: "vm", chid: vmChid, size: bytes.length, nhid, uvid }, bytes }], replicas ?? cfg.replicas, { correlation: cfg.correlation });
      await Promise.all([stored, w.chunksStored?.()]);
      // From here to the commit nothing awaits: no other write on this name can slip between
      // the condition and the commit.
      const late = inMerge() ?? conditionFails(condition, this.c.book.current(nhid)) ?? guard();
      if (late) return late;
      // The version's references are queued first: what beforeCommit drops (an upload's parts)
      // then reaches each chunk group after them, so no chunk the version uses is ever without one.
      this.c.refOutbox.queue("+", versionRef(nhid, uvid), body.chunks.map((c) => c.chid), replicas);
      w.beforeCommit?.({ uvid, vmChid, created: vm.created, versionId: versionIdOf(uvid, isNull) });
      removed = this.c.book.commit(nhid, { uvid, vmChid, deleteMarker: vm.deleteMarker, etag: vm.etag, isNull, replicas, tags: w.tags ?? [] }, { shard, record, removalOf: this.removalOf(body) });
      committed = true;
      this.c.refs.written(uvid);
    } finally {
      // A no-op once committed: the record in the outbox holds the cutoff from then on.
      this.c.book.release(uvid);
      if (!committed && stored) void this.discardManifest({ kind: "vm", chid: vmChid, nhid, uvid }, stored);
    }
    this.c.refsSoon();
    const cur = this.c.book.current(nhid);
    if (cur?.uvid === uvid) this.cache(nhid, { vm, vmChid, isNull, replicas: replicas ?? cfg.replicas, tags: w.tags ?? [] });
    await Promise.all([this.deliver(shard, record), ...removed.map((r) => this.deliver(shard, r))]);
    return { uvid, vmChid, created: vm.created, versionId: versionIdOf(uvid, isNull) };
  }

  /**
   * Commit a session's pending version: a write that goes ahead only while the session still
   * holds the name's lease (checked on arrival and again just before the commit) and its
   * condition holds. The lease ends with the commit.
   */
  commitEdit(w: VersionWrite & { holder: string }): Promise<PutVersionResult | Refusal> {
    const held = () => (this.c.leases.holds(w.nhid, w.holder) ? null : refusal("KeyLeased", "This session's lease on the key has run out, and another session may have taken it: start the edit again"));
    return this.write({ ...w, beforeCommit: () => this.c.leases.release(w.nhid, w.holder), guard: held });
  }

  /**
   * DeleteObject without a version id. Versioning enabled: a new delete marker. Suspended: a
   * delete marker as the null version (replacing the old null version). Unversioned: the
   * current (null) version is removed, and no marker is written.
   */
  async deleteName(nhid: Nhid, shard: number, marker: VersionBody, versioning: Versioning): Promise<{ versionId: string | null; deleteMarker: boolean } | Refusal> {
    const merging = this.inMerge(nhid, marker.key);
    if (merging) return merging;
    if (versioning === "Unversioned") {
      const cur = this.c.book.current(nhid);
      if (!cur) return { versionId: null, deleteMarker: false };
      const removed = this.c.book.remove(nhid, cur.uvid, shard, this.removalOf(marker));
      this.vmCache.delete(nhid);
      await Promise.all(removed.map((r) => this.deliver(shard, r)));
      return { versionId: null, deleteMarker: false };
    }
    const r = await this.write({ nhid, shard, body: marker, versioning });
    if ("refused" in r) return r;
    return { versionId: r.versionId, deleteMarker: true };
  }

  /** DeleteObject with a version id: that version (or delete marker) is gone for good; null if there was none. */
  async deleteVersion(nhid: Nhid, shard: number, name: { tenant: string; bucket: string; key: string }, versionId: Uvid | "null"): Promise<{ versionId: string; deleteMarker: boolean } | Refusal | null> {
    const merging = this.inMerge(nhid, name.key);
    if (merging) return merging;
    const row = this.c.book.find(nhid, versionId);
    if (!row) return null;
    const removed = this.c.book.remove(nhid, row.uvid, shard, this.removalOf(name));
    this.vmCache.delete(nhid);
    await Promise.all(removed.map((r) => this.deliver(shard, r)));
    return { versionId: versionIdOf(row.uvid, row.isNull), deleteMarker: row.deleteMarker };
  }

  /** The current version of a name (null if it has none), or one version by id ("null" for the null version). */
  async get(nhid: Nhid, versionId: Uvid | "null" | null): Promise<StoredVersion | null> {
    let row: VersionRow | null;
    if (versionId === null) {
      const cur = this.c.book.current(nhid);
      if (!cur) return null;
      const cached = this.vmCache.get(nhid);
      if (cached && cached.vm.uvid === cur.uvid) {
        this.cache(nhid, cached);
        return cached;
      }
      row = this.c.book.find(nhid, cur.uvid);
    } else {
      row = this.c.book.find(nhid, versionId);
    }
    if (!row) return null;
    const stored: StoredVersion = { vm: await this.manifest(nhid, row.uvid, row.vmChid), vmChid: row.vmChid, isNull: row.isNull, replicas: row.replicas ?? configOf(this.c.env).replicas, tags: row.tags ?? [] };
    if (this.c.book.isCurrent(nhid, row.uvid)) this.cache(nhid, stored);
    return stored;
  }

  /**
   * Change a version's replication count: its manifest (and so its tokens) stays as it is. Its
   * chunks' groups learn the new count with the version's references (a "+" again), so that
   * trimming never takes a copy the version still wants.
   */
  async setReplicas(nhid: Nhid, versionId: Uvid | "null" | null, replicas: number | null): Promise<{ uvid: Uvid } | null> {
    const cur = versionId === null ? this.c.book.current(nhid) : null;
    const row = versionId === null ? (cur ? this.c.book.find(nhid, cur.uvid) : null) : this.c.book.find(nhid, versionId);
    if (!row || row.deleteMarker) return null;
    const vm = await this.manifest(nhid, row.uvid, row.vmChid);
    this.c.book.setReplicas(nhid, row.uvid, replicas);
    this.c.refOutbox.queue("+", versionRef(nhid, row.uvid), vm.chunks.map((c) => c.chid), replicas);
    this.c.refsSoon();
    this.vmCache.delete(nhid);
    return { uvid: row.uvid };
  }

  /**
   * Replace a live version's tags (a delete marker has none to set): null if there is no such
   * version. The shard learns the new set from a record of its own, so tag qualifiers and
   * lifecycle filters see it; like a write, the change is acknowledged once the shard has it.
   */
  async setTags(at: TagsAt, tags: Tag[]): Promise<{ uvid: Uvid; isNull: boolean } | null> {
    const { nhid, shard, name, versionId } = at;
    const cur = versionId === null ? this.c.book.current(nhid) : null;
    const row = versionId === null ? (cur ? this.c.book.find(nhid, cur.uvid) : null) : this.c.book.find(nhid, versionId);
    if (!row || row.deleteMarker) return null;
    const record: TagsRecord = { kind: "tags", ...name, uvid: this.c.book.stamp(this.c.group), target: row.uvid, tags };
    this.c.book.setTags(nhid, row.uvid, tags, { shard, record });
    this.vmCache.delete(nhid);
    await this.deliver(shard, record);
    return { uvid: row.uvid, isNull: row.isNull };
  }

  /** A version's manifest from the members, checked against the CHID this group recorded. */
  async manifest(nhid: Nhid, want: Uvid, vmChid: Chid): Promise<VersionManifest> {
    const readers = await this.c.members.live("readers");
    const got = await getTransaction(this.c.members, readers, {
      propose: (txn) => ({ t: "propose-get-vm", txn, nhid, uvid: want }),
      refOf: (bid) => ({ kind: "vm", chid: bid.chid, nhid, uvid: bid.uvid ?? want }),
      expect: vmChid,
      maxBytes: VM_MAX_BYTES,
    });
    if (!got) throw new Unavailable(`no live target of group ${this.c.group} holds version ${want} of this name`);
    return decodeManifest(got.bytes);
  }

  /** The name's cached current version is stale (a merge or a replica change wrote it). */
  forget(nhid: Nhid): void {
    this.vmCache.delete(nhid);
  }

  /** A write to a name a merge has prepared would overtake the merge: S3's answer to a conflicting operation. */
  inMerge(nhid: Nhid, key: string): Refusal | null {
    return this.c.merges.preparedIn(nhid) ? refusal("OperationAborted", "A conflicting operation (a fork's merge) is in progress against this key. Please try again.", { Key: key }) : null;
  }

  /** Makes removal records for versions of this name, each with a stamp of its own. */
  removalOf(name: { tenant: string; bucket: string; key: string }): (target: Uvid) => RemovalRecord {
    return (target) => ({ kind: "removal", tenant: name.tenant, bucket: name.bucket, key: name.key, uvid: this.c.book.stamp(this.c.group), target });
  }

  /** Hand a committed record to its shard; on failure it stays in the outbox for the alarm, and the caller hears 503. */
  async deliver(shard: number, record: ShardRecord): Promise<void> {
    try {
      await this.feed.deliver(shard, record);
    } catch (e) {
      await this.c.alarms.by(Date.now() + OUTBOX_RETRY_MS);
      throw new Unavailable(`stored, but not yet listed (shard ${shard}: ${String(e)})`);
    }
  }

  /** `deliver` for a record nobody waits on: the alarm hands it over if this fails. */
  deliverLater(shard: number, record: ShardRecord): void {
    void this.feed.deliver(shard, record).catch(() => this.c.alarms.soon(Date.now() + OUTBOX_RETRY_MS));
  }

  /** Deliver every record still in the outbox; what fails stays there and is retried by alarm. */
  async flushOutbox(): Promise<void> {
    const pending = this.c.book.pending();
    if (pending.length === 0) return;
    const results = await Promise.allSettled(pending.map((p) => this.feed.deliver(p.shard, p.record)));
    if (results.some((r) => r.status === "rejected") || this.c.book.pending(1).length > 0) {
      await this.c.alarms.by(Date.now() + OUTBOX_RETRY_MS);
    }
  }

  /** When the alarm must come for records an earlier life committed and no shard confirmed (null: none). */
  resumeAt(): number | null {
    return this.c.book.pending(1).length > 0 ? Date.now() + OUTBOX_RETRY_MS : null;
  }

  /** A shard asks an idle group to move its cutoff: one batch carrying the cutoff of now. */
  advanceCutoff(shard: number): Promise<void> {
    return this.feed.advance(shard);
  }

  /**
   * The manifest of a version that was never committed (its chunks failed, its condition no
   * longer held, the client went away): once its put has settled, whatever copies it left are
   * deleted like an expunged version's. Nothing else can name it: its UVID was never given out.
   */
  private async discardManifest(ref: StoredRef & { kind: "vm" }, stored: Promise<unknown>): Promise<void> {
    // The put's own failure was the caller's to hear; here only its leftovers matter.
    await stored.catch(() => {});
    try {
      const view = await this.c.members.groupView(true);
      this.c.refs.reclaim([ref], view.readers.map((m) => m.id), Date.now());
      this.c.refs.written(ref.uvid);
      this.c.sendOwedToAll();
    } catch (e) {
      // Left to recovery's rules: it stays marked as written, so a restart finds and deletes it.
      console.log(JSON.stringify({ msg: "uncommitted manifest not discarded", group: this.c.group, uvid: ref.uvid, error: String(e) }));
    }
  }

  private cache(nhid: Nhid, v: StoredVersion): void {
    this.vmCache.delete(nhid);
    this.vmCache.set(nhid, v);
    if (this.vmCache.size > VM_CACHE_ENTRIES) this.vmCache.delete(this.vmCache.keys().next().value!);
  }
}
