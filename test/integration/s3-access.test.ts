// How clients reach objects (issue 3, points 5, 7 and 8): presigned URLs, response header
// overrides, virtual-hosted-style addressing, ?acl and ?location, listing edge cases, and the
// request validation S3 does. A real local cluster, the real @aws-sdk/client-s3 and
// @aws-sdk/s3-request-presigner, and raw signed requests where an SDK would not send the input.

import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketTaggingCommand,
  DeleteObjectTaggingCommand,
  GetBucketAclCommand,
  GetBucketLocationCommand,
  GetBucketTaggingCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutBucketAclCommand,
  PutObjectAclCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  PutBucketVersioningCommand,
  UploadPartCommand,
  DeleteObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createHash } from "node:crypto";
import { Agent, type AgentOptions } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signRequest } from "../../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../../common/s3/sigv4.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clientFor, pseudoRandom, removeDir, s3Error, sameBytes, startTestCluster } from "./helpers.ts";

const BASE_DOMAIN = "s3.edgestore.test";
let cluster: LocalCluster;
let dir: string;
let s3: S3Client;
const B = "access";

beforeAll(async () => {
  ({ cluster, dir } = await startTestCluster({ vars: { S3_BASE_DOMAIN: BASE_DOMAIN } }));
  s3 = clientFor(cluster);
  await s3.send(new CreateBucketCommand({ Bucket: B }));
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

async function errorCode(res: Response): Promise<string | undefined> {
  return /<Code>([^<]*)<\/Code>/.exec(await res.text())?.[1];
}

describe("presigned URLs", () => {
  const body = pseudoRandom(300_000, 901);
  const KEY = "pre/get me+now.bin";
  beforeAll(async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: KEY, Body: body, ContentType: "application/octet-stream" }));
  });

  it("a presigned GET serves the object and its ranges, with the response header overrides it was signed with", async () => {
    const url = await getSignedUrl(
      s3,
      new GetObjectCommand({
        Bucket: B,
        Key: KEY,
        ResponseContentType: "text/x-test",
        ResponseContentDisposition: 'attachment; filename="renamed.bin"',
        ResponseCacheControl: "no-store",
        ResponseContentLanguage: "fr",
        ResponseExpires: new Date("2030-01-01T00:00:00Z"),
        ResponseContentEncoding: "identity",
      }),
      { expiresIn: 300 },
    );
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(sameBytes(new Uint8Array(await res.arrayBuffer()), body)).toBe(true);
    expect(res.headers.get("content-type")).toBe("text/x-test");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="renamed.bin"');
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("content-language")).toBe("fr");
    expect(res.headers.get("expires")).toBe("Tue, 01 Jan 2030 00:00:00 GMT");
    const ranged = await fetch(url, { headers: { range: "bytes=1000-1999" } });
    expect(ranged.status).toBe(206);
    expect(sameBytes(new Uint8Array(await ranged.arrayBuffer()), body.subarray(1000, 2000))).toBe(true);
    // The overrides live in this one response: the stored type is unchanged.
    expect((await s3.send(new HeadObjectCommand({ Bucket: B, Key: KEY }))).ContentType).toBe("application/octet-stream");
  });

  it("a tampered URL is refused with 403 SignatureDoesNotMatch", async () => {
    const url = new URL(await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: KEY, ResponseContentType: "text/plain" }), { expiresIn: 300 }));
    const otherKey = new URL(url);
    otherKey.pathname = `/${B}/pre/other.bin`;
    const otherOverride = new URL(url);
    otherOverride.searchParams.set("response-content-type", "text/html");
    const otherSignature = new URL(url);
    const sig = url.searchParams.get("X-Amz-Signature")!;
    otherSignature.searchParams.set("X-Amz-Signature", `${sig.slice(0, -1)}${sig.endsWith("0") ? "1" : "0"}`);
    const longer = new URL(url);
    longer.searchParams.set("X-Amz-Expires", "600");
    for (const u of [otherKey, otherOverride, otherSignature, longer]) {
      const res = await fetch(u);
      expect(res.status).toBe(403);
      expect(await errorCode(res)).toBe("SignatureDoesNotMatch");
    }
    // Signed with another secret: refused the same way.
    const forged = await getSignedUrl(clientFor(cluster, "not-the-secret"), new GetObjectCommand({ Bucket: B, Key: KEY }), { expiresIn: 300 });
    expect((await fetch(forged)).status).toBe(403);
  });

  it("an expired URL is refused with 403 AccessDenied", async () => {
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: KEY }), { expiresIn: 60, signingDate: new Date(Date.now() - 3_600_000) });
    const res = await fetch(url);
    expect(res.status).toBe(403);
    const text = await res.text();
    expect(text).toContain("<Code>AccessDenied</Code>");
    expect(text).toContain("Request has expired");
  });

  it("a presigned PUT stores the body it is sent; an expired or tampered one stores nothing", async () => {
    const up = pseudoRandom(1_500_000, 902) as Uint8Array<ArrayBuffer>;
    const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "pre/uploaded.bin" }), { expiresIn: 300 });
    const res = await fetch(url, { method: "PUT", body: up });
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toBe(`"${createHash("md5").update(up).digest("hex")}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: "pre/uploaded.bin" }));
    expect(sameBytes(await bodyBytes(got.Body), up)).toBe(true);

    const expired = await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "pre/never.bin" }), { expiresIn: 60, signingDate: new Date(Date.now() - 3_600_000) });
    expect((await fetch(expired, { method: "PUT", body: up })).status).toBe(403);
    const tampered = new URL(url);
    tampered.pathname = `/${B}/pre/never.bin`;
    expect((await fetch(tampered, { method: "PUT", body: up })).status).toBe(403);
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "pre/never.bin" })))).toMatchObject({ status: 404 });
  });
});

describe("virtual-hosted-style addressing", () => {
  it("names the bucket by host under the configured base domain, and path style keeps working", async () => {
    // No DNS here for *.s3.edgestore.test: resolve every name to the loopback gateway.
    const lookup = ((_host: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) =>
      opts.all ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4)) as unknown as AgentOptions["lookup"];
    const agent = new Agent({ lookup });
    const vhost = new S3Client({
      endpoint: `http://${BASE_DOMAIN}:${new URL(cluster.endpoint).port}`,
      region: cluster.region,
      forcePathStyle: false,
      credentials: { accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey },
      requestHandler: { httpAgent: agent },
      maxAttempts: 1,
    });
    try {
      const key = "vh/a key/ü+.txt";
      await vhost.send(new PutObjectCommand({ Bucket: B, Key: key, Body: "by host" }));
      expect(await (await vhost.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body!.transformToString()).toBe("by host");
      expect(await (await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body!.transformToString()).toBe("by host");
      const listed = await vhost.send(new ListObjectsV2Command({ Bucket: B, Prefix: "vh/" }));
      expect(listed.Contents?.map((c) => c.Key)).toEqual([key]);
      expect(await s3Error(vhost.send(new GetObjectCommand({ Bucket: "no-such-bucket-here", Key: "k" })))).toEqual({ name: "NoSuchBucket", status: 404 });
      await vhost.send(new DeleteObjectCommand({ Bucket: B, Key: key }));
    } finally {
      vhost.destroy();
      agent.destroy();
    }
  });
});

describe("?acl and ?location", () => {
  it("answers the owner's FULL_CONTROL policy for buckets and objects", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "acl/k", Body: "x" }));
    for (const acl of [await s3.send(new GetBucketAclCommand({ Bucket: B })), await s3.send(new GetObjectAclCommand({ Bucket: B, Key: "acl/k" }))]) {
      expect(acl.Owner?.ID).toBeTruthy();
      expect(acl.Grants).toEqual([{ Grantee: { Type: "CanonicalUser", ID: acl.Owner!.ID, DisplayName: acl.Owner!.DisplayName }, Permission: "FULL_CONTROL" }]);
    }
    expect(await s3Error(s3.send(new GetObjectAclCommand({ Bucket: B, Key: "acl/missing" })))).toEqual({ name: "NoSuchKey", status: 404 });
    expect(await s3Error(s3.send(new GetBucketAclCommand({ Bucket: "no-such-bucket-here" })))).toEqual({ name: "NoSuchBucket", status: 404 });
  });

  it("accepts the owner-only ACL and refuses grants to others as a bucket with ACLs disabled does", async () => {
    await s3.send(new PutObjectAclCommand({ Bucket: B, Key: "acl/k", ACL: "private" }));
    await s3.send(new PutObjectAclCommand({ Bucket: B, Key: "acl/k", ACL: "bucket-owner-full-control" }));
    await s3.send(new PutBucketAclCommand({ Bucket: B, ACL: "private" }));
    const owner = (await s3.send(new GetBucketAclCommand({ Bucket: B }))).Owner!;
    await s3.send(new PutBucketAclCommand({ Bucket: B, AccessControlPolicy: { Owner: owner, Grants: [{ Grantee: { Type: "CanonicalUser", ID: owner.ID }, Permission: "FULL_CONTROL" }] } }));
    const refused = { name: "AccessControlListNotSupported", status: 400 };
    expect(await s3Error(s3.send(new PutObjectAclCommand({ Bucket: B, Key: "acl/k", ACL: "public-read" })))).toEqual(refused);
    const allUsers = { Owner: owner, Grants: [{ Grantee: { Type: "Group" as const, URI: "http://acs.amazonaws.com/groups/global/AllUsers" }, Permission: "READ" as const }] };
    expect(await s3Error(s3.send(new PutBucketAclCommand({ Bucket: B, AccessControlPolicy: allUsers })))).toEqual(refused);
    expect(await s3Error(s3.send(new PutObjectAclCommand({ Bucket: B, Key: "acl/k", GrantRead: 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' })))).toEqual(refused);
    // On writes too: a public object is refused, never silently made private.
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "acl/public", Body: "x", ACL: "public-read" })))).toEqual(refused);
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "acl/public" })))).toMatchObject({ status: 404 });
    expect(await s3Error(s3.send(new CopyObjectCommand({ Bucket: B, Key: "acl/copy", CopySource: `${B}/acl/k`, ACL: "public-read-write" })))).toEqual(refused);
    expect(await s3Error(s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "acl/mp", ACL: "authenticated-read" })))).toEqual(refused);
    expect(await s3Error(s3.send(new CreateBucketCommand({ Bucket: "acl-public-bucket", ACL: "public-read" })))).toEqual({ name: "InvalidBucketAclWithObjectOwnership", status: 400 });
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "acl/private", Body: "x", ACL: "private" }));
  });

  it("reports us-east-1 as the empty location constraint", async () => {
    const loc = await s3.send(new GetBucketLocationCommand({ Bucket: B }));
    expect(loc.LocationConstraint ?? "").toBe("");
  });
});

describe("tags", () => {
  const tagsOf = async (Key: string, VersionId?: string) => (await s3.send(new GetObjectTaggingCommand({ Bucket: B, Key, VersionId }))).TagSet;

  it("keeps an object's tags with its version: set on PUT, replaced, removed, counted on GET", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "tags/k", Body: "x" }));
    expect(await tagsOf("tags/k")).toEqual([]);
    expect((await s3.send(new GetObjectCommand({ Bucket: B, Key: "tags/k" }))).TagCount).toBeUndefined();
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "tags/tagged", Body: "x", Tagging: "team=a&cost%20centre=r%26d" }));
    expect(await tagsOf("tags/tagged")).toEqual([{ Key: "team", Value: "a" }, { Key: "cost centre", Value: "r&d" }]);
    expect((await s3.send(new GetObjectCommand({ Bucket: B, Key: "tags/tagged" }))).TagCount).toBe(2);
    await s3.send(new PutObjectTaggingCommand({ Bucket: B, Key: "tags/tagged", Tagging: { TagSet: [{ Key: "team", Value: "b" }] } }));
    expect(await tagsOf("tags/tagged")).toEqual([{ Key: "team", Value: "b" }]);
    await s3.send(new DeleteObjectTaggingCommand({ Bucket: B, Key: "tags/tagged" }));
    expect(await tagsOf("tags/tagged")).toEqual([]);
    expect(await s3Error(s3.send(new GetObjectTaggingCommand({ Bucket: B, Key: "tags/missing" })))).toEqual({ name: "NoSuchKey", status: 404 });
    expect(await s3Error(s3.send(new PutObjectTaggingCommand({ Bucket: B, Key: "tags/missing", Tagging: { TagSet: [] } })))).toEqual({ name: "NoSuchKey", status: 404 });
  });

  it("keeps tags per version, carries them through a copy unless replaced, and onto a completed multipart upload", async () => {
    const V = "tags-versioned";
    await s3.send(new CreateBucketCommand({ Bucket: V }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: V, VersioningConfiguration: { Status: "Enabled" } }));
    const v1 = await s3.send(new PutObjectCommand({ Bucket: V, Key: "k", Body: "one", Tagging: "v=1" }));
    await s3.send(new PutObjectCommand({ Bucket: V, Key: "k", Body: "two", Tagging: "v=2" }));
    const inV = async (Key: string, VersionId?: string) => (await s3.send(new GetObjectTaggingCommand({ Bucket: V, Key, VersionId }))).TagSet;
    expect(await inV("k")).toEqual([{ Key: "v", Value: "2" }]);
    expect(await inV("k", v1.VersionId)).toEqual([{ Key: "v", Value: "1" }]);
    const set = await s3.send(new PutObjectTaggingCommand({ Bucket: V, Key: "k", VersionId: v1.VersionId, Tagging: { TagSet: [{ Key: "v", Value: "one" }] } }));
    expect(set.VersionId).toBe(v1.VersionId);
    expect(await inV("k", v1.VersionId)).toEqual([{ Key: "v", Value: "one" }]);
    expect(await inV("k")).toEqual([{ Key: "v", Value: "2" }]);
    await s3.send(new CopyObjectCommand({ Bucket: V, Key: "copied", CopySource: `${V}/k` }));
    expect(await inV("copied")).toEqual([{ Key: "v", Value: "2" }]);
    await s3.send(new CopyObjectCommand({ Bucket: V, Key: "replaced", CopySource: `${V}/k`, TaggingDirective: "REPLACE", Tagging: "new=yes" }));
    expect(await inV("replaced")).toEqual([{ Key: "new", Value: "yes" }]);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: V, Key: "mp", Tagging: "from=create" }));
    const part = await s3.send(new UploadPartCommand({ Bucket: V, Key: "mp", UploadId, PartNumber: 1, Body: "p" }));
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: V, Key: "mp", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    expect(await inV("mp")).toEqual([{ Key: "from", Value: "create" }]);
  });

  it("refuses tag sets S3 refuses, storing nothing", async () => {
    const many = Array.from({ length: 11 }, (_, i) => ({ Key: `k${i}`, Value: "v" }));
    const put = (TagSet: { Key: string; Value: string }[]) => s3Error(s3.send(new PutObjectTaggingCommand({ Bucket: B, Key: "tags/k", Tagging: { TagSet } })));
    expect(await put(many)).toEqual({ name: "BadRequest", status: 400 });
    expect(await put([{ Key: "k".repeat(129), Value: "v" }])).toEqual({ name: "InvalidTag", status: 400 });
    expect(await put([{ Key: "k", Value: "v".repeat(257) }])).toEqual({ name: "InvalidTag", status: 400 });
    expect(await put([{ Key: "k", Value: "1" }, { Key: "k", Value: "2" }])).toEqual({ name: "InvalidTag", status: 400 });
    expect(await put([{ Key: "aws:reserved", Value: "v" }])).toEqual({ name: "InvalidTag", status: 400 });
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "tags/refused", Body: "x", Tagging: many.map((t) => `${t.Key}=${t.Value}`).join("&") })))).toEqual({ name: "BadRequest", status: 400 });
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "tags/refused" })))).toMatchObject({ status: 404 });
  });

  it("keeps a bucket's tags: none is NoSuchTagSet, up to 50 are kept, deleting removes them", async () => {
    expect(await s3Error(s3.send(new GetBucketTaggingCommand({ Bucket: B })))).toEqual({ name: "NoSuchTagSet", status: 404 });
    await s3.send(new PutBucketTaggingCommand({ Bucket: B, Tagging: { TagSet: [{ Key: "team", Value: "a" }, { Key: "env", Value: "test" }] } }));
    expect((await s3.send(new GetBucketTaggingCommand({ Bucket: B }))).TagSet).toEqual([{ Key: "team", Value: "a" }, { Key: "env", Value: "test" }]);
    const fifty = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: "v" }));
    expect(await s3Error(s3.send(new PutBucketTaggingCommand({ Bucket: B, Tagging: { TagSet: fifty } })))).toEqual({ name: "BadRequest", status: 400 });
    await s3.send(new DeleteBucketTaggingCommand({ Bucket: B }));
    expect(await s3Error(s3.send(new GetBucketTaggingCommand({ Bucket: B })))).toEqual({ name: "NoSuchTagSet", status: 404 });
  });
});

describe("options a write cannot keep", () => {
  it("refuses server-side encryption, object lock and other storage classes, storing nothing", async () => {
    const put = (extra: Record<string, unknown>) => s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "opt/k", Body: "x", ...extra })));
    expect(await put({ ServerSideEncryption: "AES256" })).toEqual({ name: "NotImplemented", status: 501 });
    expect(await put({ ServerSideEncryption: "aws:kms", SSEKMSKeyId: "key" })).toEqual({ name: "NotImplemented", status: 501 });
    expect(await put({ ObjectLockMode: "COMPLIANCE", ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000) })).toEqual({ name: "InvalidRequest", status: 400 });
    expect(await put({ StorageClass: "GLACIER" })).toEqual({ name: "NotImplemented", status: 501 });
    expect(await put({ StorageClass: "NO_SUCH_CLASS" })).toEqual({ name: "InvalidStorageClass", status: 400 });
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "opt/k" })))).toMatchObject({ status: 404 });
    expect(await s3Error(s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "opt/mp", ServerSideEncryption: "AES256" })))).toEqual({ name: "NotImplemented", status: 501 });
    expect(await s3Error(s3.send(new CreateBucketCommand({ Bucket: "opt-locked-bucket", ObjectLockEnabledForBucket: true })))).toEqual({ name: "NotImplemented", status: 501 });
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "opt/k", Body: "x", StorageClass: "STANDARD" }));
  });
});

describe("listing edge cases", () => {
  const put = (key: string) => s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: key }));
  const keysOf = (r: { Contents?: { Key?: string }[] }) => (r.Contents ?? []).map((c) => c.Key!);
  const prefixesOf = (r: { CommonPrefixes?: { Prefix?: string }[] }) => (r.CommonPrefixes ?? []).map((c) => c.Prefix!);

  it("keeps empty path segments: keys '/', 'a//b' and '///' are distinct and roll up by the delimiter", async () => {
    const keys = ["es/", "es//", "es///c", "es/a//b", "es/a/b"];
    for (const k of keys) await put(k);
    for (const k of keys) expect(await (await s3.send(new GetObjectCommand({ Bucket: B, Key: k }))).Body!.transformToString()).toBe(k);
    const top = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "es/", Delimiter: "/" }));
    expect(keysOf(top)).toEqual(["es/"]);
    expect(prefixesOf(top)).toEqual(["es//", "es/a/"]);
    const inner = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "es//", Delimiter: "/" }));
    expect(keysOf(inner)).toEqual(["es//"]);
    expect(prefixesOf(inner)).toEqual(["es///"]);
    const a = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "es/a/", Delimiter: "/" }));
    expect([keysOf(a), prefixesOf(a)]).toEqual([["es/a/b"], ["es/a//"]]);
  });

  it("url-encodes keys, prefixes and markers with encoding-type=url, in v1 and v2", async () => {
    const keys = ["url/a b", "url/a+b", "url/ü/é", "url/x%y", "url/&<>\"'", "url/tab\there"];
    for (const k of keys) await put(k);
    const utf8Order = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    // The SDK leaves encoded values as they came, so this sees exactly what the gateway sent.
    const v2 = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "url/", EncodingType: "url" }));
    expect(v2.EncodingType).toBe("url");
    expect(keysOf(v2).map(decodeURIComponent)).toEqual(utf8Order);
    expect(keysOf(v2)).toContain("url/a%20b");
    expect(keysOf(v2)).toContain("url/a%2Bb");
    expect(keysOf(v2)).toContain("url/%C3%BC/%C3%A9");
    expect(keysOf(v2).every((k) => !/[\s<>&"+]/.test(k))).toBe(true);
    const v1 = await s3.send(new ListObjectsCommand({ Bucket: B, Prefix: "url/ü", Delimiter: "/", EncodingType: "url" }));
    expect(v1.Prefix).toBe("url/%C3%BC");
    expect(prefixesOf(v1)).toEqual(["url/%C3%BC/"]);
    // Without encoding-type, XML escaping alone carries every character.
    expect(keysOf(await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "url/" })))).toEqual(utf8Order);
  });

  it("ListObjects v1 pages with NextMarker under a delimiter, and by the last key without one", async () => {
    for (const d of ["d1", "d2", "d3", "d4", "d5"]) for (const f of ["f1", "f2"]) await put(`v1/${d}/${f}`);
    for (const f of ["top1", "top2", "top3"]) await put(`v1/${f}`);
    const entries: string[] = [];
    let marker: string | undefined;
    for (let page = 0; page < 20; page++) {
      const r = await s3.send(new ListObjectsCommand({ Bucket: B, Prefix: "v1/", Delimiter: "/", MaxKeys: 3, Marker: marker }));
      entries.push(...prefixesOf(r), ...keysOf(r));
      if (!r.IsTruncated) break;
      expect(r.NextMarker).toBeTruthy();
      marker = r.NextMarker;
    }
    expect(entries.sort()).toEqual(["v1/d1/", "v1/d2/", "v1/d3/", "v1/d4/", "v1/d5/", "v1/top1", "v1/top2", "v1/top3"]);
    const flat: string[] = [];
    marker = undefined;
    for (let page = 0; page < 20; page++) {
      const r = await s3.send(new ListObjectsCommand({ Bucket: B, Prefix: "v1/", MaxKeys: 4, Marker: marker }));
      expect(r.NextMarker).toBeUndefined();
      flat.push(...keysOf(r));
      if (!r.IsTruncated) break;
      marker = flat[flat.length - 1];
    }
    expect(flat.length).toBe(13);
    expect(flat).toEqual([...flat].sort());
  });

  it("pagination stays ordered and complete under concurrent writes and deletes", async () => {
    const stable = Array.from({ length: 300 }, (_, i) => `conc/k-${String(i * 2).padStart(4, "0")}`);
    const doomed = Array.from({ length: 40 }, (_, i) => `conc/k-${String(i * 14 + 1).padStart(4, "0")}`);
    const queue = [...stable, ...doomed];
    await Promise.all(Array.from({ length: 8 }, async () => { for (let k = queue.shift(); k !== undefined; k = queue.shift()) await put(k); }));

    // While one client pages through, others add odd keys everywhere and delete the doomed ones.
    let writing = true;
    const added: string[] = [];
    let started!: () => void;
    const firstWrite = new Promise<void>((r) => (started = r));
    const writer = (async () => {
      for (let i = 3; writing && i < 600; i += 2) {
        const k = `conc/k-${String(i).padStart(4, "0")}`;
        if (doomed.includes(k)) continue;
        await put(k);
        added.push(k);
        started();
      }
    })();
    await firstWrite;
    const deleter = (async () => {
      for (const k of doomed) await s3.send(new DeleteObjectCommand({ Bucket: B, Key: k }));
    })();
    const seen: string[] = [];
    let token: string | undefined;
    for (let page = 0; page < 100; page++) {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "conc/", MaxKeys: 25, ContinuationToken: token }));
      seen.push(...keysOf(r));
      if (!r.IsTruncated) break;
      token = r.NextContinuationToken;
    }
    writing = false;
    await Promise.all([writer, deleter]);
    expect(added.length).toBeGreaterThan(0);

    // Strictly ascending: nothing repeated, nothing out of order, whatever was written meanwhile.
    for (let i = 1; i < seen.length; i++) expect(seen[i]! > seen[i - 1]!).toBe(true);
    // Every key that existed throughout the listing is in it.
    const got = new Set(seen);
    expect(stable.filter((k) => !got.has(k))).toEqual([]);
    // Anything else listed was written during the run.
    const known = new Set([...stable, ...doomed, ...added]);
    expect(seen.filter((k) => !known.has(k))).toEqual([]);
  });
});

describe("request validation", () => {
  async function signed(method: string, path: string, headers: Record<string, string>, body?: BodyInit): Promise<Response> {
    const url = `${cluster.endpoint}${path}`;
    const auth = await signRequest({ method, url, headers, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    return fetch(url, { method, headers: { ...headers, ...auth }, body, duplex: "half" } as RequestInit);
  }

  it("stores a PUT streamed without Content-Length; refuses an aws-chunked one without its decoded length (411), storing nothing", async () => {
    const streamOf = (n: number) =>
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new Uint8Array(n).fill(7));
          c.close();
        },
      });
    // fetch sends a stream with Transfer-Encoding: chunked and no length, as curl -T - does.
    const res = await signed("PUT", `/${B}/val/no-length`, {}, streamOf(1000));
    expect(res.status).toBe(200);
    expect((await s3.send(new HeadObjectCommand({ Bucket: B, Key: "val/no-length" }))).ContentLength).toBe(1000);
    const url = `${cluster.endpoint}/${B}/val/no-decoded-length`;
    const headers = { "content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32" };
    const auth = await signRequest({ method: "PUT", url, headers, payloadHash: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    const refused = await fetch(url, { method: "PUT", headers: { ...headers, ...auth }, body: streamOf(10), duplex: "half" } as RequestInit);
    expect(refused.status).toBe(411);
    expect(await errorCode(refused)).toBe("MissingContentLength");
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "val/no-decoded-length" })))).toMatchObject({ status: 404 });
  });

  it("refuses a malformed Content-MD5 (InvalidDigest) and a wrong one (BadDigest), storing nothing", async () => {
    const body = pseudoRandom(100_000, 903) as Uint8Array<ArrayBuffer>;
    const length = String(body.length);
    const bad = await signed("PUT", `/${B}/val/md5`, { "content-length": length, "content-md5": "not base64!" }, body);
    expect([bad.status, await errorCode(bad)]).toEqual([400, "InvalidDigest"]);
    const short = await signed("PUT", `/${B}/val/md5`, { "content-length": length, "content-md5": Buffer.from("short").toString("base64") }, body);
    expect([short.status, await errorCode(short)]).toEqual([400, "InvalidDigest"]);
    const wrong = createHash("md5").update("other bytes").digest("base64");
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "val/md5", Body: body, ContentMD5: wrong })))).toEqual({ name: "BadDigest", status: 400 });
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "val/md5" })))).toMatchObject({ status: 404 });
    const right = createHash("md5").update(body).digest("base64");
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "val/md5", Body: body, ContentMD5: right }));
  });

  it("refuses keys over 1,024 UTF-8 bytes with KeyTooLongError, and takes one of exactly 1,024", async () => {
    const limit = "é".repeat(512);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: limit, Body: "x" }));
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: `${limit}a`, Body: "x" })))).toEqual({ name: "KeyTooLongError", status: 400 });
  });

  it("answers an operation it does not implement with 501 NotImplemented as S3 XML", async () => {
    const res = await signed("GET", `/${B}?website`, {});
    expect(res.status).toBe(501);
    const text = await res.text();
    expect(text).toMatch(/^<\?xml/);
    expect(text).toContain("<Code>NotImplemented</Code>");
  });
});
