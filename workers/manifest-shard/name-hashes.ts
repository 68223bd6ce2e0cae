// Rows written before names kept their hash (name-part.ts) have it filled in, a page of names
// per step, before this shard can hand rows to a split's new shard. Until then a row without
// its hash is answered for by this shard alone, whichever part its name is in.

import type { StateCells } from "../shared/state-cells.ts";
import { SPLIT_TABLES } from "./apply.ts";
import { nameHashOf } from "./name-part.ts";
import { keyOf, pageAfter } from "./table-pages.ts";

/** Names hashed per step: each costs a digest and an update per table. */
const NAMES_PER_STEP = 500;
const DONE = "done";

export class NameHashes {
  private readonly sql: SqlStorage;
  private readonly cells: StateCells;

  constructor(sql: SqlStorage, cells: StateCells) {
    this.sql = sql;
    this.cells = cells;
    if (!this.done() && SPLIT_TABLES.every((t) => sql.exec(`SELECT 1 FROM ${t} WHERE h IS NULL LIMIT 1`).toArray().length === 0)) this.finish();
  }

  /** Every row has its name's hash. */
  done(): boolean {
    return this.cells.get("hashed") === DONE;
  }

  /** Fill in one page of names; true once every row has its hash. */
  async step(): Promise<boolean> {
    if (this.done()) return true;
    for (const table of SPLIT_TABLES) {
      const at = this.cells.get(`hashed:${table}`);
      if (at === DONE) continue;
      const rows = pageAfter(this.sql, { table, after: at === null ? null : (JSON.parse(at) as string[]), columns: "*", where: { sql: "h IS NULL", args: [] }, limit: NAMES_PER_STEP });
      const names = new Map<string, { tenant: string; bucket: string; key: string }>();
      for (const r of rows) names.set(JSON.stringify([r.tenant, r.bucket, r.key]), { tenant: String(r.tenant), bucket: String(r.bucket), key: String(r.key) });
      const hashed = await Promise.all([...names.values()].map(async (n) => ({ ...n, h: await nameHashOf(n.tenant, n.bucket, n.key) })));
      // After the awaits: rows written meanwhile came with their hash, and these only fill what is missing.
      for (const n of hashed) {
        for (const t of SPLIT_TABLES) this.sql.exec(`UPDATE ${t} SET h = ? WHERE tenant = ? AND bucket = ? AND key = ? AND h IS NULL`, n.h, n.tenant, n.bucket, n.key);
      }
      this.cells.set(`hashed:${table}`, rows.length < NAMES_PER_STEP ? DONE : JSON.stringify(keyOf(table, rows.at(-1)!)));
      return false;
    }
    this.finish();
    return true;
  }

  private finish(): void {
    this.cells.set("hashed", DONE);
    for (const t of SPLIT_TABLES) this.cells.delete(`hashed:${t}`);
  }
}
