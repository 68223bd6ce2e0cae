// The accounts registry: tenants, their quotas, and their access keys (sealed, see sealing.ts).
// One object for the whole cluster: it is written only by the admin API, and the gateway reads
// a key here once per KEY_CACHE_SECONDS per isolate (auth/credentials.ts), so it is not on the
// path of every request. A tenant's buckets live in its own TenantDirectory, not here.

import { scopeOfJson, scopeToJson, scopeView, type KeyScope } from "../shared/key-scope.ts";
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../shared/env.ts";
import type { AccountRpc, KeyInfo, KeyLookup, KeyState, TenantInfo } from "./rpc.ts";

export const DEFAULT_TENANT = "default";

const TENANT_RE = /^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$/;

/** Why a tenant name is not acceptable, or null. */
export function tenantNameProblem(name: string): string | null {
  return TENANT_RE.test(name) ? null : "a tenant name is 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit";
}

export class AccountRegistry extends DurableObject<Env> implements AccountRpc {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created INTEGER NOT NULL, quota_bytes INTEGER)");
    this.sql.exec(`CREATE TABLE IF NOT EXISTS access_keys (
      id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants (name), sealed TEXT NOT NULL,
      created INTEGER NOT NULL, expires INTEGER, revoked INTEGER)`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS access_keys_tenant ON access_keys (tenant)");
    // What the key may do (shared/key-scope.ts), as JSON; null: all its tenant may.
    if (!this.sql.exec("PRAGMA table_info(access_keys)").toArray().some((c) => c.name === "scope")) this.sql.exec("ALTER TABLE access_keys ADD COLUMN scope TEXT");
    // Bucket names are per tenant, but an anonymous request names no tenant: a bucket made
    // public claims its name here, across tenants, so such a request finds its owner.
    this.sql.exec("CREATE TABLE IF NOT EXISTS public_buckets (bucket TEXT PRIMARY KEY, tenant TEXT NOT NULL)");
    // Tenants that have put lifecycle rules: where each manifest shard's daily pass looks for them.
    this.sql.exec("CREATE TABLE IF NOT EXISTS lifecycle_tenants (tenant TEXT PRIMARY KEY)");
    // The tenant of the bootstrap key (S3_ACCESS_KEY): always there, so it can have a quota and keys of its own.
    this.sql.exec("INSERT OR IGNORE INTO tenants (name, created) VALUES (?, ?)", DEFAULT_TENANT, Date.now());
  }

  private tenantOf(r: Record<string, SqlStorageValue>): TenantInfo {
    return { name: String(r.name), created: Number(r.created), quotaBytes: r.quota_bytes === null ? null : Number(r.quota_bytes) };
  }

  private keyOf(r: Record<string, SqlStorageValue>, now: number): KeyInfo {
    const expires = r.expires === null ? null : Number(r.expires);
    const revoked = r.revoked === null ? null : Number(r.revoked);
    const state: KeyState = revoked !== null ? "revoked" : expires === null ? "active" : expires <= now ? "expired" : "expiring";
    const scope = scopeOfJson(r.scope);
    return { accessKeyId: String(r.id), tenant: String(r.tenant), created: Number(r.created), expires, revoked, state, scope: scope ? scopeView(scope) : null };
  }

  /** False if a tenant of that name exists. */
  async createTenant(name: string, quotaBytes: number | null): Promise<boolean> {
    return this.sql.exec("INSERT OR IGNORE INTO tenants (name, created, quota_bytes) VALUES (?, ?, ?)", name, Date.now(), quotaBytes).rowsWritten > 0;
  }

  async getTenant(name: string): Promise<TenantInfo | null> {
    const r = this.sql.exec("SELECT name, created, quota_bytes FROM tenants WHERE name = ?", name).toArray()[0];
    return r ? this.tenantOf(r) : null;
  }

  async listTenants(): Promise<TenantInfo[]> {
    return this.sql.exec("SELECT name, created, quota_bytes FROM tenants ORDER BY name").toArray().map((r) => this.tenantOf(r));
  }

  /** False if there is no such tenant. */
  async setQuota(name: string, quotaBytes: number | null): Promise<boolean> {
    return this.sql.exec("UPDATE tenants SET quota_bytes = ? WHERE name = ?", quotaBytes, name).rowsWritten > 0;
  }

  /** Remove a tenant and every key of it (the caller has checked it has no buckets). False if there was none. */
  async deleteTenant(name: string): Promise<boolean> {
    return this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM access_keys WHERE tenant = ?", name);
      this.sql.exec("DELETE FROM public_buckets WHERE tenant = ?", name);
      this.sql.exec("DELETE FROM lifecycle_tenants WHERE tenant = ?", name);
      return this.sql.exec("DELETE FROM tenants WHERE name = ?", name).rowsWritten > 0;
    });
  }

  /** Claim a public bucket name for a tenant; false if another tenant's public bucket holds it. */
  async claimPublicBucket(bucket: string, tenant: string): Promise<boolean> {
    this.sql.exec("INSERT INTO public_buckets (bucket, tenant) VALUES (?, ?) ON CONFLICT(bucket) DO NOTHING", bucket, tenant);
    return this.sql.exec("SELECT tenant FROM public_buckets WHERE bucket = ?", bucket).one().tenant === tenant;
  }

  /** Give the name up (the bucket is no longer public, or gone); only its claimant can. */
  async releasePublicBucket(bucket: string, tenant: string): Promise<void> {
    this.sql.exec("DELETE FROM public_buckets WHERE bucket = ? AND tenant = ?", bucket, tenant);
  }

  /** Whose public bucket has this name, if any. */
  async publicBucketTenant(bucket: string): Promise<string | null> {
    const row = this.sql.exec("SELECT tenant FROM public_buckets WHERE bucket = ?", bucket).toArray()[0];
    return row ? String(row.tenant) : null;
  }

  /** The tenant has lifecycle rules (or had: a tenant whose directory has none left costs a pass one call). */
  async noteLifecycleTenant(tenant: string): Promise<void> {
    this.sql.exec("INSERT OR IGNORE INTO lifecycle_tenants (tenant) VALUES (?)", tenant);
  }

  async lifecycleTenants(): Promise<string[]> {
    return this.sql.exec("SELECT tenant FROM lifecycle_tenants ORDER BY tenant").toArray().map((r) => String(r.tenant));
  }

  /** Add a key to a tenant; null if the tenant does not exist. */
  async addKey(tenant: string, key: { id: string; sealed: string; scope: KeyScope | null }): Promise<KeyInfo | null> {
    if (!(await this.getTenant(tenant))) return null;
    const now = Date.now();
    this.sql.exec("INSERT INTO access_keys (id, tenant, sealed, created, scope) VALUES (?, ?, ?, ?, ?)", key.id, tenant, key.sealed, now, scopeToJson(key.scope));
    return this.keyInfo(key.id);
  }

  /** Replace a key's scope (null: none); null if there is no such key. */
  async setKeyScope(accessKeyId: string, scope: KeyScope | null): Promise<KeyInfo | null> {
    this.sql.exec("UPDATE access_keys SET scope = ? WHERE id = ?", scopeToJson(scope), accessKeyId);
    return this.keyInfo(accessKeyId);
  }

  async keyInfo(accessKeyId: string): Promise<KeyInfo | null> {
    const r = this.sql.exec("SELECT id, tenant, created, expires, revoked, scope FROM access_keys WHERE id = ?", accessKeyId).toArray()[0];
    return r ? this.keyOf(r, Date.now()) : null;
  }

  /** In the order they were issued (rowid breaks ties within a millisecond). */
  async listKeys(tenant: string): Promise<KeyInfo[]> {
    const now = Date.now();
    return this.sql.exec("SELECT id, tenant, created, expires, revoked, scope FROM access_keys WHERE tenant = ? ORDER BY created, rowid", tenant).toArray().map((r) => this.keyOf(r, now));
  }

  /**
   * Rotation: a new key for the old one's tenant, and the old one expiring `graceMs` from now (or
   * sooner if it already was), so clients can move over without an outage. Null if the old key
   * does not exist or no longer works.
   */
  async rotateKey(oldId: string, newId: string, sealed: string, graceMs: number): Promise<{ old: KeyInfo; key: KeyInfo } | null> {
    const now = Date.now();
    const old = await this.keyInfo(oldId);
    if (!old || old.state === "revoked" || old.state === "expired") return null;
    this.ctx.storage.transactionSync(() => {
      // The new key may do what the old one could, no more.
      this.sql.exec("INSERT INTO access_keys (id, tenant, sealed, created, scope) SELECT ?, tenant, ?, ?, scope FROM access_keys WHERE id = ?", newId, sealed, now, oldId);
      this.sql.exec("UPDATE access_keys SET expires = min(coalesce(expires, ?1), ?1) WHERE id = ?2", now + graceMs, oldId);
    });
    return { old: (await this.keyInfo(oldId))!, key: (await this.keyInfo(newId))! };
  }

  /** Revoke at once (the gateway's caches forget it within KEY_CACHE_SECONDS). Null if there is no such key. */
  async revokeKey(accessKeyId: string): Promise<KeyInfo | null> {
    this.sql.exec("UPDATE access_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", Date.now(), accessKeyId);
    return this.keyInfo(accessKeyId);
  }

  /** Every key's sealed secret, by id, a page at a time after `after` (re-sealing under a new sealing secret). */
  async sealedPage(after: string, limit: number): Promise<{ id: string; sealed: string }[]> {
    return this.sql.exec("SELECT id, sealed FROM access_keys WHERE id > ? ORDER BY id LIMIT ?", after, limit).toArray().map((r) => ({ id: String(r.id), sealed: String(r.sealed) }));
  }

  /** Replace a key's sealed secret if it is still `was` (a concurrent rotation wins); false otherwise. */
  async reseal(id: string, was: string, sealed: string): Promise<boolean> {
    return this.sql.exec("UPDATE access_keys SET sealed = ? WHERE id = ? AND sealed = ?", sealed, id, was).rowsWritten > 0;
  }

  /** A key that works now, for signature checks; null if unknown, revoked or expired. */
  async lookupKey(accessKeyId: string): Promise<KeyLookup | null> {
    const r = this.sql.exec("SELECT tenant, sealed, expires, revoked, scope FROM access_keys WHERE id = ?", accessKeyId).toArray()[0];
    if (!r || r.revoked !== null || (r.expires !== null && Number(r.expires) <= Date.now())) return null;
    return { tenant: String(r.tenant), sealed: String(r.sealed), expires: r.expires === null ? null : Number(r.expires), scope: scopeOfJson(r.scope) };
  }
}
