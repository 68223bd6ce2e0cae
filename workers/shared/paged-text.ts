// Durable Object SQLite refuses a row over 2 MB (Cloudflare's limit; local workerd does not
// enforce it, so nothing here may count on a test failing at it). A value that can grow with an
// object (a part's or a pending version's chunk list: a 5 GiB part at 64 KiB chunks lists 80,000
// chunks, some 8 MB as JSON) is kept as text cut into pages of its own table, each far below the
// limit, and read back whole. Small values take one page: one row, as before.

import { prefixSuccessor } from "../../common/keys.ts";

/** Cloudflare's limit on a Durable Object SQLite row (strings and BLOBs included). */
export const ROW_MAX_BYTES = 2_000_000;
/** UTF-16 units per page: at most 3 UTF-8 bytes each, so a page stays under 1.5 MB. */
const PAGE_UNITS = 500_000;

export class PagedText {
  private readonly sql: SqlStorage;
  private readonly table: string;

  /** `table` is a name this code chooses, never a client's. */
  constructor(sql: SqlStorage, table: string) {
    this.sql = sql;
    this.table = table;
    sql.exec(`CREATE TABLE IF NOT EXISTS ${table} (owner TEXT NOT NULL, page INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (owner, page))`);
  }

  /** Replace the owner's value. */
  put(owner: string, text: string): void {
    this.delete(owner);
    let page = 0;
    for (let at = 0; at < text.length || page === 0; page++) {
      let end = Math.min(at + PAGE_UNITS, text.length);
      // Never between the halves of a surrogate pair: SQLite would store each half as U+FFFD.
      const code = text.charCodeAt(end - 1);
      if (end < text.length && code >= 0xd800 && code <= 0xdbff) end--;
      this.sql.exec(`INSERT INTO ${this.table} (owner, page, text) VALUES (?, ?, ?)`, owner, page, text.slice(at, end));
      at = end;
    }
  }

  /** The owner's value; null if it has none. */
  get(owner: string): string | null {
    const pages = this.sql.exec(`SELECT text FROM ${this.table} WHERE owner = ? ORDER BY page`, owner).toArray();
    return pages.length === 0 ? null : pages.map((p) => String(p.text)).join("");
  }

  delete(owner: string): void {
    this.sql.exec(`DELETE FROM ${this.table} WHERE owner = ?`, owner);
  }

  /** Every owner with a value. */
  owners(): string[] {
    return this.sql.exec(`SELECT DISTINCT owner FROM ${this.table} ORDER BY owner`).toArray().map((r) => String(r.owner));
  }

  /** Every owner whose name starts with `prefix` (an upload's parts: `<uploadId>/`; "" for all), as a range of the key. */
  deleteUnder(prefix: string): void {
    const upper = prefixSuccessor(prefix);
    if (upper === null) this.sql.exec(`DELETE FROM ${this.table} WHERE owner >= ?`, prefix);
    else this.sql.exec(`DELETE FROM ${this.table} WHERE owner >= ? AND owner < ?`, prefix, upper);
  }

  /** The values of every owner whose name starts with `prefix`, in one range read. */
  under(prefix: string): Map<string, string> {
    const upper = prefixSuccessor(prefix);
    const rows = upper === null
      ? this.sql.exec(`SELECT owner, text FROM ${this.table} WHERE owner >= ? ORDER BY owner, page`, prefix).toArray()
      : this.sql.exec(`SELECT owner, text FROM ${this.table} WHERE owner >= ? AND owner < ? ORDER BY owner, page`, prefix, upper).toArray();
    const out = new Map<string, string>();
    for (const r of rows) out.set(String(r.owner), (out.get(String(r.owner)) ?? "") + String(r.text));
    return out;
  }
}
