// More manifest shards while serving: a real cluster started with 2 shards holds objects
// (versions, a delete marker, tags, a multipart upload in progress), and is redeployed with 4
// and then, before that split is necessarily over, with 8 shards. Each new shard answers for its
// names through the shard they were in until it has taken them in, so from the first request
// on: every listing holds each name once, versions and uploads list whole, a point-in-time
// listing and a snapshot taken before the splits answer as they did, clients list what they
// just wrote, and usage counts each version once. At the end each shard's tables hold only its
// own names. Real processes, real files.

import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { nhidOf } from "../../common/ids.ts";
import { hashOfNhid } from "../../workers/manifest-shard/name-part.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { adminJson, bodyBytes, clusterForSuite, eachObjectDb, eventually, extensionsFor, pseudoRandom, sameBytes, withQuery } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "shards";

clusterForSuite({ bucket: B, versioned: true, vars: { SHARD_COUNT: "2" } }, (c) => ({ cluster, s3 } = c));

interface ShardStatus {
  shard: number;
  versions: number;
  split?: { takingFrom: number | null; dropping: number; hashed: boolean; rowsTaken: number };
}

async function shards(): Promise<ShardStatus[]> {
  return (await adminJson<{ shards: ShardStatus[] }>(cluster, "status.json")).shards;
}

const get = async (key: string, versionId?: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key, VersionId: versionId }))).Body);

/** Every key listed, page by page (small pages, so continuation crosses shards mid-split). */
async function listing(asOf?: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  for (let i = 0; i < 100; i++) {
    const cmd = new ListObjectsV2Command({ Bucket: B, MaxKeys: 7, ContinuationToken: token });
    const page = await s3.send(asOf ? withQuery(cmd, { "as-of": asOf }) : cmd);
    out.push(...(page.Contents ?? []).map((o) => `${o.Key}:${o.ETag}:${o.Size}`));
    if (!page.IsTruncated) return out;
    token = page.NextContinuationToken;
  }
  throw new Error("listing did not end in 100 pages");
}

async function versionsListed(): Promise<string[]> {
  const page = await s3.send(new ListObjectVersionsCommand({ Bucket: B }));
  return [...(page.Versions ?? []).map((v) => `${v.Key}@${v.VersionId}${v.IsLatest ? "*" : ""}`), ...(page.DeleteMarkers ?? []).map((d) => `${d.Key}@${d.VersionId}x${d.IsLatest ? "*" : ""}`)].sort();
}

/** For each shard's SQLite file: the parts (h mod `count`) of the names it holds rows for, and rows whose h is missing or wrong. */
async function shardFiles(count: number): Promise<{ parts: number[]; bad: number }[]> {
  const files = eachObjectDb(cluster, "shard_split", (db) =>
    ["versions", "current", "uploads", "early_removals", "early_tags"].flatMap((t) => db.prepare(`SELECT tenant, bucket, key, h FROM ${t}`).all()),
  );
  return Promise.all(
    files.map(async (rows) => {
      let bad = 0;
      const parts = new Set<number>();
      for (const r of rows) {
        const h = hashOfNhid(await nhidOf(String(r.tenant), String(r.bucket), String(r.key)));
        if (r.h !== h) bad++;
        parts.add(h % count);
      }
      return { parts: [...parts].sort((a, b) => a - b), bad };
    }),
  );
}

describe("growing the shard count while serving", () => {
  const bodies = new Map<string, Uint8Array>();
  const versions: { id: string; body: Uint8Array }[] = [];
  let upload: { id: string; parts: { ETag: string; PartNumber: number }[]; body: Uint8Array };
  let asOf: string;
  let before: string[];
  let snapshot: string;
  const ext = () => extensionsFor(cluster);

  it("holds objects of every kind under 2 shards", { timeout: 120_000 }, async () => {
    for (let i = 0; i < 60; i++) {
      const body = pseudoRandom(1_000 + i * 10, 7000 + i);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `obj-${i}`, Body: body }));
      bodies.set(`obj-${i}`, body);
    }
    for (let v = 0; v < 3; v++) {
      const body = pseudoRandom(5_000, 7100 + v);
      const r = await s3.send(new PutObjectCommand({ Bucket: B, Key: "versioned", Body: body }));
      versions.push({ id: r.VersionId!, body });
    }
    await s3.send(new PutObjectTaggingCommand({ Bucket: B, Key: "obj-3", Tagging: { TagSet: [{ Key: "keep", Value: "yes" }] } }));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "deleted", Body: pseudoRandom(1000, 7200) }));
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "deleted" }));
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "multipart" }));
    const partBody = pseudoRandom(5 * 2 ** 20, 7300);
    const p1 = await s3.send(new UploadPartCommand({ Bucket: B, Key: "multipart", UploadId: created.UploadId, PartNumber: 1, Body: partBody }));
    upload = { id: created.UploadId!, parts: [{ ETag: p1.ETag!, PartNumber: 1 }], body: partBody };
    await new Promise((r) => setTimeout(r, 20));
    asOf = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    before = await listing(asOf);
    expect(before.length).toBe(61);
    snapshot = (await ext().commitSnapshot((await ext().createSnapshot({ masks: [`${B}/*`] })).id)).id;
  });

  it("splits 2 -> 4 -> 8 while clients list and write, losing and doubling nothing", { timeout: 240_000 }, async () => {
    const versionsBefore = await versionsListed();
    await cluster.restartGateway({ SHARD_COUNT: "4" });
    await cluster.waitForTargets();
    // From the first request on, each name is listed once and as it was.
    expect(await listing(asOf)).toEqual(before);
    expect(await versionsListed()).toEqual(versionsBefore);
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: B }));
    expect((uploads.Uploads ?? []).map((u) => u.UploadId)).toEqual([upload.id]);
    for (let i = 0; i < 10; i++) {
      const body = pseudoRandom(2_000 + i, 7400 + i);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `during-${i}`, Body: body }));
      bodies.set(`during-${i}`, body);
      expect((await listing()).filter((l) => l.startsWith(`during-${i}:`)).length, `during-${i}`).toBe(1);
    }
    // A second split before the first is necessarily over: names may be two splits from home.
    await cluster.restartGateway({ SHARD_COUNT: "8" });
    await cluster.waitForTargets();
    expect(await listing(asOf)).toEqual(before);
    for (let i = 10; i < 20; i++) {
      const body = pseudoRandom(2_000 + i, 7400 + i);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `during-${i}`, Body: body }));
      bodies.set(`during-${i}`, body);
      expect((await listing()).filter((l) => l.startsWith(`during-${i}:`)).length, `during-${i}`).toBe(1);
    }
    // Versions keep their ids; a new one is the newest; a delete by id and a delete marker land where the name is now.
    const newest = pseudoRandom(6_000, 7500);
    const put = await s3.send(new PutObjectCommand({ Bucket: B, Key: "versioned", Body: newest }));
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: B, Prefix: "versioned" }));
    expect(listed.Versions!.map((v) => v.VersionId)).toEqual([put.VersionId, ...versions.map((v) => v.id).reverse()]);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "versioned", VersionId: versions[0]!.id }));
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "obj-5" }));
    bodies.delete("obj-5");
    await expect(get("deleted")).rejects.toMatchObject({ name: "NoSuchKey" });
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "multipart", UploadId: upload.id, MultipartUpload: { Parts: upload.parts } }));
    bodies.set("multipart", upload.body);
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: B }))).Uploads ?? []).toEqual([]);
    // Every new shard takes its names in from the shard they were in, and that one drops them.
    const settled = async () => (await shards()).every((s) => s.split !== undefined && s.split.takingFrom === null && s.split.dropping === 0);
    const done = await eventually(settled, { ms: 90_000 });
    const status = await shards();
    expect(done, JSON.stringify(status)).toBe(true);
    expect(status.length).toBe(8);
    expect(status.filter((s) => s.shard >= 2).every((s) => s.split!.rowsTaken > 0), JSON.stringify(status)).toBe(true);
    // Each shard now holds only its own names, every row with its name's hash.
    const files = await shardFiles(8);
    expect(files.filter((f) => f.parts.length > 1 || f.bad > 0)).toEqual([]);
    expect(new Set(files.flatMap((f) => f.parts)).size).toBe(8);
    // The answers are the same from the shards that hold the names now.
    expect(await listing(asOf)).toEqual(before);
    const now = await listing();
    expect(now.length).toBe(new Set(now.map((l) => l.split(":")[0])).size);
    expect(now.map((l) => l.split(":")[0]).sort()).toEqual([...bodies.keys(), "versioned"].sort());
    for (const [key, body] of bodies) expect(sameBytes(await get(key), body), key).toBe(true);
    const through = await s3.send(withQuery(new GetObjectCommand({ Bucket: B, Key: "obj-5" }), { snapshot }));
    expect(sameBytes(await bodyBytes(through.Body), pseudoRandom(1_050, 7005))).toBe(true);
    // Usage counts each live version once, across the shards.
    const all = await s3.send(new ListObjectVersionsCommand({ Bucket: B }));
    expect(status.reduce((n, s) => n + s.versions, 0)).toBe((all.Versions ?? []).length);
  });
});
