// The cluster's state in one answer, for the status page, the CLI and the cluster metrics:
// targets (the Cluster object's registry), every group's health, every shard's size and how
// long a snapshot taken now takes to develop, and recent traffic. It asks each group and shard
// once, in parallel, each with a time limit: a part that does not answer shows as unknown
// instead of holding the page.

import type { ShardSplitProgress } from "../manifest-shard/split.ts";
import { formatUvid } from "../../common/ids.ts";
import type { TargetStatus } from "../cluster/rpc.ts";
import type { GroupHealth } from "../negotiating-group/health.ts";
import { clusterStub, configOf, groupStub, shardStub, trafficStub, type Env } from "../shared/env.ts";
import type { TrafficBucket, TrafficCounts } from "../stats/rpc.ts";
import type { StorageUse } from "../shared/storage-budget.ts";

const PART_TIMEOUT_MS = 3_000;
/** How long a shard may take to settle "now" before the status says it is still developing. */
const DEVELOP_WAIT_MS = 2_000;

export interface ShardStatus {
  shard: number;
  versions: number;
  bytes: number;
  /** How long settling "now" took (a snapshot taken now develops in about this long); null: did not settle within the wait. */
  developMs: number | null;
  /** Groups that had not promised past "now" when the wait ended. */
  lagging: number[];
  /** Its SQLite storage against its budget. */
  storage: StorageUse;
  /** Names still being taken in from the shard it split from, or rows handed on still being dropped (manifest-shard/split.ts). */
  split: ShardSplitProgress;
}

export interface ClusterStatus {
  at: number;
  config: { groups: number; shards: number; replicas: number; groupMembers: number; minLive: number };
  epoch: number;
  targets: (TargetStatus & { state: "live" | "down" })[];
  copysets: number;
  warnings: { group: number; pair: string[]; p: number }[];
  groups: (GroupHealth | { group: number; state: "unknown"; error: string })[];
  shards: (ShardStatus | { shard: number; error: string })[];
  traffic: { bucketMs: number; buckets: TrafficBucket[]; totals: TrafficCounts };
}

function limited<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${PART_TIMEOUT_MS} ms`)), PART_TIMEOUT_MS))]);
}

async function shardStatus(env: Env, s: number): Promise<ShardStatus> {
  const stub = shardStub(env, s);
  const t0 = Date.now();
  const [stats, settled] = await Promise.all([stub.stats(), stub.settle(s, formatUvid({ ms: t0, seq: 0, group: 0 }), DEVELOP_WAIT_MS)]);
  return { shard: s, versions: stats.versions, bytes: stats.bytes, storage: stats.storage, split: stats.split, developMs: settled.lagging.length === 0 ? Date.now() - t0 : null, lagging: settled.lagging };
}

export async function clusterStatus(env: Env): Promise<ClusterStatus> {
  const cfg = configOf(env);
  const [cluster, groups, shards, traffic] = await Promise.all([
    clusterStub(env).status(),
    Promise.all(
      Array.from({ length: cfg.groupCount }, (_, g) =>
        limited(groupStub(env, g).health(), `group ${g}`).catch((e: unknown) => ({ group: g, state: "unknown" as const, error: String(e) })),
      ),
    ),
    Promise.all(Array.from({ length: cfg.shardCount }, (_, s) => limited(shardStatus(env, s), `shard ${s}`).catch((e: unknown) => ({ shard: s, error: String(e) })))),
    trafficStub(env).recent(600_000),
  ]);
  return {
    at: Date.now(),
    config: { groups: cfg.groupCount, shards: cfg.shardCount, replicas: cfg.replicas, groupMembers: cfg.groupMembers, minLive: cfg.minLive },
    epoch: cluster.epoch,
    targets: cluster.targets.map((t) => ({ ...t, state: t.live ? "live" : "down" })),
    copysets: cluster.copysets,
    warnings: cluster.warnings,
    groups,
    shards,
    traffic,
  };
}
