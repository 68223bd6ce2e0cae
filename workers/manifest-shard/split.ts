// Shard splits: SHARD_COUNT grows to a multiple of the last (4 -> 8 -> 16), and each new shard
// takes in the names that now hash to it from the shard that held them (its parent), while
// both serve.
//
// A new shard begins as its parent's front: every record its groups send it is applied by the
// parent first and then kept here too, and every question it is asked is answered by the
// parent for the new shard's names alone (name-part.ts), so each name is answered for by
// exactly one shard from the first moment. Meanwhile it copies the parent's rows of its names,
// a page at a time in key order. A page and a forwarded batch never interleave (one runs at a
// time), so once every table is walked this shard holds what the parent holds for its names:
// the parent is told so (it drops them from what it counts, then from its tables), and from
// then on this shard answers alone. The parent never takes another record for those names
// (a group still on the old count is refused and sends again), so nothing can land behind the
// walk. A question that reaches the parent after the hand-over is answered with HandedOver,
// and asked here instead.

import type { Env } from "../shared/env.ts";
import { clusterStub, configOf, shardStub } from "../shared/env.ts";
import { StateCells } from "../shared/state-cells.ts";
import { Unavailable } from "../shared/unavailable.ts";
import { SPLIT_TABLES, type SplitTable } from "./apply.ts";
import { NameHashes } from "./name-hashes.ts";
import { inPart, nameHashOf, partCond, partWithin, type NamePart } from "./name-part.ts";
import type { ShardRpc } from "./rpc.ts";
import { keyMatch, keyOf, pageAfter, PRIMARY_KEYS, type Row, type RowKey } from "./table-pages.ts";

type ShardStub = DurableObjectStub<ShardRpc>;

/** Rows per page handed over or dropped: well inside an RPC reply and one step's CPU. */
export const HANDOVER_ROWS = 500;
const END = "end";
/** A parent not ready to hand over (still taking in its own names, or hashing) is asked again this much later. */
const WAIT_MS = 2_000;

const MARK = "HandedOver: ";

/** The parent has handed this part over: ask the shard that now holds it. */
export class HandedOver extends Error {
  constructor(part: NamePart) {
    super(`${MARK}names ${part.index} of ${part.count} are held by shard ${part.index} now`);
  }
}

export function isHandedOver(e: unknown): boolean {
  return (e instanceof Error ? e.message : String(e)).includes(MARK);
}

export type HandOverPage = { wait: string } | { rows: Row[]; next: RowKey | null };

export interface ShardSplitHooks {
  /** The cluster's group counts, oldest first, which this shard may not have seen. */
  adoptGroups(history: readonly number[]): void;
  /** Rows came in or went out: counts kept in memory are read again. */
  recount(): void;
  /** What the shard counts as its own (usage.ts) is counted again from its tables. */
  recountUsage(): void;
  /** Usage of the names in a part, no longer this shard's to count. */
  dropUsage(part: NamePart): void;
  transaction<T>(fn: () => T): T;
}

/** What `status` reports. */
export interface ShardSplitProgress {
  /** The shard this one takes its names from, while it does. */
  takingFrom: number | null;
  tablesLeft: number;
  rowsTaken: number;
  /** Parts handed to new shards whose rows are still being dropped here. */
  dropping: number;
  hashed: boolean;
}

export class ShardSplit {
  private readonly sql: SqlStorage;
  private readonly env: Env;
  /** This shard's number, from its name; null for a shard reached by another name (tests), which never splits. */
  private readonly index: number | null;
  private readonly hooks: ShardSplitHooks;
  private readonly cells: StateCells;
  readonly hashes: NameHashes;
  private history: number[] | null = null;
  /** One forwarded batch or handed-over page at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(o: { sql: SqlStorage; env: Env; index: number | null; hooks: ShardSplitHooks }) {
    this.sql = o.sql;
    this.env = o.env;
    this.index = o.index;
    this.hooks = o.hooks;
    this.cells = new StateCells(o.sql, "shard_split");
    this.hashes = new NameHashes(o.sql, this.cells);
  }

  /**
   * The shard counts the cluster has had; asked of the cluster once per life (a count changes
   * only with a restart), with its group counts, which a new shard needs to know where its
   * names' records came from (`adoptGroups`). A shard refuses to answer on a history that lacks
   * the count it last ran with: it would answer for names it does not hold, or miss its own.
   */
  async load(): Promise<void> {
    if (this.history !== null) return;
    const layouts = await clusterStub(this.env).layouts();
    const history = layouts.shards;
    const count = configOf(this.env).shardCount;
    const wrong = history.findIndex((c, i) => !Number.isSafeInteger(c) || c < 1 || (i > 0 && c % history[i - 1]! !== 0) || (i > 0 && c <= history[i - 1]!));
    if (wrong >= 0 || history[history.length - 1] !== count) throw new Unavailable(`the cluster's shard counts ${history.join(" -> ")} do not end at SHARD_COUNT ${count}, each a multiple of the last`);
    const ranWith = this.cells.get("count");
    if (ranWith !== null && !history.includes(Number(ranWith))) {
      throw new Unavailable(`shard ${this.index} last ran with SHARD_COUNT ${ranWith}, which the cluster's shard counts ${history.join(" -> ")} do not hold: run the old count once with this version before raising it`);
    }
    // A shard from before counts were kept: its names must be its own at this count, or the count
    // changed in the same deploy as this version, with no record of the old one. Sixteen names
    // of another count's shard pass by chance once in 65,536.
    if (ranWith === null && this.index !== null) {
      const names = this.sql.exec("SELECT tenant, bucket, key FROM current LIMIT 16").toArray();
      for (const n of names) {
        const h = await nameHashOf(String(n.tenant), String(n.bucket), String(n.key));
        if (!inPart(h, { count, index: this.index, unhashed: false }) && !this.descendsFromHistory(h, history)) {
          throw new Unavailable(`shard ${this.index} holds names of another SHARD_COUNT than ${count} and kept no record of it: set SHARD_COUNT back, run it once with this version, then raise it`);
        }
      }
    }
    this.cells.set("count", String(count));
    this.hooks.adoptGroups(layouts.groups);
    this.history = history;
  }

  /** Whether a name with hash `h` may be in this shard's tables under `history` (its own, or a new shard's not yet taken). */
  private descendsFromHistory(h: number, history: readonly number[]): boolean {
    return history.some((c) => inPart(h, { count: c, index: this.index! % c, unhashed: false }) && this.index! < c);
  }

  loaded(): boolean {
    return this.history !== null;
  }

  private known(): number[] {
    if (this.history === null) throw new Error("shard split: load() first");
    return this.history;
  }

  /** The names this shard answers for now; null: all it holds (it never split or was split from). */
  ownPart(): NamePart | null {
    const h = this.known();
    if (this.index === null || h.length < 2) return null;
    return { count: h[h.length - 1]!, index: this.index, unhashed: true };
  }

  /** The part this shard was made with and the shard it came from; null for a shard of the first count. */
  private birth(): { parent: number; part: NamePart } | null {
    const h = this.known();
    if (this.index === null) return null;
    const at = h.findIndex((c) => this.index! < c);
    if (at <= 0) return null;
    return { parent: this.index % h[at - 1]!, part: { count: h[at]!, index: this.index, unhashed: false } };
  }

  /** Whether this shard still takes its names from its parent (and so answers through it). */
  taking(): boolean {
    return this.birth() !== null && this.cells.get("taken") !== END;
  }

  /** The parent to ask while taking, else null. */
  upstream(): ShardStub | null {
    const b = this.birth();
    return b === null || this.cells.get("taken") === END ? null : shardStub(this.env, b.parent);
  }

  parentIndex(): number | null {
    return this.birth()?.parent ?? null;
  }

  /** Runs `fn` after every earlier forwarded batch and page, alone. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    // The next waits for this one to end, however it ends; its error is its caller's.
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** A part this shard has handed over, holding `part`'s names (then a question about them is not its to answer). */
  private givenHolding(part: NamePart): NamePart | null {
    return this.givenParts().find((given) => partWithin(part, given)) ?? null;
  }

  private givenParts(): NamePart[] {
    return this.sql
      .exec("SELECT k FROM shard_split WHERE k LIKE 'given:%'")
      .toArray()
      .map((r) => {
        const [, count, index] = String(r.k).split(":").map(Number);
        return { count: count!, index: index!, unhashed: false };
      });
  }

  /** Refuses a question or batch about names handed over already. */
  checkNotGiven(part: NamePart): void {
    const given = this.givenHolding(part);
    if (given !== null) throw new HandedOver(given);
  }

  /** Whether this shard has handed any names over. */
  gaveAway(): boolean {
    return this.sql.exec("SELECT 1 FROM shard_split WHERE k LIKE 'given:%' LIMIT 1").toArray().length > 0;
  }

  /** Refuses a question about a name handed over already (`h`: its hash). */
  checkNameNotGiven(h: number): void {
    for (const given of this.givenParts()) if (inPart(h, given)) throw new HandedOver(given);
  }

  /**
   * Refuses a part that is not of a shard split from this one (`exact`: the part that shard was
   * made with): handing over or dropping any other would lose names this shard must answer for.
   */
  checkDescends(part: NamePart, exact: boolean): void {
    const h = this.known();
    const at = h.indexOf(part.count);
    const own = this.index === null ? null : (this.birth()?.part ?? { count: h[0]!, index: this.index, unhashed: false });
    const ok =
      own !== null &&
      at > 0 &&
      Number.isSafeInteger(part.index) &&
      part.index >= 0 &&
      part.index < part.count &&
      part.index !== this.index &&
      partWithin(part, own) &&
      (!exact || (part.index >= h[at - 1]! && part.index % h[at - 1]! === this.index));
    if (!ok) throw new Unavailable(`names ${part.index} of ${part.count} are not of a shard split from shard ${this.index}`);
  }

  /** Refuses a forwarded batch with a name outside the part it claims. */
  checkInPart(hashes: readonly number[], part: NamePart): void {
    const stray = hashes.find((h) => !inPart(h, part));
    if (stray !== undefined) throw new Unavailable(`a record for shard ${stray % part.count} of ${part.count} came through shard ${part.index}`);
  }

  // ---- the parent's side ----

  /** A page of this shard's rows of `part`'s names, after `after`, for the new shard that holds them now. */
  handOverPage(part: NamePart, table: SplitTable, after: RowKey | null): HandOverPage {
    this.checkDescends(part, true);
    if (!SPLIT_TABLES.includes(table)) throw new Unavailable(`no table ${table} to hand over`);
    if (after !== null && (!Array.isArray(after) || after.length !== PRIMARY_KEYS[table].length || after.some((k) => typeof k !== "string"))) throw new Unavailable(`a cursor of ${table} is ${PRIMARY_KEYS[table].length} texts`);
    if (this.upstream() !== null) return { wait: `shard ${this.index} is still taking in its own names` };
    if (!this.hashes.done()) return { wait: `shard ${this.index} is still filling in name hashes` };
    this.checkNotGiven(part);
    const rows = pageAfter(this.sql, { table, after, columns: "*", where: partCond("", { ...part, unhashed: false })!, limit: HANDOVER_ROWS });
    return { rows, next: rows.length < HANDOVER_ROWS ? null : keyOf(table, rows.at(-1)!) };
  }

  /** The new shard holding `part` has every row of it: stop counting them here, and drop them. */
  handedOver(part: NamePart): void {
    this.checkDescends(part, true);
    if (this.givenHolding(part) !== null) return;
    this.hooks.transaction(() => {
      this.hooks.dropUsage(part);
      this.cells.set(`given:${part.count}:${part.index}`, JSON.stringify({ table: 0, after: null }));
    });
    console.log(JSON.stringify({ event: "shard-handed-over", shard: this.index, part: `${part.index}/${part.count}` }));
  }

  // ---- steps, run by the alarm ----

  /** One step of whatever is left (hashes, taking in, dropping); the time to be woken next, or null if nothing is left. */
  async step(): Promise<number | null> {
    await this.load();
    if (!(await this.hashes.step())) return Date.now();
    if (this.taking()) return this.takeStep();
    return this.dropStep();
  }

  private async takeStep(): Promise<number | null> {
    const b = this.birth()!;
    const parent = shardStub(this.env, b.parent);
    for (const table of SPLIT_TABLES) {
      const at = this.cells.get(`take:${table}`);
      if (at === END) continue;
      const waited = await this.exclusive(async () => {
        const page = await parent.handOverPage(b.part, table, at === null ? null : (JSON.parse(at) as RowKey));
        if ("wait" in page) return page.wait;
        this.hooks.transaction(() => {
          for (const row of page.rows) this.put(table, row);
          this.cells.set(`take:${table}`, page.next === null ? END : JSON.stringify(page.next));
          this.cells.set("taken-rows", String(Number(this.cells.get("taken-rows") ?? "0") + page.rows.length));
        });
        this.hooks.recount();
        return null;
      });
      if (waited !== null) return Date.now() + WAIT_MS;
      return Date.now();
    }
    // Every table walked: the parent stops counting these names and drops them, then they are ours.
    await this.exclusive(async () => {
      await parent.handedOver(b.part);
      this.finishTaking();
    });
    return Date.now();
  }

  /**
   * The parent has handed this shard's names over (it says so, or answers HandedOver, which it
   * does only once this shard's walk has ended): from now on this shard answers alone.
   */
  finishTaking(): void {
    const b = this.birth();
    if (b === null || this.cells.get("taken") === END) return;
    if (SPLIT_TABLES.some((t) => this.cells.get(`take:${t}`) !== END)) throw new Error(`shard ${this.index} was told its names are handed over before its walk ended`);
    this.hooks.transaction(() => {
      this.cells.set("taken", END);
      for (const t of SPLIT_TABLES) this.cells.delete(`take:${t}`);
      // A removal or tag change forwarded before the walk brought its version waits here for it,
      // but the parent applied it to the version the walk then copied: nothing waits any more.
      this.sql.exec("DELETE FROM early_removals WHERE EXISTS (SELECT 1 FROM versions v WHERE v.tenant = early_removals.tenant AND v.bucket = early_removals.bucket AND v.key = early_removals.key AND v.uvid = early_removals.target)");
      this.sql.exec("DELETE FROM early_tags WHERE EXISTS (SELECT 1 FROM versions v WHERE v.tenant = early_tags.tenant AND v.bucket = early_tags.bucket AND v.key = early_tags.key AND v.uvid = early_tags.target)");
      this.hooks.recountUsage();
    });
    this.hooks.recount();
    console.log(JSON.stringify({ event: "shard-split-complete", shard: this.index, from: b.parent, rows: Number(this.cells.get("taken-rows") ?? "0") }));
  }

  /** A row as the parent keeps it: the columns both tables have (the parent may be of an older form). */
  private put(table: SplitTable, row: Row): void {
    const cols = this.columns(table).filter((c) => c in row);
    const values = cols.map((c) => row[c] ?? null);
    this.sql.exec(`INSERT OR REPLACE INTO ${table} (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`, ...values);
  }

  private readonly tableColumns = new Map<SplitTable, string[]>();
  private columns(table: SplitTable): string[] {
    let c = this.tableColumns.get(table);
    if (!c) this.tableColumns.set(table, (c = this.sql.exec(`PRAGMA table_info(${table})`).toArray().map((r) => String(r.name))));
    return c;
  }

  private dropStep(): number | null {
    const given = this.sql.exec("SELECT k, v FROM shard_split WHERE k LIKE 'given:%' AND v != ? LIMIT 1", END).toArray()[0];
    if (!given) return null;
    const [, count, index] = String(given.k).split(":").map(Number);
    const part: NamePart = { count: count!, index: index!, unhashed: false };
    const at = JSON.parse(String(given.v)) as { table: number; after: RowKey | null };
    const table = SPLIT_TABLES[at.table]!;
    const rows = pageAfter(this.sql, { table, after: at.after, columns: PRIMARY_KEYS[table].join(", "), where: partCond("", part)!, limit: HANDOVER_ROWS });
    this.hooks.transaction(() => {
      for (const r of rows) {
        const m = keyMatch(table, keyOf(table, r));
        this.sql.exec(`DELETE FROM ${table} WHERE ${m.sql}`, ...m.args);
      }
      const next = rows.length < HANDOVER_ROWS ? { table: at.table + 1, after: null } : { table: at.table, after: keyOf(table, rows.at(-1)!) };
      this.cells.set(String(given.k), next.table >= SPLIT_TABLES.length ? END : JSON.stringify(next));
    });
    this.hooks.recount();
    return Date.now();
  }

  progress(): ShardSplitProgress {
    const taking = this.history !== null && this.taking();
    return {
      takingFrom: taking ? this.parentIndex() : null,
      tablesLeft: taking ? SPLIT_TABLES.filter((t) => this.cells.get(`take:${t}`) !== END).length : 0,
      rowsTaken: Number(this.cells.get("taken-rows") ?? "0"),
      dropping: Number(this.sql.exec("SELECT count(*) AS n FROM shard_split WHERE k LIKE 'given:%' AND v != ?", END).one().n),
      hashed: this.hashes.done(),
    };
  }
}
