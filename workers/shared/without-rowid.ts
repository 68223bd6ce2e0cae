// Tables with a composite text key, kept WITHOUT ROWID: a rowid table stores its key twice (the
// row, and the index that makes the key unique), which for a row per version is a third of what
// a version costs in Durable Object storage. A table made before is rebuilt once, when its
// object starts: rows copied to a table of the new form, the old one dropped, the new renamed.

/**
 * Make `table` with `create` (a CREATE TABLE for the name it is given, WITHOUT ROWID), or
 * rebuild an existing rowid table of that name into that form. Columns the old table lacks take
 * the new one's defaults; a column only the old one has is an error, never a silent loss.
 */
export function ensureWithoutRowid(sql: SqlStorage, table: string, create: (name: string) => string): void {
  const row = sql.exec("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", table).toArray()[0];
  if (!row) {
    sql.exec(create(table));
    return;
  }
  if (/WITHOUT\s+ROWID/i.test(String(row.sql))) return;
  const rebuilt = `${table}_rebuilt`;
  sql.exec(`DROP TABLE IF EXISTS ${rebuilt}`);
  sql.exec(create(rebuilt));
  const columnsOf = (t: string) => new Set(sql.exec(`PRAGMA table_info(${t})`).toArray().map((c) => String(c.name)));
  const into = columnsOf(rebuilt);
  const from = [...columnsOf(table)];
  const lost = from.filter((c) => !into.has(c));
  if (lost.length > 0) {
    sql.exec(`DROP TABLE ${rebuilt}`);
    throw new Error(`rebuilding ${table} would lose its columns ${lost.join(", ")}`);
  }
  const common = from.join(", ");
  sql.exec(`INSERT INTO ${rebuilt} (${common}) SELECT ${common} FROM ${table}`);
  sql.exec(`DROP TABLE ${table}`);
  sql.exec(`ALTER TABLE ${rebuilt} RENAME TO ${table}`);
}
