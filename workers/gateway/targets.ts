// Where node-targets dial in: /_cluster/connect (the Cluster object) and
// /_cluster/groups/<g>/connect (a negotiating group). The shared join secret is checked here,
// before any Durable Object sees the connection.

import { CLUSTER_CONNECT_PATH, GROUP_CONNECT_PREFIX, JOIN_SECRET_HEADER, TARGET_ID_HEADER } from "../../common/protocol.ts";
import { constantTimeEqual } from "../../common/sigv4.ts";
import { clusterStub, configOf, groupStub, type Env } from "../shared/env.ts";

export function isTargetPath(path: string): boolean {
  return path.startsWith("/_cluster/");
}

export async function handleTargetConnect(req: Request, url: URL, env: Env): Promise<Response> {
  if (req.headers.get("upgrade") !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
  const secret = req.headers.get(JOIN_SECRET_HEADER) ?? "";
  if (!constantTimeEqual(secret, env.JOIN_SECRET)) return new Response("bad join secret", { status: 403 });
  if (!/^[A-Za-z0-9-]{8,64}$/.test(req.headers.get(TARGET_ID_HEADER) ?? "")) return new Response("missing or bad target id", { status: 400 });
  if (url.pathname === CLUSTER_CONNECT_PATH) return clusterStub(env).fetch(req);
  const m = new RegExp(`^${GROUP_CONNECT_PREFIX}(\\d+)/connect$`).exec(url.pathname);
  if (m) {
    const g = Number(m[1]);
    if (g >= configOf(env).groupCount) return new Response(`no group ${g}`, { status: 404 });
    const fwd = new Request(req);
    fwd.headers.set("x-group", String(g));
    return groupStub(env, g).fetch(fwd);
  }
  return new Response("not found", { status: 404 });
}
