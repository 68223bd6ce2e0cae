// Snapshots and namespace queries (issue 4, points 3 and 4) on a real local cluster: real
// node-targets, the real gateway, @aws-sdk/client-s3 to write and read, and the extension
// client (client/extensions.ts) for the snapshot and query API. Nothing is mocked.

import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgestoreExtensions, ExtensionError } from "../../client/extensions.ts";
import { parseUvid } from "../../common/ids.ts";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clientFor, pseudoRandom, removeDir, s3Error, sameBytes, startTestCluster, withQuery } from "./helpers.ts";

let cluster: LocalCluster;
let dir: string;
let s3: S3Client;
let ext: EdgestoreExtensions;

beforeAll(async () => {
  ({ cluster, dir } = await startTestCluster());
  s3 = clientFor(cluster);
  ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

const md5 = (b: string | Uint8Array) => createHash("md5").update(b).digest("hex");
const text = async (body: unknown) => new TextDecoder().decode(await bodyBytes(body));

async function failure(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ExtensionError) return { status: e.status, code: e.code };
    throw e;
  }
  throw new Error("expected the call to fail");
}

/** Every key and ETag a listing through the snapshot shows for one bucket. */
async function throughSnapshot(snapshot: string, bucket: string, prefix = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  for (let page = 0; page < 200; page++) {
    const cmd = withSnapshot(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 7, ContinuationToken: token }), snapshot);
    const r: ListObjectsV2CommandOutput = await s3.send(cmd);
    for (const c of r.Contents ?? []) out.set(c.Key!, c.ETag!.replace(/"/g, ""));
    if (!r.IsTruncated) return out;
    token = r.NextContinuationToken;
  }
  throw new Error("snapshot listing did not end");
}

function withSnapshot<C extends { middlewareStack: { add: (...a: never[]) => void } }>(cmd: C, snapshot: string): C {
  return withQuery(cmd, { snapshot });
}

describe("a snapshot, built as a transaction", () => {
  const P = "photos";
  const D = "docs";
  let snapId = "";
  const big = pseudoRandom(3 * 1024 * 1024 + 11, 4401);

  beforeAll(async () => {
    for (const b of [P, D]) await s3.send(new CreateBucketCommand({ Bucket: b }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: P, VersioningConfiguration: { Status: "Enabled" } }));
    const put = (Bucket: string, Key: string, Body: string | Uint8Array, ContentType = "text/plain", Metadata: Record<string, string> = {}) =>
      s3.send(new PutObjectCommand({ Bucket, Key, Body, ContentType, Metadata }));
    await put(P, "2025/a.jpg", "a-jpeg", "image/jpeg", { camera: "X100" });
    await put(P, "2025/b.jpg", "b-jpeg", "image/jpeg", { camera: "Q2" });
    await put(P, "2025/c.png", "c-png", "image/png", { camera: "X100" });
    await put(P, "2025/deep/d.jpg", big, "image/jpeg", { camera: "X100" });
    await put(P, "2024/old.jpg", "old", "image/jpeg", { camera: "X100" });
    await put(D, "readme.txt", "read me");
    await put(D, "notes/n1.txt", "note one");
  });

  it("is created pending, edited, and unreadable until committed", async () => {
    const s = await ext.createSnapshot({ masks: [`${P}/2025/*.jpg`, `${P}/2024/*`] });
    expect(s).toMatchObject({ state: "pending", masks: [`${P}/2025/*.jpg`, `${P}/2024/*`], token: null });
    snapId = s.id;
    const edited = await ext.editSnapshot(s.id, { dropMasks: [`${P}/2024/*`], addMasks: [`${D}/*`], addQualifiers: [{ name: "x-amz-meta-camera", value: "X100" }] });
    expect(edited.masks).toEqual([`${P}/2025/*.jpg`, `${D}/*`]);
    expect(edited.qualifiers).toEqual([{ name: "x-amz-meta-camera", value: "X100" }]);
    expect(await s3Error(s3.send(withSnapshot(new GetObjectCommand({ Bucket: P, Key: "2025/a.jpg" }), s.id)))).toEqual({ name: "NoSuchSnapshot", status: 404 });
    // Qualifiers apply to every mask (the docs have no camera): drop it again, keeping both masks whole.
    expect((await ext.editSnapshot(s.id, { dropQualifiers: [{ name: "x-amz-meta-camera", value: "X100" }] })).qualifiers).toEqual([]);
  });

  it("commits to an immutable manifest with a token, holding exactly what matched at its time", async () => {
    const c = await ext.commitSnapshot(snapId);
    expect(c.state).toBe("committed");
    expect(c.token).toMatch(/^st1_[A-Za-z0-9_-]{43}$/);
    expect(c.objects).toBe(5);
    expect(c.bytes).toBe(6 + 6 + big.length + 7 + 8);
    expect(JSON.stringify(c)).not.toMatch(/[0-9a-f]{64}/); // no chunk id anywhere
    expect([...(await throughSnapshot(snapId, P)).keys()]).toEqual(["2025/a.jpg", "2025/b.jpg", "2025/deep/d.jpg"]);
    expect(await throughSnapshot(snapId, D)).toEqual(new Map([["notes/n1.txt", md5("note one")], ["readme.txt", md5("read me")]]));
    expect(await failure(ext.editSnapshot(snapId, { addMasks: [`${P}/*`] }))).toEqual({ status: 409, code: "InvalidSnapshotState" });
    // Committing again answers the same snapshot.
    expect((await ext.commitSnapshot(snapId)).token).toBe(c.token);
  });

  it("metadata qualifiers select by x-amz-meta-* and content-type", async () => {
    const s = await ext.createSnapshot({ masks: [`${P}/*`], qualifiers: [{ name: "x-amz-meta-camera", value: "X100" }, { name: "Content-Type", value: "image/jpeg" }] });
    const c = await ext.commitSnapshot(s.id);
    expect([...(await throughSnapshot(c.id, P)).keys()]).toEqual(["2024/old.jpg", "2025/a.jpg", "2025/deep/d.jpg"]);
    await ext.deleteSnapshot(s.id);
  });

  it("keeps every version it names readable after overwrite, delete and delete by id, and lists through the snapshot", async () => {
    const v = await s3.send(new HeadObjectCommand({ Bucket: P, Key: "2025/b.jpg" }));
    await s3.send(new PutObjectCommand({ Bucket: P, Key: "2025/a.jpg", Body: "a overwritten" }));
    await s3.send(new DeleteObjectCommand({ Bucket: P, Key: "2025/deep/d.jpg" }));
    await s3.send(new DeleteObjectCommand({ Bucket: P, Key: "2025/b.jpg", VersionId: v.VersionId }));
    await s3.send(new PutObjectCommand({ Bucket: D, Key: "readme.txt", Body: "changed" }));
    expect(await text((await s3.send(new GetObjectCommand({ Bucket: P, Key: "2025/a.jpg" }))).Body)).toBe("a overwritten");
    expect(await text((await s3.send(withSnapshot(new GetObjectCommand({ Bucket: P, Key: "2025/a.jpg" }), snapId))).Body)).toBe("a-jpeg");
    expect(await text((await s3.send(withSnapshot(new GetObjectCommand({ Bucket: P, Key: "2025/b.jpg" }), snapId))).Body)).toBe("b-jpeg");
    const d = await s3.send(withSnapshot(new GetObjectCommand({ Bucket: P, Key: "2025/deep/d.jpg" }), snapId));
    expect(sameBytes(await bodyBytes(d.Body), big)).toBe(true);
    expect(await text((await s3.send(withSnapshot(new GetObjectCommand({ Bucket: D, Key: "readme.txt" }), snapId))).Body)).toBe("read me");
    expect(await s3Error(s3.send(withSnapshot(new GetObjectCommand({ Bucket: P, Key: "2025/c.png" }), snapId)))).toEqual({ name: "NoSuchKey", status: 404 });
    expect([...(await throughSnapshot(snapId, P, "2025/")).keys()]).toEqual(["2025/a.jpg", "2025/b.jpg", "2025/deep/d.jpg"]);
  });

  it("restores into another bucket and prefix by new versions naming the same chunks: no data is copied", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "restored" }));
    const before = chunkCopies(cluster);
    const r = await ext.restoreSnapshot(snapId, { bucket: P, prefix: "2025/", toBucket: "restored", toPrefix: "back/" });
    expect(r).toMatchObject({ restored: 3, bytes: 6 + 6 + big.length });
    const after = chunkCopies(cluster);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    const d = await s3.send(new GetObjectCommand({ Bucket: "restored", Key: "back/deep/d.jpg" }));
    expect(sameBytes(await bodyBytes(d.Body), big)).toBe(true);
    expect(d.ContentType).toBe("image/jpeg");
    expect(d.Metadata).toEqual({ camera: "X100" });
    expect(await text((await s3.send(new GetObjectCommand({ Bucket: "restored", Key: "back/a.jpg" }))).Body)).toBe("a-jpeg");
    // And a restore in place brings an overwritten name's old content back as its newest version.
    await ext.restoreSnapshot(snapId, { bucket: P, prefix: "2025/a.jpg" });
    expect(await text((await s3.send(new GetObjectCommand({ Bucket: P, Key: "2025/a.jpg" }))).Body)).toBe("a-jpeg");
  });

  it("is still readable when its bucket is gone, and lists, and is deleted", async () => {
    await s3.send(new DeleteObjectCommand({ Bucket: D, Key: "readme.txt" }));
    await s3.send(new DeleteObjectCommand({ Bucket: D, Key: "notes/n1.txt" }));
    await s3.send(new DeleteBucketCommand({ Bucket: D }));
    expect(await text((await s3.send(withSnapshot(new GetObjectCommand({ Bucket: D, Key: "notes/n1.txt" }), snapId))).Body)).toBe("note one");
    const all = await ext.listSnapshots();
    expect(all.map((s) => s.id)).toContain(snapId);
    const aborted = await ext.createSnapshot({ masks: [`${P}/*`] });
    await ext.abortSnapshot(aborted.id);
    expect(await failure(ext.getSnapshot(aborted.id))).toEqual({ status: 404, code: "NoSuchSnapshot" });
    await ext.deleteSnapshot(snapId);
    expect(await s3Error(s3.send(withSnapshot(new GetObjectCommand({ Bucket: P, Key: "2025/a.jpg" }), snapId)))).toEqual({ name: "NoSuchSnapshot", status: 404 });
  });

  it("refuses bad definitions with clear errors", async () => {
    expect(await failure(ext.createSnapshot({ masks: ["Not A Bucket/x"] }))).toEqual({ status: 400, code: "InvalidArgument" });
    expect(await failure(ext.createSnapshot({ qualifiers: [{ name: "colour", value: "red" }] }))).toEqual({ status: 400, code: "InvalidArgument" });
    const empty = await ext.createSnapshot({});
    expect(await failure(ext.commitSnapshot(empty.id))).toEqual({ status: 409, code: "InvalidSnapshotState" });
    expect(await failure(ext.commitSnapshot("snap-none"))).toEqual({ status: 404, code: "NoSuchSnapshot" });
  });
});

describe("snapshots under concurrent writers", () => {
  const B = "busy";

  it("each snapshot, once complete, equals the writers' log of what was current at its time", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: B }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: B, VersioningConfiguration: { Status: "Enabled" } }));
    const log: { key: string; versionId: string; body: string | null }[] = [];
    let writing = true;
    const writer = async (w: number) => {
      for (let i = 0; i < 40; i++) {
        const key = `k${(w * 5 + i * 7) % 30}`;
        if (i % 8 === 7) {
          const r = await s3.send(new DeleteObjectCommand({ Bucket: B, Key: key }));
          log.push({ key, versionId: r.VersionId!, body: null });
        } else {
          const body = `w${w}-${i}`;
          const r = await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body }));
          log.push({ key, versionId: r.VersionId!, body });
        }
      }
    };
    const taken: { id: string; at: number }[] = [];
    const snapper = async () => {
      for (let i = 0; i < 4 && writing; i++) {
        await sleep(120);
        const at = Date.now();
        const s = await ext.createSnapshot({ at, masks: [`${B}/*`] });
        // Committed while the writers go on: the commit waits for the groups, never the other way.
        await ext.commitSnapshot(s.id);
        taken.push({ id: s.id, at });
      }
    };
    await Promise.all([Promise.all([0, 1, 2, 3].map(writer)).finally(() => (writing = false)), snapper()]);
    expect(taken.length).toBeGreaterThan(1);
    for (const { id, at } of taken) {
      const newest = new Map<string, { versionId: string; body: string | null }>();
      for (const a of log) {
        if (parseUvid(a.versionId).ms > at) continue;
        const cur = newest.get(a.key);
        if (!cur || a.versionId > cur.versionId) newest.set(a.key, a);
      }
      const expected = new Map([...newest].flatMap(([k, a]) => (a.body === null ? [] : [[k, md5(a.body)] as [string, string]])));
      expect(await throughSnapshot(id, B)).toEqual(expected);
    }
  });

  it("a snapshot whose time a group cannot yet promise past reports incomplete, then completes with the write that was in flight", async () => {
    const key = "in-flight";
    // Hung hosts: every target frozen, so a PUT's version manifest waits for their acks after
    // its group stamped it. That group cannot promise past its stamp until the write ends.
    cluster.freezeTargets([...Array(cluster.targetCount).keys()], true);
    let put: Promise<unknown> = Promise.resolve();
    try {
      put = s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: "written while frozen" }));
      // Awaited below, or left failed when the targets are thawed; meanwhile it must not count as unhandled.
      put.catch(() => {});
      // Time for the PUT to reach its group and be stamped: nothing outside the group shows that moment.
      await sleep(500);
      const s = await ext.createSnapshot({ masks: [`${B}/${key}`] });
      const incomplete = await failure(ext.commitSnapshot(s.id, 300));
      expect(incomplete).toEqual({ status: 503, code: "PointInTimeIncomplete" });
      expect((await ext.getSnapshot(s.id)).state).toBe("pending");
      cluster.freezeTargets([...Array(cluster.targetCount).keys()], false);
      await put;
      const done = await ext.commitSnapshot(s.id, 10_000);
      expect(done.objects).toBe(1);
      expect(await text((await s3.send(withSnapshot(new GetObjectCommand({ Bucket: B, Key: key }), s.id))).Body)).toBe("written while frozen");
    } finally {
      cluster.freezeTargets([...Array(cluster.targetCount).keys()], false);
      await put.catch(() => {});
    }
  });
});

describe("queries over the namespace manifest", () => {
  const M = "music";
  let t0 = 0;
  let t1 = 0;

  beforeAll(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: M }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: M, VersioningConfiguration: { Status: "Enabled" } }));
    await s3.send(new PutObjectCommand({ Bucket: M, Key: "early.mp3", Body: "e" }));
    await sleep(20);
    t0 = Date.now();
    await sleep(5);
    for (let i = 0; i < 30; i++) await s3.send(new PutObjectCommand({ Bucket: M, Key: `albums/a${i % 3}/t${i}.mp3`, Body: "x".repeat(i + 1), Metadata: { genre: i % 2 ? "jazz" : "rock" } }));
    await s3.send(new PutObjectCommand({ Bucket: M, Key: "albums/a0/t0.mp3", Body: "second version" }));
    await s3.send(new PutObjectCommand({ Bucket: M, Key: "albums/cover.jpg", Body: "jpg" }));
    await sleep(5);
    t1 = Date.now();
    await sleep(20);
    await s3.send(new PutObjectCommand({ Bucket: M, Key: "late.mp3", Body: "l" }));
  });

  it("finds every version named *.mp3 created in a time range by one creator (the seed's example), across shards, in pages", async () => {
    const found = await ext.queryAll({ name: "*.mp3", createdAfter: t0, createdBefore: t1, creator: cluster.accessKey, maxKeys: 4 });
    const keys = found.map((v) => v.key);
    expect(keys).toHaveLength(31);
    expect(new Set(keys).size).toBe(30);
    expect(keys.filter((k) => k === "albums/a0/t0.mp3")).toHaveLength(2);
    expect(keys).not.toContain("early.mp3");
    expect(keys).not.toContain("late.mp3");
    // In (bucket, key) order, newest version first within a key.
    const sorted = [...found].sort((a, b) => (a.key === b.key ? (a.versionId > b.versionId ? -1 : 1) : Buffer.compare(Buffer.from(a.key), Buffer.from(b.key))));
    expect(found).toEqual(sorted);
    expect(await ext.queryAll({ name: "*.mp3", creator: "SOMEONEELSE000000000" })).toEqual([]);
  });

  it("filters by scope, size, metadata, and current versions only", async () => {
    const small = await ext.queryAll({ bucket: M, prefix: "albums/a1/", maxSize: 10 });
    expect(small.map((v) => v.key).sort()).toEqual(["albums/a1/t1.mp3", "albums/a1/t4.mp3", "albums/a1/t7.mp3"]);
    const jazz = await ext.queryAll({ bucket: M, meta: { genre: "jazz" }, minSize: 25 });
    expect(jazz.map((v) => v.key).sort()).toEqual(["albums/a1/t25.mp3", "albums/a0/t27.mp3", "albums/a2/t29.mp3"].sort());
    const current = await ext.queryAll({ bucket: M, name: "albums/a0/t0.mp3", versions: "current" });
    expect(current).toHaveLength(1);
    expect(current[0]!.size).toBe("second version".length);
    expect(current[0]!.etag).toBe(`"${md5("second version")}"`);
  });

  it("answers as of a time, and refuses a bad filter", async () => {
    const then = await ext.queryAll({ bucket: M, name: "*.mp3", versions: "current", asOf: t0 });
    expect(then.map((v) => v.key)).toEqual(["early.mp3"]);
    expect(await failure(ext.query({ minSize: -1 as number }))).toEqual({ status: 400, code: "InvalidArgument" });
    expect(await failure(ext.query({ createdAfter: "last tuesday" }))).toEqual({ status: 400, code: "InvalidArgument" });
  });
});
