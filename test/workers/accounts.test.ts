// The accounts registry and key sealing, inside workerd: secrets are stored sealed and open only
// for their own key id under the same sealing secret; rotation and revocation change what a
// lookup returns (the gateway's lookup), and the registry's storage never holds a secret.

import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newKeyPair, openSecret, sealSecret } from "../../workers/accounts/sealing.ts";
import type { AccountRegistry } from "../../workers/accounts/registry.ts";

let n = 0;
// A fresh registry per test: storage is not assumed to be reset between tests.
const registry = () => env.ACCOUNTS.get(env.ACCOUNTS.idFromName(`accounts-test-${n++}`));
const SECRET = "a-sealing-secret-for-tests";

describe("key sealing", () => {
  it("opens what it sealed, for the same key id and sealing secret only", async () => {
    const { accessKeyId, secretAccessKey } = newKeyPair();
    const sealed = await sealSecret(SECRET, accessKeyId, secretAccessKey);
    expect(sealed).not.toContain(secretAccessKey);
    expect(await openSecret(SECRET, accessKeyId, sealed)).toBe(secretAccessKey);
    await expect(openSecret(SECRET, newKeyPair().accessKeyId, sealed)).rejects.toThrow(/does not open/);
    await expect(openSecret("another-sealing-secret", accessKeyId, sealed)).rejects.toThrow(/does not open/);
    // Two seals of one secret differ (a fresh IV each time).
    expect(await sealSecret(SECRET, accessKeyId, secretAccessKey)).not.toBe(sealed);
  });

  it("refuses to seal without a sealing secret, saying how to set one", async () => {
    await expect(sealSecret(undefined, "ESX", "s")).rejects.toThrow(/wrangler secret put KEY_SEALING_SECRET/);
  });

  it("issues AWS-shaped key pairs that do not repeat", () => {
    const pairs = Array.from({ length: 50 }, newKeyPair);
    for (const p of pairs) {
      expect(p.accessKeyId).toMatch(/^ES[A-Z2-7]{18}$/);
      expect(p.secretAccessKey).toMatch(/^[A-Za-z0-9+/]{40}$/);
    }
    expect(new Set(pairs.map((p) => p.accessKeyId)).size).toBe(50);
  });
});

describe("AccountRegistry", () => {
  it("has the default tenant, creates others once, and sets quotas", async () => {
    const r = registry();
    expect((await r.listTenants()).map((t) => t.name)).toEqual(["default"]);
    expect(await r.createTenant("acme", 1000)).toBe(true);
    expect(await r.createTenant("acme", null)).toBe(false);
    expect((await r.getTenant("acme"))?.quotaBytes).toBe(1000);
    expect(await r.setQuota("acme", null)).toBe(true);
    expect((await r.getTenant("acme"))?.quotaBytes).toBeNull();
    expect(await r.setQuota("nobody", 5)).toBe(false);
  });

  it("looks up a working key, and not a revoked one", async () => {
    const r = registry();
    await r.createTenant("acme", null);
    expect(await r.addKey("nobody", { id: "ESNOTENANT", sealed: "v1:x:y", scope: null })).toBeNull();
    const info = await r.addKey("acme", { id: "ESKEY1", sealed: "v1:iv:ct", scope: null });
    expect(info).toMatchObject({ accessKeyId: "ESKEY1", tenant: "acme", state: "active" });
    expect(await r.lookupKey("ESKEY1")).toEqual({ tenant: "acme", sealed: "v1:iv:ct", expires: null, scope: null });
    expect((await r.revokeKey("ESKEY1"))?.state).toBe("revoked");
    expect(await r.lookupKey("ESKEY1")).toBeNull();
    expect(await r.revokeKey("ESNONE")).toBeNull();
  });

  it("rotates: the new key works at once, the old one until its grace ends", async () => {
    const r = registry();
    await r.createTenant("acme", null);
    await r.addKey("acme", { id: "ESOLD", sealed: "v1:a:b", scope: null });
    const rot = await r.rotateKey("ESOLD", "ESNEW", "v1:c:d", 60_000);
    expect(rot?.key).toMatchObject({ accessKeyId: "ESNEW", tenant: "acme", state: "active" });
    expect(rot?.old.state).toBe("expiring");
    expect((await r.lookupKey("ESOLD"))?.expires).toBe(rot?.old.expires);
    // The new key may do what the old one could, no more.
    await r.createTenant("scoped-co", null);
    const scoped = await r.addKey("scoped-co", { id: "ESSCOPED", sealed: "v1:s:t", scope: { access: "read-only", grants: [{ bucket: "photos", prefix: "p/" }] } });
    expect(scoped?.scope).toEqual({ access: "read-only", buckets: ["photos/p/"] });
    const moved = await r.rotateKey("ESSCOPED", "ESSCOPED2", "v1:u:v", 1000);
    expect(moved?.key.scope).toEqual({ access: "read-only", buckets: ["photos/p/"] });
    expect((await r.lookupKey("ESSCOPED2"))?.scope).toEqual({ access: "read-only", grants: [{ bucket: "photos", prefix: "p/" }] });
    // A rotation with no grace ends the old key at once.
    const now = await r.rotateKey("ESNEW", "ESNEWER", "v1:e:f", 0);
    expect(now?.old.state).toBe("expired");
    expect(await r.lookupKey("ESNEW")).toBeNull();
    expect(await r.rotateKey("ESNEW", "ESX", "v1:g:h", 0)).toBeNull();
    expect((await r.listKeys("acme")).map((k) => [k.accessKeyId, k.state])).toEqual([
      ["ESOLD", "expiring"],
      ["ESNEW", "expired"],
      ["ESNEWER", "active"],
    ]);
  });

  it("deletes a tenant with its keys", async () => {
    const r = registry();
    await r.createTenant("gone", null);
    await r.addKey("gone", { id: "ESGONE", sealed: "v1:a:b", scope: null });
    expect(await r.deleteTenant("gone")).toBe(true);
    expect(await r.lookupKey("ESGONE")).toBeNull();
    expect(await r.getTenant("gone")).toBeNull();
  });

  it("keeps only sealed secrets in its storage", async () => {
    const r = registry();
    await r.createTenant("acme", null);
    const { accessKeyId, secretAccessKey } = newKeyPair();
    await r.addKey("acme", { id: accessKeyId, sealed: await sealSecret(SECRET, accessKeyId, secretAccessKey), scope: null });
    const rows = await runInDurableObject(r, (_o: AccountRegistry, state) => state.storage.sql.exec("SELECT * FROM access_keys").toArray());
    expect(JSON.stringify(rows)).not.toContain(secretAccessKey);
    expect(rows).toHaveLength(1);
  });
});
