// Re-replication (issue 6, point 2), the group's half: when a member has been gone longer than
// the grace period, find every item of this group that now has fewer than R copies on live
// members and restore R. The group asks each live member for an inventory of what it holds for
// the group (InventoryMsg, paged), counts holders per item, and hands the under-replicated
// ones to the same check-then-copy as validation. Nothing scans other groups or other targets.

import { depthCorrelation, distinctDomains, type Correlation } from "../../common/correlation.ts";
import { asTargetId, type TargetId } from "../../common/ids.ts";
import { storedRefKey, type StoredRef, type ToGroup } from "../../common/protocol.ts";
import type { Member } from "./member.ts";
import type { TxnHandler, TxnHost } from "./transfer.ts";

const PAGE = 4096;
const PAGE_TIMEOUT_MS = 30_000;

type Page = Extract<ToGroup, { t: "inventory-page" }>;

/** What a group asks a member's inventory for: its items (of `groupCount` groups), and with `since` only chunks written since then. */
export interface InventoryAsk {
  group: number;
  groupCount: number;
  since: number | null;
}

function onePage(host: TxnHost, member: Member, ask: InventoryAsk, after: string | null): Promise<Page | null> {
  const { group, groupCount, since } = ask;
  return new Promise((resolve) => {
    const finish = (v: Page | null) => {
      clearTimeout(timer);
      host.close(txn);
      resolve(v);
    };
    const handler: TxnHandler = {
      onMessage(from, msg) {
        if (from === member && msg.t === "inventory-page") finish(msg);
      },
      onFrame() {},
      onGone(m) {
        if (m === member) finish(null);
      },
    };
    const txn = host.open(handler);
    const timer = setTimeout(() => finish(null), PAGE_TIMEOUT_MS);
    member.send({ t: "inventory", txn, group, groupCount, after, limit: PAGE, ...(since === null ? {} : { since }) });
  });
}

/** Every item `member` holds for `group` (with `since`: only chunks written since then); null if it went away or stopped answering. */
export async function inventoryOf(host: TxnHost, member: Member, ask: InventoryAsk): Promise<StoredRef[] | null> {
  const refs: StoredRef[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await onePage(host, member, ask, after);
    if (!page) return null;
    refs.push(...page.refs);
    if (page.next === null) return refs;
    after = page.next;
  }
}

/** What one member said it holds for the group. */
export interface Holding {
  id: TargetId;
  refs: readonly StoredRef[];
  location: string;
  /** A writer (member) of the group; the others (a draining or replaced target) are sources, whose items count for nothing until copied. */
  counts: boolean;
}

/**
 * Every item of the inventories (each once), with the locations of its copies on holdings that
 * `count` (by default, those that count: the group's writers).
 */
export function copiesByItem(holdings: readonly Holding[], count: (h: Holding) => boolean = (h) => h.counts): Map<string, { ref: StoredRef; at: string[] }> {
  const items = new Map<string, { ref: StoredRef; at: string[] }>();
  for (const h of holdings) {
    const counted = count(h);
    for (const ref of h.refs) {
      const k = storedRefKey(ref);
      let e = items.get(k);
      if (!e) items.set(k, (e = { ref, at: [] }));
      if (counted) e.at.push(h.location);
    }
  }
  return items;
}

/**
 * Items short of R (each listed once): fewer than `want` copies on counting holders, or copies
 * spanning fewer than `reach` failure domains (copies on one host's devices are one replica;
 * `reach` is R, or fewer where the group's members span fewer domains).
 */
export function underReplicated(holdings: readonly Holding[], want: number | ((ref: StoredRef) => number), reach?: number | ((want: number) => number), model: Correlation = depthCorrelation): { ref: StoredRef; holders: number }[] {
  const wantOf = typeof want === "number" ? () => want : want;
  const reachOf = reach === undefined ? (w: number) => w : typeof reach === "number" ? () => reach : reach;
  return [...copiesByItem(holdings).values()]
    .filter((e) => {
      const w = wantOf(e.ref);
      return e.at.length < w || distinctDomains(e.at, model) < reachOf(w);
    })
    .map((e) => ({ ref: e.ref, holders: e.at.length }));
}

/** When each member that went away left, in the group's storage: a Map's surface over a table. */
export class GoneBook {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS gone (id TEXT PRIMARY KEY, since INTEGER NOT NULL)");
  }

  get size(): number {
    return Number(this.sql.exec("SELECT count(*) AS n FROM gone").one().n);
  }

  set(id: TargetId, since: number): void {
    this.sql.exec("INSERT INTO gone (id, since) VALUES (?, ?) ON CONFLICT(id) DO NOTHING", id, since);
  }

  delete(id: TargetId): void {
    this.sql.exec("DELETE FROM gone WHERE id = ?", id);
  }

  values(): number[] {
    return this.sql.exec("SELECT since FROM gone").toArray().map((r) => Number(r.since));
  }

  [Symbol.iterator](): IterableIterator<[TargetId, number]> {
    return this.sql
      .exec("SELECT id, since FROM gone")
      .toArray()
      .map((r): [TargetId, number] => [asTargetId(r.id), Number(r.since)])
      [Symbol.iterator]();
  }
}

/**
 * Sweeps asked for besides those of members gone past the grace period: a member that lost
 * data or is draining (now), a returned non-member whose surplus copies are to be trimmed, a
 * drain to look at again. Kept in storage, earliest per member; a sweep takes those due when it
 * starts, so one asked for while it runs stays for the next.
 */
export class SweepRequests {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS sweep_requests (id TEXT PRIMARY KEY, due INTEGER NOT NULL, why TEXT NOT NULL)");
  }

  request(id: TargetId, due: number, why: string): void {
    this.sql.exec("INSERT INTO sweep_requests (id, due, why) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET due = min(due, excluded.due), why = excluded.why", id, due, why);
  }

  /** The members whose sweeps are due by `now`, taken off the list. */
  take(now: number): { id: TargetId; why: string }[] {
    return this.sql
      .exec("DELETE FROM sweep_requests WHERE due <= ? RETURNING id, why", now)
      .toArray()
      .map((r) => ({ id: asTargetId(r.id), why: String(r.why) }));
  }

  nextDue(): number | null {
    const r = this.sql.exec("SELECT min(due) AS due FROM sweep_requests").one();
    return r.due === null ? null : Number(r.due);
  }
}

/** What a non-member still held of this group after the last sweep trimmed it, and how much of that only waits for deletion. */
export interface OutsideCopies {
  left: number;
  /** Items nothing references any more (reclamation deletes them everywhere in its time): not to move. */
  unreferenced: number;
}

/**
 * Per non-member reader, what the last sweep left on it: the rebalance status reads it to say
 * whether a group still has data to move or only garbage waiting for reclamation. In storage,
 * so an evicted group still knows; a target that becomes a member again is forgotten.
 */
export class OutsideBook {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS outside_copies (id TEXT PRIMARY KEY, left INTEGER NOT NULL, unreferenced INTEGER NOT NULL)");
  }

  set(id: TargetId, c: OutsideCopies): void {
    this.sql.exec("INSERT INTO outside_copies (id, left, unreferenced) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET left = excluded.left, unreferenced = excluded.unreferenced", id, c.left, c.unreferenced);
  }

  get(id: TargetId): OutsideCopies | null {
    const r = this.sql.exec("SELECT left, unreferenced FROM outside_copies WHERE id = ?", id).toArray()[0];
    return r ? { left: Number(r.left), unreferenced: Number(r.unreferenced) } : null;
  }

  /** Not swept since: a target that just left the membership. */
  clear(id: TargetId): void {
    this.sql.exec("DELETE FROM outside_copies WHERE id = ?", id);
  }

  /** Keep only these (the readers outside the membership now). */
  keepOnly(ids: readonly TargetId[]): void {
    for (const r of this.sql.exec("SELECT id FROM outside_copies").toArray()) {
      if (!ids.includes(asTargetId(r.id))) this.sql.exec("DELETE FROM outside_copies WHERE id = ?", r.id);
    }
  }
}
