// Space reclamation, the user's side: changes of back-references this group owes other groups
// (a version it committed uses chunks; one it expunged no longer does; an upload's parts), kept
// in its storage in the same transaction as the change that caused them, and pushed to each
// chunk's group in order, batched per group. One call per destination group is in flight at a
// time; what is queued meanwhile goes in the next call. A failed call leaves its rows for the
// alarm. Order matters only between changes from the same group to the same group, and the
// rows keep it (`seq`); a batch sent twice (a restart before its rows were deleted) is applied
// twice in the same order, which changes nothing.

import { asChid, groupOf, type Chid } from "../../common/ids.ts";
import type { RefChange, RefOp } from "./backrefs.ts";

/** Chunk ids per row, so that one version of any size never makes a row too large for storage. */
const ROW_CHIDS = 2048;
/** Chunk ids per call to a chunk group (a push every few seconds carries every commit since). */
const CALL_CHIDS = 16384;

export type SendChanges = (group: number, changes: RefChange[]) => Promise<void>;

export class RefOutbox {
  private readonly sql: SqlStorage;
  private readonly send: SendChanges;
  private readonly busy = new Set<number>();

  /** Chunks are split by the group that owns them: one of this many. */
  private readonly groupCount: number;

  constructor(sql: SqlStorage, groupCount: number, send: SendChanges) {
    this.sql = sql;
    this.groupCount = groupCount;
    this.send = send;
    sql.exec("CREATE TABLE IF NOT EXISTS ref_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, grp INTEGER NOT NULL, op TEXT NOT NULL, ref TEXT NOT NULL, chids TEXT NOT NULL)");
    sql.exec("CREATE INDEX IF NOT EXISTS ref_outbox_grp ON ref_outbox (grp, seq)");
    // Added later: the replica count a version asked for, carried to its chunks' groups.
    const columns = sql.exec("PRAGMA table_info(ref_outbox)").toArray().map((c) => String(c.name));
    if (!columns.includes("replicas")) sql.exec("ALTER TABLE ref_outbox ADD COLUMN replicas INTEGER");
    this.regroup();
  }

  /**
   * Queue `ref` using (+) or dropping (-) these chunks, split by their groups. Call inside the
   * causing change's transaction. `replicas`: the count the version asked for, if not the
   * cluster's R (a "+" again with another count changes it).
   */
  queue(op: RefOp, ref: string, chids: Iterable<Chid>, replicas: number | null = null): number[] {
    const byGroup = new Map<number, Chid[]>();
    for (const c of new Set(chids)) {
      const g = groupOf(c, this.groupCount);
      const list = byGroup.get(g) ?? [];
      list.push(c);
      byGroup.set(g, list);
    }
    // One statement for every row: a version's chunks span most groups, and a statement each
    // cost more than the rest of a commit.
    const rows: [number, string][] = [];
    for (const [g, list] of byGroup) {
      for (let i = 0; i < list.length; i += ROW_CHIDS) rows.push([g, JSON.stringify(list.slice(i, i + ROW_CHIDS))]);
    }
    if (rows.length > 0) {
      this.sql.exec(
        "INSERT INTO ref_outbox (grp, op, ref, chids, replicas) SELECT value ->> 0, ?, ?, value ->> 1, ? FROM json_each(?) ORDER BY key",
        op, ref, replicas, JSON.stringify(rows),
      );
    }
    return [...byGroup.keys()];
  }

  /**
   * Rows queued under another group count (a split since, split.ts) are addressed by it: queued
   * again, in their order, by the chunks' groups now, so each chunk's new group gets this
   * group's changes in the order they were made, none by way of its old group.
   */
  private regroup(): void {
    this.sql.exec("CREATE TABLE IF NOT EXISTS ref_outbox_count (k INTEGER PRIMARY KEY CHECK (k = 0), count INTEGER NOT NULL)");
    const stored = this.sql.exec("SELECT count FROM ref_outbox_count WHERE k = 0").toArray()[0];
    if (stored && Number(stored.count) === this.groupCount) return;
    const rows = this.sql.exec("SELECT seq, op, ref, chids, replicas FROM ref_outbox ORDER BY seq").toArray();
    // Queued again before the old rows go: cut short, a change is sent twice, which changes nothing.
    for (const r of rows) {
      this.queue(r.op as RefOp, String(r.ref), (JSON.parse(String(r.chids)) as unknown[]).map(asChid), r.replicas === null ? null : Number(r.replicas));
    }
    if (rows.length > 0) this.sql.exec("DELETE FROM ref_outbox WHERE seq <= ?", Number(rows.at(-1)!.seq));
    this.sql.exec("INSERT INTO ref_outbox_count (k, count) VALUES (0, ?) ON CONFLICT(k) DO UPDATE SET count = excluded.count", this.groupCount);
  }

  /** Groups with changes waiting. */
  waiting(): number[] {
    return this.sql.exec("SELECT DISTINCT grp FROM ref_outbox").toArray().map((r) => Number(r.grp));
  }

  /**
   * Push everything queued for these groups (all, by default). Resolves when their queues are
   * empty; rejects with the first failure (those rows stay for a later push).
   */
  async push(groups: Iterable<number> = this.waiting()): Promise<void> {
    await Promise.all([...new Set(groups)].map((g) => this.drain(g)));
  }

  private async drain(g: number): Promise<void> {
    // The running drain re-reads the table after each call, so it takes these rows too.
    if (this.busy.has(g)) return;
    this.busy.add(g);
    try {
      for (;;) {
        const rows = this.rows(g);
        if (rows.length === 0) break;
        await this.send(g, rows.map((r) => r.change));
        this.sql.exec("DELETE FROM ref_outbox WHERE grp = ? AND seq <= ?", g, rows.at(-1)!.seq);
      }
    } finally {
      this.busy.delete(g);
    }
  }

  private rows(g: number): { seq: number; change: RefChange }[] {
    const out: { seq: number; change: RefChange }[] = [];
    let n = 0;
    for (const r of this.sql.exec("SELECT seq, op, ref, chids, replicas FROM ref_outbox WHERE grp = ? ORDER BY seq LIMIT 2048", g).toArray()) {
      const chids = (JSON.parse(String(r.chids)) as unknown[]).map(asChid);
      if (out.length > 0 && n + chids.length > CALL_CHIDS) break;
      out.push({ seq: Number(r.seq), change: { op: r.op as RefOp, ref: String(r.ref), chids, ...(r.replicas === null ? {} : { replicas: Number(r.replicas) }) } });
      n += chids.length;
    }
    return out;
  }
}
