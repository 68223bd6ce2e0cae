// Who is in the group right now: the targets holding a WebSocket to it, as members with their
// credit and peer address, checked against the cluster's view of the group (writers and
// readers). It accepts targets' connections, decodes what they send once, where it arrives, and
// routes it: acks and bids to the transaction they name, reports to the part they concern. It
// is also the transactions' host (TxnHost): their numbers and their timers.

import { isCertFingerprint, isTargetId, type TargetId } from "../../common/ids.ts";
import { decodeFrame, GROUP_PROTOCOL_HEADER, PUT_WINDOW, TARGET_PEER_CERT_HEADER, TARGET_PEER_HEADER, TARGET_PROTOCOL, TARGET_PROTOCOL_HEADER, type HelloMsg, type PeerEntry, type StoredRef } from "../../common/protocol.ts";
import { decodeToGroup, isPeerAddress } from "../../common/wire-decode.ts";
import type { GroupView } from "../cluster/rpc.ts";
import { clusterStub, configOf, type Env } from "../shared/env.ts";
import { Deadlines } from "./deadlines.ts";
import { broadcast, Member, rosterOf } from "./member.ts";
import type { TxnHandler, TxnHost } from "./txn.ts";
import { Unavailable } from "../shared/unavailable.ts";

/** What a member's socket carries through hibernation. */
interface Attachment {
  id: TargetId;
  location: string;
  /** Its chain-replication address and certificate, if it advertised them (TARGET_PEER_HEADER, TARGET_PEER_CERT_HEADER). */
  peer?: PeerEntry;
  /** The wire protocol it speaks (TARGET_PROTOCOL_HEADER); absent: 1. */
  proto?: number;
}

const VIEW_TTL_MS = 10_000;

/** What the other parts hear from members. */
export interface MembershipEvents {
  /** A target connected (again). */
  joined(m: Member): void;
  /** A member went away (closed, replaced, revoked). */
  left(m: Member): void;
  hello(m: Member, msg: HelloMsg): void;
  /** A member's scrub found one of its copies bad or missing. */
  damaged(ref: StoredRef, why: string): void;
  /** A member deleted what it was told to. */
  reclaimed(id: TargetId, refs: StoredRef[]): void;
}

export class Membership implements TxnHost {
  private readonly members = new Map<TargetId, Member>();
  /** Socket -> member, so a message costs no attachment deserialization. */
  private readonly bySocket = new WeakMap<WebSocket, Member>();
  private readonly txns = new Map<number, TxnHandler>();
  private nextTxn = 1;
  private view: { at: number; v: GroupView } | null = null;
  /** Every transaction's timeouts, on one runtime timer (deadlines.ts). */
  readonly deadlines = new Deadlines();
  private readonly ctx: DurableObjectState;
  private readonly env: Env;
  private readonly group: number;
  private readonly events: MembershipEvents;

  constructor(o: { ctx: DurableObjectState; env: Env; group: number; events: MembershipEvents }) {
    this.ctx = o.ctx;
    this.env = o.env;
    this.group = o.group;
    this.events = o.events;
    // After hibernation the sockets survive but memory does not: rebuild the member table.
    for (const ws of this.ctx.getWebSockets()) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att) this.add(new Member({ id: att.id, location: att.location, ws, credit: PUT_WINDOW, peer: att.peer ?? null, proto: att.proto ?? 1 }));
    }
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

  // ---- who is in ----

  /** The cluster's view of this group, at most VIEW_TTL_MS old (`force`: fresh). */
  async groupView(force = false): Promise<GroupView> {
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

  /** Connected members the view names in `role`. */
  async live(role: "writers" | "readers"): Promise<Member[]> {
    const v = await this.groupView();
    const ids = new Set(v[role].map((m) => m.id));
    return [...this.members.values()].filter((m) => ids.has(m.id) && !m.gone);
  }

  /** Live writers for a client's write: refused (503) below K live members (MIN_LIVE_TARGETS). */
  async clientWriters(): Promise<Member[]> {
    const writers = await this.live("writers");
    const k = configOf(this.env).minLive;
    if (writers.length < k) throw new Unavailable(`only ${writers.length} targets of group ${this.group} are live; it takes writes while at least ${k} are (MIN_LIVE_TARGETS)`);
    return writers;
  }

  get(id: TargetId): Member | undefined {
    return this.members.get(id);
  }

  /** Every connected member. */
  all(): IterableIterator<Member> {
    return this.members.values();
  }

  // ---- the members' sockets ----

  /** A target dials in (the gateway checked its credential and passes its headers on). */
  async connect(request: Request): Promise<Response> {
    if (request.headers.get("upgrade") !== "websocket") return new Response("expected a WebSocket", { status: 426 });
    const claimed = request.headers.get("x-target-id") ?? "";
    if (!isTargetId(claimed)) return new Response("missing or bad target id", { status: 400 });
    const id = claimed;
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
    this.add(member);
    // Every member learns who it may now exchange chain frames with (the newcomer, everyone).
    if (peer) broadcast(this.members.values(), rosterOf(this.members.values()));
    else member.send(rosterOf(this.members.values()));
    this.events.joined(member);
    return new Response(null, { status: 101, webSocket: client, headers: { [GROUP_PROTOCOL_HEADER]: String(TARGET_PROTOCOL) } });
  }

  /** A message on a member's socket, decoded here once and routed. */
  message(ws: WebSocket, message: string | ArrayBuffer): void {
    const member = this.memberOf(ws);
    if (!member) return;
    member.heard();
    if (typeof message !== "string") {
      const { header, payload } = decodeFrame(new Uint8Array(message));
      this.txns.get(header.txn)?.onFrame(member, header, payload);
      return;
    }
    const msg = decodeToGroup(message);
    if ("malformed" in msg) {
      console.log(JSON.stringify({ msg: "ignored a malformed message from a target", group: this.group, member: member.id, why: msg.malformed }));
      return;
    }
    if (msg.t === "credit") member.grant(msg.bytes);
    else if (msg.t === "saved" && msg.credit) {
      member.grant(msg.credit);
      this.txns.get(msg.txn)?.onMessage(member, msg);
    } else if (msg.t === "damaged") this.events.damaged(msg.ref, `target ${member.id}: ${msg.reason}`);
    else if (msg.t === "reclaimed") this.events.reclaimed(member.id, msg.refs);
    else if (msg.t === "hello") this.events.hello(member, msg);
    else this.txns.get(msg.txn)?.onMessage(member, msg);
  }

  /** A member's socket closed or failed. */
  closed(ws: WebSocket, why: string): void {
    const m = this.memberOf(ws);
    if (m) this.drop(m, why);
  }

  private add(m: Member): void {
    this.members.set(m.id, m);
    this.bySocket.set(m.ws, m);
  }

  private memberOf(ws: WebSocket): Member | null {
    const m = this.bySocket.get(ws);
    return m && this.members.get(m.id) === m ? m : null;
  }

  private drop(m: Member, reason: string): void {
    m.markGone(reason);
    if (this.members.get(m.id) === m) {
      this.members.delete(m.id);
      // Its peers close their links with it, and take none from it any more.
      if (m.peer) broadcast(this.members.values(), rosterOf(this.members.values()));
      this.events.left(m);
    }
    for (const t of this.txns.values()) t.onGone(m);
  }
}
