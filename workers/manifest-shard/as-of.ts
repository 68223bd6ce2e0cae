// Point-in-time reads from one shard's version records. A version exists from its stamp until
// its removal's stamp (deleted by id, or a null version overwritten); the version current at T
// is a key's newest version that exists at T, and if that is a delete marker the key has no
// object at T. `bound` is the first UVID after T (every stamp at or before T sorts below it),
// so "exists at T" is: stamped below the bound, and not removed below it.
//
// The caller checks completeness first (sources.ts): these answer from what the shard holds.
// listing.ts and versions.ts use the same terms for their listings as of a time.

import { asChid, asUvid, type Chid, type Uvid } from "../../common/ids.ts";

/** The longest a point-in-time answer may wait for completeness. */
export const AS_OF_WAIT_MAX_MS = 30_000;

/** SQL: version row `a` exists at the bound (two `?` for it). Removals from before removal times were kept count as always removed. */
export function existsAt(a: string): string {
  return `${a}.uvid < ? AND (${a}.removed = 0 OR (${a}.removed_at IS NOT NULL AND ${a}.removed_at >= ?))`;
}

/** SQL: row `v` is its key's newest version that exists at the bound (four `?` for it). */
export function newestAt(v: string): string {
  return `${existsAt(v)} AND ${v}.uvid = (SELECT MAX(w.uvid) FROM versions w
    WHERE w.tenant = ${v}.tenant AND w.bucket = ${v}.bucket AND w.key = ${v}.key AND ${existsAt("w")})`;
}

export interface VersionAt {
  uvid: Uvid;
  vmChid: Chid;
  isNull: boolean;
  deleteMarker: boolean;
}

/** The version of a key current at the bound, delete marker included; null if it had none. */
export function versionAt(sql: SqlStorage, name: { tenant: string; bucket: string; key: string }, bound: Uvid): VersionAt | null {
  const { tenant, bucket, key } = name;
  const r = sql
    .exec(
      `SELECT uvid, vm_chid, is_null, delete_marker FROM versions v WHERE tenant = ? AND bucket = ? AND key = ? AND ${existsAt("v")} ORDER BY uvid DESC LIMIT 1`,
      tenant, bucket, key, bound, bound,
    )
    .toArray()[0];
  if (!r) return null;
  return { uvid: asUvid(r.uvid), vmChid: asChid(r.vm_chid), isNull: Number(r.is_null) === 1, deleteMarker: Number(r.delete_marker) === 1 };
}
