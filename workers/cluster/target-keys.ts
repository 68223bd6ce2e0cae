// Each target's own credential, kept by the Cluster object. An operator makes a one-time
// enrolment token (admin API); `node-target init --enrol-token` trades it for the target's id
// and key, which the target keeps in its data directory and presents on every connect. Only
// SHA-256 digests of tokens and keys are stored: a leaked database row lets nobody connect.
//
// A target enrolled this way owns its id: the shared join secret can no longer connect as it,
// so nobody holding that secret can take over or retire it. Revocation refuses its connects
// and takes it out of every group's view, as writer and as reader.

import { sha256Hex } from "../../common/s3/sigv4.ts";
import { asTargetId, newTargetId, type TargetId } from "../../common/ids.ts";

export interface TargetKeyInfo {
  id: TargetId;
  enrolled: number;
  revoked: number | null;
}

export type Admission = { admitted: true } | { admitted: false; reason: string };

/** 32 random bytes, base64url: the shape of every token and key. */
function randomToken(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return prefix + btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export class TargetKeys {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS target_keys (id TEXT PRIMARY KEY, key_hash TEXT NOT NULL, enrolled INTEGER NOT NULL, revoked INTEGER)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS enrolments (token_hash TEXT PRIMARY KEY, expires INTEGER NOT NULL)`);
  }

  /** A one-time enrolment token, valid for `ttlMs`. */
  async createEnrolment(ttlMs: number, now: number): Promise<{ token: string; expires: number }> {
    this.sql.exec("DELETE FROM enrolments WHERE expires < ?", now);
    const token = randomToken("et_");
    const expires = now + ttlMs;
    this.sql.exec("INSERT INTO enrolments (token_hash, expires) VALUES (?, ?)", await sha256Hex(token), expires);
    return { token, expires };
  }

  /**
   * Trade an enrolment token (used up either way) for an id and its key. `id`: a target already
   * known by that id (enrolling an existing data directory); it must not have a key already.
   */
  async enrol(token: string, id: TargetId | null, now: number): Promise<{ id: TargetId; key: string } | { refused: string }> {
    const hash = await sha256Hex(token);
    const row = this.sql.exec("SELECT expires FROM enrolments WHERE token_hash = ?", hash).toArray()[0];
    if (!row) return { refused: "unknown or used enrolment token" };
    this.sql.exec("DELETE FROM enrolments WHERE token_hash = ?", hash);
    if (Number(row.expires) < now) return { refused: "the enrolment token has expired" };
    const target = id ?? newTargetId();
    if (this.sql.exec("SELECT 1 FROM target_keys WHERE id = ?", target).toArray().length > 0) return { refused: `target ${target} is enrolled already` };
    const key = randomToken("tk_");
    this.sql.exec("INSERT INTO target_keys (id, key_hash, enrolled, revoked) VALUES (?, ?, ?, NULL)", target, await sha256Hex(key), now);
    return { id: target, key };
  }

  /**
   * May this connect claim `id`? With a key: the id's own, not revoked. Without one (the shared
   * join secret, already checked by the gateway): only an id no key was ever issued for.
   */
  async admit(id: TargetId, key: string | null): Promise<Admission> {
    const row = this.sql.exec("SELECT key_hash, revoked FROM target_keys WHERE id = ?", id).toArray()[0];
    if (!row) return key === null ? { admitted: true } : { admitted: false, reason: "no key was issued for this target" };
    if (row.revoked !== null) return { admitted: false, reason: "this target's key was revoked" };
    if (key === null) return { admitted: false, reason: "this target is enrolled: it connects with its own key, not the join secret" };
    return (await sha256Hex(key)) === String(row.key_hash) ? { admitted: true } : { admitted: false, reason: "wrong key for this target" };
  }

  /**
   * Revoke a target; false if it was revoked already. A target that joined with the shared
   * secret (no key) is revoked too: its id is then refused however it connects.
   */
  revoke(id: TargetId, now: number): boolean {
    if (this.sql.exec("UPDATE target_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", now, id).rowsWritten > 0) return true;
    return this.sql.exec("INSERT INTO target_keys (id, key_hash, enrolled, revoked) VALUES (?, '', ?, ?) ON CONFLICT(id) DO NOTHING", id, now, now).rowsWritten > 0;
  }

  revokedIds(): Set<TargetId> {
    return new Set(this.sql.exec("SELECT id FROM target_keys WHERE revoked IS NOT NULL").toArray().map((r) => asTargetId(r.id)));
  }

  list(): TargetKeyInfo[] {
    return this.sql.exec("SELECT id, enrolled, revoked FROM target_keys ORDER BY enrolled").toArray().map((r) => ({
      id: asTargetId(r.id),
      enrolled: Number(r.enrolled),
      revoked: r.revoked === null ? null : Number(r.revoked),
    }));
  }
}
