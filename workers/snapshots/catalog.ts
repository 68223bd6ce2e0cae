// A tenant's snapshot catalog (seed 003): each snapshot's definition while it is pending, and
// once committed, where its immutable snapshot manifest is stored and the page index that
// finds an entry without reading the whole manifest. One object per tenant: a snapshot can
// never span tenants. The manifest itself lives on the targets like any chunk; this object
// only names it.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../shared/env.ts";
import type { Mask, Qualifier } from "../manifest-shard/select.ts";
import type { CatalogRefusal, CatalogRpc, Edit, SnapshotDefinition, SnapshotInfo, SnapshotLayout, SnapshotState } from "./rpc.ts";

const same = <T extends object>(a: T, b: T) => JSON.stringify(a) === JSON.stringify(b);

export class SnapshotCatalog extends DurableObject<Env> implements CatalogRpc {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS snapshots (
      id TEXT PRIMARY KEY, state TEXT NOT NULL, created INTEGER NOT NULL, revision INTEGER NOT NULL,
      at INTEGER NOT NULL, masks TEXT NOT NULL, qualifiers TEXT NOT NULL,
      committed INTEGER, token TEXT, objects INTEGER, bytes INTEGER, layout TEXT)`);
  }

  private infoOf(r: Record<string, SqlStorageValue>): SnapshotInfo {
    return {
      id: String(r.id),
      state: String(r.state) as SnapshotState,
      created: Number(r.created),
      revision: Number(r.revision),
      at: Number(r.at),
      masks: JSON.parse(String(r.masks)) as Mask[],
      qualifiers: JSON.parse(String(r.qualifiers)) as Qualifier[],
      committed: r.committed === null ? null : Number(r.committed),
      token: r.token === null ? null : String(r.token),
      objects: r.objects === null ? null : Number(r.objects),
      bytes: r.bytes === null ? null : Number(r.bytes),
    };
  }

  private row(id: string): Record<string, SqlStorageValue> | undefined {
    return this.sql.exec("SELECT * FROM snapshots WHERE id = ?", id).toArray()[0];
  }

  private missing(id: string): CatalogRefusal {
    return { refused: "NoSuchSnapshot", message: `There is no snapshot ${id}` };
  }

  async create(id: string, def: SnapshotDefinition): Promise<SnapshotInfo> {
    const now = Date.now();
    this.sql.exec(
      "INSERT INTO snapshots (id, state, created, revision, at, masks, qualifiers) VALUES (?, 'pending', ?, 1, ?, ?, ?)",
      id, now, def.at, JSON.stringify(def.masks), JSON.stringify(def.qualifiers),
    );
    return this.infoOf(this.row(id)!);
  }

  async get(id: string): Promise<SnapshotInfo | null> {
    const r = this.row(id);
    return r ? this.infoOf(r) : null;
  }

  /** A committed snapshot's manifest location; null if there is no such committed snapshot. */
  async layout(id: string): Promise<{ info: SnapshotInfo; layout: SnapshotLayout } | null> {
    const r = this.row(id);
    if (!r || r.layout === null) return null;
    return { info: this.infoOf(r), layout: JSON.parse(String(r.layout)) as SnapshotLayout };
  }

  async list(): Promise<SnapshotInfo[]> {
    return this.sql.exec("SELECT * FROM snapshots ORDER BY created, id").toArray().map((r) => this.infoOf(r));
  }

  /** Change a pending snapshot's time, masks or qualifiers (adding one it has, or dropping one it lacks, changes nothing). */
  async edit(id: string, e: Edit): Promise<SnapshotInfo | CatalogRefusal> {
    const r = this.row(id);
    if (!r) return this.missing(id);
    const info = this.infoOf(r);
    if (info.state !== "pending") return { refused: "InvalidSnapshotState", message: `Snapshot ${id} is committed: it can no longer change` };
    let masks = info.masks.filter((m) => !(e.dropMasks ?? []).some((d) => same(d, m)));
    for (const m of e.addMasks ?? []) if (!masks.some((x) => same(x, m))) masks = [...masks, m];
    let qualifiers = info.qualifiers.filter((q) => !(e.dropQualifiers ?? []).some((d) => same(d, q)));
    for (const q of e.addQualifiers ?? []) if (!qualifiers.some((x) => same(x, q))) qualifiers = [...qualifiers, q];
    this.sql.exec(
      "UPDATE snapshots SET at = ?, masks = ?, qualifiers = ?, revision = revision + 1 WHERE id = ?",
      e.at ?? info.at, JSON.stringify(masks), JSON.stringify(qualifiers), id,
    );
    return this.infoOf(this.row(id)!);
  }

  /**
   * Commit the manifest built from revision `revision`. Refused if the definition changed since
   * (the manifest would not be of it). Committing again what is already committed answers the
   * committed snapshot, so a retried or racing commit of the same definition is harmless.
   */
  async commit(id: string, revision: number, done: { token: string; objects: number; bytes: number; layout: SnapshotLayout }): Promise<SnapshotInfo | CatalogRefusal> {
    const r = this.row(id);
    if (!r) return this.missing(id);
    const info = this.infoOf(r);
    if (info.state === "committed") return info;
    if (info.revision !== revision) return { refused: "InvalidSnapshotState", message: `Snapshot ${id} changed while it was being committed; commit again` };
    this.sql.exec(
      "UPDATE snapshots SET state = 'committed', committed = ?, token = ?, objects = ?, bytes = ?, layout = ? WHERE id = ?",
      Date.now(), done.token, done.objects, done.bytes, JSON.stringify(done.layout), id,
    );
    return this.infoOf(this.row(id)!);
  }

  /** Abort a pending snapshot or delete a committed one. */
  async remove(id: string, onlyPending: boolean): Promise<CatalogRefusal | null> {
    const r = this.row(id);
    if (!r) return this.missing(id);
    if (onlyPending && String(r.state) !== "pending") return { refused: "InvalidSnapshotState", message: `Snapshot ${id} is committed: delete it instead of aborting` };
    this.sql.exec("DELETE FROM snapshots WHERE id = ?", id);
    return null;
  }
}
