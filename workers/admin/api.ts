// The admin API under /_admin/: tenants, keys and quotas (tenants.ts), the live status page
// (status-page.ts, status.ts) and the cluster's metrics (cluster-metrics.ts). It has its own
// credential, the ADMIN_TOKEN Worker secret sent as a bearer token, and never accepts an S3
// key; S3 requests never accept the admin token. Without ADMIN_TOKEN the API is off.

import { Router } from "itty-router";
import { sha256Hex } from "../../common/sigv4.ts";
import type { Env } from "../shared/env.ts";
import { clusterMetrics } from "./cluster-metrics.ts";
import { AdminError, errorJson, json } from "./errors.ts";
import { clusterStatus } from "./status.ts";
import { STATUS_PAGE } from "./status-page.ts";
import { createKey, createTenant, deleteTenant, getTenant, listKeys, listTenants, revokeKey, rotateKey, updateTenant } from "./tenants.ts";

export const ADMIN_PREFIX = "/_admin/";

export function isAdminPath(path: string): boolean {
  return path.startsWith(ADMIN_PREFIX);
}

/** The token a request offers: a bearer token, or (from a browser, for the status page) the password of HTTP Basic. */
function offeredToken(req: Request): string | null {
  const h = req.headers.get("authorization") ?? "";
  const bearer = /^Bearer (.+)$/.exec(h);
  if (bearer) return bearer[1]!;
  const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(h);
  if (!basic) return null;
  try {
    const pair = atob(basic[1]!);
    return pair.slice(pair.indexOf(":") + 1);
  } catch {
    return null;
  }
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
on("post", "/tenants/:tenant/keys", (req, env) => createKey(env, p(req, "tenant")));
on("post", "/keys/:id/rotate", (req, env) => rotateKey(req, env, p(req, "id")));
on("delete", "/keys/:id", (req, env) => revokeKey(env, p(req, "id")));
on("get", "/status", async () => new Response(STATUS_PAGE, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } }));
on("get", "/status.json", async (_req, env) => json(await clusterStatus(env)));
on("get", "/metrics", async (_req, env) => new Response(clusterMetrics(await clusterStatus(env)), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }));

export async function handleAdmin(req: Request, env: Env): Promise<Response> {
  try {
    await authorized(req, env);
    const res = (await router.fetch(req, env)) as Response | undefined;
    if (!res) throw new AdminError(404, "NoSuchEndpoint", `${req.method} ${new URL(req.url).pathname} is not an admin endpoint (see docs/security.md)`);
    return res;
  } catch (e) {
    if (e instanceof AdminError) {
      const res = errorJson(e);
      // A browser asked for the page: let it prompt for the token (as the password).
      if (e.status === 401 && new URL(req.url).pathname === `${ADMIN_PREFIX}status`) res.headers.set("www-authenticate", 'Basic realm="edgestore-admin", charset="UTF-8"');
      return res;
    }
    console.error(JSON.stringify({ msg: "admin request failed", method: req.method, path: new URL(req.url).pathname, error: String(e) }));
    return errorJson(new AdminError(500, "InternalError", e instanceof Error ? e.message : String(e)));
  }
}
