// Lifecycle rules on a real local cluster, through @aws-sdk/client-s3. A lifecycle "day" is
// LIFECYCLE_DAY_SECONDS = 2 here (a real day by default; Ceph's rgw_lc_debug_interval does the
// same), so a rule of one day acts within a few seconds: each shard's pass starts at every
// two-second boundary. Short reclamation timings let an expired object's chunks be seen to
// leave the targets' disks. Nothing is mocked.

import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketLifecycleCommand,
  DeleteObjectCommand,
  GetBucketLifecycleConfigurationCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  type LifecycleRule,
  type S3Client,
} from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import { chunkCopies, clusterForSuite, eventually, pseudoRandom, s3Error } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "lifecycle";
const DAY_MS = 2_000;

clusterForSuite(
  { bucket: B, vars: { LIFECYCLE_DAY_SECONDS: "2", CHUNK_HOLD_SECONDS: "2", REMOVED_RETAIN_SECONDS: "1", RECLAIM_GRACE_SECONDS: "0.5" } },
  (c) => ({ cluster, s3 } = c),
);

async function bucket(name: string, versioned = false): Promise<string> {
  await s3.send(new CreateBucketCommand({ Bucket: name }));
  if (versioned) await s3.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: "Enabled" } }));
  return name;
}

const put = (Bucket: string, Key: string, body: string | Uint8Array = "x", Tagging?: string) => s3.send(new PutObjectCommand({ Bucket, Key, Body: body, Tagging }));
const rules = (Bucket: string, Rules: LifecycleRule[]) => s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules } }));

async function keys(Bucket: string): Promise<string[]> {
  const r = await s3.send(new ListObjectsV2Command({ Bucket }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

async function versions(Bucket: string, Prefix: string): Promise<string[]> {
  const r = await s3.send(new ListObjectVersionsCommand({ Bucket, Prefix }));
  const all = [...(r.Versions ?? []).map((v) => ({ id: v.VersionId!, what: `${v.Key}:${v.IsLatest ? "current" : "noncurrent"}`, at: v.LastModified! })), ...(r.DeleteMarkers ?? []).map((m) => ({ id: m.VersionId!, what: `${m.Key}:marker${m.IsLatest ? "-current" : ""}`, at: m.LastModified! }))];
  return all.sort((a, b) => (a.id < b.id ? 1 : -1)).map((v) => v.what);
}

const sameSet = (want: string[]) => (got: string[]) => JSON.stringify(got) === JSON.stringify(want);

describe("tags in queries", () => {
  it("select versions by the tags they have now, set at the write or changed since", async () => {
    const q = await bucket("tag-query");
    await put(q, "a", "1", "class=hot&team=db");
    await put(q, "b", "2", "class=hot");
    await put(q, "c", "3");
    await s3.send(new PutObjectTaggingCommand({ Bucket: q, Key: "b", Tagging: { TagSet: [{ Key: "class", Value: "cold" }] } }));
    await s3.send(new PutObjectTaggingCommand({ Bucket: q, Key: "c", Tagging: { TagSet: [{ Key: "class", Value: "hot" }] } }));
    const ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    const found = async (tags: Record<string, string>) => (await ext.queryAll({ bucket: q, tags })).map((v) => v.key).sort();
    expect(await found({ class: "hot" })).toEqual(["a", "c"]);
    expect(await found({ class: "cold" })).toEqual(["b"]);
    expect(await found({ class: "hot", team: "db" })).toEqual(["a"]);
    expect(await found({ Class: "hot" })).toEqual([]);
  });
});

describe("lifecycle configuration", () => {
  it("is put, read back and deleted as S3 does, and refuses what S3 refuses", async () => {
    const b = await bucket("lifecycle-api");
    expect(await s3Error(s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b })))).toEqual({ name: "NoSuchLifecycleConfiguration", status: 404 });
    await rules(b, [
      { ID: "logs", Status: "Enabled", Filter: { And: { Prefix: "logs/", Tags: [{ Key: "class", Value: "tmp" }], ObjectSizeGreaterThan: 10 } }, Expiration: { Days: 30 } },
      { ID: "old", Status: "Disabled", Filter: { Prefix: "" }, NoncurrentVersionExpiration: { NoncurrentDays: 7, NewerNoncurrentVersions: 3 }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 } },
      { ID: "markers", Status: "Enabled", Filter: { Prefix: "m/" }, Expiration: { ExpiredObjectDeleteMarker: true } },
      { ID: "date", Status: "Enabled", Filter: { ObjectSizeLessThan: 100 }, Expiration: { Date: new Date("2030-01-01T00:00:00Z") } },
    ]);
    const got = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }));
    expect(got.Rules).toEqual([
      { ID: "logs", Status: "Enabled", Filter: { And: { Prefix: "logs/", Tags: [{ Key: "class", Value: "tmp" }], ObjectSizeGreaterThan: 10 } }, Expiration: { Days: 30 } },
      { ID: "old", Status: "Disabled", Filter: { Prefix: "" }, NoncurrentVersionExpiration: { NoncurrentDays: 7, NewerNoncurrentVersions: 3 }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 } },
      { ID: "markers", Status: "Enabled", Filter: { Prefix: "m/" }, Expiration: { ExpiredObjectDeleteMarker: true } },
      { ID: "date", Status: "Enabled", Filter: { ObjectSizeLessThan: 100 }, Expiration: { Date: new Date("2030-01-01T00:00:00Z") } },
    ]);
    const refused = (r: LifecycleRule[]) => s3Error(rules(b, r));
    expect(await refused([{ ID: "d", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Date: new Date("2030-01-01T12:00:00Z") } }])).toEqual({ name: "InvalidArgument", status: 400 });
    expect(await refused([{ ID: "d", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 0 } }])).toEqual({ name: "InvalidArgument", status: 400 });
    expect(await refused([{ ID: "d", Status: "Enabled", Filter: { Prefix: "" } }])).toEqual({ name: "InvalidRequest", status: 400 });
    expect(await refused([{ ID: "d", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 1 } }, { ID: "d", Status: "Enabled", Filter: { Prefix: "x" }, Expiration: { Days: 1 } }])).toEqual({ name: "InvalidArgument", status: 400 });
    expect(await refused([{ ID: "d", Status: "Enabled", Filter: { Tag: { Key: "k", Value: "v" } }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }])).toEqual({ name: "InvalidRequest", status: 400 });
    expect(await refused([{ ID: "d", Status: "Enabled", Filter: { Prefix: "" }, Transitions: [{ Days: 30, StorageClass: "GLACIER" }] }])).toEqual({ name: "NotImplemented", status: 501 });
    // A refused configuration leaves the one in force as it was.
    expect((await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }))).Rules).toHaveLength(4);
    await s3.send(new DeleteBucketLifecycleCommand({ Bucket: b }));
    expect(await s3Error(s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b })))).toEqual({ name: "NoSuchLifecycleConfiguration", status: 404 });
  });
});

describe("lifecycle rules acting", () => {
  it("expire current objects by prefix, size and tags (tags set later count), and their chunks leave the disks", async () => {
    const big = pseudoRandom(300_000, 7);
    await put(B, "logs/a", "small");
    const before = new Set(chunkCopies(cluster).keys());
    await put(B, "logs/big", big);
    const bigChunks = [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
    expect(bigChunks.length).toBeGreaterThan(0);
    await put(B, "keep/a", "small");
    await put(B, "tmp/tagged", "x", "class=tmp");
    await put(B, "tmp/untagged", "x");
    await put(B, "tmp/tagged-later", "x");
    await rules(B, [
      { ID: "logs", Status: "Enabled", Filter: { Prefix: "logs/" }, Expiration: { Days: 1 } },
      { ID: "tmp", Status: "Enabled", Filter: { And: { Prefix: "tmp/", Tags: [{ Key: "class", Value: "tmp" }] } }, Expiration: { Days: 1 } },
      { ID: "big-keep", Status: "Enabled", Filter: { And: { Prefix: "keep/", ObjectSizeGreaterThan: 1_000 } }, Expiration: { Days: 1 } },
    ]);
    await s3.send(new PutObjectTaggingCommand({ Bucket: B, Key: "tmp/tagged-later", Tagging: { TagSet: [{ Key: "class", Value: "tmp" }] } }));
    const left = ["keep/a", "tmp/untagged"];
    expect(await eventually(async () => sameSet(left)(await keys(B)), { ms: 8 * DAY_MS })).toBe(true);
    expect(await keys(B)).toEqual(left);
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "logs/big" })))).toEqual({ name: "NotFound", status: 404 });
    // Removed through the delete path: its chunks are reclaimed like any deleted object's.
    expect(await eventually(() => bigChunks.every((c) => !chunkCopies(cluster).has(c)), { ms: 20_000 })).toBe(true);
    // Objects too young stay: a pass at the next day boundary leaves one written now, as it is not a day old.
    await put(B, "logs/new", "fresh");
    await new Promise((res) => setTimeout(res, DAY_MS - (Date.now() % DAY_MS) + 300));
    expect(await keys(B)).toContain("logs/new");
  });

  it("in a versioned bucket: a delete marker over expired objects, noncurrent versions beyond the newest kept, lone delete markers removed", async () => {
    const v = await bucket("lifecycle-versioned", true);
    await put(v, "a/obj", "1");
    for (const body of ["1", "2", "3", "4"]) await put(v, "n/obj", body);
    const lone = await put(v, "m/obj", "1");
    await s3.send(new DeleteObjectCommand({ Bucket: v, Key: "m/obj" }));
    await s3.send(new DeleteObjectCommand({ Bucket: v, Key: "m/obj", VersionId: lone.VersionId }));
    expect(await versions(v, "m/")).toEqual(["m/obj:marker-current"]);
    await rules(v, [
      { ID: "current", Status: "Enabled", Filter: { Prefix: "a/" }, Expiration: { Days: 1 } },
      { ID: "noncurrent", Status: "Enabled", Filter: { Prefix: "n/" }, NoncurrentVersionExpiration: { NoncurrentDays: 1, NewerNoncurrentVersions: 1 } },
      { ID: "markers", Status: "Enabled", Filter: { Prefix: "m/" }, Expiration: { ExpiredObjectDeleteMarker: true } },
    ]);
    expect(await eventually(async () => sameSet(["a/obj:marker-current", "a/obj:noncurrent"])(await versions(v, "a/")), { ms: 8 * DAY_MS })).toBe(true);
    expect(await eventually(async () => sameSet(["n/obj:current", "n/obj:noncurrent"])(await versions(v, "n/")), { ms: 8 * DAY_MS })).toBe(true);
    expect(await eventually(async () => (await versions(v, "m/")).length === 0, { ms: 8 * DAY_MS })).toBe(true);
    // The marker the rule made is a delete marker like any: the object's data is still there underneath.
    const r = await s3.send(new ListObjectVersionsCommand({ Bucket: v, Prefix: "a/" }));
    expect(r.DeleteMarkers?.[0]?.IsLatest).toBe(true);
    expect(r.Versions?.[0]?.Size).toBe(1);
    // A marker with versions behind it is not "expired": the rule leaves it.
    await new Promise((res) => setTimeout(res, 3 * DAY_MS));
    expect(await versions(v, "a/")).toEqual(["a/obj:marker-current", "a/obj:noncurrent"]);
  });

  it("abort incomplete multipart uploads, and expire by date", async () => {
    const u = await bucket("lifecycle-uploads");
    const open = await s3.send(new CreateMultipartUploadCommand({ Bucket: u, Key: "up/one" }));
    await s3.send(new CreateMultipartUploadCommand({ Bucket: u, Key: "other/one" }));
    await put(u, "dated/a", "x");
    await put(u, "undated/a", "x");
    const midnight = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000);
    await rules(u, [
      { ID: "uploads", Status: "Enabled", Filter: { Prefix: "up/" }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
      { ID: "dated", Status: "Enabled", Filter: { Prefix: "dated/" }, Expiration: { Date: midnight } },
    ]);
    const uploads = async () => ((await s3.send(new ListMultipartUploadsCommand({ Bucket: u }))).Uploads ?? []).map((x) => x.Key!);
    expect(await eventually(async () => sameSet(["other/one"])(await uploads()), { ms: 8 * DAY_MS })).toBe(true);
    expect(await eventually(async () => sameSet(["undated/a"])(await keys(u)), { ms: 8 * DAY_MS })).toBe(true);
    expect(open.UploadId).toBeDefined();
  });
});
