// Per-tenant quotas (set with the admin API). A tenant's usage is the bytes of its object
// versions, current and noncurrent, summed over the manifest shards (accounts/usage.ts);
// a write that would take it past its quota is refused before any byte is read. Each isolate
// remembers a tenant's quota and usage for KEY_CACHE_SECONDS and adds what it wrote itself
// since, so the limit is soft only by what other isolates accept within that time.

import { tenantUsage } from "../../accounts/usage.ts";
import { registryStub, type ClusterConfig, type Env } from "../../shared/env.ts";
import type { Usage } from "../../manifest-shard/usage.ts";
import { S3Error } from "./errors.ts";

interface Known {
  quotaBytes: number | null;
  usage: Usage;
  until: number;
}

const known = new Map<string, Known>();
const KNOWN_MAX = 1024;

function cacheMs(env: Env): number {
  const s = Number(env.KEY_CACHE_SECONDS ?? 5);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : 5000;
}

async function knownOf(env: Env, cfg: ClusterConfig, tenant: string): Promise<Known> {
  const now = Date.now();
  const hit = known.get(tenant);
  if (hit && hit.until > now) return hit;
  const info = await registryStub(env).getTenant(tenant);
  const quotaBytes = info?.quotaBytes ?? null;
  // Without a quota there is nothing to compare with: the shards are not asked.
  const usage = quotaBytes === null ? { bytes: 0, objects: 0 } : await tenantUsage(env, cfg, tenant);
  const k = { quotaBytes, usage, until: now + cacheMs(env) };
  known.set(tenant, k);
  if (known.size > KNOWN_MAX) known.delete(known.keys().next().value!);
  return k;
}

/**
 * Refuse (403 QuotaExceeded, as Ceph RGW does) a write of `adding` bytes that would take the
 * tenant past its quota; otherwise count it as written here.
 */
export async function requireRoom(env: Env, cfg: ClusterConfig, tenant: string, adding: number): Promise<void> {
  const k = await knownOf(env, cfg, tenant);
  if (k.quotaBytes === null) return;
  if (k.usage.bytes + adding > k.quotaBytes) {
    throw new S3Error("QuotaExceeded", `This write of ${adding} bytes would take tenant ${tenant} past its quota: ${k.usage.bytes} of ${k.quotaBytes} bytes are in use`);
  }
  k.usage = { bytes: k.usage.bytes + adding, objects: k.usage.objects + 1 };
}
