// Rows of a shard's per-name tables read in primary-key order from a cursor, so that filling
// in name hashes, handing rows to a new shard and dropping them after never rescans what an
// earlier step passed.

import type { SplitTable } from "./apply.ts";

/** Each table's primary key, in order. */
export const PRIMARY_KEYS: Record<SplitTable, readonly string[]> = {
  versions: ["tenant", "bucket", "key", "uvid"],
  current: ["tenant", "bucket", "key"],
  early_removals: ["tenant", "bucket", "key", "target"],
  early_tags: ["tenant", "bucket", "key", "target"],
  uploads: ["tenant", "bucket", "key", "upload_id"],
};

export type Row = Record<string, SqlStorageValue>;
/** A row's primary key, as text (every key column is TEXT). */
export type RowKey = string[];

export interface PageQuery {
  table: SplitTable;
  /** Past this key; null: from the first row. */
  after: RowKey | null;
  /** Columns to read ("*": all). */
  columns: string;
  /** Further conditions, with their arguments. */
  where?: { sql: string; args: (string | number)[] };
  limit: number;
}

export function pageAfter(sql: SqlStorage, q: PageQuery): Row[] {
  const pk = PRIMARY_KEYS[q.table];
  const conds: string[] = [];
  const args: (string | number)[] = [];
  if (q.after !== null) {
    conds.push(`(${pk.join(", ")}) > (${pk.map(() => "?").join(", ")})`);
    args.push(...q.after);
  }
  if (q.where) {
    conds.push(q.where.sql);
    args.push(...q.where.args);
  }
  const where = conds.length === 0 ? "" : `WHERE ${conds.join(" AND ")}`;
  return sql.exec(`SELECT ${q.columns} FROM ${q.table} ${where} ORDER BY ${pk.join(", ")} LIMIT ?`, ...args, q.limit).toArray();
}

export function keyOf(table: SplitTable, row: Row): RowKey {
  return PRIMARY_KEYS[table].map((c) => String(row[c]));
}

/** SQL and arguments matching exactly the row with this key. */
export function keyMatch(table: SplitTable, key: RowKey): { sql: string; args: string[] } {
  return { sql: PRIMARY_KEYS[table].map((c) => `${c} = ?`).join(" AND "), args: key };
}
