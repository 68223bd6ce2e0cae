// Tenants and keys (issue 7, point 1) on the real local cluster: the admin API and its CLI
// (client/admin.ts, run as a process), keys that rotate and revoke, per-tenant quotas, secrets
// never in plain text on disk, and tenant isolation for every S3 operation family. The rows of
// the isolation table in docs/security.md name the tests here. KEY_CACHE_SECONDS is 1 so that
// a revocation shows within the test's bounded wait.

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketAclCommand,
  GetBucketLocationCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions, ExtensionError, type Credentials } from "../../client/extensions.ts";
import { EditingSession, SessionError } from "../../client/session.ts";
import { DEVELOPMENT_SECRETS } from "../../common/development-secrets.ts";
import { signRequest } from "../../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../../common/s3/sigv4.ts";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { adminCli, bodyBytes, clientFor, clusterForSuite, eventually, s3Error } from "./helpers.ts";


let cluster: LocalCluster;
clusterForSuite({ bucket: "bootstrap", vars: { KEY_CACHE_SECONDS: "1" } }, (c) => ({ cluster } = c));

interface Key {
  accessKeyId: string;
  secretAccessKey: string;
  tenant: string;
}

/** The admin CLI as an operator runs it: a process, its exit status, stdout and stderr. */
const admin = (...args: string[]) => adminCli(cluster, ...args);

function adminJson<T>(...args: string[]): T {
  const r = admin(...args, "--json");
  expect(r.status, r.err).toBe(0);
  return JSON.parse(r.out) as T;
}

function adminApi(method: string, path: string, token: string | null = cluster.adminToken, body?: unknown): Promise<Response> {
  return fetch(`${cluster.endpoint}${path}`, {
    method,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const s3Of = (k: Key): S3Client => clientFor(cluster, k.secretAccessKey, k.accessKeyId);
const credsOf = (k: Key): Credentials => ({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey });
const text = async (s3: S3Client, bucket: string, key: string) => new TextDecoder().decode(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body));

/** Until `ok` holds (bounded): the gateway remembers a key for KEY_CACHE_SECONDS. */
const within = (ok: () => Promise<boolean>) => eventually(ok, { ms: 10_000, every: 250 });

describe("the admin API and CLI", () => {
  it("accepts only the admin token: none, a wrong one or an S3 secret gets 401 with a JSON error", async () => {
    for (const token of [null, "wrong", cluster.secretKey]) {
      const res = await adminApi("GET", "/_admin/tenants", token);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(((await res.json()) as { error: string }).error).toBe("Unauthorized");
    }
    // An S3-signed request is not an admin request either.
    const url = `${cluster.endpoint}/_admin/tenants`;
    const auth = await signRequest({ method: "GET", url, headers: {}, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    expect((await fetch(url, { headers: { ...auth } })).status).toBe(401);
    expect((await adminApi("GET", "/_admin/nothing-here")).status).toBe(404);
  });

  it("creates and lists tenants, refusing bad and duplicate names with the API's code", async () => {
    expect(admin("tenants", "create", "acme", "--quota", "10GiB").status).toBe(0);
    const dup = admin("tenants", "create", "acme");
    expect([dup.status, dup.err.trim()]).toEqual([1, 'TenantAlreadyExists: tenant "acme" exists already']);
    const bad = admin("tenants", "create", "Not_Valid");
    expect(bad.status).toBe(1);
    expect(bad.err).toMatch(/^InvalidTenantName: /);
    const listed = adminJson<{ tenants: { name: string; quotaBytes: number | null }[] }>("tenants", "list");
    expect(listed.tenants.map((t) => [t.name, t.quotaBytes])).toEqual([
      ["acme", 10 * 2 ** 30],
      ["default", null],
    ]);
    expect(admin("tenants", "list").out).toMatch(/^acme\t0 B in 0 object version\(s\)\tquota 10\.0 GiB$/m);
  });

  it("answers --help for every command, and a usage error with exit status 2", () => {
    const top = admin("--help");
    expect(top.status).toBe(0);
    const commands = [...top.out.matchAll(/^ {2}([a-z]+ [a-z]+)/gm)].map((m) => m[1]!);
    expect(commands).toEqual(["cluster status", "cluster rebalance", "tenants list", "tenants create", "tenants show", "tenants quota", "tenants delete", "keys create", "keys scope", "keys list", "keys rotate", "keys revoke", "keys reseal", "targets enrol", "targets list", "targets revoke", "lifecycle status", "lifecycle run"]);
    for (const c of commands) {
      const h = admin(...c.split(" "), "--help");
      expect([h.status, h.out.startsWith(`usage: edgestore-admin ${c}`)]).toEqual([0, true]);
    }
    expect(admin("keys", "create").status).toBe(2);
    expect(admin("tenants", "quota", "acme", "lots").status).toBe(2);
  });

  it("issues a key whose secret works for S3 and is shown once: never listed, never on disk in plain text", async () => {
    const k = adminJson<Key>("keys", "create", "acme");
    expect(k.accessKeyId).toMatch(/^ES[A-Z2-7]{18}$/);
    const s3 = s3Of(k);
    await s3.send(new CreateBucketCommand({ Bucket: "acme-data" }));
    await s3.send(new PutObjectCommand({ Bucket: "acme-data", Key: "hello", Body: "hi" }));
    expect(await text(s3, "acme-data", "hello")).toBe("hi");
    const listed = admin("keys", "list", "acme", "--json").out;
    expect(listed).toContain(k.accessKeyId);
    expect(listed).not.toContain(k.secretAccessKey);
    expect(admin("tenants", "show", "acme").out).toMatch(/buckets: acme-data/);
    // Every file of the gateway's Durable Object state, SQLite and WAL alike.
    const dir = join(cluster.dataDir, "wrangler");
    const files = (readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.sqlite(-wal)?$/.test(f));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(readFileSync(join(dir, f)).includes(Buffer.from(k.secretAccessKey)), f).toBe(false);
  });

  it("rotates a key: both work during the grace, then only the new one; a revoked key stops within the cache time", async () => {
    const old = adminJson<Key>("keys", "create", "acme");
    const rot = adminJson<{ key: Key; previous: { state: string; expires: number } }>("keys", "rotate", old.accessKeyId, "--grace", "3");
    expect(rot.previous.state).toBe("expiring");
    for (const k of [old, rot.key]) expect(await text(s3Of(k), "acme-data", "hello")).toBe("hi");
    const refused = (k: Key) => s3Of(k).send(new HeadBucketCommand({ Bucket: "acme-data" })).then(() => false, (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode === 403);
    expect(await within(() => refused(old))).toBe(true);
    expect(Date.now()).toBeGreaterThanOrEqual(rot.previous.expires);
    expect(await text(s3Of(rot.key), "acme-data", "hello")).toBe("hi");
    expect(admin("keys", "revoke", rot.key.accessKeyId).status).toBe(0);
    expect(await within(() => refused(rot.key))).toBe(true);
    const err = await s3Error(s3Of(rot.key).send(new ListBucketsCommand({})));
    expect(err).toEqual({ name: "InvalidAccessKeyId", status: 403 });
    const again = admin("keys", "rotate", rot.key.accessKeyId);
    expect([again.status, again.err.split(":")[0]]).toEqual([1, "NoSuchKey"]);
  });

  it("deletes only an empty tenant, and its keys with it", async () => {
    expect(admin("tenants", "create", "brief").status).toBe(0);
    const k = adminJson<Key>("keys", "create", "brief");
    await s3Of(k).send(new CreateBucketCommand({ Bucket: "brief-b" }));
    const full = admin("tenants", "delete", "brief");
    expect([full.status, full.err.split(":")[0]]).toEqual([1, "TenantNotEmpty"]);
    await s3Of(k).send(new DeleteBucketCommand({ Bucket: "brief-b" }));
    expect(admin("tenants", "delete", "brief").status).toBe(0);
    expect(await within(() => s3Of(k).send(new ListBucketsCommand({})).then(() => false, (e: { name?: string }) => e.name === "InvalidAccessKeyId"))).toBe(true);
  });
});

describe("lifecycle passes from the admin CLI", () => {
  it("start on every shard at once when asked, instead of at the next midnight UTC, and report what they did", async () => {
    const s3 = clientFor(cluster);
    await s3.send(new CreateBucketCommand({ Bucket: "lc-run" }));
    await s3.send(new PutObjectCommand({ Bucket: "lc-run", Key: "old/a", Body: "a" }));
    await s3.send(new PutObjectCommand({ Bucket: "lc-run", Key: "new/b", Body: "b" }));
    const midnight = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000);
    await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: "lc-run", LifecycleConfiguration: { Rules: [{ ID: "old", Status: "Enabled", Filter: { Prefix: "old/" }, Expiration: { Date: midnight } }] } }));
    type Status = { shards: { shard: number; running: boolean; keysWalked: number; actionsDone: number; nextPass: string }[] };
    const before = adminJson<Status>("lifecycle", "status");
    expect(before.shards.length).toBeGreaterThan(0);
    for (const sh of before.shards) expect(Date.parse(sh.nextPass)).toBe(midnight.getTime() + 86_400_000);
    expect(admin("lifecycle", "run").status).toBe(0);
    const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: "lc-run" }))).Contents ?? []).map((o) => o.Key);
    expect(await eventually(async () => JSON.stringify(await keys()) === JSON.stringify(["new/b"]), { ms: 15_000 })).toBe(true);
    const after = adminJson<Status>("lifecycle", "status");
    expect(after.shards.reduce((n, sh) => n + sh.actionsDone, 0)).toBe(1);
    expect(after.shards.reduce((n, sh) => n + sh.keysWalked, 0)).toBe(2);
  });
});

describe("quotas", () => {
  it("refuses a write past the tenant's quota with 403 QuotaExceeded, and takes writes again once space is freed", async () => {
    expect(admin("tenants", "create", "small", "--quota", "1MB").status).toBe(0);
    const s3 = s3Of(adminJson<Key>("keys", "create", "small"));
    await s3.send(new CreateBucketCommand({ Bucket: "small-b" }));
    const big = new Uint8Array(600_000).fill(7);
    await s3.send(new PutObjectCommand({ Bucket: "small-b", Key: "one", Body: big }));
    // Usage is counted by the manifest shards once the version is recorded; the isolate adds its own writes meanwhile.
    const over = await s3Error(s3.send(new PutObjectCommand({ Bucket: "small-b", Key: "two", Body: big })));
    expect(over).toEqual({ name: "QuotaExceeded", status: 403 });
    expect((await s3Error(s3.send(new HeadObjectCommand({ Bucket: "small-b", Key: "two" })))).status).toBe(404);
    const copy = await s3Error(s3.send(new CopyObjectCommand({ Bucket: "small-b", Key: "copy", CopySource: "small-b/one" })));
    expect(copy.name).toBe("QuotaExceeded");
    const mp = await s3.send(new CreateMultipartUploadCommand({ Bucket: "small-b", Key: "mp" }));
    const part = await s3Error(s3.send(new UploadPartCommand({ Bucket: "small-b", Key: "mp", UploadId: mp.UploadId, PartNumber: 1, Body: big })));
    expect(part.name).toBe("QuotaExceeded");
    const shown = adminJson<{ usage: { bytes: number; objects: number } }>("tenants", "show", "small");
    expect(shown.usage).toEqual({ bytes: 600_000, objects: 1 });
    // Small writes still fit; freeing space (deleting) makes room for the large one.
    await s3.send(new PutObjectCommand({ Bucket: "small-b", Key: "tiny", Body: "x" }));
    await s3.send(new DeleteObjectCommand({ Bucket: "small-b", Key: "one" }));
    const fits = await within(async () => (await s3.send(new PutObjectCommand({ Bucket: "small-b", Key: "two", Body: big })).then(() => true, () => false)));
    expect(fits).toBe(true);
    // Lifting the quota lifts the limit.
    expect(admin("tenants", "quota", "small", "none").status).toBe(0);
    expect(await within(async () => s3.send(new PutObjectCommand({ Bucket: "small-b", Key: "three", Body: big })).then(() => true, () => false))).toBe(true);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: "small-b", Key: "mp", UploadId: mp.UploadId }));
  });
});

describe("deleting a tenant", () => {
  it("leaves nothing a tenant created again under its name can find: no snapshot, no key", async () => {
    expect(admin("tenants", "create", "gone").status).toBe(0);
    const k = adminJson<Key>("keys", "create", "gone");
    const s3 = s3Of(k);
    await s3.send(new CreateBucketCommand({ Bucket: "gone-b" }));
    await s3.send(new PutObjectCommand({ Bucket: "gone-b", Key: "kept", Body: "held by a snapshot" }));
    const ext = new EdgestoreExtensions(credsOf(k));
    const snap = await ext.commitSnapshot((await ext.createSnapshot({ masks: ["gone-b/*"] })).id);
    expect(snap.objects).toBe(1);
    await s3.send(new DeleteObjectCommand({ Bucket: "gone-b", Key: "kept" }));
    await s3.send(new DeleteBucketCommand({ Bucket: "gone-b" }));
    expect(admin("tenants", "delete", "gone").status).toBe(0);
    expect(admin("tenants", "create", "gone").status).toBe(0);
    const again = new EdgestoreExtensions(credsOf(adminJson<Key>("keys", "create", "gone")));
    expect(await again.listSnapshots()).toEqual([]);
    const code = await again.getSnapshot(snap.id).then(() => "answered", (e: unknown) => (e instanceof ExtensionError ? e.code : String(e)));
    expect(code).toBe("NoSuchSnapshot");
    expect(await within(() => s3.send(new ListBucketsCommand({})).then(() => false, (e: { name?: string }) => e.name === "InvalidAccessKeyId"))).toBe(true);
  });
});

describe("quotas on every path that stores bytes", () => {
  it("counts concurrent writes against the quota, however many arrive before usage is read", async () => {
    expect(admin("tenants", "create", "burst", "--quota", "1MB").status).toBe(0);
    const s3 = s3Of(adminJson<Key>("keys", "create", "burst"));
    await s3.send(new CreateBucketCommand({ Bucket: "burst-b" }));
    // Six writes of 300 kB at once, before the isolate knows the tenant's usage: three fit.
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, i) => s3.send(new PutObjectCommand({ Bucket: "burst-b", Key: `k${i}`, Body: new Uint8Array(300_000).fill(i) })).then(() => "ok", (e: { name?: string }) => e.name)),
    );
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(3);
    expect(outcomes.filter((o) => o === "QuotaExceeded")).toHaveLength(3);
  });

  it("refuses a multipart upload whose completed object would pass the quota, though each part fit", async () => {
    expect(admin("tenants", "create", "parts", "--quota", "12MB").status).toBe(0);
    const s3 = s3Of(adminJson<Key>("keys", "create", "parts"));
    await s3.send(new CreateBucketCommand({ Bucket: "parts-b" }));
    await s3.send(new PutObjectCommand({ Bucket: "parts-b", Key: "one", Body: new Uint8Array(4_000_000).fill(1) }));
    const mp = await s3.send(new CreateMultipartUploadCommand({ Bucket: "parts-b", Key: "mp" }));
    const part = async (n: number) => {
      const r = await s3.send(new UploadPartCommand({ Bucket: "parts-b", Key: "mp", UploadId: mp.UploadId, PartNumber: n, Body: new Uint8Array(5 * 1024 * 1024).fill(n) }));
      return { PartNumber: n, ETag: r.ETag };
    };
    // Each part fits beside the 4 MB stored; parts are no version, so usage read afresh (past
    // KEY_CACHE_SECONDS) does not count them. Together with what is stored they pass 12 MB.
    const parts = [await part(1)];
    await sleep(6_000);
    parts.push(await part(2));
    const done = await s3Error(s3.send(new CompleteMultipartUploadCommand({ Bucket: "parts-b", Key: "mp", UploadId: mp.UploadId, MultipartUpload: { Parts: parts } })));
    expect(done).toEqual({ name: "QuotaExceeded", status: 403 });
    expect((await s3Error(s3.send(new HeadObjectCommand({ Bucket: "parts-b", Key: "mp" })))).status).toBe(404);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: "parts-b", Key: "mp", UploadId: mp.UploadId }));
  });

  it("refuses an editing session's commit past the quota", async () => {
    expect(admin("tenants", "create", "edits", "--quota", "1MB").status).toBe(0);
    const k = adminJson<Key>("keys", "create", "edits");
    const s3 = s3Of(k);
    await s3.send(new CreateBucketCommand({ Bucket: "edits-b" }));
    await s3.send(new PutObjectCommand({ Bucket: "edits-b", Key: "one", Body: new Uint8Array(600_000).fill(1) }));
    const session = await EditingSession.open(credsOf(k));
    try {
      const edit = await session.begin({ bucket: "edits-b", key: "edited", base: null, mode: "replace" });
      await edit.write(0, new Uint8Array(600_000).fill(2));
      const failed = await edit.commit().then(() => null, (e: unknown) => (e instanceof SessionError ? e.code : String(e)));
      expect(failed).toBe("QuotaExceeded");
    } finally {
      await session.close();
    }
    expect((await s3Error(s3.send(new HeadObjectCommand({ Bucket: "edits-b", Key: "edited" })))).status).toBe(404);
  });
});

describe("tenant isolation", () => {
  // Tenant A ("alpha") owns bucket "alpha-only" and, like B ("beta"), a bucket named "common":
  // bucket names are per tenant. Every operation family is tried with B's key on A's names.
  let a: S3Client;
  let b: S3Client;
  let aKey: Key;
  let bKey: Key;
  let uploadId: string;

  it("sets up two tenants with a bucket name each of them has", async () => {
    for (const t of ["alpha", "beta"]) expect(admin("tenants", "create", t).status).toBe(0);
    aKey = adminJson<Key>("keys", "create", "alpha");
    bKey = adminJson<Key>("keys", "create", "beta");
    a = s3Of(aKey);
    b = s3Of(bKey);
    await a.send(new CreateBucketCommand({ Bucket: "alpha-only" }));
    await a.send(new CreateBucketCommand({ Bucket: "common" }));
    await b.send(new CreateBucketCommand({ Bucket: "common" }));
    await a.send(new PutObjectCommand({ Bucket: "alpha-only", Key: "secret.txt", Body: "alpha's secret" }));
    await a.send(new PutObjectCommand({ Bucket: "common", Key: "a-key", Body: "alpha's common" }));
    await a.send(new PutObjectCommand({ Bucket: "common", Key: "same", Body: "alpha's same" }));
    await b.send(new PutObjectCommand({ Bucket: "common", Key: "same", Body: "beta's same" }));
    uploadId = (await a.send(new CreateMultipartUploadCommand({ Bucket: "common", Key: "upload" }))).UploadId!;
  });

  it("buckets: B neither lists, probes, reads the settings of, changes nor deletes A's buckets", async () => {
    const names = (await b.send(new ListBucketsCommand({}))).Buckets!.map((x) => x.Name);
    expect(names).toEqual(["common"]);
    const nope = { name: "NoSuchBucket", status: 404 };
    expect(await s3Error(b.send(new HeadBucketCommand({ Bucket: "alpha-only" })))).toMatchObject({ status: 404 });
    for (const cmd of [
      new GetBucketLocationCommand({ Bucket: "alpha-only" }),
      new GetBucketVersioningCommand({ Bucket: "alpha-only" }),
      new PutBucketVersioningCommand({ Bucket: "alpha-only", VersioningConfiguration: { Status: "Enabled" } }),
      new GetBucketAclCommand({ Bucket: "alpha-only" }),
      new GetBucketTaggingCommand({ Bucket: "alpha-only" }),
      new PutBucketTaggingCommand({ Bucket: "alpha-only", Tagging: { TagSet: [{ Key: "k", Value: "v" }] } }),
      new DeleteBucketCommand({ Bucket: "alpha-only" }),
    ]) {
      expect(await s3Error(b.send(cmd as never)), cmd.constructor.name).toEqual(nope);
    }
    expect((await a.send(new GetBucketVersioningCommand({ Bucket: "alpha-only" }))).Status).toBeUndefined();
    expect(await text(a, "alpha-only", "secret.txt")).toBe("alpha's secret");
  });

  it("objects: B can neither read, probe, overwrite, tag nor delete A's objects; a shared bucket name holds separate objects", async () => {
    const nope = { name: "NoSuchBucket", status: 404 };
    for (const cmd of [
      new GetObjectCommand({ Bucket: "alpha-only", Key: "secret.txt" }),
      new PutObjectCommand({ Bucket: "alpha-only", Key: "secret.txt", Body: "overwritten" }),
      new DeleteObjectCommand({ Bucket: "alpha-only", Key: "secret.txt" }),
      new DeleteObjectsCommand({ Bucket: "alpha-only", Delete: { Objects: [{ Key: "secret.txt" }] } }),
      new GetObjectTaggingCommand({ Bucket: "alpha-only", Key: "secret.txt" }),
      new PutObjectTaggingCommand({ Bucket: "alpha-only", Key: "secret.txt", Tagging: { TagSet: [] } }),
      new GetObjectAclCommand({ Bucket: "alpha-only", Key: "secret.txt" }),
    ]) {
      expect(await s3Error(b.send(cmd as never)), cmd.constructor.name).toEqual(nope);
    }
    expect((await s3Error(b.send(new HeadObjectCommand({ Bucket: "alpha-only", Key: "secret.txt" })))).status).toBe(404);
    // In "common", B sees only its own: A's key is not there for B, and the same key is two objects.
    expect(await s3Error(b.send(new GetObjectCommand({ Bucket: "common", Key: "a-key" })))).toEqual({ name: "NoSuchKey", status: 404 });
    expect(await text(b, "common", "same")).toBe("beta's same");
    expect(await text(a, "common", "same")).toBe("alpha's same");
    await b.send(new DeleteObjectCommand({ Bucket: "common", Key: "a-key" }));
    expect(await text(a, "common", "a-key")).toBe("alpha's common");
    expect(await text(a, "alpha-only", "secret.txt")).toBe("alpha's secret");
  });

  it("listings: B's listings of a bucket name both have show only B's keys", async () => {
    const v2 = await b.send(new ListObjectsV2Command({ Bucket: "common" }));
    expect(v2.Contents!.map((o) => o.Key)).toEqual(["same"]);
    const v1 = await b.send(new ListObjectsCommand({ Bucket: "common" }));
    expect(v1.Contents!.map((o) => o.Key)).toEqual(["same"]);
    const versions = await b.send(new ListObjectVersionsCommand({ Bucket: "common" }));
    expect((versions.Versions ?? []).map((o) => o.Key)).toEqual(["same"]);
    expect(await s3Error(b.send(new ListObjectsV2Command({ Bucket: "alpha-only" })))).toEqual({ name: "NoSuchBucket", status: 404 });
  });

  it("copies: B cannot name A's objects as a copy source, whole or as a part", async () => {
    expect(await s3Error(b.send(new CopyObjectCommand({ Bucket: "common", Key: "stolen", CopySource: "alpha-only/secret.txt" })))).toEqual({ name: "NoSuchBucket", status: 404 });
    expect(await s3Error(b.send(new CopyObjectCommand({ Bucket: "common", Key: "stolen", CopySource: "common/a-key" })))).toEqual({ name: "NoSuchKey", status: 404 });
    const mine = (await b.send(new CreateMultipartUploadCommand({ Bucket: "common", Key: "copied-part" }))).UploadId!;
    expect(await s3Error(b.send(new UploadPartCopyCommand({ Bucket: "common", Key: "copied-part", UploadId: mine, PartNumber: 1, CopySource: "alpha-only/secret.txt" })))).toEqual({
      name: "NoSuchBucket",
      status: 404,
    });
    await b.send(new AbortMultipartUploadCommand({ Bucket: "common", Key: "copied-part", UploadId: mine }));
    expect(await s3Error(b.send(new HeadObjectCommand({ Bucket: "common", Key: "stolen" })))).toMatchObject({ status: 404 });
  });

  it("multipart uploads: B neither lists A's upload nor uploads to, lists, completes or aborts it by its id", async () => {
    expect((await b.send(new ListMultipartUploadsCommand({ Bucket: "common" }))).Uploads ?? []).toEqual([]);
    const noSuchUpload = { name: "NoSuchUpload", status: 404 };
    expect(await s3Error(b.send(new UploadPartCommand({ Bucket: "common", Key: "upload", UploadId: uploadId, PartNumber: 1, Body: "x" })))).toEqual(noSuchUpload);
    expect(await s3Error(b.send(new ListPartsCommand({ Bucket: "common", Key: "upload", UploadId: uploadId })))).toEqual(noSuchUpload);
    expect(
      await s3Error(b.send(new CompleteMultipartUploadCommand({ Bucket: "common", Key: "upload", UploadId: uploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"x"' }] } }))),
    ).toEqual(noSuchUpload);
    expect(await s3Error(b.send(new AbortMultipartUploadCommand({ Bucket: "common", Key: "upload", UploadId: uploadId })))).toEqual(noSuchUpload);
    expect((await a.send(new ListMultipartUploadsCommand({ Bucket: "common" }))).Uploads!.map((u) => u.UploadId)).toEqual([uploadId]);
  });

  it("presigned URLs: one signed by B's key reaches only B's names; one by a revoked key does not work", async () => {
    const byB = await getSignedUrl(b, new GetObjectCommand({ Bucket: "alpha-only", Key: "secret.txt" }), { expiresIn: 60 });
    const res = await fetch(byB);
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/<Code>NoSuchBucket<\/Code>/);
    const sameName = await fetch(await getSignedUrl(b, new GetObjectCommand({ Bucket: "common", Key: "same" }), { expiresIn: 60 }));
    expect(await sameName.text()).toBe("beta's same");
    const temp = adminJson<Key>("keys", "create", "alpha");
    const url = await getSignedUrl(s3Of(temp), new GetObjectCommand({ Bucket: "alpha-only", Key: "secret.txt" }), { expiresIn: 60 });
    expect(await (await fetch(url)).text()).toBe("alpha's secret");
    expect(admin("keys", "revoke", temp.accessKeyId).status).toBe(0);
    expect(await within(async () => (await fetch(url)).status === 403)).toBe(true);
  });

  it("snapshots: B neither lists, reads, commits, restores nor deletes A's snapshots", async () => {
    const extA = new EdgestoreExtensions(credsOf(aKey));
    const extB = new EdgestoreExtensions(credsOf(bKey));
    const snap = await extA.createSnapshot({ masks: ["alpha-only/*"] });
    expect((await extB.listSnapshots()).map((s) => s.id)).not.toContain(snap.id);
    const code = (p: Promise<unknown>) => p.then(() => "answered", (e: unknown) => (e instanceof ExtensionError ? e.code : String(e)));
    expect(await code(extB.getSnapshot(snap.id))).toBe("NoSuchSnapshot");
    expect(await code(extB.commitSnapshot(snap.id))).toBe("NoSuchSnapshot");
    expect(await code(extB.restoreSnapshot(snap.id, { toBucket: "common" }))).toBe("NoSuchSnapshot");
    expect(await code(extB.deleteSnapshot(snap.id))).toBe("NoSuchSnapshot");
    // B's own snapshot of the same mask holds nothing of A's.
    // B's own snapshot over the same names holds only B's one object, and restores only that.
    const own = await extB.commitSnapshot((await extB.createSnapshot({ masks: ["alpha-only/*", "common/*"] })).id);
    expect([own.objects, own.bytes]).toEqual([1, "beta's same".length]);
    expect(await extB.restoreSnapshot(own.id, { toBucket: "common", toPrefix: "r/" })).toMatchObject({ restored: 1, bytes: "beta's same".length });
    expect((await b.send(new ListObjectsV2Command({ Bucket: "common", Prefix: "r/" }))).Contents!.map((o) => o.Key)).toEqual(["r/same"]);
    expect((await extA.commitSnapshot(snap.id)).id).toBe(snap.id);
  });

  it("extensions: B's queries, validation, replica settings and chunk reads see nothing of A's", async () => {
    const extB = new EdgestoreExtensions(credsOf(bKey));
    const all = await extB.queryAll({});
    expect(all.map((v) => `${v.bucket}/${v.key}`)).toEqual(["common/r/same", "common/same"]);
    const code = (p: Promise<unknown>) => p.then(() => "answered", (e: unknown) => (e instanceof ExtensionError ? e.code : String(e)));
    expect(await code(extB.validate({ bucket: "alpha-only", key: "secret.txt" }))).toBe("NoSuchBucket");
    expect(await code(extB.setReplicas({ bucket: "alpha-only", key: "secret.txt" }, 1))).toBe("NoSuchBucket");
    expect(await code(extB.chunkLayout("alpha-only", "secret.txt"))).toBe("NoSuchBucket");
    expect(await code(extB.storedChunk("alpha-only", "secret.txt", 0))).toBe("NoSuchBucket");
    expect(await code(extB.chunkLayout("common", "a-key"))).toBe("NoSuchKey");
  });

  it("editing sessions: B's session cannot edit A's names, and B cannot drive A's HTTP session", async () => {
    const s = await EditingSession.open(credsOf(bKey));
    try {
      const failed = await s.begin({ bucket: "alpha-only", key: "secret.txt", base: null, mode: "replace" }).then(
        () => "began",
        (e: unknown) => (e instanceof SessionError ? e.code : String(e)),
      );
      expect(failed).toBe("NoSuchBucket");
    } finally {
      await s.close();
    }
    // A's HTTP session, named by its id in a request signed with B's key.
    const url = `${cluster.endpoint}/_sessions`;
    const open = await signRequest({ method: "POST", url, headers: {}, payloadHash: UNSIGNED_PAYLOAD, accessKey: aKey.accessKeyId, secretKey: aKey.secretAccessKey, region: cluster.region });
    const { session } = (await (await fetch(url, { method: "POST", headers: { ...open } })).json()) as { session: string };
    const cmdUrl = `${url}/${session}`;
    const headers = { "x-edgestore-command": JSON.stringify({ op: "abort", txn: "t1" }) };
    const asB = await signRequest({ method: "POST", url: cmdUrl, headers, payloadHash: UNSIGNED_PAYLOAD, accessKey: bKey.accessKeyId, secretKey: bKey.secretAccessKey, region: cluster.region });
    const res = await fetch(cmdUrl, { method: "POST", headers: { ...headers, ...asB } });
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/<Code>NoSuchSession<\/Code>/);
  });

  it("A's data is untouched by everything B tried", async () => {
    expect(await text(a, "alpha-only", "secret.txt")).toBe("alpha's secret");
    expect((await a.send(new ListObjectsV2Command({ Bucket: "common" }))).Contents!.map((o) => o.Key)).toEqual(["a-key", "same"]);
    expect((await a.send(new ListMultipartUploadsCommand({ Bucket: "common" }))).Uploads!.map((u) => u.UploadId)).toEqual([uploadId]);
  });
});

describe("rotating the sealing secret", () => {
  it("opens keys under the previous secret until they are re-sealed, then under the new one alone", async () => {
    expect(admin("tenants", "create", "sealed").status).toBe(0);
    const k = adminJson<Key>("keys", "create", "sealed");
    await s3Of(k).send(new CreateBucketCommand({ Bucket: "sealed-b" }));
    const next = "a-new-sealing-secret-for-this-test-0123";
    // A redeploy with the new secret and the old one as previous: issued keys keep working.
    await cluster.restartGateway({ KEY_SEALING_SECRET: next, KEY_SEALING_SECRET_PREVIOUS: DEVELOPMENT_SECRETS.KEY_SEALING_SECRET });
    await cluster.waitForTargets();
    expect((await s3Of(k).send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name)).toContain("sealed-b");
    const r = adminJson<{ resealed: number; current: number; failed: string[] }>("keys", "reseal");
    expect(r.resealed).toBeGreaterThan(0);
    expect(r.failed).toEqual([]);
    // The old secret gone: every key still opens, as the new one sealed it.
    await cluster.restartGateway({ KEY_SEALING_SECRET: next, KEY_SEALING_SECRET_PREVIOUS: "" });
    await cluster.waitForTargets();
    expect((await s3Of(k).send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name)).toContain("sealed-b");
    expect(adminJson<{ resealed: number }>("keys", "reseal").resealed).toBe(0);
  });
});
