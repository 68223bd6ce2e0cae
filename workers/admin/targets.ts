// Storage targets as the admin API serves them: enrolment tokens to add one, the list of every
// target with how it proves itself, and revocation (cluster/target-keys.ts keeps the keys).

import { isTargetId } from "../../common/ids.ts";
import { clusterStub, type Env } from "../shared/env.ts";
import { AdminError, bodyOf, json } from "./errors.ts";

/** An enrolment token is good for an hour unless asked otherwise, and for a week at most. */
const ENROL_TTL_DEFAULT_SECONDS = 3_600;
const ENROL_TTL_MAX_SECONDS = 7 * 86_400;

/** POST /_admin/targets/enrolments {"ttlSeconds"?}: a one-time token for `node-target init --enrol-token`. */
export async function createEnrolment(req: Request, env: Env): Promise<Response> {
  const body = await bodyOf(req);
  const ttl = body.ttlSeconds ?? ENROL_TTL_DEFAULT_SECONDS;
  if (typeof ttl !== "number" || !Number.isSafeInteger(ttl) || ttl < 1 || ttl > ENROL_TTL_MAX_SECONDS) {
    throw new AdminError(400, "InvalidArgument", `ttlSeconds is a whole number from 1 to ${ENROL_TTL_MAX_SECONDS}`);
  }
  const e = await clusterStub(env).createEnrolment(ttl);
  return json({ token: e.token, expires: new Date(e.expires).toISOString() }, 201);
}

/** GET /_admin/targets: every target the cluster knows, live or not, and its credential. */
export async function listTargets(env: Env): Promise<Response> {
  const cluster = clusterStub(env);
  const [status, keys] = await Promise.all([cluster.status(), cluster.targetKeys()]);
  const keyOf = new Map(keys.map((k) => [k.id, k]));
  const targets = status.targets.map((t) => {
    const k = keyOf.get(t.id);
    const credential = k?.revoked != null ? "revoked" : k ? "key" : "join-secret";
    return { id: t.id, location: t.location, live: t.live, groups: t.groups, credential, ...(k ? { enrolled: new Date(k.enrolled).toISOString() } : {}), ...(k?.revoked != null ? { revoked: new Date(k.revoked).toISOString() } : {}) };
  });
  // Enrolled but never connected: listed too, so a token's use shows.
  for (const k of keys) if (!status.targets.some((t) => t.id === k.id)) targets.push({ id: k.id, location: "", live: false, groups: [], credential: k.revoked != null ? "revoked" : "key", enrolled: new Date(k.enrolled).toISOString() });
  return json({ targets });
}

/** DELETE /_admin/targets/{id}: refuse its connects from now on and take it out of every group. */
export async function revokeTarget(env: Env, id: string): Promise<Response> {
  if (!isTargetId(id)) throw new AdminError(400, "InvalidArgument", `"${id}" is not a target id`);
  const r = await clusterStub(env).revokeTarget(id);
  if (r === "unknown") throw new AdminError(404, "NoSuchTarget", `there is no target ${id}`);
  if (r === "already") throw new AdminError(409, "TargetRevoked", `target ${id} is revoked already`);
  return new Response(null, { status: 204 });
}
