// Public reads against a real local cluster: a bucket policy (the supported subset) opens some
// keys to anonymous GET and HEAD, served as signed reads are (ranges, conditionals); everything
// else anonymous stays 403; a public access block can forbid or restrict it; a public bucket's
// name is claimed across tenants. Policies are set with the real SDK; anonymous requests are
// plain fetches with no credential at all.

import { CreateBucketCommand, DeleteBucketPolicyCommand, DeletePublicAccessBlockCommand, GetBucketPolicyCommand, PutBucketPolicyCommand, PutObjectCommand, PutPublicAccessBlockCommand, type S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { adminCli, clientFor, clusterForSuite, eventually, s3Error } from "./helpers.ts";

const B = "pub";
let cluster: LocalCluster;
let s3: S3Client;
clusterForSuite({ bucket: B }, (c) => ({ cluster, s3 } = c));

const policy = (resources: string[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ Version: "2012-10-17", Statement: [{ Sid: "read", Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: resources, ...extra }] });
const anonymous = (key: string, init: RequestInit = {}) => fetch(`${cluster.endpoint}/${B}/${key}`, init);
const code = async (res: Response) => /<Code>([^<]+)<\/Code>/.exec(await res.text())?.[1];

describe("public reads", () => {
  it("keep every key private until a policy opens some, then serve those to anyone as signed reads are served", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "public/page.html", Body: "0123456789", ContentType: "text/html" }));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "private/secret.txt", Body: "not for you" }));
    const before = await anonymous("public/page.html");
    expect([before.status, await code(before)]).toEqual([403, "AccessDenied"]);
    await s3.send(new PutBucketPolicyCommand({ Bucket: B, Policy: policy([`arn:aws:s3:::${B}/public/*`]) }));
    expect((await s3.send(new GetBucketPolicyCommand({ Bucket: B }))).Policy).toBe(policy([`arn:aws:s3:::${B}/public/*`]));
    const page = await anonymous("public/page.html");
    expect([page.status, page.headers.get("content-type"), await page.text()]).toEqual([200, "text/html", "0123456789"]);
    const range = await anonymous("public/page.html", { headers: { range: "bytes=2-4" } });
    expect([range.status, await range.text()]).toEqual([206, "234"]);
    const etag = page.headers.get("etag")!;
    expect((await anonymous("public/page.html", { headers: { "if-none-match": etag } })).status).toBe(304);
    expect((await anonymous("public/page.html", { method: "HEAD" })).status).toBe(200);
    // Everything else stays closed to anyone without a key.
    expect((await anonymous("private/secret.txt")).status).toBe(403);
    expect((await anonymous("public/new.txt", { method: "PUT", body: "x" })).status).toBe(403);
    expect((await anonymous("public/page.html", { method: "DELETE" })).status).toBe(403);
    expect((await fetch(`${cluster.endpoint}/${B}?list-type=2`)).status).toBe(403);
    expect((await anonymous("public/absent.txt")).status).toBe(404);
  });

  it("refuses policies it cannot enforce, and honours the public access block", async () => {
    const put = (p: string) => s3Error(s3.send(new PutBucketPolicyCommand({ Bucket: B, Policy: p })));
    expect(await put("not json")).toEqual({ name: "MalformedPolicy", status: 400 });
    expect(await put(policy([`arn:aws:s3:::other-bucket/*`]))).toEqual({ name: "MalformedPolicy", status: 400 });
    expect(await put(policy([`arn:aws:s3:::${B}/*`], { Effect: "Deny" }))).toEqual({ name: "NotImplemented", status: 501 });
    expect(await put(policy([`arn:aws:s3:::${B}/*`], { Action: "s3:PutObject" }))).toEqual({ name: "NotImplemented", status: 501 });
    expect(await put(policy([`arn:aws:s3:::${B}/*`], { Condition: { IpAddress: { "aws:SourceIp": "10.0.0.0/8" } } }))).toEqual({ name: "NotImplemented", status: 501 });
    // The policy from the first test still stands: a restricting block shuts anonymous reads off.
    const block = (flags: { BlockPublicPolicy?: boolean; RestrictPublicBuckets?: boolean }) => s3.send(new PutPublicAccessBlockCommand({ Bucket: B, PublicAccessBlockConfiguration: flags }));
    await block({ RestrictPublicBuckets: true });
    expect((await anonymous("public/page.html")).status).toBe(403);
    await block({ BlockPublicPolicy: true });
    expect((await anonymous("public/page.html")).status).toBe(200);
    expect(await put(policy([`arn:aws:s3:::${B}/*`]))).toEqual({ name: "AccessDenied", status: 403 });
    await s3.send(new DeletePublicAccessBlockCommand({ Bucket: B }));
  });

  it("claims a public bucket's name across tenants, and gives it back with the policy", async () => {
    expect(adminCli(cluster, "tenants", "create", "other").status).toBe(0);
    const key = JSON.parse(adminCli(cluster, "keys", "create", "other", "--json").out) as { accessKeyId: string; secretAccessKey: string };
    const other = clientFor(cluster, key.secretAccessKey, key.accessKeyId);
    // Bucket names are per tenant: the other tenant has its own "pub"...
    await other.send(new CreateBucketCommand({ Bucket: B }));
    // ...but a public one would be ambiguous to an anonymous reader.
    expect(await s3Error(other.send(new PutBucketPolicyCommand({ Bucket: B, Policy: policy([`arn:aws:s3:::${B}/*`]) })))).toEqual({ name: "BucketAlreadyExists", status: 409 });
    await s3.send(new DeleteBucketPolicyCommand({ Bucket: B }));
    expect(await s3Error(s3.send(new GetBucketPolicyCommand({ Bucket: B })))).toEqual({ name: "NoSuchBucketPolicy", status: 404 });
    expect((await anonymous("public/page.html")).status).toBe(403);
    await other.send(new PutObjectCommand({ Bucket: B, Key: "public/page.html", Body: "the other tenant's page" }));
    await other.send(new PutBucketPolicyCommand({ Bucket: B, Policy: policy([`arn:aws:s3:::${B}/public/*`]) }));
    // Within the owner cache's second, the other tenant's page is what anyone reads.
    expect(await eventually(async () => (await (await anonymous("public/page.html")).text()) === "the other tenant's page", { ms: 5_000, every: 100 })).toBe(true);
  });
});
