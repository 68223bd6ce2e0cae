// Manifest trees on a real cluster. A node of 4 entries (MANIFEST_NODE_ENTRIES) stands in for
// the default 4,096, so a few MiB make trees several levels deep: reads whole and by ranges,
// multipart parts as one node each, copies that share nodes, the chunk layout, validation, a
// replica count raised through the tree, and reclamation of nodes and the chunks under them from
// every target's disk. Short timings (holds of 2 s, removed versions kept 1 s) stand in for the
// defaults of a day and an hour. Nothing is mocked.

import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clusterForSuite, eventually, isTreeNode, manifestRows, pseudoRandom, sameBytes } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
let ext: EdgestoreExtensions;
const B = "trees";
const MiB = 1024 * 1024;

clusterForSuite({ bucket: B, vars: { MANIFEST_NODE_ENTRIES: "4", CHUNK_HOLD_SECONDS: "2", REMOVED_RETAIN_SECONDS: "1", RECLAIM_GRACE_SECONDS: "0.5" } }, (c) => {
  ({ cluster, s3 } = c);
  ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
});

/** Chunk ids that appeared on the targets' disks while `write` ran. */
async function newChunks(write: () => Promise<unknown>): Promise<string[]> {
  const before = new Set(chunkCopies(cluster).keys());
  await write();
  return [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
}

async function get(key: string, range?: string, partNumber?: number): Promise<Uint8Array> {
  const cmd = new GetObjectCommand({ Bucket: B, Key: key, Range: range, PartNumber: partNumber });
  return bodyBytes((await s3.send(cmd)).Body);
}

/** Ranges that start and end inside chunks, cross node boundaries at every level, and cover the ends. */
function rangesOf(size: number): [number, number][] {
  return [
    [0, 0],
    [0, 99_999],
    [131_000, 1_700_123],
    [size - 1, size - 1],
    [size - 700_001, size - 1],
    [Math.floor(size / 3), Math.floor(size / 3) + 2 * MiB],
  ];
}

describe("manifest trees", () => {
  const body = pseudoRandom(6 * MiB, 9101);
  let chids: string[] = [];

  it("keeps a PUT of many chunks as a tree, read back whole and by any range", async () => {
    chids = await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "big.bin", Body: body })));
    const layout = await ext.chunkLayout(B, "big.bin");
    // The layout lists the chunks however the manifest keeps them; the disks hold the nodes too.
    const leaves = layout.chunks.length;
    expect(leaves).toBeGreaterThan(16);
    expect(layout.chunks.at(-1)!.offset + layout.chunks.at(-1)!.length).toBe(body.length);
    expect(chids.length).toBeGreaterThan(leaves + leaves / 4);
    // 4 entries a node: a level of nodes over the chunks, and more above until at most 4 are left.
    const nodes = chids.filter((c) => isTreeNode(cluster, c)).length;
    expect(nodes).toBe(chids.length - leaves);
    expect(nodes).toBeGreaterThan(Math.ceil(leaves / 4));
    expect(sameBytes(await get("big.bin"), body)).toBe(true);
    for (const [a, b] of rangesOf(body.length)) {
      expect(sameBytes(await get("big.bin", `bytes=${a}-${b}`), body.subarray(a, b + 1)), `bytes ${a}-${b}`).toBe(true);
    }
    // The n-th chunk by number is found through the tree.
    const n = Math.floor(leaves / 2);
    const stored = await ext.storedChunk(B, "big.bin", n);
    expect(stored.offset).toBe(layout.chunks[n]!.offset);
    expect(stored.length).toBe(layout.chunks[n]!.length);
  });

  it("validates every node and every chunk under them", async () => {
    const v = await ext.validate({ bucket: B, key: "big.bin" });
    expect(v.state).toBe("intact");
    // The manifest, the nodes and the chunks: every item the PUT stored.
    expect(v.items).toBe(chids.length + 1);
    expect(v.copies.good).toBe(3 * (chids.length + 1));
  });

  it("raises a version's copies through its nodes to every chunk under them", async () => {
    const r = await ext.setReplicas({ bucket: B, key: "big.bin" }, 4);
    expect(r.state).toBe("repaired");
    expect(r.items).toBe(chids.length + 1);
    const copies = chunkCopies(cluster);
    expect(chids.every((c) => copies.get(c)?.length === 4)).toBe(true);
    const back = await ext.setReplicas({ bucket: B, key: "big.bin" }, null);
    expect(back.state).toBe("intact");
  });

  it("stores each multipart part as one node, and reads the object, its parts and part copies back", async () => {
    const parts = [pseudoRandom(5 * MiB, 9201), pseudoRandom(5 * MiB + 12_345, 9202), pseudoRandom(700_000, 9203)];
    const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (whole.set(p, at), at + p.length), 0);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp.bin" }));
    const etags: string[] = [];
    for (const [i, p] of parts.entries()) etags.push((await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp.bin", UploadId, PartNumber: i + 1, Body: p }))).ETag!);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp.bin", UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
    expect(sameBytes(await get("mp.bin"), whole)).toBe(true);
    expect(sameBytes(await get("mp.bin", undefined, 2), parts[1]!)).toBe(true);
    const cross = [5 * MiB - 1000, 10 * MiB + 5000];
    expect(sameBytes(await get("mp.bin", `bytes=${cross[0]}-${cross[1]}`), whole.subarray(cross[0], cross[1]! + 1))).toBe(true);
    // A part copied from a range of a tree: the range's chunks are found through both trees.
    const copy = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp-copy.bin" }));
    const from = 3 * MiB + 7;
    const to = 9 * MiB + 11;
    const p1 = await s3.send(new UploadPartCopyCommand({ Bucket: B, Key: "mp-copy.bin", UploadId: copy.UploadId, PartNumber: 1, CopySource: `${B}/mp.bin`, CopySourceRange: `bytes=${from}-${to}` }));
    const p2 = await s3.send(new UploadPartCopyCommand({ Bucket: B, Key: "mp-copy.bin", UploadId: copy.UploadId, PartNumber: 2, CopySource: `${B}/big.bin` }));
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp-copy.bin", UploadId: copy.UploadId, MultipartUpload: { Parts: [{ ETag: p1.CopyPartResult!.ETag, PartNumber: 1 }, { ETag: p2.CopyPartResult!.ETag, PartNumber: 2 }] } }));
    const want = new Uint8Array(to + 1 - from + body.length);
    want.set(whole.subarray(from, to + 1));
    want.set(body, to + 1 - from);
    expect(sameBytes(await get("mp-copy.bin"), want)).toBe(true);
    for (const key of ["mp.bin", "mp-copy.bin"]) expect((await ext.validate({ bucket: B, key })).state).toBe("intact");
  });

  it("a copy shares the source's nodes: deleting the source keeps it whole; deleting both gives every node and chunk back", async () => {
    const src = pseudoRandom(3 * MiB, 9301);
    const stored = await newChunks(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "src.bin", Body: src })));
    expect(await newChunks(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "dst.bin", CopySource: `${B}/src.bin` })))).toEqual([]);
    const rows = manifestRows(cluster);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "src.bin" }));
    // The source is expunged (its manifest rows go); its nodes stay for the copy, and so does everything under them.
    expect(await eventually(() => manifestRows(cluster) === rows - 3)).toBe(true);
    await new Promise((r) => setTimeout(r, 3000));
    const copies = chunkCopies(cluster);
    expect(stored.every((c) => (copies.get(c)?.length ?? 0) === 3)).toBe(true);
    expect(sameBytes(await get("dst.bin"), src)).toBe(true);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "dst.bin" }));
    // Nodes let go of their entries as they are reclaimed, level by level, until nothing is left.
    expect(await eventually(() => {
      const now = chunkCopies(cluster);
      return stored.every((c) => !now.has(c));
    }, { ms: 60_000 })).toBe(true);
  });
});
