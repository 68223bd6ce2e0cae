// Scoped access keys on a real local cluster: keys limited to some buckets or prefixes and to
// reading or writing, issued and changed with the admin CLI (a process), used with the real SDK,
// presigned URLs, a browser-style form upload and the extension clients. Every operation family
// is tried outside the scope and must answer 403 AccessDenied, and inside it must work. The rows
// of the scope table in docs/security.md name the tests here. KEY_CACHE_SECONDS is 1 so a scope
// change shows within the test's bounded wait.

import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketPolicyCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions, ExtensionError } from "../../client/extensions.ts";
import { EditingSession, SessionError } from "../../client/session.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { amzDateOf, deriveSigningKey, signHex } from "../../common/s3/sigv4.ts";
import { adminCli, bodyBytes, clientFor, clusterForSuite, eventually, s3Error } from "./helpers.ts";

let cluster: LocalCluster;
let owner: S3Client;
clusterForSuite({ bucket: "backups", vars: { KEY_CACHE_SECONDS: "1" } }, (c) => ({ cluster, s3: owner } = c));

interface Key {
  accessKeyId: string;
  secretAccessKey: string;
  scope: { access: string; buckets: string[] } | null;
}

function issue(...flags: string[]): Key {
  const r = adminCli(cluster, "keys", "create", "default", ...flags, "--json");
  expect(r.status, r.err).toBe(0);
  return JSON.parse(r.out) as Key;
}

const as = (k: Key) => clientFor(cluster, k.secretAccessKey, k.accessKeyId);
const creds = (k: Key) => ({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey });
const denied = async (p: Promise<unknown>) => expect(await s3Error(p)).toEqual({ name: "AccessDenied", status: 403 });
const text = async (s3: S3Client, Bucket: string, Key: string) => new TextDecoder().decode(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket, Key }))).Body));

/** A form upload (POST Object) of `key` under a policy signed by `k`, as a browser would send it. */
async function formUpload(k: Key, bucket: string, key: string): Promise<Response> {
  const now = new Date();
  const amzDate = amzDateOf(now);
  const date = amzDate.slice(0, 8);
  const fixed = { "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": `${k.accessKeyId}/${date}/${cluster.region}/s3/aws4_request`, "x-amz-date": amzDate };
  const policy = btoa(JSON.stringify({ expiration: new Date(now.getTime() + 300_000).toISOString(), conditions: [{ bucket }, { key }, ...Object.entries(fixed).map(([n, v]) => ({ [n]: v }))] }));
  const form = new FormData();
  for (const [n, v] of Object.entries({ key, ...fixed, policy, "x-amz-signature": await signHex(await deriveSigningKey(k.secretAccessKey, date, cluster.region), policy) })) form.append(n, v);
  form.append("file", new Blob(["from a form"]), "f.jpg");
  return fetch(`${cluster.endpoint}/${bucket}`, { method: "POST", body: form });
}

describe("scoped keys", () => {
  it("are issued by the admin CLI with their scope shown, and a malformed scope is refused", async () => {
    await owner.send(new CreateBucketCommand({ Bucket: "photos" }));
    await owner.send(new PutObjectCommand({ Bucket: "photos", Key: "public/a.jpg", Body: "A" }));
    await owner.send(new PutObjectCommand({ Bucket: "photos", Key: "private/b.jpg", Body: "B" }));
    await owner.send(new PutObjectCommand({ Bucket: "backups", Key: "old", Body: "old" }));
    const k = issue("--buckets", "backups", "--access", "write-only");
    expect(k.scope).toEqual({ access: "write-only", buckets: ["backups"] });
    const bad = adminCli(cluster, "keys", "create", "default", "--buckets", "Not_A_Bucket");
    expect([bad.status, bad.err.split(":")[0]]).toEqual([1, "InvalidArgument"]);
    const list = adminCli(cluster, "keys", "list", "default");
    expect(list.out).toContain(`${k.accessKeyId}\tdefault\tactive\twrite-only backups`);
  });

  it("a backup client's key writes one bucket and does nothing else: no reads, no listings, no other bucket, no settings", async () => {
    const k = issue("--buckets", "backups", "--access", "write-only");
    const s3 = as(k);
    // What it may do: write objects (single and multipart), delete them, see that its bucket exists.
    await s3.send(new PutObjectCommand({ Bucket: "backups", Key: "2026/12/07.tar", Body: "snapshot" }));
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: "backups", Key: "2026/big.tar" }));
    const part = await s3.send(new UploadPartCommand({ Bucket: "backups", Key: "2026/big.tar", UploadId: up.UploadId, PartNumber: 1, Body: "part one" }));
    expect((await s3.send(new ListPartsCommand({ Bucket: "backups", Key: "2026/big.tar", UploadId: up.UploadId }))).Parts).toHaveLength(1);
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: "backups" }))).Uploads?.map((u) => u.Key)).toEqual(["2026/big.tar"]);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: "backups", Key: "2026/big.tar", UploadId: up.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    await s3.send(new HeadBucketCommand({ Bucket: "backups" }));
    expect((await s3.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).toEqual(["backups"]);
    expect(await text(owner, "backups", "2026/big.tar")).toBe("part one");
    // Objects: no reads, of its own writes or anything else.
    await denied(s3.send(new GetObjectCommand({ Bucket: "backups", Key: "2026/12/07.tar" })));
    expect((await s3Error(s3.send(new HeadObjectCommand({ Bucket: "backups", Key: "old" })))).status).toBe(403);
    // Listings.
    await denied(s3.send(new ListObjectsV2Command({ Bucket: "backups" })));
    // Another bucket, for writing or reading.
    await denied(s3.send(new PutObjectCommand({ Bucket: "photos", Key: "x", Body: "x" })));
    expect((await s3Error(s3.send(new HeadBucketCommand({ Bucket: "photos" })))).status).toBe(403);
    await denied(s3.send(new DeleteObjectCommand({ Bucket: "photos", Key: "public/a.jpg" })));
    // A copy needs read on its source, even into the bucket it may write.
    await denied(s3.send(new CopyObjectCommand({ Bucket: "backups", Key: "stolen", CopySource: "photos/private/b.jpg" })));
    // DeleteObjects: each key outside the scope is that key's AccessDenied; a bucket outside it, the request's.
    await denied(s3.send(new DeleteObjectsCommand({ Bucket: "photos", Delete: { Objects: [{ Key: "public/a.jpg" }] } })));
    // Settings and tenant-wide extensions.
    await denied(s3.send(new CreateBucketCommand({ Bucket: "mine" })));
    await denied(s3.send(new PutBucketPolicyCommand({ Bucket: "backups", Policy: JSON.stringify({ Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: "arn:aws:s3:::backups/*" }] }) })));
    const ext = new EdgestoreExtensions(creds(k));
    for (const call of [() => ext.listSnapshots(), () => ext.createSnapshot({ masks: ["backups/*"] }), () => ext.query({ bucket: "backups" })]) {
      const e = await call().then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(ExtensionError);
      expect((e as ExtensionError).status).toBe(403);
    }
    const session = await EditingSession.open(creds(k)).then(() => null, (x: unknown) => x);
    expect(session).toBeInstanceOf(SessionError);
    expect((session as SessionError).message).toContain("AccessDenied");
    // Presigned URLs carry the key, and so its scope.
    expect((await fetch(await getSignedUrl(s3, new GetObjectCommand({ Bucket: "backups", Key: "old" }), { expiresIn: 60 }))).status).toBe(403);
    expect((await fetch(await getSignedUrl(s3, new PutObjectCommand({ Bucket: "backups", Key: "presigned" }), { expiresIn: 60 }), { method: "PUT", body: "via url" })).status).toBe(200);
    expect(await text(owner, "backups", "presigned")).toBe("via url");
    // Deletes are writes: within its bucket they work.
    const r = await s3.send(new DeleteObjectsCommand({ Bucket: "backups", Delete: { Objects: [{ Key: "presigned" }] } }));
    expect(r.Deleted?.map((d) => d.Key)).toEqual(["presigned"]);
  });

  it("a read-only key under a prefix reads and lists there alone, and queries show it nothing else", async () => {
    const k = issue("--buckets", "photos/public/", "--access", "read-only");
    const s3 = as(k);
    expect(await text(s3, "photos", "public/a.jpg")).toBe("A");
    await denied(s3.send(new GetObjectCommand({ Bucket: "photos", Key: "private/b.jpg" })));
    expect((await s3.send(new ListObjectsV2Command({ Bucket: "photos", Prefix: "public/" }))).Contents?.map((o) => o.Key)).toEqual(["public/a.jpg"]);
    // A listing that could show names outside the prefix is refused, as an IAM prefix condition does.
    await denied(s3.send(new ListObjectsV2Command({ Bucket: "photos" })));
    await denied(s3.send(new PutObjectCommand({ Bucket: "photos", Key: "public/new.jpg", Body: "x" })));
    await denied(s3.send(new PutObjectTaggingCommand({ Bucket: "photos", Key: "public/a.jpg", Tagging: { TagSet: [] } })));
    await denied(s3.send(new CopyObjectCommand({ Bucket: "photos", Key: "public/copy.jpg", CopySource: "photos/public/a.jpg" })));
    const ext = new EdgestoreExtensions(creds(k));
    expect((await ext.queryAll({ bucket: "photos" })).map((v) => v.key)).toEqual(["public/a.jpg"]);
    // Page by page, no answer and no continuation token names anything outside the grant.
    await owner.send(new PutObjectCommand({ Bucket: "photos", Key: "public/c.jpg", Body: "C" }));
    await owner.send(new PutObjectCommand({ Bucket: "photos", Key: "zzz/secret.jpg", Body: "Z" }));
    const told: string[] = [];
    let token: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await ext.query({ bucket: "*", maxKeys: 1, continuationToken: token });
      told.push(...page.versions.map((v) => `${v.bucket}/${v.key}`));
      if (!page.nextContinuationToken) break;
      token = page.nextContinuationToken;
      told.push(new TextDecoder().decode(Uint8Array.from(atob(token.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0))));
    }
    for (const t of told) expect(t).toContain("public/");
    expect(told.filter((t) => !t.startsWith("[")).sort()).toEqual(["photos/public/a.jpg", "photos/public/c.jpg"]);
    // A bucket's settings name its other prefixes: a prefix-scoped key cannot read them.
    await denied(s3.send(new GetBucketPolicyCommand({ Bucket: "photos" })));
    // A browser form upload signed with the key is refused at its key, its policy being good.
    const post = await formUpload(k, "photos", "public/form.jpg");
    const answer = await post.text();
    expect([post.status, /<Code>([^<]*)</.exec(answer)?.[1]]).toEqual([403, "AccessDenied"]);
    expect(answer).toContain("scope");
    expect(await s3Error(owner.send(new HeadObjectCommand({ Bucket: "photos", Key: "public/form.jpg" })))).toMatchObject({ status: 404 });
  });

  it("changes scope with `keys scope`, within the key cache's time, and `all` lifts it", async () => {
    const k = issue("--buckets", "photos/public/", "--access", "read-only");
    const s3 = as(k);
    await denied(s3.send(new GetObjectCommand({ Bucket: "photos", Key: "private/b.jpg" })));
    expect(adminCli(cluster, "keys", "scope", k.accessKeyId, "photos", "--access", "read-write").status).toBe(0);
    expect(await eventually(async () => (await text(s3, "photos", "private/b.jpg").catch(() => "")) === "B", { ms: 10_000 })).toBe(true);
    await denied(s3.send(new GetObjectCommand({ Bucket: "backups", Key: "old" })));
    expect(adminCli(cluster, "keys", "scope", k.accessKeyId, "all").status).toBe(0);
    expect(await eventually(async () => (await text(s3, "backups", "old").catch(() => "")) === "old", { ms: 10_000 })).toBe(true);
  });
});
