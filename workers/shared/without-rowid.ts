// Tables with a composite text key, kept WITHOUT ROWID: a rowid table stores its key twice (the
// row, and the index that makes the key unique), which for a row per version is a third of what
// a version costs in Durable Object storage. A table made before is rebuilt once, when its
// object starts: rows copied to a table of the new form, the old one dropped, the new renamed,
// all in the one synchronous step Durable Objects commit together. A table too large to copy
// in one start is left as it is (it works the same, only larger).

/** Rows copied at most when an object starts: well within a request's CPU time. */
const REBUILD_MAX_ROWS = 100_000;

/**
 * Make `table` with `create` (a CREATE TABLE for the name it is given, WITHOUT ROWID), or
 * rebuild an existing rowid table of that name into that form. Columns the old table lacks take
 * the new one's defaults; a column only the old one has is an error, never a silent loss.
 */
export function ensureWithoutRowid(sql: SqlStorage, table: string, create: (name: string) => string): void {
  const rebuilt = `${table}_rebuilt`;
  const schemaOf = (t: string) => sql.exec("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", t).toArray()[0];
  const row = schemaOf(table);
  if (!row) {
    // A rebuild cut short after its drop (should a platform ever commit it apart) left its rows here.
    if (schemaOf(rebuilt)) sql.exec(`ALTER TABLE ${rebuilt} RENAME TO ${table}`);
    else sql.exec(create(table));
    return;
  }
  if (/WITHOUT\s+ROWID/i.test(String(row.sql))) return;
  if (Number(sql.exec(`SELECT count(*) AS n FROM ${table}`).one().n) > REBUILD_MAX_ROWS) return;
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
