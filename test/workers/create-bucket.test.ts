// CreateBucket of a bucket its owner already has: S3 answers by region (200 in us-east-1, the
// local cluster's, which the integration tests cover; 409 BucketAlreadyOwnedByYou in every
// other). The handler is called inside workerd with the real TenantDirectory, in another region.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { configOf, type Env } from "../../workers/shared/env.ts";
import { createBucket } from "../../workers/gateway/s3/bucket.ts";
import { S3Error } from "../../common/s3/errors.ts";
import type { RequestContext } from "../../workers/gateway/s3/context.ts";

function contextIn(region: string, tenant: string): RequestContext {
  const e = { ...(env as Env), S3_REGION: region };
  const url = new URL("http://gateway.test/photos");
  return {
    env: e,
    cfg: configOf(e),
    req: new Request(url, { method: "PUT" }),
    url,
    requestId: "test",
    auth: { accessKey: "AKTEST", payloadHash: "UNSIGNED-PAYLOAD" } as RequestContext["auth"],
    tenant,
    scope: null,
    near: null,
    waitUntil: () => {},
    reservations: [],
  };
}

describe("CreateBucket of an owned bucket", () => {
  it("answers 409 BucketAlreadyOwnedByYou outside us-east-1, and 200 in it", async () => {
    expect((await createBucket(contextIn("eu-west-1", "region-t1"), "photos")).status).toBe(200);
    const again = await createBucket(contextIn("eu-west-1", "region-t1"), "photos").catch((e: unknown) => e);
    expect(again).toBeInstanceOf(S3Error);
    expect(again).toMatchObject({ code: "BucketAlreadyOwnedByYou", status: 409 });
    expect((await createBucket(contextIn("us-east-1", "region-t1"), "photos")).status).toBe(200);
  });
});
