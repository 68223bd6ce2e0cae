// The Cluster object: the registry of targets, their liveness, and group membership. Targets
// hold a WebSocket to it (hibernatable, so an idle cluster costs nothing). The map changes only
// when a target it has never seen registers, so restarts move nothing: while no target holds
// data the map is recomputed from scratch (the best spread, and nothing to move), afterwards the
// newcomer joins incrementally (placement.ts: joinPlan), taking places only in the groups it
// enters. A target gone for REPLACE_AFTER_SECONDS is replaced, one group at a time, by a live
// target outside the group (placement.ts: replacementFor), and is "retired": left out of later
// recomputes until it registers again. Nothing else in the map moves.
//
// A group's writers are its assigned members. Its readers are the writers plus any target that
// reports holding data for the group from an earlier membership: data stays reachable when
// membership changes, while the group copies it to its members and trims the old copies
// (negotiating-group/repair.ts). Every group whose members change is told at once.

import { DurableObject } from "cloudflare:workers";
import { asTargetId, isTargetId, type TargetId } from "../../common/ids.ts";
import { assignGroups, copysetCount, joinPlan, placementWarnings, replacementFor, type PlacementWarning } from "../../common/placement.ts";
import type { MembershipMsg } from "../../common/protocol.ts";
import { decodeToCluster } from "../../common/wire-decode.ts";
import { configOf, groupStub, type Env } from "../shared/env.ts";
import type { ClusterRpc, GroupView, TargetStatus } from "./rpc.ts";
import { GroupLayout, parentOf, SHARD_LAYOUT } from "../shared/group-layout.ts";
import { TargetKeys, type Admission, type TargetKeyInfo } from "./target-keys.ts";

/** A held-groups list after a heartbeat's increments. */
export function applyHeld(held: readonly number[], change: { added: readonly number[]; dropped: readonly number[] }): number[] {
  const out = new Set(held);
  for (const g of change.dropped) out.delete(g);
  for (const g of change.added) out.add(g);
  return [...out].sort((a, b) => a - b);
}

interface Attachment {
  id: TargetId;
  location: string;
}

export class Cluster extends DurableObject<Env> implements ClusterRpc {
  private readonly sql: SqlStorage;
  private readonly keys: TargetKeys;
  private readonly layout: GroupLayout;
  private readonly shardLayoutBook: GroupLayout;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS targets (
      id TEXT PRIMARY KEY, location TEXT NOT NULL, capacity INTEGER NOT NULL, free INTEGER NOT NULL,
      chunks INTEGER NOT NULL, bytes INTEGER NOT NULL, held TEXT NOT NULL DEFAULT '[]',
      registered INTEGER NOT NULL, last_seen INTEGER NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS membership (grp INTEGER PRIMARY KEY, members TEXT NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
    // Added later: a target replaced in its groups after it was gone too long.
    const columns = this.sql.exec("PRAGMA table_info(targets)").toArray().map((c) => String(c.name));
    if (!columns.includes("retired")) this.sql.exec("ALTER TABLE targets ADD COLUMN retired INTEGER NOT NULL DEFAULT 0");
    this.keys = new TargetKeys(this.sql);
    this.layout = new GroupLayout(this.sql);
    // A larger GROUP_COUNT: each new group begins with its parent's members, who hold its data.
    const mapped = this.sql.exec("SELECT max(grp) + 1 AS n FROM membership").one().n;
    const change = this.layout.observe(configOf(env).groupCount, Date.now(), mapped === null ? null : Number(mapped));
    if (change.added.length > 0) this.splitMembership(change.added);
    // Shards split by the same rule; each new one asks for this history to find the shard it came from.
    this.shardLayoutBook = new GroupLayout(this.sql, SHARD_LAYOUT);
    const shards = this.shardLayoutBook.observe(configOf(env).shardCount, Date.now());
    if (shards.added.length > 0) console.log(JSON.stringify({ msg: "shards split", history: this.shardLayoutBook.history() }));
    // Answer pings without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade") !== "websocket") return new Response("expected a WebSocket", { status: 426 });
    const claimed = request.headers.get("x-target-id") ?? "";
    if (!isTargetId(claimed)) return new Response("missing or bad target id", { status: 400 });
    const id = claimed;
    const location = request.headers.get("x-target-location") ?? "";
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    // One socket per target: a reconnecting target replaces its stale socket.
    for (const ws of this.ctx.getWebSockets(id)) ws.close(4000, "replaced by a newer connection");
    this.ctx.acceptWebSocket(server, [id]);
    server.serializeAttachment({ id, location } satisfies Attachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== "string") return;
    const att = ws.deserializeAttachment() as Attachment;
    const msg = decodeToCluster(message);
    if ("malformed" in msg) {
      // Dropped, not stored: a bad row here would be read by every group's view of the cluster.
      console.error(JSON.stringify({ msg: "malformed message from a target, dropped", target: att.id, why: msg.malformed }));
      return;
    }
    const now = Date.now();
    if (msg.t === "register") {
      const known = this.sql.exec("SELECT id FROM targets WHERE id = ?", att.id).toArray().length > 0;
      this.sql.exec(
        `INSERT INTO targets (id, location, capacity, free, chunks, bytes, held, registered, last_seen)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET location = excluded.location, capacity = excluded.capacity,
           free = excluded.free, chunks = excluded.chunks, bytes = excluded.bytes, held = excluded.held,
           last_seen = excluded.last_seen, retired = 0`,
        att.id, msg.location, msg.capacity, msg.free, msg.chunks, msg.bytes, JSON.stringify(msg.held), now, now,
      );
      // While no target says it holds data a fresh map costs nothing. (Its reports lag a write
      // by up to a heartbeat: a map recomputed in that window moves more than a join would, and
      // the groups told move it, so nothing is lost.)
      let remapped: number[] = [];
      if (this.epoch() === 0 || (!known && !this.holdsData())) remapped = this.recomputeMembership();
      else if (!known && !msg.draining) remapped = this.join(att.id);
      // Decommission: out of every group's membership now (replaced as a dead one would be),
      // a reader of what it holds until the groups have copied it to their members.
      const changed = msg.draining ? this.replace([att.id], this.liveRows().filter((r) => r.id !== att.id), true) : [];
      ws.send(JSON.stringify(this.membershipFor(att.id)));
      await this.tellGroups([...remapped, ...changed]);
    } else if (msg.t === "heartbeat") {
      // Increments on the report the target registered with on this connection.
      const held = msg.held ? JSON.stringify(applyHeld(this.heldBy(att.id), msg.held)) : null;
      this.sql.exec(
        "UPDATE targets SET free = ?, chunks = ?, bytes = ?, held = coalesce(?, held), last_seen = ? WHERE id = ?",
        msg.free, msg.chunks, msg.bytes, held, now, att.id,
      );
      // What it holds decides which groups it links to beside its own: a group it left with
      // data written after its last report, or one whose copies it no longer has, is named again.
      if (held !== null) ws.send(JSON.stringify(this.membershipFor(att.id)));
    }
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    this.lastSeen(ws);
    ws.close();
    await this.replaceLater();
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.lastSeen(ws);
    await this.replaceLater();
  }

  /** Heartbeats come only when something changed: the moment the socket went is when it was last seen. */
  private lastSeen(ws: WebSocket): void {
    const att = ws.deserializeAttachment() as Attachment | null;
    if (att) this.sql.exec("UPDATE targets SET last_seen = max(last_seen, ?) WHERE id = ?", Date.now(), att.id);
  }

  /** A target went away: look again once it may have been gone for REPLACE_AFTER_SECONDS. */
  private async replaceLater(): Promise<void> {
    const at = Date.now() + configOf(this.env).replaceAfterMs;
    const cur = await this.ctx.storage.getAlarm();
    if (cur === null || cur > at) await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    const cfg = configOf(this.env);
    const now = Date.now();
    const live = this.liveIds();
    const rows = this.sql.exec("SELECT id, location, last_seen FROM targets WHERE retired = 0").toArray() as unknown as { id: TargetId; location: string; last_seen: number }[];
    const members = new Set([...this.membersByGroup().values()].flat());
    const away = rows.filter((r) => members.has(r.id) && !live.has(r.id));
    const dead = away.filter((r) => now - Number(r.last_seen) >= cfg.replaceAfterMs);
    if (dead.length > 0) await this.tellGroups(this.replace(dead.map((d) => d.id), rows.filter((r) => live.has(r.id))));
    // Those away but not yet for long enough, and those no live target could replace: look again.
    const waiting = away.filter((r) => !dead.includes(r)).map((r) => Number(r.last_seen) + cfg.replaceAfterMs);
    const stillMember = dead.some((d) => [...this.membersByGroup().values()].some((m) => m.includes(d.id)));
    const next = Math.min(...waiting, stillMember ? now + Math.min(cfg.replaceAfterMs, 60_000) : Infinity);
    if (Number.isFinite(next)) await this.ctx.storage.setAlarm(Math.max(next, now + 1_000));
  }

  /**
   * Put a live target in each place the dead ones hold in a group's membership. A dead target
   * with no place left is retired; one that could not be replaced everywhere (no live target
   * outside that group) stays where it is, and is tried again. The groups that changed.
   */
  private replace(dead: readonly TargetId[], live: readonly { id: TargetId; location: string }[], retire = false): number[] {
    const groups = this.membersByGroup();
    const loc = this.locations();
    const load = new Map<string, number>();
    for (const m of groups.values()) for (const id of m) load.set(id, (load.get(id) ?? 0) + 1);
    const model = configOf(this.env).correlation;
    // Groups that shared their members (copysets) get the same replacement, so they still share them.
    const sameSet = new Map<string, { id: string; location: string } | null>();
    const changed: number[] = [];
    for (const [g, members] of groups) {
      for (const d of dead) {
        const at = members.indexOf(d);
        if (at < 0) continue;
        const staying = members.filter((m) => m !== d).map((id) => ({ id, location: loc.get(id) ?? "" }));
        const setKey = staying.map((m) => m.id).sort().join(",");
        const by = sameSet.get(setKey) ?? replacementFor(g, staying, live.filter((t) => !members.includes(t.id)), { load, model });
        sameSet.set(setKey, by);
        if (!by) {
          console.log(JSON.stringify({ msg: "no target can replace a dead member", group: g, dead: d, members: members.length, live: live.length }));
          continue;
        }
        members[at] = asTargetId(by.id);
        load.set(by.id, (load.get(by.id) ?? 0) + 1);
        this.sql.exec("UPDATE membership SET members = ? WHERE grp = ?", JSON.stringify(members), g);
        console.log(JSON.stringify({ msg: "member replaced", group: g, dead: d, by: by.id }));
        changed.push(g);
      }
    }
    // A draining target is retired even where it could not be replaced: it asked to leave.
    for (const d of dead) if (retire || ![...groups.values()].some((m) => m.includes(d))) this.sql.exec("UPDATE targets SET retired = 1 WHERE id = ?", d);
    if (changed.length > 0) this.publish();
    return changed;
  }

  /** Whether any target, live or not, says it holds data: a map recomputed then would move it. */
  private holdsData(): boolean {
    return this.sql.exec("SELECT 1 FROM targets WHERE chunks > 0 OR held != '[]' LIMIT 1").toArray().length > 0;
  }

  /**
   * A new target takes its share of places, one per group it enters, from the members furthest
   * above theirs (placement.ts: joinPlan). Those members stay readers of what they hold; each
   * changed group (returned, to be told) copies their data to its members and trims it, paced.
   */
  private join(id: TargetId): number[] {
    const givers = new Set<string>(this.liveIds());
    const targets = (this.sql.exec("SELECT id, location, capacity FROM targets WHERE retired = 0").toArray() as { id: string; location: string; capacity: number }[]).map((t) => ({
      id: t.id,
      location: t.location,
      capacity: Number(t.capacity),
    }));
    const cfg = configOf(this.env);
    const groups = this.membersByGroup();
    const moves = joinPlan({ groups, targets, newcomer: id, perGroup: cfg.groupMembers, givers, model: cfg.correlation });
    if (moves.length === 0) return [];
    for (const mv of moves) {
      const members = groups.get(mv.group)!;
      if (mv.out === null) members.push(id);
      else members[members.indexOf(asTargetId(mv.out))] = id;
      this.sql.exec("UPDATE membership SET members = ? WHERE grp = ?", JSON.stringify(members), mv.group);
    }
    console.log(JSON.stringify({ msg: "target joined", target: id, groups: moves.length, moves }));
    this.publish();
    return moves.map((m) => m.group);
  }

  /** Groups whose members changed look at their view again now rather than when it expires. */
  private async tellGroups(groups: readonly number[]): Promise<void> {
    const told = await Promise.allSettled(groups.map((g) => groupStub(this.env, g).membershipChanged()));
    // A group not told now learns within its view's lifetime, and from the newcomer's hello.
    told.forEach((r, i) => {
      if (r.status === "rejected") console.log(JSON.stringify({ msg: "could not tell a group its members changed", group: groups[i], error: String(r.reason) }));
    });
  }

  private locations(): Map<string, string> {
    return new Map(this.sql.exec("SELECT id, location FROM targets").toArray().map((r) => [String(r.id), String(r.location)]));
  }

  /** Groups whose members cannot keep R copies on distinct failure domains (placement.ts), for the log and the status. */
  private warnings(): PlacementWarning[] {
    const loc = this.locations();
    const groups = [...this.membersByGroup()].sort(([a], [b]) => a - b);
    const cfg = configOf(this.env);
    const found = placementWarnings(groups.map(([, m]) => m.map((id) => ({ id, location: loc.get(id) ?? "" }))), cfg.replicas, cfg.correlation);
    return found.map((w) => ({ ...w, group: groups[w.group]![0] }));
  }

  private liveRows(): { id: TargetId; location: string }[] {
    const live = this.liveIds();
    return (this.sql.exec("SELECT id, location FROM targets WHERE retired = 0").toArray() as unknown as { id: TargetId; location: string }[]).filter((r) => live.has(r.id));
  }

  private liveIds(): Set<TargetId> {
    const out = new Set<TargetId>();
    for (const ws of this.ctx.getWebSockets()) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att) out.add(att.id);
    }
    return out;
  }

  private epoch(): number {
    const row = this.sql.exec("SELECT v FROM meta WHERE k = 'epoch'").toArray()[0];
    return row ? Number(row.v) : 0;
  }

  /**
   * New groups of a split take their parent's members: the targets that hold the ids moving to
   * them, so nothing is copied until a group is rebalanced as any other. Before any map there
   * is nothing to split.
   */
  private splitMembership(added: readonly number[]): void {
    const before = this.membersByGroup();
    if (before.size === 0) return;
    const history = this.layout.history();
    for (const g of added) {
      const parent = parentOf(g, history);
      const members = parent === null ? undefined : before.get(parent);
      if (members) this.sql.exec("INSERT OR REPLACE INTO membership (grp, members) VALUES (?, ?)", g, JSON.stringify(members));
    }
    console.log(JSON.stringify({ msg: "groups split", count: history[history.length - 1], history, added: added.length }));
    this.publish();
  }

  /** The map from scratch; the groups whose members changed. */
  private recomputeMembership(): number[] {
    const cfg = configOf(this.env);
    const targets = this.sql.exec("SELECT id, location FROM targets WHERE retired = 0 ORDER BY id").toArray() as { id: string; location: string }[];
    const before = this.membersByGroup();
    const groups = assignGroups(targets, cfg.groupCount, cfg.groupMembers, cfg.correlation);
    this.sql.exec("DELETE FROM membership");
    groups.forEach((members, g) => this.sql.exec("INSERT INTO membership (grp, members) VALUES (?, ?)", g, JSON.stringify(members)));
    this.publish();
    return groups.flatMap((m, g) => (JSON.stringify(m) === JSON.stringify(before.get(g) ?? []) ? [] : [g]));
  }

  /** A new epoch of the map, sent to every connected target. */
  private publish(): void {
    const epoch = this.epoch() + 1;
    this.sql.exec("INSERT INTO meta (k, v) VALUES ('epoch', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", String(epoch));
    const warnings = this.warnings();
    const copysets = copysetCount([...this.membersByGroup().values()], configOf(this.env).replicas);
    console.log(JSON.stringify({ msg: "membership", epoch, copysets, ...(warnings.length > 0 ? { warning: "some groups cannot keep R copies on distinct failure domains: writes go on, less spread", groups: warnings } : {}) }));
    for (const ws of this.ctx.getWebSockets()) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att) ws.send(JSON.stringify(this.membershipFor(att.id)));
    }
  }

  private membersByGroup(): Map<number, TargetId[]> {
    const out = new Map<number, TargetId[]>();
    for (const row of this.sql.exec("SELECT grp, members FROM membership").toArray()) {
      out.set(Number(row.grp), (JSON.parse(String(row.members)) as unknown[]).map(asTargetId));
    }
    return out;
  }

  private heldBy(id: TargetId): number[] {
    const row = this.sql.exec("SELECT held FROM targets WHERE id = ?", id).toArray()[0];
    return row ? (JSON.parse(String(row.held)) as number[]) : [];
  }

  private membershipFor(id: TargetId): MembershipMsg {
    const groups = new Set<number>(this.heldBy(id));
    for (const [g, members] of this.membersByGroup()) if (members.includes(id)) groups.add(g);
    return { t: "membership", epoch: this.epoch(), groupCount: configOf(this.env).groupCount, groups: [...groups].sort((a, b) => a - b) };
  }

  /** The group and shard counts the cluster has had, oldest first. */
  async layouts(): Promise<{ groups: number[]; shards: number[] }> {
    return { groups: this.layout.history(), shards: this.shardLayoutBook.history() };
  }

  /** Who may be asked to store (writers) and to serve (readers) for one group; never a revoked target. */
  async groupView(g: number): Promise<GroupView> {
    const revoked = this.keys.revokedIds();
    const writers = (this.membersByGroup().get(g) ?? []).filter((id) => !revoked.has(id));
    const rows = this.sql.exec("SELECT id, location, held FROM targets").toArray() as { id: TargetId; location: string; held: string }[];
    const loc = new Map(rows.map((r) => [r.id, r.location]));
    const readers = new Set<TargetId>(writers);
    for (const r of rows) if (!revoked.has(r.id) && (JSON.parse(r.held) as number[]).includes(g)) readers.add(r.id);
    const view = (ids: Iterable<TargetId>) => [...ids].map((id) => ({ id, location: loc.get(id) ?? "" }));
    return { epoch: this.epoch(), writers: view(writers), readers: view(readers), revoked: [...revoked], layout: this.layout.history() };
  }

  // ---- target credentials (target-keys.ts) ----
  createEnrolment(ttlSeconds: number): Promise<{ token: string; expires: number }> {
    return this.keys.createEnrolment(ttlSeconds * 1000, Date.now());
  }

  enrolTarget(token: string, id: TargetId | null): Promise<{ id: TargetId; key: string } | { refused: string }> {
    return this.keys.enrol(token, id, Date.now());
  }

  admitTarget(id: TargetId, key: string | null): Promise<Admission> {
    return this.keys.admit(id, key);
  }

  /** Revoke a target: its connects are refused, its cluster link closed, and it leaves every group (as writer and reader). */
  async revokeTarget(id: TargetId): Promise<"revoked" | "already" | "unknown"> {
    const known = this.sql.exec("SELECT 1 FROM targets WHERE id = ?", id).toArray().length > 0 || this.keys.list().some((k) => k.id === id);
    if (!known) return "unknown";
    if (!this.keys.revoke(id, Date.now())) return "already";
    // Out of the groups first: the new membership goes to every connected target, which must
    // not include a socket closed already.
    const changed = this.replace([id], this.liveRows().filter((r) => r.id !== id), true);
    for (const ws of this.ctx.getWebSockets(id)) ws.close(4003, "revoked");
    await this.tellGroups(changed);
    return "revoked";
  }

  targetKeys(): TargetKeyInfo[] {
    return this.keys.list();
  }

  async status(): Promise<{ epoch: number; targets: TargetStatus[]; copysets: number; warnings: PlacementWarning[] }> {
    const live = this.liveIds();
    const byGroup = this.membersByGroup();
    const targets = this.sql.exec("SELECT * FROM targets ORDER BY location").toArray().map((r) => {
      const id = asTargetId(r.id);
      const groups = [...byGroup].filter(([, m]) => m.includes(id)).map(([g]) => g);
      return {
        id,
        location: String(r.location),
        capacity: Number(r.capacity),
        free: Number(r.free),
        chunks: Number(r.chunks),
        bytes: Number(r.bytes),
        live: live.has(id),
        lastSeen: Number(r.last_seen),
        groups,
      };
    });
    return { epoch: this.epoch(), targets, copysets: copysetCount([...byGroup.values()], configOf(this.env).replicas), warnings: this.warnings() };
  }
}
