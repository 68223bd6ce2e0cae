// Space reclamation (issue 6, point 4) on a real local cluster, checked on the targets' disks:
// chunk files and manifest rows go when nothing references them, and never while something
// does (another object's version, a copy, an upload's part, a snapshot). Short timings here
// (CHUNK_HOLD_SECONDS 2, REMOVED_RETAIN_SECONDS 1, RECLAIM_GRACE_SECONDS 0.5, uploads expire
// after 6 s) stand in for the defaults of a day, an hour, ten minutes and a week. Nothing is mocked.

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { existsSync } from "node:fs";
import { Readable } from "node:stream";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, chunkOnDisk, clusterForSuite, eventually, manifestRows, pseudoRandom, s3Error, sameBytes, withQuery } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "reclaim";
const V = "reclaim-versioned";

clusterForSuite(
  { bucket: B, vars: { CHUNK_HOLD_SECONDS: "2", REMOVED_RETAIN_SECONDS: "1", RECLAIM_GRACE_SECONDS: "0.5", UPLOAD_EXPIRE_SECONDS: "6" } },
  (c) => ({ cluster, s3 } = c),
);

/** Chunk ids that appeared on the targets' disks while `write` ran. */
async function newChunks(write: () => Promise<unknown>): Promise<string[]> {
  const before = new Set(chunkCopies(cluster).keys());
  await write();
  return [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
}

/** Copies of each chunk on disk, across all targets. */
function copies(chids: readonly string[]): number[] {
  const files = chunkCopies(cluster);
  return chids.map((c) => files.get(c)?.length ?? 0);
}

const allGone = (chids: readonly string[]) => () => copies(chids).every((n) => n === 0);

async function readBack(bucket: string, key: string, want: Uint8Array, query: Record<string, string> = {}): Promise<boolean> {
  const r = await s3.send(withQuery(new GetObjectCommand({ Bucket: bucket, Key: key }), query));
  return sameBytes(await bodyBytes(r.Body), want);
}

describe("space reclamation", () => {
  it("gives a deleted object's chunks and manifest back, on every target", async () => {
    const body = pseudoRandom(1_000_000, 7001);
    const rows = manifestRows(cluster);
    const chids = await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "gone.bin", Body: body })));
    expect(chids.length).toBeGreaterThan(3);
    expect(copies(chids).every((n) => n === 3)).toBe(true);
    expect(manifestRows(cluster)).toBe(rows + 3);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "gone.bin" }));
    expect(await s3Error(s3.send(new GetObjectCommand({ Bucket: B, Key: "gone.bin" })))).toEqual({ name: "NoSuchKey", status: 404 });
    expect(await eventually(() => allGone(chids)() && manifestRows(cluster) === rows)).toBe(true);
  });

  it("keeps a chunk two objects share until the last of them is deleted", async () => {
    const body = pseudoRandom(800_000, 7002);
    const chids = await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "first", Body: body })));
    // The same bytes again: deduplicated, nothing new on disk.
    expect(await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "second", Body: body })))).toEqual([]);
    const rows = manifestRows(cluster);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "first" }));
    // "first" is expunged (its manifest rows go) while every chunk stays for "second".
    expect(await eventually(() => manifestRows(cluster) === rows - 3)).toBe(true);
    // Chunks staying is an absence: seen by waiting past when a wrongly dropped reference would
    // have reclaimed them (grace 0.5 s, with a margin).
    await sleep(1500);
    expect(copies(chids).every((n) => n === 3)).toBe(true);
    expect(await readBack(B, "second", body)).toBe(true);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "second" }));
    expect(await eventually(allGone(chids))).toBe(true);
  });

  it("keeps chunks stored again while, or after, they are reclaimed", async () => {
    const body = pseudoRandom(700_000, 7012);
    const chids = await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "again-1", Body: body })));
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "again-1" }));
    expect(await eventually(allGone(chids))).toBe(true);
    // After: stored afresh under a new name.
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "again-2", Body: body }));
    expect(copies(chids).every((n) => n === 3)).toBe(true);
    // While: deleted, and the same bytes put again before the deletion reaches the targets.
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "again-2" }));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "again-3", Body: body }));
    // Past retention, grace and hold: the chunks stay, referenced by again-3 (an absence, seen by
    // waiting out every deadline that could remove them).
    await sleep(5000);
    expect(copies(chids).every((n) => n === 3)).toBe(true);
    expect(await readBack(B, "again-3", body)).toBe(true);
  });

  it("never acknowledges a write that outlasted its first chunks' hold without them", async () => {
    // A client that sends 1.2 MB over ~4 s, twice the 2 s hold: its first chunks' holds run out
    // (and are reclaimed) before the version commits. The write must then fail as a whole;
    // if it is acknowledged, its data must all be there long after every hold ran out.
    const body = pseudoRandom(1_200_000, 7013);
    const piece = 60_000;
    const slow = Readable.from(
      (async function* () {
        for (let at = 0; at < body.length; at += piece) {
          yield body.subarray(at, at + piece);
          await sleep(200);
        }
      })(),
    );
    const rows = manifestRows(cluster);
    let acknowledged = true;
    try {
      await s3.send(new PutObjectCommand({ Bucket: B, Key: "slow.bin", Body: slow, ContentLength: body.length }));
    } catch (e) {
      acknowledged = false;
      expect((e as { name: string; $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(500);
      expect((e as { name: string }).name).toBe("InternalError");
    }
    if (acknowledged) {
      // Past hold and grace: an acknowledged object must still read (nothing to await: an absence of loss).
      await sleep(4000);
      expect(await readBack(B, "slow.bin", body)).toBe(true);
    } else {
      expect(await s3Error(s3.send(new GetObjectCommand({ Bucket: B, Key: "slow.bin" })))).toEqual({ name: "NoSuchKey", status: 404 });
      // The manifest it had put while its last chunks were on their way is deleted again.
      expect(await eventually(() => manifestRows(cluster) === rows)).toBe(true);
    }
    // A write well within its hold but past a quarter of it is held again and kept.
    const medium = pseudoRandom(600_000, 7014);
    const paced = Readable.from(
      (async function* () {
        for (let at = 0; at < medium.length; at += 100_000) {
          yield medium.subarray(at, at + 100_000);
          await sleep(150);
        }
      })(),
    );
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "paced.bin", Body: paced, ContentLength: medium.length }));
    // Past hold and grace, as above: nothing of it may have been reclaimed.
    await sleep(4000);
    expect(await readBack(B, "paced.bin", medium)).toBe(true);
  });

  it("keeps a copy whole after its source is deleted: the copy has references of its own", async () => {
    const body = pseudoRandom(600_000, 7003);
    const chids = await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "source", Body: body })));
    await s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy", CopySource: `${B}/source` }));
    const rows = manifestRows(cluster);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "source" }));
    expect(await eventually(() => manifestRows(cluster) === rows - 3)).toBe(true);
    // As for the first test: past grace, nothing the copy uses is gone.
    await sleep(1500);
    expect(copies(chids).every((n) => n === 3)).toBe(true);
    expect(await readBack(B, "copy", body)).toBe(true);
  });

  it("reclaims the old body of an overwritten key, and the chunks of a PUT that failed its checks", async () => {
    const old = pseudoRandom(500_000, 7004);
    const oldChids = await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "overwritten", Body: old })));
    const now = pseudoRandom(500_000, 7005);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "overwritten", Body: now }));
    // Stored, then refused: the body does not match its CRC32, so no version names these.
    const failed = await newChunks(async () => {
      const e = await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "refused", Body: pseudoRandom(500_000, 7006), ChecksumCRC32: "AAAAAA==" })));
      expect(e).toEqual({ name: "BadDigest", status: 400 });
      // Chunks in flight when the check failed land a moment after the answer.
      await sleep(500);
    });
    expect(failed.length).toBeGreaterThan(0);
    expect(await eventually(() => allGone(oldChids)() && allGone(failed)())).toBe(true);
    expect(await readBack(B, "overwritten", now)).toBe(true);
  });

  it("reclaims aborted and expired multipart uploads, and keeps a completed one's parts", async () => {
    const part = async (key: string, seed: number) => {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: key }));
      const body = pseudoRandom(400_000, seed);
      let etag = "";
      const chids = await newChunks(async () => {
        etag = (await s3.send(new UploadPartCommand({ Bucket: B, Key: key, UploadId, PartNumber: 1, Body: body }))).ETag!;
      });
      return { uploadId: UploadId!, chids, body, etag };
    };
    const aborted = await part("mp-aborted", 7007);
    const left = await part("mp-left", 7008);
    const done = await part("mp-done", 7009);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: B, Key: "mp-aborted", UploadId: aborted.uploadId }));
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp-done", UploadId: done.uploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: done.etag }] } }));
    expect(await eventually(allGone(aborted.chids))).toBe(true);
    // Never completed nor aborted: aborted by its group once UPLOAD_EXPIRE_SECONDS passed.
    expect(await eventually(allGone(left.chids))).toBe(true);
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: B }));
    expect((uploads.Uploads ?? []).map((u) => u.Key)).not.toContain("mp-left");
    expect(copies(done.chids).every((n) => n === 3)).toBe(true);
    expect(await readBack(B, "mp-done", done.body)).toBe(true);
  });

  it("keeps the versions a snapshot names until the snapshot is deleted", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: V }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: V, VersioningConfiguration: { Status: "Enabled" } }));
    const body = pseudoRandom(700_000, 7010);
    let versionId = "";
    const chids = await newChunks(async () => {
      versionId = (await s3.send(new PutObjectCommand({ Bucket: V, Key: "kept", Body: body }))).VersionId!;
    });
    const ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    const snap = await ext.createSnapshot({ masks: [`${V}/*`] });
    await ext.commitSnapshot(snap.id);
    await s3.send(new DeleteObjectCommand({ Bucket: V, Key: "kept", VersionId: versionId }));
    // Past retention, grace and hold: the snapshot's hold keeps every chunk (an absence, waited out).
    await sleep(4000);
    expect(copies(chids).every((n) => n === 3)).toBe(true);
    expect(await readBack(V, "kept", body, { snapshot: snap.id })).toBe(true);
    await ext.deleteSnapshot(snap.id);
    expect(await eventually(allGone(chids))).toBe(true);
  });

  it("has a target that was away during a delete drop its copies when it connects again", async () => {
    const body = pseudoRandom(600_000, 7011);
    const chids = await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "while-away", Body: body })));
    const away = cluster.targets.findIndex((t) => chids.some((c) => hasChunk(t.dataDir, c)));
    expect(away).toBeGreaterThanOrEqual(0);
    const held = chids.filter((c) => hasChunk(cluster.targets[away]!.dataDir, c));
    await cluster.killTarget(away);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "while-away" }));
    // Gone from every live target; the one away still has its copies.
    expect(await eventually(() => copies(chids).every((n, i) => n === (held.includes(chids[i]!) ? 1 : 0)))).toBe(true);
    cluster.startTarget(away);
    await cluster.waitForTargets();
    expect(await eventually(allGone(chids))).toBe(true);
  });
});

function hasChunk(dataDir: string, chid: string): boolean {
  return chunkOnDisk(dataDir, chid as never) !== null;
}
