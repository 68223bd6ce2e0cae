import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

let n = 0;
// A fresh directory per test: storage is not assumed to be reset between tests.
const directory = () => env.TENANT.get(env.TENANT.idFromName(`tenant-test-${n++}`));

describe("TenantDirectory", () => {
  it("creates a bucket once: true the first time, false for a duplicate", async () => {
    const dir = directory();
    expect(await dir.createBucket("photos")).toBe(true);
    expect(await dir.createBucket("photos")).toBe(false);
    expect(await dir.listBuckets()).toHaveLength(1);
  });

  it("gets a bucket with its creation time, null when absent", async () => {
    const dir = directory();
    const before = Date.now();
    await dir.createBucket("docs");
    const info = await dir.getBucket("docs");
    expect(info?.name).toBe("docs");
    expect(info!.created).toBeGreaterThanOrEqual(before);
    expect(await dir.getBucket("nope")).toBeNull();
  });

  it("lists buckets sorted by name", async () => {
    const dir = directory();
    for (const b of ["zeta", "alpha", "m-bucket", "alpha.2", "beta"]) await dir.createBucket(b);
    expect((await dir.listBuckets()).map((b) => b.name)).toEqual(["alpha", "alpha.2", "beta", "m-bucket", "zeta"]);
  });

  it("deletes a bucket: true once, then false, and the name can be created again", async () => {
    const dir = directory();
    await dir.createBucket("tmp");
    await dir.createBucket("keep");
    expect(await dir.deleteBucket("tmp")).toBe(true);
    expect(await dir.deleteBucket("tmp")).toBe(false);
    expect(await dir.getBucket("tmp")).toBeNull();
    expect((await dir.listBuckets()).map((b) => b.name)).toEqual(["keep"]);
    expect(await dir.createBucket("tmp")).toBe(true);
  });

  it("scopes bucket names to the tenant", async () => {
    const a = directory();
    const b = directory();
    expect(await a.createBucket("shared-name")).toBe(true);
    expect(await b.createBucket("shared-name")).toBe(true);
    await a.deleteBucket("shared-name");
    expect(await b.getBucket("shared-name")).not.toBeNull();
  });
});
