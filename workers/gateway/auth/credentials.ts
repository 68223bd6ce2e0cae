// Access keys and the tenant each belongs to. The bootstrap key from the Worker's settings
// (S3_ACCESS_KEY / S3_SECRET_KEY, tenant "default") for a cluster's first steps and local
// development; every other key is issued by the admin API and kept sealed in the accounts
// registry. Each isolate remembers a looked-up key for KEY_CACHE_SECONDS, so that a busy
// client costs the registry one call per that period, not one per request; a revoked key
// therefore stops working within that time.

import { constantTimeEqual } from "../../../common/s3/sigv4.ts";
import { ISSUED_KEY_ID, openSealed } from "../../accounts/sealing.ts";
import { DEFAULT_TENANT } from "../../accounts/registry.ts";
import { registryStub, type Env } from "../../shared/env.ts";
import type { KeyScope } from "../../shared/key-scope.ts";

export interface Credential {
  secret: string;
  tenant: string;
  /** What the key may do (shared/key-scope.ts); null: all its tenant may. */
  scope: KeyScope | null;
}

const DEFAULT_CACHE_SECONDS = 5;
const CACHE_MAX = 4096;

const cache = new Map<string, { credential: Credential | null; until: number }>();

function cacheMs(env: Env): number {
  const s = Number(env.KEY_CACHE_SECONDS ?? DEFAULT_CACHE_SECONDS);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : DEFAULT_CACHE_SECONDS * 1000;
}

export async function lookupCredential(env: Env, accessKey: string): Promise<Credential | null> {
  if (env.S3_ACCESS_KEY && env.S3_SECRET_KEY && constantTimeEqual(accessKey, env.S3_ACCESS_KEY)) {
    return { secret: env.S3_SECRET_KEY, tenant: DEFAULT_TENANT, scope: null };
  }
  // Issued keys have one shape (accounts/sealing.ts): anything else is unknown without asking
  // the one registry object, so a flood of made-up key ids costs it nothing.
  if (!ISSUED_KEY_ID.test(accessKey)) return null;
  const now = Date.now();
  const hit = cache.get(accessKey);
  if (hit && hit.until > now) return hit.credential;
  const found = await registryStub(env).lookupKey(accessKey);
  const credential = found ? { tenant: found.tenant, scope: found.scope, secret: await openSealed({ current: env.KEY_SEALING_SECRET, previous: env.KEY_SEALING_SECRET_PREVIOUS }, accessKey, found.sealed) } : null;
  // A key that is expiring is not remembered past its expiry.
  cache.set(accessKey, { credential, until: Math.min(now + cacheMs(env), found?.expires ?? Infinity) });
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  return credential;
}
