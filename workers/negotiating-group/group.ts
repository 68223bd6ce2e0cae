// A negotiating group. Edge runtimes have no multicast, so this object *is* the multicast group:
// each member target holds an outbound WebSocket to it, and it fans proposals out, collects
// bids, selects, relays payload and gathers acks (transfer.ts). It is also the single writer for
// the names that hash to it: it stamps their versions (versions.ts) and hands each version record
// to the name's manifest shard before the write is acknowledged.

import { DurableObject } from "cloudflare:workers";
import { chidOf, isCertFingerprint, shardOf, type Chid, type Nhid, type TargetId, type Uvid } from "../../common/ids.ts";
import { decodeManifest, encodeManifest, MANIFEST_FORMAT, type ObjectChecksum, type VersionBody, type VersionManifest } from "../../common/manifest.ts";
import { decodeToGroup, isPeerAddress } from "../../common/wire-decode.ts";
import { decodeFrame, GROUP_PROTOCOL_HEADER, PUT_WINDOW, storedRefKey, TARGET_PEER_CERT_HEADER, TARGET_PEER_HEADER, TARGET_PROTOCOL, TARGET_PROTOCOL_HEADER, type HelloMsg, type PeerEntry, type PutItem, type StoredRef } from "../../common/protocol.ts";
import { parseUvid } from "../../common/ids.ts";
import { nearestFirst } from "../../common/placement.ts";
import { distinctDomains } from "../../common/correlation.ts";
import type { GroupView } from "../cluster/cluster.ts";
import { recordOf, type RemovalRecord, type ShardRecord, type UploadRecord } from "../manifest-shard/records.ts";
import { versionIdOf, type Versioning } from "../shared/versioning.ts";
import { refusal, type Refusal } from "../shared/refusal.ts";
import { clusterStub, configOf, groupStub, MAX_BATCH_BYTES, MAX_GET_BATCH, shardStub, UNAVAILABLE, type Env } from "../shared/env.ts";
import { Deadlines } from "./deadlines.ts";
import { LocationCache } from "./locations.ts";
import { LeaseBook } from "./leases.ts";
import { verifyTransaction } from "./verify.ts";
import { ShardFeed } from "./shard-feed.ts";
import { broadcast, Member, rosterOf } from "./member.ts";
import { getTransaction } from "./get.ts";
import { readRun } from "./get-many.ts";
import { putTransaction, type TxnHandler, type TxnHost } from "./transfer.ts";
import { assemble, conditionFails, newUploadId, noSuchUpload, type ListedPart, type WriteCondition } from "./complete.ts";
import { UploadBook, type PartRow, type PartSummary, type UploadInfo } from "./uploads.ts";
import { VersionBook, type VersionRow } from "./versions.ts";
import { MergeBook, type MergeItem } from "./merges.ts";
import { copiesByItem, GoneBook, inventoryOf, underReplicated, type Holding } from "./rereplicate.ts";
import { partRef, RefBook, versionRef, type RefChange } from "./backrefs.ts";
import { RefOutbox } from "./ref-outbox.ts";
import { stateOf, type GroupHealth, type SweepReport } from "./health.ts";
import { RepairPacer } from "./pacing.ts";
import { ExpungeBook, type RemovedVersion } from "./expunge.ts";

interface Attachment {
  id: TargetId;
  location: string;
  /** Its chain-replication address and certificate, if it advertised them (TARGET_PEER_HEADER, TARGET_PEER_CERT_HEADER). */
  peer?: PeerEntry;
  /** The wire protocol it speaks (TARGET_PROTOCOL_HEADER); absent: 1. */
  proto?: number;
}

const VIEW_TTL_MS = 10_000;
/** Largest version manifest we accept back from a target. */
const VM_MAX_BYTES = 32 * 1024 * 1024;
const VM_CACHE_ENTRIES = 2048;
const OUTBOX_RETRY_MS = 1_000;
/** An undecided merge whose coordinator went silent this long is dropped (a session's lease lasts 60 s). */
const MERGE_UNDECIDED_MS = 60_000;
/** Chunks deleted, and removed versions expunged, per alarm round. */
const RECLAIM_BATCH = 512;
const EXPUNGE_BATCH = 64;
/** A returned non-member's copies are counted (and its surplus trimmed) this long after it says hello. */
const TRIM_DELAY_MS = 5_000;
/** A drain sweep that left items short is tried again this much later. */
const DRAIN_RETRY_MS = 60_000;
/** ...and one whose draining target is still its member (not replaced yet), this much later. */
const DRAIN_MEMBER_RETRY_MS = 300_000;
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

/** What validating one item found: good and bad copies on live targets, and copies made to restore R. */
export interface ItemVerdict {
  good: number;
  bad: number;
  repaired: number;
  /** Still fewer copies on members than wanted (none good, or the repair could not place them all). */
  short: boolean;
}

export interface PutVersionResult {
  uvid: Uvid;
  /** The version manifest's CHID (internal: tokens are made from it, clients never see it). */
  vmChid: Chid;
  created: number;
  /** S3's version id: the UVID, or "null" for a null version. */
  versionId: string;
}

/** A version as a GET sees it: its manifest, and whether it is the name's null version. */
export interface StoredVersion {
  vm: VersionManifest;
  /** The manifest's CHID (internal: tokens and validation are made from it, clients never see it). */
  vmChid: Chid;
  isNull: boolean;
  /** The version's replication count (kept outside its manifest); absent where the version was found by record (as of a time, through a snapshot). */
  replicas?: number;
}

export class NegotiatingGroup extends DurableObject<Env> implements TxnHost {
  private readonly members = new Map<TargetId, Member>();
  private readonly txns = new Map<number, TxnHandler>();
  /** Every transaction's timeouts, on one runtime timer (deadlines.ts). */
  readonly deadlines = new Deadlines();
  private nextTxn = 1;
  private view: { at: number; v: GroupView } | null = null;
  private readonly book: VersionBook;
  private readonly uploads: UploadBook;
  private readonly leases: LeaseBook;
  private readonly merges: MergeBook;
  /**
   * Members that went away, and when: past the grace period their items are re-replicated.
   * Kept in storage (table `gone`), so an evicted or restarted group still knows.
   */
  private readonly goneSince: GoneBook;
  /** Client chunk latency, and how fast repairs may go (pacing.ts). */
  private readonly pacer = new RepairPacer();
  /** Members that said they are draining (hello): told `drained` once a sweep left none of their items short. */
  private readonly draining = new Set<TargetId>();
  /** Back-references and holds of the chunks this group owns (space reclamation, backrefs.ts). */
  private readonly refs: RefBook;
  /** Back-reference changes this group owes other groups' chunks (ref-outbox.ts). */
  private readonly refOutbox: RefOutbox;
  /** Removed versions waiting to be expunged, and snapshots' holds on versions (expunge.ts). */
  private readonly expunges: ExpungeBook;
  private sweeping = false;
  /** The running sweep's progress and the last one's result (health.ts; memory only, for status). */
  private sweepProgress: { short: number; done: number; repaired: number } | null = null;
  private lastSweep: SweepReport | null = null;
  /** The alarm as this instance last set or read it (undefined: not known yet). Only alarmBy sets alarms. */
  private alarmAt: number | null | undefined = undefined;
  /** Items with a background repair running (repairSoon). */
  private readonly repairing = new Set<string>();
  /**
   * Chunks a client put of this group is storing right now, with how many puts: like those
   * being repaired, they are not reclaimed meanwhile, even should their hold run out first.
   */
  private readonly storing = new Map<Chid, number>();
  /** Current version of recently used names; a cache only, the names table is the truth. */
  private readonly vmCache = new Map<Nhid, StoredVersion>();
  private group = -1;
  private readonly locations = new LocationCache();
  private readonly feed = new ShardFeed(async (s, records) => {
    const refused = await shardStub(this.env, s).applyRecords(records, { group: this.group, cutoff: this.book.cutoffFor(s, records) });
    if (refused) throw new Error(refused.refused);
    this.book.delivered(s, records.map((r) => r.uvid));
  });
  /** Socket -> member, so a message costs no attachment deserialization. */
  private readonly bySocket = new WeakMap<WebSocket, Member>();
  /** When this instance started: a manifest stamped before and never committed is an earlier life's leftover. */
  private readonly bornAt = Date.now();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.expunges = new ExpungeBook(ctx.storage.sql);
    this.book = new VersionBook(ctx.storage.sql, (v) => {
      const due = Date.now() + configOf(env).removedRetainMs;
      this.expunges.schedule(v, due);
      void this.alarmBy(due).catch(() => {});
    });
    this.refs = new RefBook(ctx.storage.sql);
    this.refOutbox = new RefOutbox(ctx.storage.sql, async (g, changes) => {
      if (g === this.group) this.applyChanges(changes);
      else await groupStub(this.env, g).applyRefs(g, changes);
    });
    this.uploads = new UploadBook(ctx.storage.sql);
    this.leases = new LeaseBook(ctx.storage.sql);
    this.merges = new MergeBook(ctx.storage.sql);
    this.goneSince = new GoneBook(ctx.storage.sql);
    if (this.goneSince.size > 0) void this.alarmBy(Date.now() + OUTBOX_RETRY_MS).catch(() => {});
    // A prepared merge's held stamp lives in memory: hold it again, and let the alarm finish or drop it.
    const prepared = this.merges.all();
    for (const r of prepared) this.book.hold(r.hold);
    if (prepared.length > 0) void this.alarmBy(Date.now() + OUTBOX_RETRY_MS).catch(() => {});
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)");
    const g = ctx.storage.sql.exec("SELECT v FROM meta WHERE k = 'group'").toArray()[0];
    if (g) this.group = Number(g.v);
    // After hibernation the sockets survive but memory does not: rebuild the member table.
    for (const ws of ctx.getWebSockets()) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att) this.addMember(new Member({ id: att.id, location: att.location, ws, credit: PUT_WINDOW, peer: att.peer ?? null, proto: att.proto ?? 1 }));
    }
    // Records of an earlier life that no shard confirmed: the alarm hands them over.
    if (this.book.pending(1).length > 0) void this.alarmBy(Date.now() + OUTBOX_RETRY_MS).catch(() => {});
    if (this.refOutbox.waiting().length > 0 || this.refs.lostSince() !== null) void this.alarmBy(Date.now() + OUTBOX_RETRY_MS).catch(() => {});
  }

  private setGroup(g: number): void {
    if (this.group === g) return;
    if (this.group !== -1) throw new Error(`this object is group ${this.group}, not ${g}`);
    this.group = g;
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('group', ?)", String(g));
  }

  // ---- TxnHost ----
  open(handler: TxnHandler): number {
    const id = this.nextTxn;
    this.nextTxn = (this.nextTxn % 0xffffffff) + 1;
    this.txns.set(id, handler);
    return id;
  }

  close(txn: number): void {
    this.txns.delete(txn);
  }

  // ---- membership ----
  private async groupView(force = false): Promise<GroupView> {
    if (!force && this.view && Date.now() - this.view.at < VIEW_TTL_MS) return this.view.v;
    const v = await clusterStub(this.env).groupView(this.group);
    this.view = { at: Date.now(), v };
    // A revoked target keeps no socket here: it could not connect now, and must not keep the
    // one it has. (Other members outside the view stay: their reports may lag the view.)
    const revoked = new Set(v.revoked);
    for (const m of [...this.members.values()]) {
      if (!revoked.has(m.id)) continue;
      this.drop(m, "revoked");
      m.ws.close(4003, "revoked");
    }
    return v;
  }

  private async live(role: "writers" | "readers"): Promise<Member[]> {
    const v = await this.groupView();
    const ids = new Set(v[role].map((m) => m.id));
    return [...this.members.values()].filter((m) => ids.has(m.id) && !m.gone);
  }

  /** Live writers for a client's write: refused (503) below K live members (MIN_LIVE_TARGETS). */
  private async clientWriters(): Promise<Member[]> {
    const writers = await this.live("writers");
    const k = configOf(this.env).minLive;
    if (writers.length < k) throw new Error(`${UNAVAILABLE}only ${writers.length} targets of group ${this.group} are live; it takes writes while at least ${k} are (MIN_LIVE_TARGETS)`);
    return writers;
  }

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade") !== "websocket") return new Response("expected a WebSocket", { status: 426 });
    this.setGroup(Number(request.headers.get("x-group")));
    const id = request.headers.get("x-target-id") as TargetId;
    const location = request.headers.get("x-target-location") ?? "";
    // An address other targets cannot dial, or one without the certificate they are to pin, is
    // no address: the member is then sent its copies directly.
    const address = request.headers.get(TARGET_PEER_HEADER);
    const cert = request.headers.get(TARGET_PEER_CERT_HEADER);
    const peer = isPeerAddress(address) && isCertFingerprint(cert) ? { address, cert } : null;
    const proto = Math.max(1, Math.min(TARGET_PROTOCOL, Number(request.headers.get(TARGET_PROTOCOL_HEADER)) || 1));
    const view = await this.groupView(true);
    if (!view.readers.some((m) => m.id === id)) {
      return new Response(`target ${id} is not a member of group ${this.group}`, { status: 403 });
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server, [id]);
    server.serializeAttachment({ id, location, proto, ...(peer ? { peer } : {}) } satisfies Attachment);
    const old = this.members.get(id);
    if (old) this.drop(old, "replaced by a newer connection");
    // Credit starts at zero: the target grants its window in its first message.
    const member = new Member({ id, location, ws: server, credit: 0, peer, proto });
    this.addMember(member);
    // Every member learns who it may now exchange chain frames with (the newcomer, everyone).
    if (peer) broadcast(this.members.values(), rosterOf(this.members.values()));
    else member.send(rosterOf(this.members.values()));
    // Deletions it missed while away go first, before any proposal can count a copy it must drop.
    this.sendOwed(member);
    return new Response(null, { status: 101, webSocket: client, headers: { [GROUP_PROTOCOL_HEADER]: String(TARGET_PROTOCOL) } });
  }

  private addMember(m: Member): void {
    this.goneSince.delete(m.id);
    this.members.set(m.id, m);
    this.bySocket.set(m.ws, m);
  }

  /**
   * A member that lost data it cannot name (run-journal.ts on the target) is, for this group's
   * items, like a member gone for good: recount every item's copies and restore R now. So is a
   * draining one (no longer a writer here): the recount counts copies on writers only, so its
   * items are copied to the members while it still serves them.
   */
  private helloFrom(m: Member, msg: HelloMsg): void {
    if (msg.draining) this.draining.add(m.id);
    if (!msg.lost && !msg.draining) {
      // A reader that is not a member (replaced while away, now back): once its copies are
      // counted, the ones the members hold enough of are surplus and are trimmed.
      void this.live("writers").then((writers) => {
        if (writers.includes(m) || m.gone) return;
        this.goneSince.set(m.id, Date.now() - configOf(this.env).rereplicateAfterMs + TRIM_DELAY_MS);
        return this.alarmBy(Date.now() + TRIM_DELAY_MS);
      }).catch(() => {});
      return;
    }
    console.log(JSON.stringify({ msg: msg.lost ? "member lost data: recounting copies" : "member draining: copying its items to the members", group: this.group, member: m.id }));
    this.goneSince.set(m.id, Date.now() - configOf(this.env).rereplicateAfterMs);
    void this.alarmBy(Date.now()).catch(() => {});
  }

  private memberOf(ws: WebSocket): Member | null {
    const m = this.bySocket.get(ws);
    return m && this.members.get(m.id) === m ? m : null;
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const member = this.memberOf(ws);
    if (!member) return;
    member.heard();
    if (typeof message === "string") {
      const msg = decodeToGroup(message);
      if ("malformed" in msg) {
        console.log(JSON.stringify({ msg: "ignored a malformed message from a target", group: this.group, member: member.id, why: msg.malformed }));
        return;
      }
      if (msg.t === "credit") member.grant(msg.bytes);
      else if (msg.t === "saved" && msg.credit) {
        member.grant(msg.credit);
        this.txns.get(msg.txn)?.onMessage(member, msg);
      }
      else if (msg.t === "damaged") this.repairSoon(msg.ref, `target ${member.id}: ${msg.reason}`);
      else if (msg.t === "reclaimed") this.refs.confirmed(member.id, msg.refs);
      else if (msg.t === "hello") this.helloFrom(member, msg);
      else this.txns.get(msg.txn)?.onMessage(member, msg);
      return;
    }
    const { header, payload } = decodeFrame(new Uint8Array(message));
    this.txns.get(header.txn)?.onFrame(member, header, payload);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    const m = this.memberOf(ws);
    if (m) this.drop(m, `closed (${code} ${reason})`);
    ws.close();
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    const m = this.memberOf(ws);
    if (m) this.drop(m, `error: ${String(error)}`);
  }

  private drop(m: Member, reason: string): void {
    m.markGone(reason);
    if (this.members.get(m.id) === m) {
      this.members.delete(m.id);
      // Its peers close their links with it, and take none from it any more.
      if (m.peer) broadcast(this.members.values(), rosterOf(this.members.values()));
      this.goneSince.set(m.id, Date.now());
      void this.alarmBy(Date.now() + configOf(this.env).rereplicateAfterMs).catch(() => {});
    }
    for (const t of this.txns.values()) t.onGone(m);
  }

  // ---- RPC: chunks ----

  /**
   * Put chunk (seed 001) for every item, R replicas each.
   *
   * Chunks come as RPC arguments, not as a stream: a chunk is at most CHUNK_MAX (<= 16 MiB, far
   * under the 32 MiB argument cap, and the batch is bounded the same way), the gateway already
   * holds it whole to hash it, and measured on one workerd thread a 64 MiB object's chunks cost
   * ~0 ms as arguments against ~230 ms as RPC byte streams (docs/performance.md).
   */
  /** Put chunks for a client (seed 001), timed: repairs give way when clients slow down (pacing.ts). */
  async putChunks(g: number, items: { chid: Chid; bytes: Uint8Array }[], replicas: number | null = null): Promise<void> {
    return this.timed(() => this.storeChunks(g, items, replicas));
  }

  /** Get chunk for a client, timed like putChunks. */
  async getChunk(g: number, chid: Chid, near: string | null = null): Promise<Uint8Array> {
    return this.timed(() => this.readChunk(g, chid, near));
  }

  /**
   * Get several chunks of this group for a client at once (the run of an object it will send
   * next), each verified as getChunk's: one call instead of one per chunk. The caller keeps a
   * call's chunks within MAX_BATCH_BYTES: the reply is held here whole and crosses RPC whole.
   */
  async getChunks(g: number, chids: Chid[], near: string | null = null): Promise<Uint8Array[]> {
    if (chids.length > MAX_GET_BATCH) throw new Error(`at most ${MAX_GET_BATCH} chunks per call, not ${chids.length}`);
    return this.timed(() => this.readChunks(g, chids, near));
  }

  private async readChunks(g: number, chids: readonly Chid[], near: string | null): Promise<Uint8Array[]> {
    this.setGroup(g);
    const readers = new Set(await this.live("readers"));
    return readRun({
      host: this,
      chids,
      near,
      maxBytes: configOf(this.env).chunk.max,
      holders: (chid) =>
        this.locations.holders(chid).flatMap((id) => {
          const m = this.members.get(id);
          return m && readers.has(m) ? [m] : [];
        }),
      failed: (chid, holder) => {
        this.locations.remove(chid, holder.id);
        // A holder that answered but could not serve, or sent bad bytes: restore R (as readChunk does).
        if (!holder.slow) this.repairSoon({ kind: "chunk", chid }, `target ${holder.id} failed a read`);
      },
      readOne: (chid) => this.readChunk(g, chid, near),
    });
  }

  private async timed<T>(op: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    try {
      return await op();
    } finally {
      this.pacer.client(Date.now() - t0, Date.now());
    }
  }

  private async storeChunks(g: number, items: { chid: Chid; bytes: Uint8Array }[], replicas: number | null): Promise<void> {
    this.setGroup(g);
    const cfg = configOf(this.env);
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
    const unknown = this.refs.unknown(items.map((it) => it.chid));
    // A chunk twice in one batch (an object of zeros) is placed once; the second finds the first.
    const first = new Map<Chid, number>();
    items.forEach((it, i) => first.has(it.chid) || first.set(it.chid, i));
    const fresh = new Set(items.flatMap((it, i) => (unknown.has(it.chid) && !this.storing.has(it.chid) && first.get(it.chid) === i ? [i] : [])));
    // Held before anything is proposed: a chunk being deleted is alive again from here, and its
    // version's back-reference has until the hold runs out to arrive.
    const until = Date.now() + cfg.chunkHoldMs;
    this.refs.hold(items.map((it) => it.chid), until);
    // The alarm writes holds kept in memory to storage, and later deletes what they no longer keep.
    void this.alarmBy(Date.now() + Math.min(REF_PUSH_DELAY_MS, cfg.chunkHoldMs / 8)).catch(() => {});
    for (const it of items) this.storing.set(it.chid, (this.storing.get(it.chid) ?? 0) + 1);
    try {
      const writers = await this.clientWriters();
      const holders = await putTransaction(
        this,
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

  /** Copies of this item are being written by this group right now (a put or a repair): no reclaim may go out. */
  private copying(ref: StoredRef): boolean {
    return this.repairing.has(storedRefKey(ref)) || (ref.kind === "chunk" && this.storing.has(ref.chid));
  }

  /**
   * Get chunk (seed 001): the bytes, verified against the CHID, or an error if no good copy is
   * reachable. `near`: the reader's location; holders nearest to it serve first.
   */
  private async readChunk(g: number, chid: Chid, near: string | null = null): Promise<Uint8Array> {
    this.setGroup(g);
    const cfg = configOf(this.env);
    const readers = await this.live("readers");
    const ref = { kind: "chunk", chid } as const;
    // Known holders first, starting from a different one each time to spread the reads (the
    // order stays among holders equally near).
    const known = nearestFirst(
      this.locations.holders(chid).flatMap((id) => {
        const m = this.members.get(id);
        return m && readers.includes(m) ? [m] : [];
      }),
      near,
    );
    const got = await getTransaction(this, readers, {
      propose: (txn) => ({ t: "propose-get", txn, chid }),
      refOf: () => ref,
      expect: chid,
      maxBytes: cfg.chunk.max,
      known: { members: known, ref },
      near,
    });
    if (!got) throw new Error(`${UNAVAILABLE}no live target of group ${g} holds chunk ${chid}`);
    for (const m of got.failed) this.locations.remove(chid, m.id);
    // A holder that answered but could not serve it held a bad copy (it quarantines those) or
    // none: restore R. One that timed out is hung, not short of a copy: re-replication's business.
    const broken = got.failed.filter((m) => !m.slow);
    if (broken.length > 0) this.repairSoon(ref, `${broken.length} holder(s) failed a read`);
    this.locations.add(chid, got.holders.map((m) => m.id));
    return got.bytes;
  }

  /**
   * Restore an item's replica count in the background (a target's scrub or a read found a bad
   * or missing copy): the same check-then-copy as validation. One repair per item at a time.
   * Restores to the cluster's R: a version's own count is known to its name's group, not here.
   */
  private repairSoon(ref: StoredRef, why: string): void {
    const key = storedRefKey(ref);
    if (this.repairing.has(key) || this.refs.reclaiming(ref)) return;
    this.repairing.add(key);
    void this.verifyItems(this.group, [ref])
      .then(([v]) => console.log(JSON.stringify({ msg: "repair", group: this.group, kind: ref.kind, chid: ref.chid, why, good: v?.good, bad: v?.bad, repaired: v?.repaired })))
      .catch((e: unknown) => console.log(JSON.stringify({ msg: "repair failed", group: this.group, kind: ref.kind, chid: ref.chid, why, error: String(e) })))
      .finally(() => this.repairing.delete(key));
  }

  // ---- RPC: versions ----

  /**
   * Put version manifest: stamp the version, store its manifest on R targets, then record it and
   * hand its record to the name's manifest shard. Returns only when the shard has it, so a GET
   * or a listing right after sees the new version.
   *
   * `chunksStored`, when given, is the caller's own promise that the object's chunks are saved
   * (a function stub: calling it reaches back into the gateway's request). The manifest is put
   * while the caller waits for its last chunks, and nothing is committed unless that resolves,
   * so a version never names a chunk that is not stored.
   *
   * `condition` makes it a conditional write (If-None-Match: * or If-Match: etag): it is checked
   * when the call arrives and again, synchronously, just before the commit, so of two racing
   * writers at most one whose condition held can commit.
   */
  async putVersion(
    g: number,
    nhid: Nhid,
    shard: number,
    body: VersionBody,
    versioning: Versioning,
    chunksStored: (() => Promise<void>) | null = null,
    condition: WriteCondition | null = null,
    replicas: number | null = null,
  ): Promise<PutVersionResult | Refusal> {
    this.setGroup(g);
    return this.storeVersion(g, nhid, shard, body, versioning, chunksStored, condition, undefined, undefined, replicas);
  }

  private async storeVersion(
    g: number,
    nhid: Nhid,
    shard: number,
    body: VersionBody,
    versioning: Versioning,
    chunksStored: (() => Promise<void>) | null,
    condition: WriteCondition | null,
    beforeCommit: () => void = () => {},
    guard: () => Refusal | null = () => null,
    replicas: number | null = null,
  ): Promise<PutVersionResult | Refusal> {
    const isNull = versioning !== "Enabled";
    const inMerge = () => this.inMerge(nhid, body.key);
    const early = inMerge() ?? conditionFails(condition, this.book.current(nhid)) ?? guard();
    if (early) return early;
    const cfg = configOf(this.env);
    const uvid = this.book.stamp(g);
    const vm: VersionManifest = { ...body, format: MANIFEST_FORMAT, uvid, created: parseUvid(uvid).ms };
    const bytes = encodeManifest(vm);
    const vmChid = await chidOf(bytes);
    const record = recordOf(vm, vmChid, isNull);
    let removed: RemovalRecord[] = [];
    let stored: Promise<unknown> | null = null;
    let committed = false;
    try {
      const writers = await this.clientWriters();
      this.refs.writing(uvid);
      stored = putTransaction(this, writers, [{ item: { kind: "vm", chid: vmChid, size: bytes.length, nhid, uvid }, bytes }], replicas ?? cfg.replicas, { correlation: cfg.correlation });
      await Promise.all([stored, chunksStored?.()]);
      // From here to the commit nothing awaits: no other write on this name can slip between
      // the condition and the commit.
      const late = inMerge() ?? conditionFails(condition, this.book.current(nhid)) ?? guard();
      if (late) return late;
      // The version's references are queued first: what beforeCommit drops (an upload's parts)
      // then reaches each chunk group after them, so no chunk the version uses is ever without one.
      this.refOutbox.queue("+", versionRef(nhid, uvid), body.chunks.map((c) => c.chid), cfg.groupCount, replicas);
      beforeCommit();
      removed = this.book.commit(nhid, { uvid, vmChid, deleteMarker: vm.deleteMarker, etag: vm.etag, isNull, replicas }, shard, record, this.removalOf(body));
      committed = true;
      this.refs.written(uvid);
    } finally {
      // A no-op once committed: the record in the outbox holds the cutoff from then on.
      this.book.release(uvid);
      if (!committed && stored) void this.discardManifest({ kind: "vm", chid: vmChid, nhid, uvid }, stored);
    }
    this.pushRefs();
    const cur = this.book.current(nhid);
    if (cur?.uvid === uvid) this.cache(nhid, { vm, vmChid, isNull, replicas: replicas ?? cfg.replicas });
    await Promise.all([this.deliver(shard, record), ...removed.map((r) => this.deliver(shard, r))]);
    return { uvid, vmChid, created: vm.created, versionId: versionIdOf(uvid, isNull) };
  }

  /**
   * The manifest of a version that was never committed (its chunks failed, its condition no
   * longer held, the client went away): once its put has settled, whatever copies it left are
   * deleted like an expunged version's. Nothing else can name it: its UVID was never given out.
   */
  private async discardManifest(ref: StoredRef & { kind: "vm" }, stored: Promise<unknown>): Promise<void> {
    await stored.catch(() => {});
    try {
      const view = await this.groupView(true);
      this.refs.reclaim([ref], view.readers.map((m) => m.id), Date.now());
      this.refs.written(ref.uvid);
      this.sendOwedToAll();
    } catch (e) {
      // Left to recovery's rules: it stays marked as written, so a restart finds and deletes it.
      console.log(JSON.stringify({ msg: "uncommitted manifest not discarded", group: this.group, uvid: ref.uvid, error: String(e) }));
    }
  }

  /** A write to a name a merge has prepared would overtake the merge: S3's answer to a conflicting operation. */
  private inMerge(nhid: Nhid, key: string): Refusal | null {
    return this.merges.preparedIn(nhid) ? refusal("OperationAborted", "A conflicting operation (a fork's merge) is in progress against this key. Please try again.", { Key: key }) : null;
  }

  /** Makes removal records for versions of this name, each with a stamp of its own. */
  private removalOf(name: { tenant: string; bucket: string; key: string }): (target: Uvid) => RemovalRecord {
    return (target) => ({ kind: "removal", tenant: name.tenant, bucket: name.bucket, key: name.key, uvid: this.book.stamp(this.group), target });
  }

  /** Hand a committed record to its shard; on failure it stays in the outbox for the alarm, and the caller hears 503. */
  private async deliver(shard: number, record: ShardRecord): Promise<void> {
    try {
      await this.feed.deliver(shard, record);
    } catch (e) {
      await this.alarmBy(Date.now() + OUTBOX_RETRY_MS);
      throw new Error(`${UNAVAILABLE}stored, but not yet listed (shard ${shard}: ${String(e)})`);
    }
  }

  // ---- RPC: validation ----

  /**
   * Validate items in place (seed 003): every live target re-hashes its own copies, and an item
   * with fewer than R good copies but at least one is copied back up to R from a good one
   * (check, then copy only what is missing). Nothing is sent to the caller but the counts.
   */
  async verifyItems(g: number, refs: StoredRef[], replicas: number | null = null): Promise<ItemVerdict[]> {
    this.setGroup(g);
    const cfg = configOf(this.env);
    const want = replicas ?? cfg.replicas;
    const readers = await this.live("readers");
    const checks = await verifyTransaction(this, readers, refs);
    const writers = await this.live("writers");
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
        if (ref.kind === "chunk" && this.refs.reclaimed(ref.chid)) return { ...verdict, short: false };
        // Short in domains only: one more copy per missing domain, placed least correlated (the
        // extra copy on a member stays: trimming takes only non-members' copies).
        const place = Math.max(want, onWriters + Math.max(0, reach - domains));
        // This is the repair: a read below that meets the copy just quarantined must not start another.
        const key = storedRefKey(ref);
        const mine = !this.repairing.has(key);
        this.repairing.add(key);
        try {
          const bytes = ref.kind === "chunk" ? await this.readChunk(g, ref.chid) : encodeManifest(await this.fetchManifest(g, ref.nhid, ref.uvid, ref.chid));
          const item: PutItem = ref.kind === "chunk" ? { kind: "chunk", chid: ref.chid, size: bytes.length } : { kind: "vm", chid: ref.chid, size: bytes.length, nhid: ref.nhid, uvid: ref.uvid };
          // No reclaim of it goes out while it is in `repairing` (copying: reclaimDue, expungeDue).
          const holders = await putTransaction(this, writers, [{ item, bytes }], place, { correlation: cfg.correlation, skipSlow: false, chain: cfg.chain, repair: true });
          verdict.repaired = Math.max(0, holders[0]!.length - onWriters);
          verdict.short = false;
          if (ref.kind === "chunk") this.locations.add(ref.chid, holders[0]!.map((m) => m.id));
        } catch {
          // Left as it is: the verdict says how many good copies remain.
        } finally {
          if (mine) this.repairing.delete(key);
        }
        return verdict;
      }),
    );
  }

  /** How many failure domains `want` copies can span on these members: R, or fewer on a group with too few hosts. */
  private domainReach(members: readonly Member[], want: number): number {
    return Math.min(want, distinctDomains(members.map((m) => m.location), configOf(this.env).correlation));
  }

  /**
   * Change a version's replication count: its manifest (and so its tokens) stays as it is. Its
   * chunks' groups learn the new count with the version's references (a "+" again), so that
   * trimming never takes a copy the version still wants.
   */
  async setVersionReplicas(g: number, nhid: Nhid, versionId: Uvid | "null" | null, replicas: number | null): Promise<{ uvid: Uvid } | null> {
    this.setGroup(g);
    const row = versionId === null ? (() => { const cur = this.book.current(nhid); return cur ? this.book.find(nhid, cur.uvid) : null; })() : this.book.find(nhid, versionId);
    if (!row || row.deleteMarker) return null;
    const vm = await this.fetchManifest(g, nhid, row.uvid, row.vmChid);
    const cfg = configOf(this.env);
    this.book.setReplicas(nhid, row.uvid, replicas);
    this.refOutbox.queue("+", versionRef(nhid, row.uvid), vm.chunks.map((c) => c.chid), cfg.groupCount, replicas);
    this.pushRefs();
    this.vmCache.delete(nhid);
    return { uvid: row.uvid };
  }

  // ---- RPC: editing sessions ----

  /** Take (or renew) the lease on a name for an editing session; false while another session holds it. */
  async leaseName(g: number, nhid: Nhid, holder: string, ttlMs: number): Promise<boolean> {
    this.setGroup(g);
    return this.leases.acquire(nhid, holder, ttlMs);
  }

  async releaseName(g: number, nhid: Nhid, holder: string): Promise<void> {
    this.setGroup(g);
    this.leases.release(nhid, holder);
  }

  /**
   * Commit a session's pending version: a put of its manifest that goes ahead only while the
   * session still holds the name's lease (checked on arrival and again just before the commit)
   * and its condition holds. The lease ends with the commit.
   */
  async commitEdit(
    g: number,
    nhid: Nhid,
    shard: number,
    body: VersionBody,
    versioning: Versioning,
    condition: WriteCondition | null,
    holder: string,
    replicas: number | null = null,
  ): Promise<PutVersionResult | Refusal> {
    this.setGroup(g);
    const held = () => (this.leases.holds(nhid, holder) ? null : refusal("KeyLeased", "This session's lease on the key has run out, and another session may have taken it: start the edit again"));
    const r = await this.storeVersion(g, nhid, shard, body, versioning, null, condition, () => this.leases.release(nhid, holder), held, replicas);
    return r;
  }

  // ---- RPC: a fork's merge (merges.ts) ----

  /**
   * Phase one: every item's condition and lease hold, and none is in another merge; then the
   * names are prepared and one stamp is held for them. Nothing is prepared if anything fails.
   */
  async prepareMerge(g: number, merge: string, items: MergeItem[]): Promise<{ hold: Uvid } | Refusal> {
    this.setGroup(g);
    for (const it of items) {
      const other = this.merges.preparedIn(it.nhid);
      if (other !== null) return refusal("OperationAborted", "Another merge is in progress against this key", { Key: it.body.key });
      const failed = conditionFails(it.condition, this.book.current(it.nhid));
      if (failed) return { ...failed, details: { ...failed.details, Key: it.body.key } };
      if (!this.leases.holds(it.nhid, it.holder)) return refusal("KeyLeased", "This session's lease on the key has run out: start the fork again", { Key: it.body.key });
    }
    const hold = this.book.stamp(g);
    this.merges.prepare(merge, hold, items);
    await this.alarmBy(Date.now() + MERGE_UNDECIDED_MS + OUTBOX_RETRY_MS);
    return { hold };
  }

  /** A stamp above every held one of a merge (`atLeast` ms): the shared stamp its versions carry. */
  async mergeStamp(g: number, atLeast: number): Promise<Uvid> {
    this.setGroup(g);
    const uvid = this.book.stamp(g, atLeast);
    // Only the prepared groups' held stamps guard the cutoffs: this one names, it does not hold.
    this.book.release(uvid);
    return uvid;
  }

  /** Phase two: record the decision, then write every prepared version under the shared stamp. */
  async commitMerge(g: number, merge: string, stamp: Uvid, nhids: Nhid[]): Promise<{ nhid: Nhid; vmChid: Chid; versionId: string }[]> {
    this.setGroup(g);
    this.merges.decide(merge, stamp);
    // Should the writes below fail, the alarm finishes them: the decision is already durable.
    await this.alarmBy(Date.now() + 5 * OUTBOX_RETRY_MS);
    const now = await this.finishMerge(merge);
    // A repeated call (the first answer was lost) finds the versions written already.
    return nhids.map((nhid) => {
      const done = now.find((r) => r.nhid === nhid);
      if (done) return done;
      const row = this.book.find(nhid, stamp);
      if (!row) throw new Error(`merge ${merge}: no version ${stamp} of ${nhid}`);
      return { nhid, vmChid: row.vmChid, versionId: versionIdOf(stamp, row.isNull) };
    });
  }

  /** Drop an undecided merge (another group refused, or the session went away). */
  async abortMerge(g: number, merge: string): Promise<void> {
    this.setGroup(g);
    const rows = this.merges.rows(merge);
    if (this.merges.abort(merge)) for (const h of new Set(rows.map((r) => r.hold))) this.book.release(h);
  }

  private async finishMerge(merge: string): Promise<{ nhid: Nhid; vmChid: Chid; versionId: string }[]> {
    const rows = this.merges.rows(merge);
    const cfg = configOf(this.env);
    const out: { nhid: Nhid; vmChid: Chid; versionId: string }[] = [];
    const deliveries: [number, ShardRecord][] = [];
    for (const r of rows) {
      const { nhid, shard, body, versioning, holder, replicas } = r.item;
      const uvid = r.decided!;
      const isNull = versioning !== "Enabled";
      const vm: VersionManifest = { ...body, format: MANIFEST_FORMAT, uvid, created: parseUvid(uvid).ms };
      const bytes = encodeManifest(vm);
      const vmChid = await chidOf(bytes);
      const record = recordOf(vm, vmChid, isNull);
      const writers = await this.live("writers");
      await putTransaction(this, writers, [{ item: { kind: "vm", chid: vmChid, size: bytes.length, nhid, uvid }, bytes }], replicas ?? cfg.replicas, { correlation: cfg.correlation });
      this.book.witness(uvid);
      const removed = this.book.commit(nhid, { uvid, vmChid, deleteMarker: false, etag: vm.etag, isNull, replicas }, shard, record, this.removalOf(body));
      this.refOutbox.queue("+", versionRef(nhid, uvid), body.chunks.map((c) => c.chid), cfg.groupCount, replicas);
      this.leases.release(nhid, holder);
      this.merges.done(nhid);
      this.vmCache.delete(nhid);
      deliveries.push([shard, record], ...removed.map((x): [number, ShardRecord] => [shard, x]));
      out.push({ nhid, vmChid, versionId: versionIdOf(uvid, isNull) });
    }
    for (const h of new Set(rows.map((r) => r.hold))) this.book.release(h);
    this.pushRefs();
    await Promise.all(deliveries.map(([s, rec]) => this.deliver(s, rec)));
    return out;
  }

  /** Finish decided merges, drop undecided ones whose coordinator is gone. */
  private async settleMerges(): Promise<void> {
    const byMerge = new Map<string, { decided: boolean; at: number }>();
    for (const r of this.merges.all()) byMerge.set(r.merge, { decided: r.decided !== null, at: r.at });
    for (const [merge, m] of byMerge) {
      if (m.decided) await this.finishMerge(merge);
      else if (Date.now() - m.at > MERGE_UNDECIDED_MS) await this.abortMerge(this.group, merge);
      else await this.alarmBy(m.at + MERGE_UNDECIDED_MS + OUTBOX_RETRY_MS);
    }
  }

  /**
   * Once a member has been gone for the grace period, restore R for every item of this group
   * that now has fewer than R copies on live members (rereplicate.ts). A member that comes back
   * before then costs nothing; one that comes back after finds its copies surplus (trimming
   * them is reclamation's job).
   */
  private async rereplicateIfDue(): Promise<void> {
    const cfg = configOf(this.env);
    const due = [...this.goneSince].filter(([, t]) => Date.now() - t >= cfg.rereplicateAfterMs).map(([id]) => id);
    if (due.length === 0 || this.sweeping || this.group < 0) {
      const next = Math.min(...[...this.goneSince.values()].map((t) => t + cfg.rereplicateAfterMs));
      if (Number.isFinite(next) && !this.sweeping) await this.alarmBy(Math.max(next, Date.now() + OUTBOX_RETRY_MS));
      return;
    }
    this.sweeping = true;
    const t0 = Date.now();
    try {
      const readers = await this.live("readers");
      const writers = new Set((await this.live("writers")).map((m) => m.id));
      const inventories = await Promise.all(readers.map((m) => inventoryOf(this, m, this.group, cfg.groupCount)));
      const answered = readers.flatMap((m, i) => (inventories[i] ? [{ id: m.id, refs: inventories[i]!, location: m.location, counts: writers.has(m.id) }] : []));
      // Copies count on writers only: a reader that is no longer a member (draining, replaced) is a source to copy from.
      // Items being deleted (reclaimed, some member has yet to confirm) are not restored.
      const reach = this.domainReach(readers.filter((m) => writers.has(m.id)), cfg.replicas);
      const short = underReplicated(answered, cfg.replicas, reach, cfg.correlation).filter((s) => !this.refs.reclaiming(s.ref));
      let repaired = 0;
      let lost = 0;
      const stillShort = new Set<string>();
      // Small batches, one after another, with a pause between them: this object serves the
      // group's client reads and writes on the same thread, and must keep doing so.
      this.pacer.begin();
      this.sweepProgress = { short: short.length, done: 0, repaired: 0 };
      for (let i = 0; i < short.length; ) {
        const batch = short.slice(i, i + this.pacer.batch).map((s) => s.ref);
        i += batch.length;
        const verdicts = await this.verifyItems(this.group, batch);
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
      console.log(JSON.stringify({ msg: "re-replicated", group: this.group, gone: due, members: readers.length, short: short.length, repaired, lost, ms: Date.now() - t0 }));
      this.reportDrained(readers.flatMap((m, i) => (inventories[i] && this.draining.has(m.id) ? [{ m, refs: inventories[i]!, member: writers.has(m.id) }] : [])), stillShort);
      const returned = readers.flatMap((m, i) => (inventories[i] && !writers.has(m.id) && !this.draining.has(m.id) ? [{ m, refs: inventories[i]! }] : []));
      if (returned.length > 0) await this.trimSurplus(returned, answered, new Set(short.map((x) => storedRefKey(x.ref))));
    } finally {
      this.sweeping = false;
      this.sweepProgress = null;
      this.pacer.end();
    }
  }

  /** Between repair batches: adapt to what clients see, and give way for as long as that says. */
  private async paced(): Promise<void> {
    this.pacer.adapt(Date.now());
    if (this.pacer.pauseMs > 0) await new Promise((r) => setTimeout(r, this.pacer.pauseMs));
  }

  /**
   * Surplus copies on readers that are no longer members (a replaced target that came back):
   * an item whose copies on live members number at least the most any user of it asked for
   * (`RefBook.wanted`, the version's own count for a manifest), over as many failure domains as
   * the members allow, has its copy there deleted (a `reclaim` to that target alone, kept in
   * `trims` until confirmed), in paced batches. Anything short at the sweep's start, being
   * deleted, or referenced by nothing (reclamation's) is left alone.
   */
  private async trimSurplus(returned: { m: Member; refs: readonly StoredRef[] }[], holdings: readonly Holding[], wasShort: ReadonlySet<string>): Promise<void> {
    const cfg = configOf(this.env);
    const writers = await this.live("writers");
    // Copies on members still live now: one that went since the inventories counts for nothing.
    const live = new Set(writers.map((w) => w.id));
    const onMembers = copiesByItem(holdings, (h) => h.counts && live.has(h.id));
    for (const { m, refs } of returned) {
      const surplus = refs.filter((ref) => {
        const k = storedRefKey(ref);
        if (wasShort.has(k) || this.refs.reclaiming(ref)) return false;
        const want = ref.kind === "chunk" ? this.refs.wanted(ref.chid, cfg.replicas) : (() => { const row = this.book.find(ref.nhid, ref.uvid); return row ? (row.replicas ?? cfg.replicas) : null; })();
        if (want === null) return false;
        const at = onMembers.get(k)?.at ?? [];
        return at.length >= want && distinctDomains(at, cfg.correlation) >= this.domainReach(writers, want);
      });
      for (let i = 0; i < surplus.length && !m.gone; ) {
        const batch = surplus.slice(i, i + this.pacer.batch);
        i += batch.length;
        this.refs.trim(batch, m.id);
        m.send({ t: "reclaim", refs: batch });
        await this.paced();
      }
      console.log(JSON.stringify({ msg: "trimmed surplus copies", group: this.group, member: m.id, held: refs.length, trimmed: surplus.length }));
    }
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
        console.log(JSON.stringify({ msg: "draining target is still a member: sweeping again later", group: this.group, member: m.id }));
        this.goneSince.set(m.id, Date.now() - configOf(this.env).rereplicateAfterMs + DRAIN_MEMBER_RETRY_MS);
        void this.alarmBy(Date.now() + DRAIN_MEMBER_RETRY_MS).catch(() => {});
      } else if (left === 0) {
        m.send({ t: "drained" });
        this.draining.delete(m.id);
        console.log(JSON.stringify({ msg: "drained", group: this.group, member: m.id, items: refs.length }));
      } else {
        console.log(JSON.stringify({ msg: "drain incomplete: sweeping again", group: this.group, member: m.id, short: left }));
        this.goneSince.set(m.id, Date.now() - configOf(this.env).rereplicateAfterMs + DRAIN_RETRY_MS);
        void this.alarmBy(Date.now() + DRAIN_RETRY_MS).catch(() => {});
      }
    }
  }

  /** Ask for the alarm no later than `at`, never postponing an earlier one (the outbox's). */
  private async alarmBy(at: number): Promise<void> {
    // Known to be due by then already: most calls (every putChunks) end here, without storage.
    if (typeof this.alarmAt === "number" && this.alarmAt <= at) return;
    const cur = this.alarmAt === undefined ? await this.ctx.storage.getAlarm() : this.alarmAt;
    if (cur === null || cur > at) {
      await this.ctx.storage.setAlarm(at);
      this.alarmAt = at;
    } else {
      this.alarmAt = cur;
    }
  }

  // ---- space reclamation (backrefs.ts, ref-outbox.ts, expunge.ts) ----

  /**
   * Have queued reference changes pushed by the alarm, REF_PUSH_DELAY_MS from now: every commit
   * meanwhile joins the same call per chunk group. Safe to delay, since the chunks are held far
   * longer (the delay is at most an eighth of CHUNK_HOLD_SECONDS); and cheaper than any timer
   * per commit: measured, pushing on a 200 ms timer cost a 1 MiB PUT ~5 ms of workerd CPU (40
   * wake-ups a second across eight groups), against ~1 ms for one alarm per group every 5 s.
   */
  private pushRefs(): void {
    const delay = Math.min(REF_PUSH_DELAY_MS, configOf(this.env).chunkHoldMs / 8);
    void this.alarmBy(Date.now() + delay).catch(() => {});
  }

  private dropPartRefs(uploadId: string): void {
    const groupCount = configOf(this.env).groupCount;
    for (const [n, chids] of this.uploads.partChunks(uploadId)) this.refOutbox.queue("-", partRef(uploadId, n), chids, groupCount);
  }

  private applyChanges(changes: readonly RefChange[]): void {
    const cfg = configOf(this.env);
    const late = this.refs.apply(changes, Date.now(), cfg.reclaimGraceMs);
    if (late.length > 0) console.log(JSON.stringify({ msg: "reference to a reclaimed chunk", group: this.group, chids: late.slice(0, 16), count: late.length }));
    const next = this.refs.nextDue();
    if (next !== null) void this.alarmBy(next).catch(() => {});
  }

  /**
   * Another group's versions (or uploads, or a snapshot) start or stop using chunks of this
   * group, in the order they happened there.
   */
  async applyRefs(g: number, changes: RefChange[]): Promise<void> {
    this.setGroup(g);
    this.applyChanges(changes);
  }

  /**
   * Keep these chunks for a while (a copy or a session's commit names chunks it did not store):
   * returns those already deleted, which a new version must not name. The rest cannot be
   * deleted before the hold runs out, by when the new version's references are here.
   */
  async holdChunks(g: number, chids: Chid[]): Promise<Chid[]> {
    this.setGroup(g);
    const gone = new Set(this.refs.gone(chids));
    const until = Date.now() + configOf(this.env).chunkHoldMs;
    this.refs.hold(chids.filter((c) => !gone.has(c)), until);
    void this.alarmBy(until).catch(() => {});
    return [...gone];
  }

  /** A snapshot names these versions: keep their data until it lets go. Returns those already expunged. */
  async holdVersions(g: number, holder: string, versions: RemovedVersion[]): Promise<RemovedVersion[]> {
    this.setGroup(g);
    const missing = versions.filter((v) => !this.book.find(v.nhid, v.uvid) && !this.expunges.retained(v.nhid, v.uvid));
    const lost = new Set(missing.map((v) => `${v.nhid}/${v.uvid}`));
    this.expunges.hold(holder, versions.filter((v) => !lost.has(`${v.nhid}/${v.uvid}`)));
    return missing;
  }

  /** A snapshot is deleted: versions it alone kept, and that are no longer in the namespace, are expunged. */
  async releaseVersions(g: number, holder: string, versions: { nhid: Nhid; uvid: Uvid }[]): Promise<void> {
    this.setGroup(g);
    const now = Date.now();
    for (const v of this.expunges.release(holder, versions)) if (!this.book.find(v.nhid, v.uvid)) this.expunges.schedule(v, now);
    await this.alarmBy(now);
  }

  /** Counts of the reclamation tables, for tests and status pages. */
  async reclaimStatus(): Promise<{ backrefs: number; holds: number; reclaims: number; outbox: number; expunging: number }> {
    const sql = this.ctx.storage.sql;
    const n = (q: string) => Number(sql.exec(q).toArray()[0]!.n);
    return { ...this.refs.counts(), outbox: n("SELECT count(*) AS n FROM ref_outbox"), expunging: n("SELECT count(*) AS n FROM expunge") };
  }

  /** Send every live member the deletions it owes (after recording new ones). */
  private sendOwedToAll(): void {
    for (const m of this.members.values()) if (!m.gone) this.sendOwed(m);
  }

  /** Send a member the deletions it has not confirmed (on connect, and each reclamation round). */
  private sendOwed(m: Member): void {
    const owed = this.refs.pendingFor(m.id, 4096);
    if (owed.length > 0) m.send({ t: "reclaim", refs: owed });
  }

  /**
   * An earlier life of this object kept holds in memory it never wrote (backrefs.ts hold): the
   * chunks its members stored since then, and that have no row here, are held now, so that
   * those no version references are reclaimed like any other. Asks each member for only the
   * chunks of this group written since (by file time, with a margin for clock skew); waits
   * until every writer of the group is back, or gives up after RECOVERY_WAIT_MS (a leak).
   */
  private async recoverHolds(): Promise<void> {
    const since = this.refs.lostSince();
    if (since === null || this.group < 0) return;
    const cfg = configOf(this.env);
    const view = await this.groupView(true);
    const readers = await this.live("readers");
    const missing = view.writers.filter((w) => !readers.some((m) => m.id === w.id));
    if (missing.length > 0 && Date.now() - since < RECOVERY_WAIT_MS) {
      await this.alarmBy(Date.now() + 5 * OUTBOX_RETRY_MS);
      return;
    }
    const inventories = await Promise.all(readers.map((m) => inventoryOf(this, m, this.group, cfg.groupCount, since - CLOCK_MARGIN_MS)));
    if (inventories.some((i) => i === null)) {
      await this.alarmBy(Date.now() + 5 * OUTBOX_RETRY_MS);
      return;
    }
    const chids = inventories.flatMap((inv) => inv!.flatMap((r) => (r.kind === "chunk" ? [r.chid] : [])));
    const orphans = this.uncommittedManifests(inventories.flatMap((inv) => inv!));
    if (orphans.length > 0) {
      this.refs.reclaim(orphans, readers.map((m) => m.id), Date.now());
      this.sendOwedToAll();
    }
    const held = this.refs.recovered(chids, Date.now() + cfg.chunkHoldMs);
    console.log(JSON.stringify({ msg: "holds recovered", group: this.group, since, found: chids.length, held, orphans: orphans.length, members: readers.length, missing: missing.length }));
    const next = this.refs.nextDue();
    if (next !== null) await this.alarmBy(next);
  }

  /**
   * Of the manifests members hold, those an earlier life of this object wrote and never
   * committed: stamped before this one started, and neither a version, nor removed and kept
   * for expunging, nor the decided write of a merge still to be finished.
   */
  private uncommittedManifests(found: readonly StoredRef[]): (StoredRef & { kind: "vm" })[] {
    const merging = new Set(this.merges.all().flatMap((r) => (r.decided ? [r.decided] : [])));
    const out = new Map<string, StoredRef & { kind: "vm" }>();
    for (const r of found) {
      if (r.kind !== "vm" || parseUvid(r.uvid).ms >= this.bornAt || merging.has(r.uvid)) continue;
      if (this.book.find(r.nhid, r.uvid) || this.expunges.retained(r.nhid, r.uvid)) continue;
      out.set(storedRefKey(r), r);
    }
    return [...out.values()];
  }

  /** Delete, on every member that may hold them, chunks whose holds ran out with nothing referencing them. */
  private async reclaimDue(): Promise<void> {
    if (this.group < 0) return;
    const first = this.refs.nextDue();
    if ((first === null || first > Date.now()) && !this.refs.owesAny()) {
      if (first !== null) await this.alarmBy(first);
      return;
    }
    // The view first: from `due` to `reclaim` nothing may await, or a put could hold a chunk in between.
    const view = await this.groupView(true);
    const readers = view.readers.map((m) => m.id);
    this.refs.forgetMembersExcept(readers);
    const now = Date.now();
    const found = this.refs.due(now, RECLAIM_BATCH);
    // A chunk being copied (repaired, or stored by a put that outlived its hold) waits: copies
    // landing after the reclaim went out would belong to nothing. Once the copy is over it is
    // reclaimed from every member, new copies too, unless a reference came meanwhile.
    const copying = new Set(found.filter((chid) => this.copying({ kind: "chunk", chid })));
    if (copying.size > 0) this.refs.postpone([...copying], now + COPY_WAIT_MS);
    const due = found.filter((chid) => !copying.has(chid));
    if (due.length > 0) {
      this.refs.reclaim(due.map((chid) => ({ kind: "chunk", chid })), readers, now);
      for (const chid of due) this.locations.forget(chid);
      console.log(JSON.stringify({ msg: "reclaiming chunks", group: this.group, count: due.length }));
    }
    this.sendOwedToAll();
    const next = found.length === RECLAIM_BATCH ? now : this.refs.nextDue();
    if (next !== null) await this.alarmBy(Math.max(next, now + 10));
  }

  /** Expunge removed versions past their retention: drop their chunks' references, delete their manifests. */
  private async expungeDue(): Promise<void> {
    if (this.group < 0) return;
    const cfg = configOf(this.env);
    const due = this.expunges.due(Date.now(), EXPUNGE_BATCH);
    let done = 0;
    for (const v of due) {
      let chids: Chid[];
      try {
        chids = (await this.fetchManifest(this.group, v.nhid, v.uvid, v.vmChid)).chunks.map((c) => c.chid);
      } catch (e) {
        // Its chunks are known only from its manifest: without one, try later rather than guess.
        console.log(JSON.stringify({ msg: "expunge postponed", group: this.group, uvid: v.uvid, error: String(e) }));
        this.expunges.postpone(v, Date.now() + EXPUNGE_RETRY_MS);
        continue;
      }
      const view = await this.groupView();
      // A snapshot may have taken hold of it while its manifest was read.
      if (!this.expunges.stillDue(v)) continue;
      // Its manifest being repaired waits, as a chunk being copied does (reclaimDue).
      if (this.copying({ kind: "vm", chid: v.vmChid, nhid: v.nhid, uvid: v.uvid })) {
        this.expunges.postpone(v, Date.now() + COPY_WAIT_MS);
        continue;
      }
      this.refOutbox.queue("-", versionRef(v.nhid, v.uvid), chids, cfg.groupCount);
      this.refs.reclaim([{ kind: "vm", chid: v.vmChid, nhid: v.nhid, uvid: v.uvid }], view.readers.map((m) => m.id), Date.now());
      this.expunges.done(v);
      done++;
    }
    if (done > 0) {
      this.sendOwedToAll();
      console.log(JSON.stringify({ msg: "expunged", group: this.group, versions: done }));
      await this.refOutbox.push();
    }
    const next = due.length === EXPUNGE_BATCH ? Date.now() : this.expunges.nextDue();
    if (next !== null) await this.alarmBy(Math.max(next, Date.now() + 10));
  }

  /** Abort uploads older than UPLOAD_EXPIRE_SECONDS: their parts' chunks are reclaimed like any unreferenced ones. */
  private async expireUploads(): Promise<void> {
    const cfg = configOf(this.env);
    const old = this.uploads.begunBefore(Date.now() - cfg.uploadExpireMs, 64);
    for (const u of old) {
      await this.abortUpload(this.group, u.nhid, shardOf(u.nhid, cfg.shardCount), u.info.uploadId);
      console.log(JSON.stringify({ msg: "upload expired", group: this.group, uploadId: u.info.uploadId }));
    }
    const oldest = this.uploads.oldest();
    if (oldest !== null) await this.alarmBy(Math.max(oldest + cfg.uploadExpireMs, Date.now() + OUTBOX_RETRY_MS));
  }

  // ---- RPC: multipart uploads ----

  async createUpload(g: number, nhid: Nhid, shard: number, info: Omit<UploadInfo, "uploadId" | "initiated">): Promise<{ uploadId: string; initiated: number }> {
    this.setGroup(g);
    const uploadId = newUploadId();
    const uvid = this.book.stamp(g);
    const initiated = parseUvid(uvid).ms;
    const record: UploadRecord = { kind: "upload", tenant: info.tenant, bucket: info.bucket, key: info.key, uploadId, uvid, initiated, open: true, creator: info.creator };
    try {
      this.uploads.create(nhid, { ...info, uploadId, initiated });
      this.book.queue(shard, record);
    } finally {
      this.book.release(uvid);
    }
    await this.deliver(shard, record);
    await this.alarmBy(initiated + configOf(this.env).uploadExpireMs);
    return { uploadId, initiated };
  }

  /** Record a part whose chunks are stored (replacing one of the same number). */
  /** The replication count an upload asked for (null: the cluster's R), or a refusal if there is no such upload. */
  async uploadReplicas(g: number, nhid: Nhid, uploadId: string): Promise<{ replicas: number | null } | Refusal> {
    this.setGroup(g);
    const upload = this.uploads.get(nhid, uploadId);
    return upload ? { replicas: upload.replicas ?? null } : noSuchUpload(uploadId);
  }

  async putPart(g: number, nhid: Nhid, uploadId: string, part: Omit<PartRow, "uploaded">): Promise<{ uploaded: number } | Refusal> {
    this.setGroup(g);
    if (!this.uploads.get(nhid, uploadId)) return noSuchUpload(uploadId);
    const uploaded = Date.now();
    // The part's chunks are referenced by the upload until it completes or is aborted; a part
    // uploaded again drops the old part's chunks it does not use.
    const groupCount = configOf(this.env).groupCount;
    const ref = partRef(uploadId, part.partNumber);
    const now = new Set(part.chunks.map((c) => c.chid));
    const before = this.uploads.partChunks(uploadId).get(part.partNumber) ?? [];
    this.uploads.putPart(uploadId, { ...part, uploaded });
    this.refOutbox.queue("+", ref, now, groupCount, this.uploads.get(nhid, uploadId)?.replicas ?? null);
    this.refOutbox.queue("-", ref, before.filter((c) => !now.has(c)), groupCount);
    this.pushRefs();
    return { uploaded };
  }

  async listParts(g: number, nhid: Nhid, uploadId: string, after: number, limit: number): Promise<{ upload: UploadInfo; parts: PartSummary[]; truncated: boolean } | Refusal> {
    this.setGroup(g);
    const upload = this.uploads.get(nhid, uploadId);
    if (!upload) return noSuchUpload(uploadId);
    const parts = this.uploads.summaries(uploadId, after, limit + 1);
    return { upload, parts: parts.slice(0, limit), truncated: parts.length > limit };
  }

  /**
   * Complete: check the listed parts against those uploaded, and commit one version whose chunk
   * list is the parts' lists end to end. No byte is read or written.
   */
  async completeUpload(
    g: number,
    nhid: Nhid,
    shard: number,
    uploadId: string,
    listed: ListedPart[],
    condition: WriteCondition | null,
    versioning: Versioning,
  ): Promise<(PutVersionResult & { etag: string; checksum: ObjectChecksum | null }) | Refusal> {
    this.setGroup(g);
    const upload = this.uploads.get(nhid, uploadId);
    if (!upload) return noSuchUpload(uploadId);
    const assembled = await assemble(upload, listed, this.uploads.parts(uploadId, listed.map((p) => p.partNumber)));
    if ("refused" in assembled) return assembled;
    const closed: UploadRecord = { kind: "upload", tenant: upload.tenant, bucket: upload.bucket, key: upload.key, uploadId, uvid: this.book.stamp(g), initiated: upload.initiated, open: false, creator: upload.creator };
    let result: PutVersionResult | Refusal;
    try {
      result = await this.storeVersion(
        g,
        nhid,
        shard,
        assembled.body,
        versioning,
        null,
        condition,
        () => {
          // In the version's own transaction: the upload ends exactly when the object appears.
          this.dropPartRefs(uploadId);
          this.uploads.drop(uploadId);
          this.book.queue(shard, closed);
        },
        undefined,
        upload.replicas ?? null,
      );
    } finally {
      this.book.release(closed.uvid);
    }
    if ("refused" in result) return result;
    void this.feed.deliver(shard, closed).catch(() => this.alarmBy(Date.now() + OUTBOX_RETRY_MS));
    return { ...result, etag: assembled.body.etag, checksum: assembled.body.checksum ?? null };
  }

  async abortUpload(g: number, nhid: Nhid, shard: number, uploadId: string): Promise<Refusal | null> {
    this.setGroup(g);
    const upload = this.uploads.get(nhid, uploadId);
    if (!upload) return noSuchUpload(uploadId);
    this.dropPartRefs(uploadId);
    this.uploads.drop(uploadId);
    this.pushRefs();
    const record: UploadRecord = { kind: "upload", tenant: upload.tenant, bucket: upload.bucket, key: upload.key, uploadId, uvid: this.book.stamp(g), initiated: upload.initiated, open: false, creator: upload.creator };
    this.book.queue(shard, record);
    await this.deliver(shard, record);
    return null;
  }

  /**
   * DeleteObject without a version id. Versioning enabled: a new delete marker. Suspended: a
   * delete marker as the null version (replacing the old null version). Unversioned: the
   * current (null) version is removed, and no marker is written.
   */
  async deleteName(g: number, nhid: Nhid, shard: number, marker: VersionBody, versioning: Versioning): Promise<{ versionId: string | null; deleteMarker: boolean } | Refusal> {
    this.setGroup(g);
    const merging = this.inMerge(nhid, marker.key);
    if (merging) return merging;
    if (versioning === "Unversioned") {
      const cur = this.book.current(nhid);
      if (!cur) return { versionId: null, deleteMarker: false };
      const removed = this.book.remove(nhid, cur.uvid, shard, this.removalOf(marker));
      this.vmCache.delete(nhid);
      await Promise.all(removed.map((r) => this.deliver(shard, r)));
      return { versionId: null, deleteMarker: false };
    }
    const r = await this.storeVersion(g, nhid, shard, marker, versioning, null, null);
    if ("refused" in r) return r;
    return { versionId: r.versionId, deleteMarker: true };
  }

  /** DeleteObject with a version id: that version (or delete marker) is gone for good; null if there was none. */
  async deleteVersion(g: number, nhid: Nhid, shard: number, name: { tenant: string; bucket: string; key: string }, versionId: Uvid | "null"): Promise<{ versionId: string; deleteMarker: boolean } | Refusal | null> {
    this.setGroup(g);
    const merging = this.inMerge(nhid, name.key);
    if (merging) return merging;
    const row = this.book.find(nhid, versionId);
    if (!row) return null;
    const removed = this.book.remove(nhid, row.uvid, shard, this.removalOf(name));
    this.vmCache.delete(nhid);
    await Promise.all(removed.map((r) => this.deliver(shard, r)));
    return { versionId: versionIdOf(row.uvid, row.isNull), deleteMarker: row.deleteMarker };
  }

  /** The current version of a name (null if it has none), or one version by id ("null" for the null version). */
  async getVersion(g: number, nhid: Nhid, versionId: Uvid | "null" | null = null): Promise<StoredVersion | null> {
    this.setGroup(g);
    let row: VersionRow | null;
    if (versionId === null) {
      const cur = this.book.current(nhid);
      if (!cur) return null;
      const cached = this.vmCache.get(nhid);
      if (cached && cached.vm.uvid === cur.uvid) {
        this.cache(nhid, cached);
        return cached;
      }
      row = this.book.find(nhid, cur.uvid);
    } else {
      row = this.book.find(nhid, versionId);
    }
    if (!row) return null;
    const stored: StoredVersion = { vm: await this.fetchManifest(g, nhid, row.uvid, row.vmChid), vmChid: row.vmChid, isNull: row.isNull, replicas: row.replicas ?? configOf(this.env).replicas };
    if (this.book.isCurrent(nhid, row.uvid)) this.cache(nhid, stored);
    return stored;
  }

  /**
   * A version the caller already located (a manifest shard's record, for a read as of a time):
   * it may no longer be live here (removed since), but its manifest is still on the targets.
   */
  async readVersion(g: number, nhid: Nhid, uvid: Uvid, vmChid: Chid): Promise<VersionManifest> {
    this.setGroup(g);
    return this.fetchManifest(g, nhid, uvid, vmChid);
  }

  private async fetchManifest(g: number, nhid: Nhid, want: Uvid, vmChid: Chid): Promise<VersionManifest> {
    const readers = await this.live("readers");
    const got = await getTransaction(this, readers, {
      propose: (txn) => ({ t: "propose-get-vm", txn, nhid, uvid: want }),
      refOf: (bid) => ({ kind: "vm", chid: bid.chid, nhid, uvid: bid.uvid ?? want }),
      expect: vmChid,
      maxBytes: VM_MAX_BYTES,
    });
    if (!got) throw new Error(`${UNAVAILABLE}no live target of group ${g} holds version ${want} of this name`);
    return decodeManifest(got.bytes);
  }

  private cache(nhid: Nhid, v: StoredVersion): void {
    this.vmCache.delete(nhid);
    this.vmCache.set(nhid, v);
    if (this.vmCache.size > VM_CACHE_ENTRIES) this.vmCache.delete(this.vmCache.keys().next().value!);
  }

  /** Deliver every record still in the outbox; what fails stays there and is retried by alarm. */
  private async flushOutbox(): Promise<void> {
    const pending = this.book.pending();
    if (pending.length === 0) return;
    const results = await Promise.allSettled(pending.map((p) => this.feed.deliver(p.shard, p.record)));
    if (results.some((r) => r.status === "rejected") || this.book.pending(1).length > 0) {
      await this.alarmBy(Date.now() + OUTBOX_RETRY_MS);
    }
  }

  /**
   * A shard asks an idle group to move its cutoff: one batch (empty, or with whatever was queued)
   * carrying the cutoff of now. Resolves once the shard has applied it.
   */
  async advanceCutoff(g: number, shard: number): Promise<void> {
    this.setGroup(g);
    await this.feed.advance(shard);
  }

  override async alarm(): Promise<void> {
    // The alarm that fired is spent; each step below asks for the next one it needs.
    this.alarmAt = null;
    this.refs.flushHolds();
    await this.recoverHolds().catch((e: unknown) => console.log(JSON.stringify({ msg: "hold recovery failed", group: this.group, error: String(e) })));
    await this.settleMerges().catch(async () => this.alarmBy(Date.now() + OUTBOX_RETRY_MS));
    await this.rereplicateIfDue().catch((e: unknown) => console.log(JSON.stringify({ msg: "re-replication failed", group: this.group, error: String(e) })));
    await this.flushOutbox().catch(() => {});
    const step = (what: string) => (e: unknown) => console.log(JSON.stringify({ msg: `${what} failed`, group: this.group, error: String(e) }));
    await this.expireUploads().catch(step("upload expiry"));
    await this.expungeDue().catch(step("expunge"));
    await this.refOutbox.push().catch(async (e: unknown) => {
      step("reference push")(e);
      await this.alarmBy(Date.now() + OUTBOX_RETRY_MS);
    });
    await this.reclaimDue().catch(step("reclamation"));
  }

  /** Live members and their locations, for status pages and tests. */
  /** Members, liveness and whether the items are at R (health.ts), for status and metrics. */
  async health(g: number): Promise<GroupHealth> {
    this.setGroup(g);
    const view = await this.groupView();
    const live = new Set([...this.members.values()].filter((m) => !m.gone).map((m) => m.id));
    const members = view.writers.map((m) => ({ id: m.id, location: m.location, live: live.has(m.id) }));
    // Down members the sweep has yet to cover (goneSince also schedules sweeps for returning and draining targets: not those).
    const gone = new Map(this.goneSince);
    const pending = members.filter((m) => !m.live && gone.has(m.id)).map((m) => ({ id: m.id, since: gone.get(m.id)! }));
    const repair = this.sweepProgress;
    const writers = new Set(view.writers.map((m) => m.id));
    return { group: g, state: stateOf({ pending, repair }), members, readers: view.readers.filter((m) => !writers.has(m.id)).length, pending, repair, lastSweep: this.lastSweep };
  }

  async liveMembers(): Promise<{ id: TargetId; location: string }[]> {
    return [...this.members.values()].map((m) => ({ id: m.id, location: m.location }));
  }
}
