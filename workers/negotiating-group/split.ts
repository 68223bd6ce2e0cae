// Online group splits (shared/group-layout.ts). When GROUP_COUNT grows, every id's group is
// `id mod new`: a name or chunk may now belong to a group that has never seen it, while its
// rows are still in the group it had under an older count (an ancestor). Gateways route by the
// new count at once, so the new owner serves from the first request:
//
// - **On touch**: before it answers for an id it has not yet taken in, a group asks each
//   ancestor to hand the id's rows over (handover.ts) and takes them, so every read and write
//   of the id happens in one group, its owner, from then on.
// - **In the background**: its alarm walks each ancestor's tables in pages, taking the ids that
//   are now its own, until nothing is left; then the split is over for it, and the sweeps that
//   need every row (copying its chunks onto its members, reclaiming what nothing references)
//   start.
//
// The giving side keeps what it handed over (`handoff`) until the taker confirms it holds it,
// so a reply lost on the way is asked for again and answered the same, and the walk ends only
// once the giver keeps nothing unconfirmed for the taker. Ids that are being
// written right now (a merge prepared, a copy in flight) wait and are asked for again. A group
// never acts on ids that are not its own any more: it neither reclaims, expunges nor repairs
// them, and refuses a caller that routes them to it.

import { groupOf, type Chid, type Nhid } from "../../common/ids.ts";
import { ancestorsOf } from "../shared/group-layout.ts";
import { StateCells } from "../shared/state-cells.ts";
import { configOf, groupStub, type Env } from "../shared/env.ts";
import { Unavailable } from "../shared/unavailable.ts";
import { PagedText } from "../shared/paged-text.ts";
import { HandoverRows, SCAN_STEPS, type HandOverAnswer, type IdKind, type MovedId } from "./handover.ts";

/** Ids a page of the background walk looks at, and hands over at most. */
const SCAN_PAGE = 1000;
const MOVE_PAGE = 200;
/** A reply's rows stop growing past this (RPC carries at most 32 MiB). */
const REPLY_CHARS = 8 << 20;
/** Pages per alarm: the walk yields to requests between runs. */
const PAGES_PER_RUN = 20;
/** How soon a walk that met ids in use, or an unreachable ancestor, tries again. */
const RETRY_MS = 1000;
const END = "\uffff";
/** The walk's last step: hand-overs the giver still keeps for the taker, until none is left. */
const KEPT_STEP = SCAN_STEPS.length;

/**
 * How long an id a split gave to another group waits in its old group before that group looks at
 * it again (it is handed over meanwhile). Short: a wait is written into the id's rows (a hold's
 * end, an expunge's due time) and travels with them, delaying its reclamation by as much.
 */
export const FOREIGN_WAIT_MS = 5_000;

export interface SplitHooks {
  /** The cluster's group counts, oldest first (the group's view of the cluster). */
  layout(): Promise<number[] | undefined>;
  /** Writes of this id are under way here: it is handed over later. */
  busy(kind: IdKind, id: string): boolean;
  /** Before rows are read for a hand-over: what is kept in memory goes to storage. */
  flush(): void;
  /** The id's rows left or arrived: forget what was cached about it; `uvids` arrived stamped by another group. */
  changed(kind: IdKind, id: string, uvids: readonly string[]): void;
  /** Every id this group owns is here: start what needs them all. */
  complete(): Promise<void>;
  /** The next alarm, no later than `at`. */
  wake(at: number): Promise<void>;
  /** Run `fn` as one transaction: all of it is stored, or none. */
  transaction<T>(fn: () => T): T;
}

/** How far a group is in taking in its ids, for the status page. */
export interface SplitProgress {
  done: boolean;
  /** Tables of its old groups walked, of all there are. */
  stepsDone: number;
  steps: number;
  /** When its walk began and ended (ms since the epoch), once known. */
  startedAt: number | null;
  doneAt: number | null;
}

export class GroupSplit {
  private readonly group: number;
  private readonly env: Env;
  private readonly sql: SqlStorage;
  private readonly rows: HandoverRows;
  private readonly hooks: SplitHooks;
  /** The group counts, once known for the count in force. */
  private history: number[] | null = null;
  /** A split has happened (or the count in force is not yet the last this group learned). */
  private splitKnown: boolean;
  private incomingDone = false;
  /** Touches waiting for an ancestor's reply: the walk may not end under one. */
  private claimsInFlight = 0;
  /** What was handed over, kept until the taker confirms it (rows can pass a row's 2 MB). */
  private readonly kept: PagedText;
  private readonly cells: StateCells;

  constructor(o: { group: number; env: Env; sql: SqlStorage; hooks: SplitHooks }) {
    this.group = o.group;
    this.env = o.env;
    this.sql = o.sql;
    this.hooks = o.hooks;
    this.rows = new HandoverRows(o.sql);
    this.cells = new StateCells(o.sql, "split_state");
    o.sql.exec("CREATE TABLE IF NOT EXISTS adopted (kind TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID");
    o.sql.exec("CREATE TABLE IF NOT EXISTS handoff (kind TEXT NOT NULL, id TEXT NOT NULL, to_group INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID");
    this.kept = new PagedText(o.sql, "handoff_pages");
    const stored = this.state("history");
    const count = this.count();
    const h = stored === null ? null : (JSON.parse(stored) as number[]);
    if (h !== null && h[h.length - 1] === count) this.history = h;
    this.splitKnown = h !== null && (h.length > 1 || h[h.length - 1] !== count);
    this.incomingDone = this.state("done") === String(count);
  }

  private count(): number {
    return configOf(this.env).groupCount;
  }

  private state(k: string): string | null {
    return this.cells.get(k);
  }

  private setState(k: string, v: string): void {
    this.cells.set(k, v);
  }

  /** The group counts; asked of the cluster once per count. */
  async layout(): Promise<number[]> {
    if (this.history !== null) return this.history;
    // A Cluster object older than splits sends no history: one count, the one in force.
    const h = (await this.hooks.layout()) ?? [this.count()];
    // A view from before the cluster saw the count in force says nothing yet.
    if (h[h.length - 1] !== this.count()) throw new Unavailable(`the cluster has not taken GROUP_COUNT ${this.count()} in yet (it has ${h.join(" -> ") || "none"})`);
    this.history = h;
    this.splitKnown = h.length > 1;
    this.setState("history", JSON.stringify(h));
    return h;
  }

  /**
   * Whether this group acts on `id` (reclaims, expunges, repairs it): always, unless a split
   * gave it to another group. Known without asking, from the count in force.
   */
  owns(id: Nhid | Chid): boolean {
    return !this.splitKnown || groupOf(id, this.count()) === this.group;
  }

  /** Reference changes split into those of chunks this group owns and, by owner, the rest. */
  sortByOwner<C extends { chids: Chid[] }>(changes: readonly C[]): { own: C[]; passOn: Map<number, C[]> } {
    const passOn = new Map<number, C[]>();
    if (!this.splitKnown) return { own: [...changes], passOn };
    const own: C[] = [];
    for (const c of changes) {
      const byGroup = new Map<number, Chid[]>();
      for (const chid of c.chids) {
        const g = this.owns(chid) ? this.group : groupOf(chid, this.count());
        const list = byGroup.get(g);
        if (list) list.push(chid);
        else byGroup.set(g, [chid]);
      }
      for (const [g, chids] of byGroup) {
        if (g === this.group) own.push({ ...c, chids });
        else {
          const list = passOn.get(g);
          if (list) list.push({ ...c, chids });
          else passOn.set(g, [{ ...c, chids }]);
        }
      }
    }
    return { own, passOn };
  }

  /** Whether a claim could still have anything to do here (a split known, or not yet whether one happened). */
  mayClaim(): boolean {
    return this.history === null || this.history.length > 1;
  }

  /** Every id this group owns is here (no split, or the walk is over), as learned from the cluster: the sweeps that need them all may run. */
  settled(): boolean {
    return this.history !== null && (this.incomingDone || this.history.length <= 1);
  }

  /**
   * Before serving these ids: refuse ids a split gave to another group (the caller routed by an
   * older count), and take in from the ancestors any not yet here.
   */
  async claim(kind: IdKind, ids: readonly (Nhid | Chid)[]): Promise<void> {
    if (ids.length === 0) return;
    const history = await this.layout();
    if (history.length <= 1) return;
    const count = this.count();
    const foreign = ids.find((id) => groupOf(id, count) !== this.group);
    if (foreign !== undefined) throw new Unavailable(`${kind} ${foreign} belongs to group ${groupOf(foreign, count)} since the split to ${count} groups, not to group ${this.group}: retry`);
    if (this.incomingDone) return;
    const ancestors = ancestorsOf(this.group, history);
    const want = [...new Set(ids)].filter((id) => this.sql.exec("SELECT 1 FROM adopted WHERE kind = ? AND id = ?", kind, id).toArray().length === 0);
    if (want.length === 0 || ancestors.length === 0) return;
    this.claimsInFlight++;
    let answers: { a: number; r: HandOverAnswer }[];
    try {
      answers = await Promise.all(ancestors.map(async (a) => ({ a, r: await groupStub(this.env, a).handOver(this.group, kind, want) })));
    } finally {
      this.claimsInFlight--;
    }
    const busy = answers.flatMap(({ r }) => r.busy);
    // Nothing is taken while any part is in use elsewhere: the caller retries the whole.
    this.take(answers.flatMap(({ r }) => r.moved), busy.length === 0 ? want.map((id) => ({ kind, id })) : []);
    for (const { a, r } of answers) this.confirm(a, r.moved);
    if (busy.length > 0) throw new Unavailable(`${kind} ${busy[0]} is being moved to group ${this.group} by a split and is in use in its old group: retry`);
  }

  /** Rows handed over, each id once: an id already taken keeps what it has (it may have changed since). */
  private take(moved: readonly MovedId[], alsoAdopted: readonly { kind: IdKind; id: string }[]): void {
    // Once the walk is over nothing more comes in: a row arriving then could only bring back one
    // changed or deleted since (the walk ends with no touch in flight, so none is lost).
    if (this.incomingDone) return;
    for (const m of moved) {
      // Another group's (a later split gave it on): left with the giver for its owner to take.
      if (groupOf(m.id, this.count()) !== this.group) continue;
      if (this.sql.exec("SELECT 1 FROM adopted WHERE kind = ? AND id = ?", m.kind, m.id).toArray().length > 0) continue;
      this.rows.put(m.tables);
      this.sql.exec("INSERT OR IGNORE INTO adopted (kind, id) VALUES (?, ?)", m.kind, m.id);
      const uvids = m.tables.flatMap((t) => t.rows.flatMap((r) => (typeof r.uvid === "string" ? [r.uvid] : [])));
      this.hooks.changed(m.kind, m.id, uvids);
    }
    for (const a of alsoAdopted) this.sql.exec("INSERT OR IGNORE INTO adopted (kind, id) VALUES (?, ?)", a.kind, a.id);
  }

  /** Tell the ancestor it may forget what it kept of a hand-over. A lost confirmation only keeps those rows until the walk ends. */
  private confirm(ancestor: number, moved: readonly MovedId[]): void {
    const ids = this.ownIds(moved);
    if (ids.length === 0) return;
    void groupStub(this.env, ancestor)
      .handedOver(this.group, ids)
      .catch((e: unknown) => console.log(JSON.stringify({ msg: "hand-over confirmation failed", group: this.group, ancestor, error: String(e) })));
  }

  private ownIds(moved: readonly MovedId[]): { kind: IdKind; id: string }[] {
    return moved.filter((m) => groupOf(m.id, this.count()) === this.group).map((m) => ({ kind: m.kind, id: m.id }));
  }

  // ---- the giving side ----

  /** Hand these ids over to group `to`, if they are now its own and not in use. */
  async handOver(to: number, kind: IdKind, ids: readonly string[]): Promise<HandOverAnswer> {
    await this.layout();
    const count = this.count();
    // A taker on another count would take in ids that are not its own: refused, not ignored.
    const wrong = ids.find((id) => groupOf(id as Nhid, count) !== to || to === this.group);
    if (wrong !== undefined) throw new Unavailable(`group ${to} asked for ${kind} ${wrong}, which belongs to group ${groupOf(wrong as Nhid, count)} of ${count}`);
    // Closed for `to`: only what is kept is answered, nothing more is taken out of the tables.
    const closed = this.isClosed(to);
    this.hooks.flush();
    const moved: MovedId[] = [];
    const busy: string[] = [];
    let chars = 0;
    for (const id of ids) {
      // A reply has a size: the rest is asked for again.
      if (chars >= REPLY_CHARS) {
        busy.push(id);
        continue;
      }
      const m = this.give(to, kind, id, !closed);
      if (m === "busy") busy.push(id);
      else if (m !== null) {
        moved.push(m);
        chars += this.keptChars(m);
      }
    }
    return { moved, busy };
  }

  /**
   * The next page of the walk for group `to`: ids after `after` in scan step `step` that are
   * now its own, handed over. `next` is where to go on from, null when the step is done.
   */
  async handOverNext(to: number, step: number, after: string): Promise<HandOverAnswer & { next: string | null }> {
    await this.layout();
    const count = this.count();
    // The kept step drains after the close; every other step stops at it.
    if (step !== KEPT_STEP && this.isClosed(to)) throw new Unavailable(`group ${to} has walked every table of group ${this.group} already`);
    if (step === KEPT_STEP) {
      // What was handed over and not yet confirmed (a reply lost on the way), to whichever group
      // owns it now (a later split may have given it on), taken again.
      const moved: MovedId[] = [];
      let chars = 0;
      for (const r of this.sql.exec("SELECT kind, id FROM handoff ORDER BY kind, id").toArray()) {
        const id = String(r.id);
        if (groupOf(id as Nhid, count) !== to) continue;
        const m = this.give(to, r.kind as IdKind, id);
        if (m === null || m === "busy") continue;
        moved.push(m);
        chars += this.keptChars(m);
        if (moved.length >= MOVE_PAGE || chars >= REPLY_CHARS) break;
      }
      return { moved, busy: [], next: null };
    }
    this.hooks.flush();
    const kind = SCAN_STEPS[step]!.kind;
    const seen = this.rows.scan(step, after, SCAN_PAGE);
    const moved: MovedId[] = [];
    let chars = 0;
    let next: string | null = seen.length === SCAN_PAGE ? seen[seen.length - 1]! : null;
    for (const id of seen) {
      if (groupOf(id as Nhid, count) !== to) continue;
      const m = this.give(to, kind, id);
      // In use: the walk comes back for it (from just before it) after the others.
      if (m === "busy") return { moved, busy: [id], next: before(id) };
      if (m !== null) {
        moved.push(m);
        chars += this.keptChars(m);
      }
      if (moved.length >= MOVE_PAGE || chars >= REPLY_CHARS) {
        next = id;
        break;
      }
    }
    return { moved, busy: [], next };
  }

  /** The id's rows, taken out (or as taken out before, should the taker ask again); null if there are none. */
  private give(to: number, kind: IdKind, id: string, fromTables = true): MovedId | "busy" | null {
    const owner = `${kind}:${id}`;
    const kept = this.kept.get(owner);
    if (kept !== null) {
      // Kept for a group that has since split again: now its new owner's to confirm.
      this.sql.exec("UPDATE handoff SET to_group = ? WHERE kind = ? AND id = ?", to, kind, id);
      return JSON.parse(kept) as MovedId;
    }
    if (!fromTables) return null;
    if (this.hooks.busy(kind, id)) return "busy";
    // Rows out and the hand-over kept, or neither: a failure in between loses nothing.
    return this.hooks.transaction(() => {
      const tables = this.rows.take(kind, id);
      if (tables.length === 0) return null;
      const m: MovedId = { kind, id: id as Nhid, tables };
      this.sql.exec("INSERT INTO handoff (kind, id, to_group) VALUES (?, ?, ?)", kind, id, to);
      this.kept.put(owner, JSON.stringify(m));
      this.hooks.changed(kind, id, []);
      return m;
    });
  }

  private keptChars(m: MovedId): number {
    return m.tables.reduce((n, t) => n + t.rows.reduce((k, r) => k + Object.values(r).reduce<number>((c, v) => c + (typeof v === "string" ? v.length : 8), 0), 0), 0);
  }

  /**
   * Group `to` has walked every table here: from now on (for the count in force) nothing more
   * is taken out for it, and a touch is answered with what is kept only, which its walk then
   * drains: a touch served after the drain can leave nothing kept that nobody comes back for.
   */
  async closeHandover(to: number): Promise<void> {
    await this.layout();
    this.setState(`closed:${to}:${this.count()}`, "1");
  }

  private isClosed(to: number): boolean {
    return this.state(`closed:${to}:${this.count()}`) !== null;
  }

  /** Group `to` holds these now. */
  handedOver(to: number, ids: readonly { kind: IdKind; id: string }[]): void {
    for (const { kind, id } of ids) {
      if (this.sql.exec("DELETE FROM handoff WHERE to_group = ? AND kind = ? AND id = ?", to, kind, id).rowsWritten > 0) this.kept.delete(`${kind}:${id}`);
    }
  }

  // ---- the taking side's walk (the alarm) ----

  /** Take in a run of pages from the ancestors; once every step of every ancestor is done, the split is over here. */
  async walk(): Promise<void> {
    const history = await this.layout();
    if (this.settled()) return;
    const ancestors = ancestorsOf(this.group, history);
    if (this.state("started") === null) this.setState("started", String(Date.now()));
    let pages = 0;
    for (const a of ancestors) {
      for (let step = 0; step < SCAN_STEPS.length; step++) {
        const key = `cursor:${a}:${step}`;
        let cursor = this.state(key) ?? "";
        while (cursor !== END) {
          if (pages++ >= PAGES_PER_RUN) return this.hooks.wake(Date.now() + 10);
          const r = await groupStub(this.env, a).handOverNext(this.group, step, cursor);
          this.take(r.moved, []);
          this.confirm(a, r.moved);
          cursor = r.next ?? END;
          this.setState(key, cursor);
          if (r.busy.length > 0) return this.hooks.wake(Date.now() + RETRY_MS);
        }
      }
    }
    // Every table of every ancestor is walked: each takes nothing more out for this group, and
    // what it still keeps (a touch whose reply never arrived) comes last; the split is over only
    // once none keeps anything.
    for (const a of ancestors) {
      await groupStub(this.env, a).closeHandover(this.group);
      for (;;) {
        if (pages++ >= PAGES_PER_RUN) return this.hooks.wake(Date.now() + 10);
        const r = await groupStub(this.env, a).handOverNext(this.group, KEPT_STEP, "");
        if (r.moved.length === 0) break;
        this.take(r.moved, []);
        await groupStub(this.env, a).handedOver(this.group, this.ownIds(r.moved));
      }
    }
    // A touch still waiting for its reply may yet make the giver keep something: not over yet.
    if (this.claimsInFlight > 0) return this.hooks.wake(Date.now() + RETRY_MS);
    this.incomingDone = true;
    this.setState("done", String(this.count()));
    this.setState("done_at", String(Date.now()));
    // The walk is over: which ids were taken on touch is no longer asked.
    this.sql.exec("DELETE FROM adopted");
    if (ancestors.length > 0) console.log(JSON.stringify({ msg: "split complete", group: this.group, from: ancestors, count: this.count() }));
    await this.hooks.complete();
  }

  /** Where the walk stands, for the status page: null when this group takes nothing in. */
  async progress(): Promise<SplitProgress | null> {
    const history = await this.layout();
    const ancestors = ancestorsOf(this.group, history);
    if (ancestors.length === 0) return null;
    const steps = ancestors.length * SCAN_STEPS.length;
    const at = (k: string) => {
      const v = this.state(k);
      return v === null ? null : Number(v);
    };
    const times = { startedAt: at("started"), doneAt: this.incomingDone ? at("done_at") : null };
    if (this.incomingDone) return { done: true, stepsDone: steps, steps, ...times };
    const stepsDone = this.sql.exec("SELECT count(*) AS n FROM split_state WHERE k LIKE 'cursor:%' AND v = ?", END).one().n as number;
    return { done: false, stepsDone, steps, ...times };
  }
}

/** The largest string below `id` for a scan that starts after it: the id itself is scanned again. */
function before(id: string): string {
  return id.length === 0 ? "" : id.slice(0, -1) + String.fromCharCode(id.charCodeAt(id.length - 1) - 1) + END;
}
