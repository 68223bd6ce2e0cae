// The Worker entry: the S3 API for clients, the admin API for operators, and the dial-in
// endpoints for node-targets. It exports every Durable Object class the one wrangler.toml deploys.

import type { Env } from "../shared/env.ts";
import { handleAdmin, isAdminPath } from "../admin/api.ts";
import { handleS3 } from "./api.ts";
import { bucketOfHost } from "./router.ts";
import { handleTargetConnect, isTargetPath } from "./targets.ts";

export { AccountRegistry } from "../accounts/registry.ts";
export { Cluster } from "../cluster/cluster.ts";
export { ManifestShard } from "../manifest-shard/shard.ts";
export { NegotiatingGroup } from "../negotiating-group/group.ts";
export { SnapshotCatalog } from "../snapshots/catalog.ts";
export { EditSessionHost } from "./session/host.ts";
export { TenantDirectory } from "../tenant/directory.ts";
export { TrafficStats } from "../stats/traffic.ts";

export default {
  async fetch(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(req.url);
    // On a bucket's own host (virtual-hosted style) every path is a key of that bucket.
    const control = bucketOfHost(req.headers.get("host") ?? url.host, env.S3_BASE_DOMAIN ?? "") === null;
    if (control && isTargetPath(url.pathname)) return handleTargetConnect(req, url, env);
    if (control && isAdminPath(url.pathname)) return handleAdmin(req, env);
    return handleS3(req, env, ctx);
  },
} satisfies ExportedHandler<Env>;
