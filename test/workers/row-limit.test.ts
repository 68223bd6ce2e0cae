// Durable Object SQLite's 2 MB row limit, respected by construction: values that grow with an
// object (a part's chunk list, a prepared merge item, a session's pending version) are kept in
// pages. Local workerd does not enforce the limit, so each test measures every row the object
// holds after storing a value well past it, and reads the value back exact.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { nhidOf, type Chid } from "../../common/ids.ts";
import type { ChunkRef, VersionBody } from "../../common/manifest.ts";
import { MergeBook, type MergeItem } from "../../workers/negotiating-group/merges.ts";
import { UploadBook } from "../../workers/negotiating-group/uploads.ts";
import { PagedText, ROW_MAX_BYTES } from "../../workers/shared/paged-text.ts";

let n = 0;
const freshGroup = () => env.GROUP.get(env.GROUP.idFromName(`group-0-rows-${n++}`));

/** A chunk list as long as a 5 GiB part's at 64 KiB chunks: some 8 MB as JSON. */
function manyChunks(count: number): ChunkRef[] {
  const hex = (i: number) => i.toString(16).padStart(64, "0");
  return Array.from({ length: count }, (_, i) => ({ offset: i * 65_536, length: 65_536, chid: hex(i) as Chid }));
}

/** The largest row in any table of the object, in bytes (strings as UTF-8). */
function largestRow(sql: SqlStorage): { table: string; bytes: number } {
  let worst = { table: "", bytes: 0 };
  const tables = sql.exec("PRAGMA table_list").toArray().map((t) => String(t.name)).filter((t) => !t.startsWith("sqlite_") && !t.startsWith("_cf"));
  for (const table of tables) {
    const columns = sql.exec(`PRAGMA table_info(${table})`).toArray().map((c) => `coalesce(length(CAST("${String(c.name)}" AS BLOB)), 0)`);
    if (columns.length === 0) continue;
    const r = sql.exec(`SELECT max(${columns.join(" + ")}) AS bytes FROM ${table}`).one();
    if (Number(r.bytes) > worst.bytes) worst = { table, bytes: Number(r.bytes) };
  }
  return worst;
}

describe("rows stay under Durable Object SQLite's 2 MB", () => {
  it("a multipart part of 80,000 chunks: stored in pages, read back whole, dropped with its upload", async () => {
    await runInDurableObject(freshGroup(), async (_o, state) => {
      const sql = state.storage.sql;
      const uploads = new UploadBook(sql);
      const chunks = manyChunks(80_000);
      expect(JSON.stringify(chunks).length).toBeGreaterThan(4 * ROW_MAX_BYTES);
      uploads.putPart("up-1", { partNumber: 1, etag: "e", size: 80_000 * 65_536, chunks, checksum: null, uploaded: 1 });
      expect(largestRow(sql).bytes).toBeLessThan(ROW_MAX_BYTES);
      expect(uploads.parts("up-1", [1]).get(1)?.chunks).toEqual(chunks);
      expect(uploads.partChunks("up-1").get(1)).toEqual(chunks.map((c) => c.chid));
      // A part uploaded again replaces its pages; dropping the upload removes them.
      uploads.putPart("up-1", { partNumber: 1, etag: "f", size: 65_536, chunks: chunks.slice(0, 1), checksum: null, uploaded: 2 });
      expect(uploads.parts("up-1", [1]).get(1)?.chunks).toEqual(chunks.slice(0, 1));
      uploads.drop("up-1");
      expect(Number(sql.exec("SELECT count(*) AS n FROM part_chunk_pages").one().n)).toBe(0);
    });
  });

  it("a prepared merge item carrying a long chunk list", async () => {
    await runInDurableObject(freshGroup(), async (_o, state) => {
      const sql = state.storage.sql;
      const merges = new MergeBook(sql);
      const nhid = await nhidOf("t", "b", "big");
      const body: VersionBody = { tenant: "t", bucket: "b", key: "big", size: 0, etag: "e", contentType: "", userMeta: {}, httpMeta: {}, chunks: manyChunks(40_000), inline: null, deleteMarker: false, creator: "AK" };
      const item: MergeItem = { nhid, shard: 0, body, versioning: "Enabled", condition: null, holder: "s", replicas: null };
      merges.prepare("m", "0000000000000000000000" as never, [item]);
      expect(largestRow(sql).bytes).toBeLessThan(ROW_MAX_BYTES);
      expect(new MergeBook(sql).rows("m")[0]?.item).toEqual(item);
      merges.done(nhid);
      expect(Number(sql.exec("SELECT count(*) AS n FROM prepared_item_pages").one().n)).toBe(0);
    });
  });

  it("pages never split a character: text of astral characters past a page boundary reads back exact", async () => {
    await runInDurableObject(freshGroup(), async (_o, state) => {
      const pages = new PagedText(state.storage.sql, "probe_pages");
      const text = "a" + "😀".repeat(400_000) + "é".repeat(300_000);
      pages.put("x", text);
      expect(pages.get("x")).toBe(text);
      // The measure sees the pages (about 1 MB each), and they stay under the limit.
      expect(largestRow(state.storage.sql).bytes).toBeGreaterThan(900_000);
      expect(largestRow(state.storage.sql).bytes).toBeLessThan(ROW_MAX_BYTES);
      pages.put("x", "");
      expect(pages.get("x")).toBe("");
      expect(pages.owners()).toEqual(["x"]);
    });
  });
});
