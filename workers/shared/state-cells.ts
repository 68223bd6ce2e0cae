// A few named text values an object keeps across restarts (a walk's cursor, a phase reached),
// in a table of their own.

export class StateCells {
  private readonly sql: SqlStorage;
  private readonly table: string;

  constructor(sql: SqlStorage, table: string) {
    this.sql = sql;
    this.table = table;
    sql.exec(`CREATE TABLE IF NOT EXISTS ${table} (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
  }

  get(k: string): string | null {
    const r = this.sql.exec(`SELECT v FROM ${this.table} WHERE k = ?`, k).toArray()[0];
    return r === undefined ? null : String(r.v);
  }

  set(k: string, v: string): void {
    this.sql.exec(`INSERT INTO ${this.table} (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, k, v);
  }

  delete(k: string): void {
    this.sql.exec(`DELETE FROM ${this.table} WHERE k = ?`, k);
  }
}
