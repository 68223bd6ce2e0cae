// Where node-targets dial in: /_cluster/connect (the Cluster object) and
// /_cluster/groups/<g>/connect (a negotiating group), and where they enrol (/_cluster/enrol).
// Who a target is is checked here, before any Durable Object sees the connection: its own key
// (cluster/target-keys.ts), or the shared join secret for a target never enrolled.

import { isTargetId } from "../../common/ids.ts";
import { CLUSTER_CONNECT_PATH, ENROL_PATH, ENROL_TOKEN, ENROL_TOKEN_HEADER, GROUP_CONNECT_PREFIX, JOIN_SECRET_HEADER, TARGET_ID_HEADER, TARGET_KEY, TARGET_KEY_HEADER } from "../../common/protocol.ts";
import { constantTimeEqual } from "../../common/s3/sigv4.ts";
import { clusterStub, configOf, groupStub, type Env } from "../shared/env.ts";

export function isTargetPath(path: string): boolean {
  return path.startsWith("/_cluster/");
}

export async function handleTargetConnect(req: Request, url: URL, env: Env): Promise<Response> {
  if (url.pathname === ENROL_PATH) return enrol(req, env);
  if (req.headers.get("upgrade") !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
  const id = req.headers.get(TARGET_ID_HEADER) ?? "";
  if (!isTargetId(id)) return new Response("missing or bad target id", { status: 400 });
  // An enrolled target proves itself with its own key; otherwise the shared join secret, where
  // the deployment still has one, for an id no key was issued for.
  const key = req.headers.get(TARGET_KEY_HEADER);
  if (key !== null && !TARGET_KEY.test(key)) return new Response("malformed target key", { status: 403 });
  if (key === null) {
    const secret = req.headers.get(JOIN_SECRET_HEADER) ?? "";
    if (!env.JOIN_SECRET || !constantTimeEqual(secret, env.JOIN_SECRET)) return new Response("bad join secret (or none: this cluster admits enrolled targets only)", { status: 403 });
  }
  const admission = await clusterStub(env).admitTarget(id, key);
  if (!admission.admitted) return new Response(admission.reason, { status: 403 });
  if (url.pathname === CLUSTER_CONNECT_PATH) return clusterStub(env).fetch(req);
  const m = new RegExp(`^${GROUP_CONNECT_PREFIX}(\\d+)/connect$`).exec(url.pathname);
  if (m) {
    const g = Number(m[1]);
    if (g >= configOf(env).groupCount) return new Response(`no group ${g}`, { status: 404 });
    const fwd = new Request(req);
    return groupStub(env, g).fetch(fwd);
  }
  return new Response("not found", { status: 404 });
}

/** POST /_cluster/enrol: a one-time token (admin API) for the target's id and key, as JSON. */
async function enrol(req: Request, env: Env): Promise<Response> {
  if (req.method !== "POST") return new Response("POST an enrolment token", { status: 405 });
  const token = req.headers.get(ENROL_TOKEN_HEADER) ?? "";
  if (!ENROL_TOKEN.test(token)) return new Response("missing or malformed enrolment token", { status: 403 });
  // An existing data directory keeps its id: the cluster already knows the disk by it.
  const want = req.headers.get(TARGET_ID_HEADER);
  if (want !== null && !isTargetId(want)) return new Response("bad target id", { status: 400 });
  const r = await clusterStub(env).enrolTarget(token, want);
  if ("refused" in r) return new Response(r.refused, { status: 403 });
  return new Response(JSON.stringify(r), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
}
