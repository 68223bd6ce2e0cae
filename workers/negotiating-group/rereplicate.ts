// Re-replication (issue 6, point 2), the group's half: when a member has been gone longer than
// the grace period, find every item of this group that now has fewer than R copies on live
// members and restore R. The group asks each live member for an inventory of what it holds for
// the group (InventoryMsg, paged), counts holders per item, and hands the under-replicated
// ones to the same check-then-copy as validation. Nothing scans other groups or other targets.

import type { TargetId } from "../../common/ids.ts";
import { storedRefKey, type StoredRef, type ToGroup } from "../../common/protocol.ts";
import type { Member } from "./member.ts";
import type { TxnHandler, TxnHost } from "./transfer.ts";

const PAGE = 4096;
const PAGE_TIMEOUT_MS = 30_000;

type Page = Extract<ToGroup, { t: "inventory-page" }>;

function onePage(host: TxnHost, member: Member, group: number, groupCount: number, after: string | null, since: number | null): Promise<Page | null> {
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
export async function inventoryOf(host: TxnHost, member: Member, group: number, groupCount: number, since: number | null = null): Promise<StoredRef[] | null> {
  const refs: StoredRef[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await onePage(host, member, group, groupCount, after, since);
    if (!page) return null;
    refs.push(...page.refs);
    if (page.next === null) return refs;
    after = page.next;
  }
}

/**
 * Items with fewer than `want` holders among the inventories (each listed once). Only
 * inventories whose `counts` entry is true are holders (the group's writers); the others (a
 * draining or replaced target) are sources, whose items count for nothing until copied.
 */
export function underReplicated(inventories: readonly StoredRef[][], want: number, counts: readonly boolean[] = inventories.map(() => true)): { ref: StoredRef; holders: number }[] {
  const count = new Map<string, { ref: StoredRef; holders: number }>();
  inventories.forEach((inv, i) => {
    const n = counts[i] ? 1 : 0;
    for (const ref of inv) {
      const k = storedRefKey(ref);
      const e = count.get(k);
      if (e) e.holders += n;
      else count.set(k, { ref, holders: n });
    }
  });
  return [...count.values()].filter((e) => e.holders < want);
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
      .map((r): [TargetId, number] => [r.id as TargetId, Number(r.since)])
      [Symbol.iterator]();
  }
}
