// What the accounts registry answers over RPC, and the data its calls carry. Stubs are typed by
// this interface rather than by the AccountRegistry class (registry.ts `implements` it), so
// shared/env.ts can name the binding without importing the object, which itself needs env.ts.

import type { KeyScope, ScopeAccess } from "../shared/key-scope.ts";

export interface TenantInfo {
  name: string;
  created: number;
  /** Bytes of object versions the tenant may keep (null: no limit). */
  quotaBytes: number | null;
}

export type KeyState = "active" | "expiring" | "expired" | "revoked";

export interface KeyInfo {
  accessKeyId: string;
  tenant: string;
  created: number;
  /** Set by a rotation: the key stops working then. */
  expires: number | null;
  revoked: number | null;
  state: KeyState;
  /** What it may do, as the admin API shows it; null: all its tenant may. */
  scope: { access: ScopeAccess; buckets: string[] } | null;
}

/** What the gateway needs to verify a signature: whose key, and its sealed secret. */
export interface KeyLookup {
  tenant: string;
  sealed: string;
  /** Until when the answer may be cached: a rotated key's expiry caps it. */
  expires: number | null;
  scope: KeyScope | null;
}

/** registry.ts says what each call does. */
export interface AccountRpc extends Rpc.DurableObjectBranded {
  createTenant(name: string, quotaBytes: number | null): Promise<boolean>;
  getTenant(name: string): Promise<TenantInfo | null>;
  listTenants(): Promise<TenantInfo[]>;
  setQuota(name: string, quotaBytes: number | null): Promise<boolean>;
  deleteTenant(name: string): Promise<boolean>;
  addKey(tenant: string, key: { id: string; sealed: string; scope: KeyScope | null }): Promise<KeyInfo | null>;
  setKeyScope(accessKeyId: string, scope: KeyScope | null): Promise<KeyInfo | null>;
  keyInfo(accessKeyId: string): Promise<KeyInfo | null>;
  listKeys(tenant: string): Promise<KeyInfo[]>;
  rotateKey(oldId: string, newId: string, sealed: string, graceMs: number): Promise<{ old: KeyInfo; key: KeyInfo } | null>;
  revokeKey(accessKeyId: string): Promise<KeyInfo | null>;
  sealedPage(after: string, limit: number): Promise<{ id: string; sealed: string }[]>;
  reseal(id: string, was: string, sealed: string): Promise<boolean>;
  lookupKey(accessKeyId: string): Promise<KeyLookup | null>;
  claimPublicBucket(bucket: string, tenant: string): Promise<boolean>;
  releasePublicBucket(bucket: string, tenant: string): Promise<void>;
  publicBucketTenant(bucket: string): Promise<string | null>;
  noteLifecycleTenant(tenant: string): Promise<void>;
  lifecycleTenants(): Promise<string[]>;
}
