// The Worker entry: the S3 API for clients, the admin API for operators, and the dial-in
// endpoints for node-targets. It exports every Durable Object class the one wrangler.toml deploys.

import type { Env } from "../shared/env.ts";
import { handleAdmin, isAdminPath } from "../admin/api.ts";
import { handleS3 } from "./api.ts";
import { newRequestId, S3Error } from "../../common/s3/errors.ts";
import { errorResponse } from "./s3/xml.ts";
import { secretProblems } from "./secrets-check.ts";
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

let toldUnconfigured = false;

/** Every request, while the deployment's secrets are missing or public: 503, saying which (by name). */
function unconfigured(req: Request, problems: string[]): Response {
  if (!toldUnconfigured) console.error(JSON.stringify({ msg: "refusing every request until the secrets are set (docs/deploy.md)", problems }));
  toldUnconfigured = true;
  const requestId = newRequestId();
  const why = `This gateway is not configured for service: ${problems.join("; ")}. Set them with wrangler secret put (docs/deploy.md).`;
  return errorResponse(new S3Error("ServiceUnavailable", why), "/", requestId, req.method === "HEAD");
}

export default {
  async fetch(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const problems = secretProblems(env);
    if (problems.length > 0) return unconfigured(req, problems);
    try {
      const url = new URL(req.url);
      const host = req.headers.get("host") ?? url.host;
      // On a bucket's own host (virtual-hosted style) every path is a key of that bucket.
      const control = bucketOfHost(host, env.S3_BASE_DOMAIN ?? "") === null;
      if (control && isTargetPath(url.pathname)) return await handleTargetConnect(req, url, env);
      const adminHost = env.ADMIN_HOST ?? "";
      if (adminHost !== "" && host === adminHost) return await handleAdmin(req, env, true);
      if (control && adminHost === "" && isAdminPath(url.pathname)) return await handleAdmin(req, env, false);
      return await handleS3(req, env, ctx);
    } catch (e) {
      // Each handler answers its own errors; this is the last line, so that nothing a client
      // sends can make the runtime answer with its own page or a stack trace.
      const requestId = newRequestId();
      console.error(JSON.stringify({ requestId, method: req.method, uncaught: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
      return errorResponse(new S3Error("InternalError", "We encountered an internal error. Please try again."), "/", requestId, req.method === "HEAD");
    }
  },
} satisfies ExportedHandler<Env>;
