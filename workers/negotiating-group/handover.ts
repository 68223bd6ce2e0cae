// The rows of one name or one chunk, as they leave the group that held them for the group a
// split gave them to (split.ts). Which tables hold an id, and how to find it in each, is said
// once here for both ends: the giving group selects and deletes, the taking one inserts. Rows
// cross as plain values and go in by the taker's own column names, never by names they carry.
// Operational state that is about members rather than ids (who is gone, sweeps asked for) and
// records queued for shards stay with the group that made them: it delivers its own outbox.

import type { Chid, Nhid } from "../../common/ids.ts";

export type IdKind = "name" | "chunk";

export type RowValue = string | number | null;
export type Row = Record<string, RowValue>;

export interface TableRows {
  table: string;
  rows: Row[];
}

/** One id's rows, table by table, on their way to the group that now owns it. */
export interface MovedId {
  kind: IdKind;
  id: Nhid | Chid;
  tables: TableRows[];
}

/** What a group answers a split's request for ids. */
export interface HandOverAnswer {
  moved: MovedId[];
  /** Ids in use there right now: ask again. */
  busy: string[];
}

/**
 * Where an id's rows are in one table: `where` finds them by an index (`?1` is the id; `?2`, if
 * used, an upload of the name), `scan` is the id of a row for the background walk, or null if
 * the walk finds the name by another table.
 */
interface Place {
  table: string;
  where: string;
  /** Per upload of the name rather than per name (its parts and their chunk lists). */
  perUpload?: true;
  scan: { id: string; after: string } | null;
}

// A name's key in the reclaim, trim and repair tables is `v:<nhid>/<uvid>/<chid>`: the range
// from `v:<nhid>/` to `v:<nhid>0` ('/' sorts just below '0').
const NAME_KEY = "key >= 'v:' || ?1 || '/' AND key < 'v:' || ?1 || '0'";

// The walk's ranges over those keys, by index: names after one (`v:<after>0` passes all of its
// keys), chunks after one; ';' sorts just above ':'.
const NAME_KEYS_AFTER = "key > 'v:' || ? || '0' AND key < 'v;'";
const CHUNK_KEYS_AFTER = "key > 'c:' || ? AND key < 'c;'";

// Uploads' parts and their chunk lists go before their uploads, by which they are found.
const NAME_PLACES: readonly Place[] = [
  { table: "part_chunk_pages", where: "owner >= ?2 || '/' AND owner < ?2 || '0'", perUpload: true, scan: null },
  { table: "parts", where: "upload_id = ?2", perUpload: true, scan: null },
  { table: "uploads", where: "nhid = ?1", scan: { id: "nhid", after: "nhid > ?" } },
  { table: "completed_uploads", where: "nhid = ?1", scan: { id: "nhid", after: "nhid > ?" } },
  { table: "versions", where: "nhid = ?1", scan: { id: "nhid", after: "nhid > ?" } },
  { table: "names", where: "nhid = ?1", scan: { id: "nhid", after: "nhid > ?" } },
  { table: "version_holds", where: "nhid = ?1", scan: { id: "nhid", after: "nhid > ?" } },
  { table: "expunge", where: "nhid = ?1", scan: { id: "nhid", after: "nhid > ?" } },
  { table: "leases", where: "nhid = ?1", scan: { id: "nhid", after: "nhid > ?" } },
  { table: "reclaims", where: NAME_KEY, scan: { id: "substr(key, 3, 64)", after: NAME_KEYS_AFTER } },
  { table: "trims", where: NAME_KEY, scan: { id: "substr(key, 3, 64)", after: NAME_KEYS_AFTER } },
  { table: "repair_queue", where: NAME_KEY, scan: { id: "substr(key, 3, 64)", after: NAME_KEYS_AFTER } },
];

const CHUNK_PLACES: readonly Place[] = [
  { table: "backrefs", where: "chid = ?1", scan: { id: "chid", after: "chid > ?" } },
  { table: "holds", where: "chid = ?1", scan: { id: "chid", after: "chid > ?" } },
  { table: "tombstones", where: "chid = ?1", scan: { id: "chid", after: "chid > ?" } },
  { table: "tree_nodes", where: "chid = ?1", scan: { id: "chid", after: "chid > ?" } },
  { table: "reclaims", where: "key = 'c:' || ?1", scan: { id: "substr(key, 3)", after: CHUNK_KEYS_AFTER } },
  { table: "trims", where: "key = 'c:' || ?1", scan: { id: "substr(key, 3)", after: CHUNK_KEYS_AFTER } },
  { table: "repair_queue", where: "key = 'c:' || ?1", scan: { id: "substr(key, 3)", after: CHUNK_KEYS_AFTER } },
];

function placesOf(kind: IdKind): readonly Place[] {
  return kind === "name" ? NAME_PLACES : CHUNK_PLACES;
}

/** Where a group looks for ids to hand over, one table at a time: names first, then chunks. */
export const SCAN_STEPS: readonly { kind: IdKind; place: Place & { scan: NonNullable<Place["scan"]> } }[] = [
  ...NAME_PLACES.map((place) => ({ kind: "name" as const, place })),
  ...CHUNK_PLACES.map((place) => ({ kind: "chunk" as const, place })),
].flatMap((s) => (s.place.scan ? [{ kind: s.kind, place: { ...s.place, scan: s.place.scan } }] : []));

export class HandoverRows {
  private readonly sql: SqlStorage;
  private readonly columns = new Map<string, Set<string>>();

  constructor(sql: SqlStorage) {
    this.sql = sql;
    // A name's look-ups by index: its uploads, its completed ones, its owed deletions by key.
    sql.exec("CREATE INDEX IF NOT EXISTS uploads_nhid ON uploads (nhid)");
    sql.exec("CREATE INDEX IF NOT EXISTS completed_uploads_nhid ON completed_uploads (nhid)");
    sql.exec("CREATE INDEX IF NOT EXISTS reclaims_key ON reclaims (key)");
    sql.exec("CREATE INDEX IF NOT EXISTS trims_key ON trims (key)");
  }

  /** Every row of the id, table by table, deleted here. Call inside the transaction that records the hand-over. */
  take(kind: IdKind, id: string): TableRows[] {
    const places = placesOf(kind);
    const uploads = kind === "name" ? this.sql.exec("SELECT upload_id FROM uploads WHERE nhid = ?", id).toArray().map((r) => String(r.upload_id)) : [];
    const each = (p: Place) => (p.perUpload ? uploads.map((u) => [id, u]) : [[id]]);
    const out: TableRows[] = [];
    for (const p of places) {
      const rows = each(p).flatMap((args) => this.sql.exec(`SELECT * FROM ${p.table} WHERE ${p.where}`, ...args).toArray().map(plain));
      if (rows.length > 0) out.push({ table: p.table, rows });
    }
    for (const p of places) for (const args of each(p)) this.sql.exec(`DELETE FROM ${p.table} WHERE ${p.where}`, ...args);
    return out;
  }

  /** Rows a split handed over: inserted by this table's own columns; a row already here stays. */
  put(tables: readonly TableRows[]): void {
    for (const t of tables) {
      const cols = this.columnsOf(t.table);
      for (const row of t.rows) {
        const names = Object.keys(row).filter((c) => cols.has(c));
        if (names.length === 0) continue;
        // A hold already here keeps the later end of the two; any other row here stays as it is.
        const onConflict = t.table === "holds" ? " ON CONFLICT(chid) DO UPDATE SET until = max(until, excluded.until)" : "";
        this.sql.exec(`INSERT${onConflict ? "" : " OR IGNORE"} INTO ${t.table} (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})${onConflict}`, ...names.map((c) => row[c]!));
      }
    }
  }

  /** Up to `limit` distinct ids in a scan step's table after `after`, in order. */
  scan(step: number, after: string, limit: number): string[] {
    const s = SCAN_STEPS[step];
    if (!s) throw new Error(`no scan step ${step}`);
    const { table, scan } = s.place;
    const rows = this.sql.exec(`SELECT DISTINCT ${scan.id} AS id FROM ${table} WHERE ${scan.after} ORDER BY 1 LIMIT ?`, after, limit).toArray();
    return rows.map((r) => String(r.id));
  }

  /** The tables a hand-over may name: only those this code knows, whatever a payload says. */
  private columnsOf(table: string): Set<string> {
    let cols = this.columns.get(table);
    if (cols) return cols;
    if (![...NAME_PLACES, ...CHUNK_PLACES].some((p) => p.table === table)) throw new Error(`a hand-over named table ${JSON.stringify(table)}, which holds no ids`);
    cols = new Set(this.sql.exec(`PRAGMA table_info(${table})`).toArray().map((r) => String(r.name)));
    this.columns.set(table, cols);
    return cols;
  }
}

/** A row as plain values: the group tables hold text and integers only. */
function plain(r: Record<string, SqlStorageValue>): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(r)) {
    if (v !== null && typeof v !== "string" && typeof v !== "number") throw new Error(`column ${k} holds a value a hand-over cannot carry`);
    out[k] = v;
  }
  return out;
}
