// Per-tenant quotas (set with the admin API). A tenant's usage is the bytes of its object
// versions, current and noncurrent, summed over the manifest shards (accounts/usage.ts); a write
// that would take it past its quota is refused before any byte is read. Every path that stores
// bytes checks: PUT, copies, each multipart part and the completed upload, and an editing
// session's commit.
//
// Each isolate remembers a tenant's quota and the shards' figure for KEY_CACHE_SECONDS. On top
// of that figure it counts what it has accepted and not finished (a reservation, held by the
// request or the session until its write commits or fails) and what it finished since the
// figure was read (the shards may not have had it then). A refresh therefore never forgets a
// write in flight, which would let a tenant write past its quota by writing fast. The limit is
// soft only by what other isolates accept within the cache time.

import { tenantUsage } from "../../accounts/usage.ts";
import { registryStub, type ClusterConfig, type Env } from "../../shared/env.ts";
import type { Usage } from "../../manifest-shard/usage.ts";
import { S3Error } from "../../../common/s3/errors.ts";

interface Known {
  quotaBytes: number | null;
  /** The shards' figure, read at `at`. */
  usage: Usage;
  at: number;
  until: number;
  /** Bytes this isolate's writes committed since `at`. */
  since: number;
}

/** Bytes accepted against a tenant's quota until the write that asked commits or fails. */
export interface Reservation {
  settle(committed: boolean): void;
}

/** What asks for room: the tenant, and where its reservations are kept until they settle. */
export interface RoomScope {
  env: Env;
  cfg: ClusterConfig;
  tenant: string;
  reservations: Reservation[];
}

const known = new Map<string, Known>();
const KNOWN_MAX = 1024;
/** A reservation never settled (a lost request) stops counting after this long. */
const RESERVATION_MAX_MS = 15 * 60_000;
const inFlight = new Map<string, Set<{ bytes: number; at: number }>>();

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
  const k = { quotaBytes, usage, at: now, until: now + cacheMs(env), since: 0 };
  known.set(tenant, k);
  if (known.size > KNOWN_MAX) known.delete(known.keys().next().value!);
  return k;
}

function reservedBytes(tenant: string, now: number): number {
  const set = inFlight.get(tenant);
  if (!set) return 0;
  let n = 0;
  for (const r of set) {
    if (now - r.at > RESERVATION_MAX_MS) set.delete(r);
    else n += r.bytes;
  }
  if (set.size === 0) inFlight.delete(tenant);
  return n;
}

/**
 * Refuse (403 QuotaExceeded, as Ceph RGW does) a write of `adding` bytes that would take the
 * tenant past its quota; otherwise reserve them in `scope` until it settles.
 */
export async function requireRoom(scope: RoomScope, adding: number): Promise<void> {
  await requireRoomFor(scope, async () => adding);
}

/** requireRoom for a size that costs something to learn (a multipart upload's parts): asked only when the tenant has a quota. */
export async function requireRoomFor(scope: RoomScope, sizeOf: () => Promise<number>): Promise<void> {
  const { env, cfg, tenant } = scope;
  const k = await knownOf(env, cfg, tenant);
  if (k.quotaBytes === null) return;
  const adding = await sizeOf();
  const now = Date.now();
  const inUse = k.usage.bytes + k.since + reservedBytes(tenant, now);
  if (inUse + adding > k.quotaBytes) {
    throw new S3Error("QuotaExceeded", `This write of ${adding} bytes would take tenant ${tenant} past its quota: ${inUse} of ${k.quotaBytes} bytes are in use`);
  }
  const entry = { bytes: adding, at: now };
  const set = inFlight.get(tenant) ?? new Set();
  set.add(entry);
  inFlight.set(tenant, set);
  scope.reservations.push({
    settle(committed: boolean) {
      if (!set.delete(entry)) return;
      // The figure in the cache may predate this commit: count it until the next read.
      const cached = known.get(tenant);
      if (committed && cached) cached.since += adding;
    },
  });
}

/** Settle every reservation a request or a commit took: committed, or failed. */
export function settleRoom(scope: Pick<RoomScope, "reservations">, committed: boolean): void {
  for (const r of scope.reservations.splice(0)) r.settle(committed);
}
