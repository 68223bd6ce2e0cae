// Bucket lookups remembered per isolate (gateway/s3/bucket-cache.ts): a lookup is asked of the
// tenant's directory once a moment, and one under way when its bucket is forgotten is not kept.

import { describe, expect, it } from "vitest";
import { deferred, type Deferred } from "../../common/deferred.ts";
import { bucketInfo, forgetBucket } from "../../workers/gateway/s3/bucket-cache.ts";
import type { NameScope } from "../../workers/gateway/s3/context.ts";
import type { BucketInfo } from "../../workers/tenant/rpc.ts";
import type { ClusterConfig, Env } from "../../workers/shared/env.ts";

function directory(tenant: string) {
  const pending: Deferred<BucketInfo | null>[] = [];
  const stub = {
    getBucket: () => {
      const d = deferred<BucketInfo | null>();
      pending.push(d);
      return d.promise;
    },
  };
  const env = { TENANT: { idFromName: (n: string) => n, get: () => stub } } as unknown as Env;
  const scope: NameScope = { env, cfg: {} as ClusterConfig, tenant };
  return { scope, pending };
}

const info = (versioning: string) => ({ name: "b", versioning }) as unknown as BucketInfo;
const tick = () => new Promise((r) => setTimeout(r, 0));

describe("bucket cache", () => {
  it("remembers a bucket that exists", async () => {
    const { scope, pending } = directory("t-remembers");
    const first = bucketInfo(scope, "b");
    pending[0]!.resolve(info("Enabled"));
    await first;
    await expect(bucketInfo(scope, "b")).resolves.toEqual(info("Enabled"));
    expect(pending).toHaveLength(1);
  });

  it("does not keep what a lookup under way read before its bucket was forgotten", async () => {
    const { scope, pending } = directory("t-stale");
    const inFlight = bucketInfo(scope, "b");
    await tick();
    forgetBucket("t-stale", "b");
    pending[0]!.resolve(info("Suspended"));
    await expect(inFlight).resolves.toEqual(info("Suspended"));
    const next = bucketInfo(scope, "b");
    await tick();
    expect(pending).toHaveLength(2);
    pending[1]!.resolve(info("Enabled"));
    await expect(next).resolves.toEqual(info("Enabled"));
  });
});
