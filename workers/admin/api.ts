// The admin API under /_admin/: tenants, keys and quotas (tenants.ts), the live status page
// (status-page.ts, status.ts) and the cluster's metrics (cluster-metrics.ts). It has its own
// credential, the ADMIN_TOKEN Worker secret sent as a bearer token, and never accepts an S3
// key; S3 requests never accept the admin token. Without ADMIN_TOKEN the API is off.

import { lifecycleStatus, runLifecycle } from "./lifecycle.ts";
import { Router } from "itty-router";
import { sha256Hex } from "../../common/s3/sigv4.ts";
import type { Env } from "../shared/env.ts";
import { clusterMetrics } from "./cluster-metrics.ts";
import { AdminError, errorJson, json } from "./errors.ts";
import { rebalanceOf } from "./rebalance.ts";
import { clusterStatus } from "./status.ts";
import { createEnrolment, listTargets, revokeTarget } from "./targets.ts";
import { STATUS_ASSETS } from "./status-page.ts";
import { createKey, createTenant, deleteTenant, getTenant, listKeys, listTenants, resealKeys, revokeKey, rotateKey, setKeyScope, updateTenant } from "./tenants.ts";

export const ADMIN_PREFIX = "/_admin/";

export function isAdminPath(path: string): boolean {
  return path.startsWith(ADMIN_PREFIX);
}

/**
 * The token a request offers: a bearer token only. Never HTTP Basic or a cookie: a browser
 * resends those on its own, so any page a browser opens (an object a tenant stored, another
 * site) could act as the operator. The status page holds the token itself and sends it.
 */
function offeredToken(req: Request): string | null {
  const bearer = /^Bearer (.+)$/.exec(req.headers.get("authorization") ?? "");
  return bearer ? bearer[1]! : null;
}

/**
 * A request that changes something must come from this origin or from no browser at all (the
 * CLI sends no Origin), and carry JSON: an HTML form can send neither a foreign Origin's
 * request with our token nor a JSON content type, so this is the second lock behind the token.
 */
function checkStateChange(req: Request): void {
  if (req.method === "GET" || req.method === "HEAD") return;
  const origin = req.headers.get("origin");
  if (origin !== null && origin !== new URL(req.url).origin) {
    throw new AdminError(403, "CrossOriginRefused", `an admin request from ${origin} is refused: the admin API takes changes from its own origin or from no browser`);
  }
  const empty = req.body === null || req.headers.get("content-length") === "0";
  const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (!empty && type !== "application/json") throw new AdminError(415, "UnsupportedMediaType", "admin request bodies are JSON: Content-Type: application/json");
}

/** Compare digests, so the time taken says nothing about how much of the token was right. */
async function authorized(req: Request, env: Env): Promise<void> {
  if (!env.ADMIN_TOKEN) throw new AdminError(403, "AdminDisabled", "the admin API is off: set the ADMIN_TOKEN secret to turn it on");
  const token = offeredToken(req);
  if (token === null) throw new AdminError(401, "Unauthorized", "send the admin token: Authorization: Bearer <ADMIN_TOKEN>");
  const [given, want] = await Promise.all([sha256Hex(token), sha256Hex(env.ADMIN_TOKEN)]);
  if (given !== want) throw new AdminError(401, "Unauthorized", "the admin token is wrong");
}

type Handler = (req: Request & { params: Record<string, string> }, env: Env) => Promise<Response>;

const router = Router<Request & { params: Record<string, string> }, [Env]>({ base: "/_admin" });
const on = (method: "get" | "post" | "patch" | "delete", path: string, h: Handler) => router[method](path, h);
const p = (req: { params: Record<string, string> }, name: string) => decodeURIComponent(req.params[name]!);

on("get", "/tenants", (_req, env) => listTenants(env));
on("post", "/tenants", (req, env) => createTenant(req, env));
on("get", "/tenants/:tenant", (req, env) => getTenant(env, p(req, "tenant")));
on("patch", "/tenants/:tenant", (req, env) => updateTenant(req, env, p(req, "tenant")));
on("delete", "/tenants/:tenant", (req, env) => deleteTenant(env, p(req, "tenant")));
on("get", "/tenants/:tenant/keys", (req, env) => listKeys(env, p(req, "tenant")));
on("post", "/tenants/:tenant/keys", (req, env) => createKey(req, env, p(req, "tenant")));
on("patch", "/keys/:id", (req, env) => setKeyScope(req, env, p(req, "id")));
on("post", "/keys/reseal", (_req, env) => resealKeys(env));
on("post", "/keys/:id/rotate", (req, env) => rotateKey(req, env, p(req, "id")));
on("delete", "/keys/:id", (req, env) => revokeKey(env, p(req, "id")));
on("post", "/targets/enrolments", (req, env) => createEnrolment(req, env));
on("get", "/targets", (_req, env) => listTargets(env));
on("delete", "/targets/:id", (req, env) => revokeTarget(env, p(req, "id")));
on("get", "/lifecycle", (_req, env) => lifecycleStatus(env));
on("post", "/lifecycle/run", (_req, env) => runLifecycle(env));
on("get", "/status.json", async (_req, env) => json(await clusterStatus(env)));
on("get", "/rebalance", async (_req, env) => json(rebalanceOf(await clusterStatus(env))));
on("get", "/metrics", async (_req, env) => new Response(clusterMetrics(await clusterStatus(env)), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }));

/** `ownHost`: the request came to ADMIN_HOST, where nothing but the admin API answers. */
export async function handleAdmin(req: Request, env: Env, ownHost: boolean): Promise<Response> {
  try {
    const path = new URL(req.url).pathname;
    if (ownHost && !isAdminPath(path)) throw new AdminError(404, "NoSuchEndpoint", `this host serves the admin API (${ADMIN_PREFIX}) alone`);
    if (req.method === "GET" && STATUS_ASSETS.has(path)) return STATUS_ASSETS.get(path)!();
    await authorized(req, env);
    checkStateChange(req);
    const res = (await router.fetch(req, env)) as Response | undefined;
    if (!res) throw new AdminError(404, "NoSuchEndpoint", `${req.method} ${new URL(req.url).pathname} is not an admin endpoint (see docs/security.md)`);
    return res;
  } catch (e) {
    if (e instanceof AdminError) {
      return errorJson(e);
    }
    console.error(JSON.stringify({ msg: "admin request failed", method: req.method, path: new URL(req.url).pathname, error: String(e) }));
    return errorJson(new AdminError(500, "InternalError", "the admin request failed; the gateway's log has the cause"));
  }
}
