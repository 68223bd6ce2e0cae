// A manifest shard's lifecycle pass over its own tables, in workerd against real Durable Object
// storage, its alarm run step by step: keys in order across steps, a key with more versions
// than a step reads walked alone in windows, the pass ending with every key walked once. The
// groups here have no targets and no versions, so the actions they are handed do nothing
// (each group re-checks and finds the name unknown); what is shown is the walk. The actions
// themselves are shown on a real cluster in test/integration/lifecycle.test.ts.

import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { formatUvid, nhidOf, shardOf, type Chid, type Uvid } from "../../common/ids.ts";
import type { VersionRecord } from "../../workers/manifest-shard/records.ts";
import { configOf } from "../../workers/shared/env.ts";

const uvid = (ms: number, seq = 0): Uvid => formatUvid({ ms, seq, group: 0 });
const rec = (tenant: string, key: string, u: Uvid): VersionRecord => ({ tenant, bucket: "lc", key, uvid: u, deleteMarker: false, size: 1, etag: "e", lastModified: Number.parseInt(u.slice(0, 12), 16), contentType: "", vmChid: "c".repeat(64) as Chid, creator: "AK" });

describe("a shard's lifecycle pass", () => {
  it("walks every key once, in steps, and a key of 6,000 versions in windows of its own", async () => {
    const cfg = configOf(env);
    const tenant = "walker";
    // Keys that all land on one shard, so one shard's pass walks them all.
    const keys: string[] = [];
    let shard = -1;
    for (let i = 0; keys.length < 1_200; i++) {
      const key = `k/${String(i).padStart(6, "0")}`;
      const s = shardOf(await nhidOf(tenant, "lc", key), cfg.shardCount);
      if (shard === -1) shard = s;
      if (s === shard) keys.push(key);
    }
    const stub = env.SHARD.get(env.SHARD.idFromName(`shard-${shard}`));
    const old = Date.UTC(2020, 0, 1);
    const records: VersionRecord[] = keys.map((k, i) => rec(tenant, k, uvid(old + i)));
    // One key with 6,000 versions: more than a step reads (5,000), and every noncurrent one due.
    for (let v = 1; v < 6_000; v++) records.push(rec(tenant, keys[0]!, uvid(old + 10_000 + v)));
    for (let i = 0; i < records.length; i += 1_000) {
      await stub.applyRecords(records.slice(i, i + 1_000), { group: 0, cutoff: uvid(old + 100_000) });
    }
    await env.TENANT.get(env.TENANT.idFromName(`tenant-${tenant}`)).createBucket("lc");
    await env.TENANT.get(env.TENANT.idFromName(`tenant-${tenant}`)).setBucketLifecycle("lc", [
      { id: "old", enabled: true, filter: { prefix: "k/", tags: [], sizeGreaterThan: null, sizeLessThan: null }, expiration: null, expiredObjectDeleteMarker: false, noncurrentExpiration: { days: 1, newer: 0 }, abortUploadDays: null },
    ]);
    await env.ACCOUNTS.get(env.ACCOUNTS.idFromName("accounts")).noteLifecycleTenant(tenant);
    await stub.runLifecycle();
    let steps = 0;
    // Bounded: 1,200 keys at 500 a step, and the big key's 5,999 due versions at 64 a step.
    for (; steps < 400; steps++) {
      await runDurableObjectAlarm(stub);
      const p = await stub.lifecycleProgress();
      if (p.passStarted === null) break;
    }
    const done = await stub.lifecycleProgress();
    expect(done.passStarted).toBeNull();
    expect(done.bucketsLeft).toBe(0);
    expect(done.keysWalked).toBe(keys.length);
    // The big key took a window per 64 due versions, the rest a few steps.
    expect(steps).toBeGreaterThan(Math.floor(5_999 / 64));
    expect(steps).toBeLessThan(400);
  });
});
