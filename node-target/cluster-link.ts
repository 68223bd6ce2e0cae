// The target's link to the Cluster object: register with a report of what it holds, heartbeat
// with what changed since (heartbeat.ts), and follow the group membership the cluster assigns by keeping one GroupLink per group.

import { groupOf, type Chid, type Nhid, type TargetId } from "../common/ids.ts";
import {
  CLUSTER_CONNECT_PATH,
  GROUP_CONNECT_PREFIX,
  JOIN_SECRET_HEADER,
  TARGET_KEY_HEADER,
  TARGET_ID_HEADER,
  TARGET_LOCATION_HEADER,
  TARGET_PEER_CERT_HEADER,
  TARGET_PEER_HEADER,
  TARGET_PROTOCOL,
  TARGET_PROTOCOL_HEADER,
  type RegisterMsg,
  type ToGroup,
  type ToTargetFromCluster,
} from "../common/protocol.ts";
import { GroupLink, type TargetContext } from "./group-link.ts";
import { Heartbeats } from "./heartbeat.ts";
import type { PeerLink } from "./peer-link.ts";
import { decodeFromCluster } from "../common/wire-decode.ts";
import { log } from "./log.ts";
import { ReconnectingSocket } from "./socket.ts";

const HEARTBEAT_MS = 2_000;

export interface ClusterLinkOptions {
  gateway: string;
  /** How it proves who it is: its own key (enrolled), else the cluster's shared join secret. */
  credential: { key: string } | { joinSecret: string };
  id: TargetId;
  location: string;
  capacity: number;
  /** This start found data lost that it cannot name (run-journal.ts): every group it serves recounts its copies. */
  lost?: boolean;
  /** Started with --drain: leave every group's membership and serve what it holds until copied elsewhere. */
  draining?: boolean;
  /** Started with --peer-listen: its address is advertised to the groups, which may chain puts through it. */
  peer?: PeerLink | null;
  /** Draining: called as each group reports it has this target's items at R elsewhere (`node-target drain` shows it). */
  onDrainProgress?: (drained: number, held: number, complete: boolean) => void;
}

export class ClusterLink {
  private readonly opts: ClusterLinkOptions;
  private readonly ctx: TargetContext;
  private readonly socket: ReconnectingSocket;
  private readonly groups = new Map<number, GroupLink>();
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly heartbeats = new Heartbeats();
  /** Draining: the groups that said they no longer need this target. */
  private readonly drained = new Set<number>();
  private drainReported = false;
  /** Group count of the last membership seen; kept in the data directory across restarts. */
  private groupCount: number | null;
  private readonly headers: Record<string, string>;
  private readonly onGroupCount: (g: number) => void;

  constructor(opts: ClusterLinkOptions, ctx: TargetContext, groupCount: number | null, onGroupCount: (g: number) => void) {
    this.opts = opts;
    this.ctx = ctx;
    this.groupCount = groupCount;
    this.onGroupCount = onGroupCount;
    this.headers = {
      [TARGET_ID_HEADER]: opts.id,
      [TARGET_LOCATION_HEADER]: opts.location,
      ...("key" in opts.credential ? { [TARGET_KEY_HEADER]: opts.credential.key } : { [JOIN_SECRET_HEADER]: opts.credential.joinSecret }),
      [TARGET_PROTOCOL_HEADER]: String(TARGET_PROTOCOL),
      ...(opts.peer ? { [TARGET_PEER_HEADER]: opts.peer.address, [TARGET_PEER_CERT_HEADER]: opts.peer.fingerprint } : {}),
    };
    this.socket = new ReconnectingSocket("cluster", wsUrl(opts.gateway, CLUSTER_CONNECT_PATH), this.headers, {
      onOpen: (ws) => {
        const report = this.report();
        ws.send(JSON.stringify(report));
        this.heartbeats.reported({ ...report, queue: this.ctx.queue.bytes }, Date.now());
        this.heartbeat ??= setInterval(() => this.beat(), HEARTBEAT_MS);
      },
      onText: (_ws, text) => {
        const msg = decodeFromCluster(text);
        if ("malformed" in msg) log("warn", "ignored a malformed message from the cluster", { why: msg.malformed });
        else this.onMessage(msg);
      },
      onBinary: (_ws, _data, done) => done(),
      onClose: () => {},
    });
  }

  private report(): RegisterMsg {
    return {
      t: "register",
      id: this.opts.id,
      location: this.opts.location,
      capacity: this.opts.capacity,
      free: this.ctx.store.freeBytes(this.opts.capacity),
      chunks: this.ctx.store.stats.chunks,
      bytes: this.ctx.store.stats.bytes,
      held: this.held(),
      ...(this.opts.draining ? { draining: true } : {}),
    };
  }

  private held(): number[] {
    return this.groupCount === null ? [] : this.ctx.store.heldGroups(this.groupCount);
  }

  private beat(): void {
    const ws = this.socket.socket;
    if (!ws) return;
    const msg = this.heartbeats.next(
      {
        free: this.ctx.store.freeBytes(this.opts.capacity),
        chunks: this.ctx.store.stats.chunks,
        bytes: this.ctx.store.stats.bytes,
        queue: this.ctx.queue.bytes,
        held: this.held(),
      },
      Date.now(),
    );
    if (msg) ws.send(JSON.stringify(msg));
  }

  private onMessage(msg: ToTargetFromCluster): void {
    if (msg.t !== "membership") return;
    if (msg.groupCount !== this.groupCount) {
      this.groupCount = msg.groupCount;
      this.onGroupCount(msg.groupCount);
    }
    const wanted = new Set(msg.groups);
    for (const [g, link] of this.groups) {
      if (!wanted.has(g)) {
        link.close();
        this.groups.delete(g);
      }
    }
    for (const g of wanted) {
      if (this.groups.has(g)) continue;
      const url = wsUrl(this.opts.gateway, `${GROUP_CONNECT_PREFIX}${g}/connect`);
      const hello: ToGroup = { t: "hello", id: this.opts.id, location: this.opts.location, ...(this.opts.lost ? { lost: true } : {}), ...(this.opts.draining ? { draining: true } : {}) };
      this.groups.set(g, new GroupLink(g, url, this.ctx, { headers: this.headers, hello, onDrained: (d) => this.drainedBy(d), peer: this.opts.peer ?? null }));
    }
    log("info", "membership", { epoch: msg.epoch, groups: [...wanted].sort((a, b) => a - b) });
    if (this.opts.draining) this.drainProgress();
  }

  /** A group has every item it needed from this draining target at R elsewhere: once all have, say so. */
  private drainedBy(g: number): void {
    this.drained.add(g);
    this.drainProgress();
  }

  /** Says how far the drain is; on a membership too, so a target that holds nothing is done at once. */
  private drainProgress(): void {
    const held = this.held();
    const complete = held.every((h) => this.drained.has(h));
    this.opts.onDrainProgress?.(held.filter((h) => this.drained.has(h)).length, held.length, complete);
    if (this.drainReported || !complete) return;
    this.drainReported = true;
    log("info", "drain complete", { groups: [...this.drained].sort((a, b) => a - b), chunks: this.ctx.store.stats.chunks, note: "every group has this target's data at R on its members: it can be stopped" });
  }

  /** Group links up now (metrics). */
  linksUp(): number {
    let n = 0;
    for (const l of this.groups.values()) if (l.up) n++;
    return n;
  }

  groupLink(g: number): GroupLink | null {
    return this.groups.get(g) ?? null;
  }

  /** The link to the group that owns an id (a CHID or NHID), if this target is one of its members. */
  linkFor(id: Chid | Nhid): GroupLink | null {
    if (this.groupCount === null) return null;
    return this.groups.get(groupOf(id, this.groupCount)) ?? null;
  }

  close(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const link of this.groups.values()) link.close();
    this.socket.close();
  }
}

function wsUrl(gateway: string, path: string): string {
  const u = new URL(path, gateway);
  u.protocol = u.protocol === "https:" || u.protocol === "wss:" ? "wss:" : "ws:";
  return u.toString();
}
