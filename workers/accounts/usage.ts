// A tenant's usage over the whole cluster: the sum of what each manifest shard counts for it
// (manifest-shard/usage.ts). One small lookup per shard, never a scan.

import type { Usage } from "../manifest-shard/usage.ts";
import { shardStub, type ClusterConfig, type Env } from "../shared/env.ts";

export async function tenantUsage(env: Env, cfg: ClusterConfig, tenant: string): Promise<Usage> {
  const parts = await Promise.all(Array.from({ length: cfg.shardCount }, (_, s) => shardStub(env, s).tenantUsage(tenant)));
  return parts.reduce((a, u) => ({ bytes: a.bytes + u.bytes, objects: a.objects + u.objects }), { bytes: 0, objects: 0 });
}
