// Tenants and their access keys, as the admin API serves them. Secrets are generated here,
// returned once in the answer that creates them, and stored only sealed (accounts/sealing.ts).

import { parseScope, type KeyScope } from "../shared/key-scope.ts";
import { newKeyPair, openSecret, sealSecret } from "../accounts/sealing.ts";
import { tenantNameProblem } from "../accounts/registry.ts";
import type { KeyInfo, TenantInfo } from "../accounts/rpc.ts";
import { tenantUsage } from "../accounts/usage.ts";
import { removeSnapshot } from "../gateway/ext/snapshot-hold.ts";
import { configOf, registryStub, snapshotCatalogStub, tenantStub, type Env } from "../shared/env.ts";
import { AdminError, bodyOf, json } from "./errors.ts";

/** How long a rotated key keeps working unless the rotation says otherwise: a day to roll clients over. */
export const DEFAULT_ROTATION_GRACE_SECONDS = 86_400;

function quotaOf(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new AdminError(400, "InvalidArgument", "quotaBytes must be a whole number of bytes >= 0, or null for no limit");
  return v;
}

async function requireTenant(env: Env, name: string): Promise<TenantInfo> {
  const t = await registryStub(env).getTenant(name);
  if (!t) throw new AdminError(404, "NoSuchTenant", `there is no tenant "${name}"`);
  return t;
}

async function withUsage(env: Env, t: TenantInfo) {
  const usage = await tenantUsage(env, configOf(env), t.name);
  return { ...t, usage };
}

export async function listTenants(env: Env): Promise<Response> {
  const tenants = await registryStub(env).listTenants();
  return json({ tenants: await Promise.all(tenants.map((t) => withUsage(env, t))) });
}

export async function createTenant(req: Request, env: Env): Promise<Response> {
  const body = await bodyOf(req);
  const name = body.name;
  if (typeof name !== "string") throw new AdminError(400, "InvalidArgument", 'the body must name the tenant: {"name": "..."}');
  const problem = tenantNameProblem(name);
  if (problem) throw new AdminError(400, "InvalidTenantName", `"${name}": ${problem}`);
  const quotaBytes = quotaOf(body.quotaBytes);
  if (!(await registryStub(env).createTenant(name, quotaBytes))) throw new AdminError(409, "TenantAlreadyExists", `tenant "${name}" exists already`);
  return json(await withUsage(env, (await registryStub(env).getTenant(name))!), 201);
}

export async function getTenant(env: Env, name: string): Promise<Response> {
  const t = await requireTenant(env, name);
  const [keys, buckets, withU] = await Promise.all([registryStub(env).listKeys(name), tenantStub(env, name).listBuckets(), withUsage(env, t)]);
  return json({ ...withU, buckets: buckets.map((b) => b.name), keys });
}

export async function updateTenant(req: Request, env: Env, name: string): Promise<Response> {
  const body = await bodyOf(req);
  if (!("quotaBytes" in body)) throw new AdminError(400, "InvalidArgument", 'nothing to change: the body may set {"quotaBytes": n | null}');
  if (!(await registryStub(env).setQuota(name, quotaOf(body.quotaBytes)))) throw new AdminError(404, "NoSuchTenant", `there is no tenant "${name}"`);
  return json(await withUsage(env, await requireTenant(env, name)));
}

/** Only an empty tenant goes: its buckets first (S3's rule for buckets, one level up). */
export async function deleteTenant(env: Env, name: string): Promise<Response> {
  await requireTenant(env, name);
  const buckets = await tenantStub(env, name).listBuckets();
  if (buckets.length > 0) throw new AdminError(409, "TenantNotEmpty", `tenant "${name}" still has ${buckets.length} bucket(s): ${buckets.slice(0, 5).map((b) => b.name).join(", ")}`);
  // Snapshots outlive buckets (they hold the versions they name): a tenant created again under
  // this name must not find them, so each is deleted as its owner would, releasing what it held.
  const scope = { env, cfg: configOf(env), tenant: name };
  for (const snap of await snapshotCatalogStub(env, name).list()) {
    const r = await removeSnapshot(scope, snap.id);
    if (r) throw new AdminError(409, "TenantNotEmpty", `snapshot ${snap.id} of tenant "${name}" could not be deleted: ${r.message}`);
  }
  await registryStub(env).deleteTenant(name);
  return new Response(null, { status: 204 });
}

async function issue(env: Env): Promise<{ accessKeyId: string; secretAccessKey: string; sealed: string }> {
  const pair = newKeyPair();
  return { ...pair, sealed: await sealSecret(env.KEY_SEALING_SECRET, pair.accessKeyId, pair.secretAccessKey) };
}

function shown(info: KeyInfo, secretAccessKey: string) {
  return { ...info, secretAccessKey };
}

/** A request body's `scope`: absent or null for none, else a scope (shared/key-scope.ts). */
function scopeIn(body: Record<string, unknown>): KeyScope | null {
  if (body.scope === undefined || body.scope === null) return null;
  const scope = parseScope(body.scope);
  if ("error" in scope) throw new AdminError(400, "InvalidArgument", `scope: ${scope.error}`);
  return scope;
}

/** POST /_admin/tenants/{tenant}/keys {"scope"?}: a new key, its secret shown this once. */
export async function createKey(req: Request, env: Env, tenant: string): Promise<Response> {
  const scope = scopeIn(await bodyOf(req));
  await requireTenant(env, tenant);
  const k = await issue(env);
  const info = await registryStub(env).addKey(tenant, { id: k.accessKeyId, sealed: k.sealed, scope });
  if (!info) throw new AdminError(404, "NoSuchTenant", `there is no tenant "${tenant}"`);
  return json(shown(info, k.secretAccessKey), 201);
}

export async function listKeys(env: Env, tenant: string): Promise<Response> {
  await requireTenant(env, tenant);
  return json({ keys: await registryStub(env).listKeys(tenant) });
}

export async function rotateKey(req: Request, env: Env, id: string): Promise<Response> {
  const body = await bodyOf(req);
  const grace = body.graceSeconds ?? DEFAULT_ROTATION_GRACE_SECONDS;
  if (typeof grace !== "number" || !Number.isFinite(grace) || grace < 0) throw new AdminError(400, "InvalidArgument", "graceSeconds must be a number of seconds >= 0");
  const k = await issue(env);
  const r = await registryStub(env).rotateKey(id, k.accessKeyId, k.sealed, Math.round(grace * 1000));
  if (!r) throw new AdminError(404, "NoSuchKey", `there is no working key "${id}" (unknown, revoked or expired)`);
  return json({ key: shown(r.key, k.secretAccessKey), previous: r.old }, 201);
}

/** PATCH /_admin/keys/{id} {"scope": ... | null}: what the key may do from now on (within KEY_CACHE_SECONDS). */
export async function setKeyScope(req: Request, env: Env, id: string): Promise<Response> {
  const body = await bodyOf(req);
  if (!("scope" in body)) throw new AdminError(400, "InvalidArgument", 'send {"scope": {...}} or {"scope": null}');
  const info = await registryStub(env).setKeyScope(id, scopeIn(body));
  if (!info) throw new AdminError(404, "NoSuchKey", `there is no key "${id}"`);
  return json(info);
}

export async function revokeKey(env: Env, id: string): Promise<Response> {
  const info = await registryStub(env).revokeKey(id);
  if (!info) throw new AdminError(404, "NoSuchKey", `there is no key "${id}"`);
  return json(info);
}

/**
 * POST /_admin/keys/reseal: every key's secret sealed again under KEY_SEALING_SECRET, opened with
 * it or with KEY_SEALING_SECRET_PREVIOUS: the middle step of rotating the sealing secret
 * (docs/security.md). Keys already under the current secret are left as they are.
 */
export async function resealKeys(env: Env): Promise<Response> {
  const secrets = { current: env.KEY_SEALING_SECRET, previous: env.KEY_SEALING_SECRET_PREVIOUS };
  let resealed = 0;
  let current = 0;
  const failed: string[] = [];
  for (let after = ""; ; ) {
    const page = await registryStub(env).sealedPage(after, 200);
    if (page.length === 0) break;
    for (const k of page) {
      const already = await openSecret(secrets.current, k.id, k.sealed).then(
        () => true,
        () => false,
      );
      if (already) {
        current++;
        continue;
      }
      try {
        const secret = await openSecret(secrets.previous, k.id, k.sealed);
        if (await registryStub(env).reseal(k.id, k.sealed, await sealSecret(secrets.current, k.id, secret))) resealed++;
      } catch {
        // Opens under neither secret: reported, so the operator keeps the old secret until it is understood.
        failed.push(k.id);
      }
    }
    after = page[page.length - 1]!.id;
  }
  return json({ resealed, current, failed });
}
