// Compressed chunks (issue 5, point 3) on a real cluster: the gateway stores compressible chunks
// compressed (asserted on the targets' files), every read path returns the logical bytes, and
// a client may send chunks it compressed itself. @aws-sdk/client-s3 and client/session.ts.

import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, UploadPartCommand, type S3Client } from "@aws-sdk/client-s3";
import { gunzipSync, gzipSync, inflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import { EditingSession, SessionError } from "../../client/session.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clusterForSuite, pseudoRandom, sameBytes } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "squeeze";
const MiB = 1024 * 1024;

clusterForSuite({ bucket: B }, (c) => ({ cluster, s3 } = c));

/** Text-like bytes: compressible, but not trivially (so chunk boundaries still vary). */
function texty(size: number, seed: number): Uint8Array {
  const words = ["object", "store", "chunk", "edge", "replica", "group", "shard", "version", "token", "snapshot"];
  const noise = pseudoRandom(size, seed);
  const out = new Uint8Array(size);
  let at = 0;
  for (let i = 0; at < size; i++) {
    const w = new TextEncoder().encode(`${words[noise[i % size]! % words.length]} ${noise[(i * 7) % size]} `);
    out.set(w.subarray(0, size - at), at);
    at += w.length;
  }
  return out;
}

const get = async (key: string, range?: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key, Range: range }))).Body);
/** Bytes on disk of the chunk files that appeared since `before`. */
function storedSince(before: Set<string>): number {
  let n = 0;
  for (const [chid, sizes] of chunkCopies(cluster)) if (!before.has(chid)) n += sizes[0]!;
  return n;
}

describe("chunks compressed by the gateway", () => {
  it("stores a compressible object in far fewer bytes and reads it back exactly, whole and by range", async () => {
    const body = texty(5 * MiB, 1);
    const before = new Set(chunkCopies(cluster).keys());
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "log.txt", Body: body }));
    expect(storedSince(before)).toBeLessThan(body.length / 2);
    expect(sameBytes(await get("log.txt"), body)).toBe(true);
    expect(sameBytes(await get("log.txt", "bytes=1000000-3100000"), body.subarray(1_000_000, 3_100_001))).toBe(true);
    expect((await s3.send(new HeadObjectCommand({ Bucket: B, Key: "log.txt" }))).ContentLength).toBe(body.length);
    const ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    expect(await ext.validate({ bucket: B, key: "log.txt" })).toMatchObject({ state: "intact" });
  });

  it("leaves incompressible chunks as they are", async () => {
    const body = pseudoRandom(2 * MiB, 2);
    const before = new Set(chunkCopies(cluster).keys());
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "noise.bin", Body: body }));
    expect(storedSince(before)).toBe(body.length);
  });

  it("keeps compression through multipart parts and their completion", async () => {
    const parts = [texty(5 * MiB, 3), texty(2 * MiB, 4)];
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp.txt" }));
    const etags: string[] = [];
    for (const [i, p] of parts.entries()) etags.push((await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp.txt", UploadId, PartNumber: i + 1, Body: p }))).ETag!);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp.txt", UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
    const all = new Uint8Array(7 * MiB);
    all.set(parts[0]!, 0);
    all.set(parts[1]!, 5 * MiB);
    expect(sameBytes(await get("mp.txt"), all)).toBe(true);
  });
});

describe("compression in editing sessions", () => {
  const open = () => EditingSession.open({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });

  it("edits inside compressed chunks and syncs against them by their logical content", async () => {
    const base = texty(6 * MiB, 5);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "doc.txt", Body: base }));
    const s = await open();
    try {
      const e = await s.begin({ bucket: B, key: "doc.txt", mode: "random" });
      const patch = new TextEncoder().encode("<<patched>>");
      await e.write(3 * MiB + 5, patch);
      await e.commit();
      const want = base.slice();
      want.set(patch, 3 * MiB + 5);
      expect(sameBytes(await get("doc.txt"), want)).toBe(true);
      // Sync against a base as a PUT stores it (chunk boundaries from one pass), compressed.
      await s3.send(new PutObjectCommand({ Bucket: B, Key: "doc2.txt", Body: base }));
      const edited = new Uint8Array(base.length + 3);
      edited.set(base.subarray(0, 100), 0);
      edited.set([1, 2, 3], 100);
      edited.set(base.subarray(100), 103);
      const f = await s.begin({ bucket: B, key: "doc2.txt", mode: "replace" });
      const r = await f.sync(edited);
      expect(r.reused).toBeGreaterThan(0);
      expect(r.sent).toBeLessThan(edited.length / 2);
      await f.commit();
      expect(sameBytes(await get("doc2.txt"), edited)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it("takes a chunk the client compressed itself, sending only the compressed bytes, and refuses a bad one", async () => {
    const s = await open();
    try {
      const e = await s.begin({ bucket: B, key: "pre.txt", base: null, mode: "replace" });
      // Each is one chunk, so at most CHUNK_MAX (512 KiB) logical bytes.
      const a = texty(400_000, 6);
      const b = texty(300_000, 7);
      const sent = await e.writeCompressed(0, a, "deflate-raw");
      expect(sent).toBeLessThan(a.length / 2);
      await e.writeCompressed(a.length, b, "gzip");
      await e.commit();
      const all = new Uint8Array(a.length + b.length);
      all.set(a, 0);
      all.set(b, a.length);
      expect(sameBytes(await get("pre.txt"), all)).toBe(true);
      expect(sameBytes(await get("pre.txt", `bytes=${a.length - 10}-${a.length + 10}`), all.subarray(a.length - 10, a.length + 11))).toBe(true);

      const f = await s.begin({ bucket: B, key: "pre-bad.txt", base: null, mode: "replace" });
      const notGzip = new Uint8Array(100).fill(7);
      const refused = await s.call({ op: "write", txn: f.txn, offset: 0, length: 100, enc: "gzip", stored: notGzip.length }, notGzip).catch((x: SessionError) => x.code);
      expect(refused).toBe("InvalidRequest");
      const gz = gzipSync(Buffer.from(new Uint8Array(50)));
      const wrongLength = await s.call({ op: "write", txn: f.txn, offset: 0, length: 60, enc: "gzip", stored: gz.length }, gz).catch((x: SessionError) => x.code);
      expect(wrongLength).toBe("InvalidRequest");
      await f.abort();
    } finally {
      await s.close();
    }
  });
});

describe("the stored form of chunks", () => {
  it("lists a version's chunk layout without chunk ids, and hands out a chunk compressed as stored", async () => {
    const ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    const body = texty(3 * MiB, 30);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "dir/layout.txt", Body: body }));
    const layout = await ext.chunkLayout(B, "dir/layout.txt");
    expect(layout.size).toBe(body.length);
    expect(JSON.stringify(layout)).not.toMatch(/[0-9a-f]{64}/);
    expect(layout.chunks.reduce((n, c) => n + c.length, 0)).toBe(body.length);
    const packed = layout.chunks.find((c) => c.encoding === "deflate-raw")!;
    expect(packed.storedLength).toBeLessThan(packed.length);
    const got = await ext.storedChunk(B, "dir/layout.txt", packed.index);
    expect([got.encoding, got.offset, got.length, got.bytes.length]).toEqual(["deflate-raw", packed.offset, packed.length, packed.storedLength]);
    expect(sameBytes(inflateRawSync(got.bytes), body.subarray(packed.offset, packed.offset + packed.length))).toBe(true);
    // A client's gzip chunk comes back as it was sent.
    const pre = await ext.chunkLayout(B, "pre.txt");
    const gz = await ext.storedChunk(B, "pre.txt", pre.chunks.findIndex((c) => c.encoding === "gzip"));
    expect(gunzipSync(gz.bytes).length).toBe(gz.length);
    await expect(ext.storedChunk(B, "pre.txt", 99)).rejects.toMatchObject({ code: "InvalidArgument" });
  });
});
