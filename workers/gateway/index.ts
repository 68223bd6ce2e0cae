// The Worker entry: the S3 API for clients, and the dial-in endpoints for node-targets. It
// exports every Durable Object class the one wrangler.toml deploys.

import type { Env } from "../shared/env.ts";
import { handleS3 } from "./api.ts";
import { handleTargetConnect, isTargetPath } from "./targets.ts";

export { Cluster } from "../cluster/cluster.ts";
export { ManifestShard } from "../manifest-shard/shard.ts";
export { NegotiatingGroup } from "../negotiating-group/group.ts";
export { SnapshotCatalog } from "../snapshots/catalog.ts";
export { EditSessionHost } from "./session/host.ts";
export { TenantDirectory } from "../tenant/directory.ts";

export default {
  async fetch(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(req.url);
    if (isTargetPath(url.pathname)) return handleTargetConnect(req, url, env);
    return handleS3(req, env, ctx);
  },
} satisfies ExportedHandler<Env>;
