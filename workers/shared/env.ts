// The bindings and settings every part of the Worker sees (wrangler.toml [vars] and secrets).

import { correlationOf, type Correlation } from "../../common/correlation.ts";
import type { ClusterRpc } from "../cluster/rpc.ts";
import type { ShardRpc } from "../manifest-shard/rpc.ts";
import type { GroupRpc } from "../negotiating-group/rpc.ts";
import type { CatalogRpc } from "../snapshots/rpc.ts";
import type { TenantRpc } from "../tenant/rpc.ts";
import type { AccountRpc } from "../accounts/rpc.ts";
import type { TrafficRpc } from "../stats/rpc.ts";

/**
 * Durable Object bindings are typed by each object's RPC interface (its folder's rpc.ts), never by
 * its class: every class imports this module, so importing them here would make one import
 * cycle of every module that reaches env.ts.
 */
export interface Env {
  GROUP: DurableObjectNamespace<GroupRpc>;
  SHARD: DurableObjectNamespace<ShardRpc>;
  CLUSTER: DurableObjectNamespace<ClusterRpc>;
  TENANT: DurableObjectNamespace<TenantRpc>;
  SNAPSHOTS: DurableObjectNamespace<CatalogRpc>;
  /** Editing sessions (gateway/session/host.ts) are reached by fetch alone: no RPC to type. */
  SESSIONS: DurableObjectNamespace;
  ACCOUNTS: DurableObjectNamespace<AccountRpc>;
  TRAFFIC: DurableObjectNamespace<TrafficRpc>;
  S3_REGION: string;
  GROUP_COUNT: string;
  SHARD_COUNT: string;
  REPLICAS: string;
  GROUP_MEMBERS: string;
  CHUNK_MIN: string;
  CHUNK_AVG: string;
  CHUNK_MAX: string;
  INLINE_MAX: string;
  MIN_LIVE_TARGETS?: string;
  REREPLICATE_AFTER_SECONDS?: string;
  REPLACE_AFTER_SECONDS?: string;
  CHUNK_HOLD_SECONDS?: string;
  REMOVED_RETAIN_SECONDS?: string;
  RECLAIM_GRACE_SECONDS?: string;
  UPLOAD_EXPIRE_SECONDS?: string;
  /** How long a lifecycle rule's "day" is (default 86400): shorter only in tests, as Ceph's rgw_lc_debug_interval. */
  LIFECYCLE_DAY_SECONDS?: string;
  /** Bytes of SQLite storage each group and shard keeps to, below Cloudflare's 10 GB per object (default 9 GiB). */
  DO_STORAGE_BUDGET_BYTES?: string;
  READ_AHEAD_BYTES?: string;
  MANIFEST_NODE_ENTRIES?: string;
  /** The bootstrap key of tenant "default"; empty: none (production issues every key with the admin API). */
  S3_ACCESS_KEY?: string;
  S3_SECRET_KEY?: string;
  /** The admin API's bearer token (docs/security.md); empty: the admin API is off. */
  ADMIN_TOKEN?: string;
  /**
   * A host name for the admin API and status page alone (docs/security.md): where set, admin
   * paths answer only on it and S3 requests are refused there, so no tenant's object ever shares
   * the admin's origin. Empty: one host serves both, and object responses are sandboxed.
   */
  ADMIN_HOST?: string;
  /** Seals access keys' secrets in the accounts registry (accounts/sealing.ts). */
  KEY_SEALING_SECRET?: string;
  /** During a rotation of KEY_SEALING_SECRET: the old one, still opening keys until `keys reseal` has re-sealed them all. */
  KEY_SEALING_SECRET_PREVIOUS?: string;
  /** How long an isolate remembers a looked-up key, so how long a revoked key may still work (default 5). */
  KEY_CACHE_SECONDS?: string;
  /** The shared secret targets that were never enrolled join with; unset: enrolled targets only (cluster/target-keys.ts). */
  JOIN_SECRET?: string;
  /** "1" only in the local cluster and tests: development secrets are then taken (gateway/secrets-check.ts). */
  EDGESTORE_DEV?: string;
  /** Keys opaque manifest tokens (snapshot tokens). */
  TOKEN_KEY: string;
  /** "auto" (default): store a chunk compressed where that saves 10% or more; "off": never. */
  COMPRESS_CHUNKS?: string;
  /** An HTTP-form editing session unused this long expires (default 300). */
  SESSION_TTL_SECONDS?: string;
  /** Virtual-hosted-style addressing: requests to "<bucket>.<this domain>" name the bucket by host. Empty: path-style only. */
  S3_BASE_DOMAIN?: string;
  /** Where reads come from when the client does not say (docs/durability.md "Reads go to the nearest copy"): one path for every request... */
  GATEWAY_LOCATION?: string;
  /** ...or, by the Cloudflare colo that took the request, a JSON object colo -> path. */
  READ_LOCATIONS?: string;
  /** The operator's correlation table (common/correlation.ts), JSON; empty: by shared location path. */
  CORRELATION?: string;
  /** "auto" (default): chain a chunk's copies through its targets where all of them accept peers; "off": always fan out. */
  CHAIN_REPLICATION?: string;
}

export interface ClusterConfig {
  groupCount: number;
  shardCount: number;
  replicas: number;
  groupMembers: number;
  chunk: { min: number; avg: number; max: number };
  inlineMax: number;
  /** Compress chunks where that saves space (COMPRESS_CHUNKS = "auto", the default) or never ("off"). */
  compress: boolean;
  /**
   * K (seed 004): a group takes client writes only while at least this many of its members are
   * live (REPLICAS <= K <= GROUP_MEMBERS). Above R, a write is refused before the group is one
   * failure away from being unable to place R copies; repairs are never refused.
   */
  minLive: number;
  /** A member gone this long has its items re-replicated by each group it served (REREPLICATE_AFTER_SECONDS). */
  rereplicateAfterMs: number;
  /** A target gone this long is replaced in every group it was a member of (REPLACE_AFTER_SECONDS). */
  replaceAfterMs: number;
  /** Space reclamation (docs/durability.md): how long a newly stored chunk is kept without a back-reference (CHUNK_HOLD_SECONDS). */
  chunkHoldMs: number;
  /** How long a removed version keeps its data for reads as of an earlier time before it is expunged (REMOVED_RETAIN_SECONDS). */
  removedRetainMs: number;
  /** How long a chunk whose last back-reference went waits before it is deleted (RECLAIM_GRACE_SECONDS). */
  reclaimGraceMs: number;
  /** A multipart upload neither completed nor aborted this long after it began is aborted (UPLOAD_EXPIRE_SECONDS). */
  uploadExpireMs: number;
  /** A lifecycle rule's day (LIFECYCLE_DAY_SECONDS); each shard's pass starts at every day boundary. */
  lifecycleDayMs: number;
  /** What each group and shard keeps its storage to (DO_STORAGE_BUDGET_BYTES; shared/storage-budget.ts). */
  storageBudgetBytes: number;
  /**
   * Bytes of chunks a GET asks for ahead of what it sends (READ_AHEAD_BYTES): a read streams at
   * most this much per round trip to the targets, so set it to their bandwidth × round trip.
   */
  readAheadBytes: number;
  /**
   * Entries per node of a manifest tree (MANIFEST_NODE_ENTRIES): a chunk list longer than this
   * is stored as a tree of nodes of this many entries (common/manifest-tree.ts).
   */
  manifestNodeEntries: number;
  /** How likely two targets are to fail together (CORRELATION): placement and replica counting follow it. */
  correlation: Correlation;
  /** Chain replication where the selected targets advertise peer addresses (CHAIN_REPLICATION). */
  chain: boolean;
}

function int(env: Env, name: keyof Env, min: number): number {
  const v = Number(env[name]);
  if (!Number.isSafeInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got "${String(env[name])}"`);
  return v;
}

/** An optional setting in seconds (fractions allowed, so tests can run short), as milliseconds. */
function seconds(env: Env, name: keyof Env, fallback: number): number {
  if (!env[name]) return fallback * 1000;
  const v = Number(env[name]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number of seconds >= 0, got "${String(env[name])}"`);
  return Math.round(v * 1000);
}

export function configOf(env: Env): ClusterConfig {
  const replicas = int(env, "REPLICAS", 1);
  const groupMembers = int(env, "GROUP_MEMBERS", 1);
  if (groupMembers < replicas) throw new Error(`GROUP_MEMBERS (${groupMembers}) must be >= REPLICAS (${replicas})`);
  const minLive = env.MIN_LIVE_TARGETS ? int(env, "MIN_LIVE_TARGETS", replicas) : replicas;
  if (minLive > groupMembers) throw new Error(`MIN_LIVE_TARGETS (${minLive}) must be between REPLICAS (${replicas}) and GROUP_MEMBERS (${groupMembers})`);
  return {
    groupCount: int(env, "GROUP_COUNT", 1),
    shardCount: int(env, "SHARD_COUNT", 1),
    replicas,
    groupMembers,
    chunk: { min: int(env, "CHUNK_MIN", 64), avg: int(env, "CHUNK_AVG", 128), max: int(env, "CHUNK_MAX", 256) },
    inlineMax: int(env, "INLINE_MAX", 0),
    compress: (env.COMPRESS_CHUNKS ?? "auto") !== "off",
    minLive,
    rereplicateAfterMs: seconds(env, "REREPLICATE_AFTER_SECONDS", 300),
    replaceAfterMs: seconds(env, "REPLACE_AFTER_SECONDS", 900),
    chunkHoldMs: seconds(env, "CHUNK_HOLD_SECONDS", 86_400),
    removedRetainMs: seconds(env, "REMOVED_RETAIN_SECONDS", 3_600),
    reclaimGraceMs: seconds(env, "RECLAIM_GRACE_SECONDS", 600),
    uploadExpireMs: seconds(env, "UPLOAD_EXPIRE_SECONDS", 7 * 86_400),
    lifecycleDayMs: Math.max(seconds(env, "LIFECYCLE_DAY_SECONDS", 86_400), 100),
    storageBudgetBytes: env.DO_STORAGE_BUDGET_BYTES ? int(env, "DO_STORAGE_BUDGET_BYTES", 1) : 9 * 2 ** 30,
    readAheadBytes: env.READ_AHEAD_BYTES ? int(env, "READ_AHEAD_BYTES", 1 << 20) : 8 << 20,
    manifestNodeEntries: env.MANIFEST_NODE_ENTRIES ? Math.min(int(env, "MANIFEST_NODE_ENTRIES", 2), MAX_NODE_ENTRIES) : 4096,
    correlation: correlationOf(env.CORRELATION),
    chain: (env.CHAIN_REPLICATION ?? "auto") !== "off",
  };
}

export function groupStub(env: Env, g: number): DurableObjectStub<GroupRpc> {
  return env.GROUP.get(env.GROUP.idFromName(`group-${g}`));
}

const GROUP_NAME = /^group-(\d+)(?:-|$)/;

/** Which group a group object is, from the name its stub was made with (groupStub's; tests add a suffix). */
export function groupIndexOf(name: string | undefined): number {
  const m = name === undefined ? null : GROUP_NAME.exec(name);
  if (!m) throw new Error(`a negotiating group is reached by its name (group-N), not ${JSON.stringify(name)}`);
  return Number(m[1]);
}

const SHARD_NAME = /^shard-(\d+)$/;

/** A shard's number from its name; null for one reached by another name (tests' own shards). */
export function shardIndexOf(name: string | undefined): number | null {
  const m = name === undefined ? null : SHARD_NAME.exec(name);
  return m ? Number(m[1]) : null;
}

export function shardStub(env: Env, s: number): DurableObjectStub<ShardRpc> {
  return env.SHARD.get(env.SHARD.idFromName(`shard-${s}`));
}

export function clusterStub(env: Env): DurableObjectStub<ClusterRpc> {
  return env.CLUSTER.get(env.CLUSTER.idFromName("cluster"));
}

export function registryStub(env: Env): DurableObjectStub<AccountRpc> {
  // One registry for the cluster (accounts/registry.ts says why that is enough).
  return env.ACCOUNTS.get(env.ACCOUNTS.idFromName("accounts"));
}

export function trafficStub(env: Env): DurableObjectStub<TrafficRpc> {
  return env.TRAFFIC.get(env.TRAFFIC.idFromName("traffic"));
}

export function tenantStub(env: Env, tenant: string): DurableObjectStub<TenantRpc> {
  return env.TENANT.get(env.TENANT.idFromName(`tenant-${tenant}`));
}

export function snapshotCatalogStub(env: Env, tenant: string): DurableObjectStub<CatalogRpc> {
  return env.SNAPSHOTS.get(env.SNAPSHOTS.idFromName(`snapshots-${tenant}`));
}

/** Errors that cross RPC keep only their message: this prefix marks "retry later" (HTTP 503). */

/**
 * One putChunks call carries at most this much payload, and one getChunks reply (as the gateway
 * asks for them), so an RPC argument or result stays far below its 32 MiB cap; a group holds
 * such a batch whole in memory.
 */
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** A node of this many entries stays far below a chunk's size limits (about 200 bytes an entry at most). */
const MAX_NODE_ENTRIES = 16384;
/** Chunks one getChunks call may ask for: a reader's prefetch window is at most this. */
export const MAX_GET_BATCH = 64;
