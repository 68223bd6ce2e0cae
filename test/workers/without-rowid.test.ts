// Rebuilding a table into WITHOUT ROWID form (workers/shared/without-rowid.ts) against real
// Durable Object SQLite storage: rows and later columns carried, defaults for columns the old
// table lacked, nothing done twice, and a rebuild that would drop a column refused.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ensureWithoutRowid } from "../../workers/shared/without-rowid.ts";

let n = 0;
const withSql = <T,>(fn: (sql: SqlStorage) => T | Promise<T>) =>
  runInDurableObject(env.GROUP.get(env.GROUP.idFromName(`group-0-rowid-${n++}`)), (_o, state) => fn(state.storage.sql));

const create = (t: string) => `CREATE TABLE ${t} (a TEXT NOT NULL, b TEXT NOT NULL, c INTEGER, d INTEGER NOT NULL DEFAULT 7, PRIMARY KEY (a, b)) WITHOUT ROWID`;
const schemaOf = (sql: SqlStorage) => String(sql.exec("SELECT sql FROM sqlite_schema WHERE name = 'things'").one().sql);

describe("tables kept WITHOUT ROWID", () => {
  it("makes a new table in that form", async () => {
    await withSql((sql) => {
      ensureWithoutRowid(sql, "things", create);
      expect(schemaOf(sql)).toMatch(/WITHOUT ROWID/);
    });
  });

  it("rebuilds a rowid table with its rows, giving columns it lacked their defaults, once", async () => {
    await withSql((sql) => {
      sql.exec("CREATE TABLE things (a TEXT NOT NULL, b TEXT NOT NULL, c INTEGER, PRIMARY KEY (a, b))");
      for (let i = 0; i < 100; i++) sql.exec("INSERT INTO things (a, b, c) VALUES (?, ?, ?)", `k${i % 10}`, `v${i}`, i);
      ensureWithoutRowid(sql, "things", create);
      expect(schemaOf(sql)).toMatch(/WITHOUT ROWID/);
      expect(sql.exec("SELECT count(*) AS n, sum(c) AS s, min(d) AS d FROM things").one()).toEqual({ n: 100, s: 4950, d: 7 });
      expect(sql.exec("SELECT count(*) AS n FROM sqlite_schema WHERE name LIKE 'things%'").one().n).toBe(1);
      sql.exec("INSERT INTO things (a, b, c) VALUES ('new', 'row', 1)");
      ensureWithoutRowid(sql, "things", create);
      expect(sql.exec("SELECT count(*) AS n FROM things").one().n).toBe(101);
    });
  });

  it("finishes a rebuild that was cut short after the old table went", async () => {
    await withSql((sql) => {
      sql.exec(create("things_rebuilt"));
      sql.exec("INSERT INTO things_rebuilt (a, b, c) VALUES ('x', 'y', 3)");
      ensureWithoutRowid(sql, "things", create);
      expect(sql.exec("SELECT c FROM things").one().c).toBe(3);
      expect(sql.exec("SELECT count(*) AS n FROM sqlite_schema WHERE name LIKE 'things%'").one().n).toBe(1);
    });
  });

  it("refuses a rebuild that would drop a column", async () => {
    await withSql((sql) => {
      sql.exec("CREATE TABLE things (a TEXT NOT NULL, b TEXT NOT NULL, extra TEXT, PRIMARY KEY (a, b))");
      sql.exec("INSERT INTO things (a, b, extra) VALUES ('x', 'y', 'kept')");
      expect(() => ensureWithoutRowid(sql, "things", create)).toThrow(/would lose its columns extra/);
      expect(sql.exec("SELECT extra FROM things").one().extra).toBe("kept");
      expect(sql.exec("SELECT count(*) AS n FROM sqlite_schema WHERE name LIKE 'things%'").one().n).toBe(1);
    });
  });
});
