// Behaviours S3 clients depend on, often without knowing it: what an SDK's retry after a lost
// response sees, what a bucket that never versioned answers, the edges of listing, checksum
// mismatches and expired presigned URLs, and a streamed PUT with no length. Against a real local
// cluster with the real @aws-sdk/client-s3; AWS's API reference is the spec.

import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createHash } from "node:crypto";
import { request } from "node:http";
import { describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clusterForSuite, pseudoRandom, s3Error, sameBytes, withHeaders } from "./helpers.ts";

const B = "retries";
const MiB = 1024 * 1024;
let cluster: LocalCluster;
let s3: S3Client;
clusterForSuite({ bucket: B }, (c) => ({ cluster, s3 } = c));

describe("behaviours clients retry on", () => {
  it("answers a repeated CompleteMultipartUpload that already succeeded with 200 and the same ETag", async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp" }));
    const parts: { PartNumber: number; ETag: string | undefined }[] = [];
    // Parts finish out of order; the Complete lists them in order.
    const bodies = [pseudoRandom(5 * MiB, 1), pseudoRandom(MiB, 2)];
    const second = await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp", UploadId, PartNumber: 2, Body: bodies[1] }));
    const first = await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp", UploadId, PartNumber: 1, Body: bodies[0] }));
    parts.push({ PartNumber: 1, ETag: first.ETag }, { PartNumber: 2, ETag: second.ETag });
    const complete = () => s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp", UploadId, MultipartUpload: { Parts: parts } }));
    const done = await complete();
    const again = await complete();
    expect(again.ETag).toBe(done.ETag);
    expect(again.$metadata.httpStatusCode).toBe(200);
    const got = await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "mp" }))).Body);
    expect(sameBytes(got, new Uint8Array([...bodies[0]!, ...bodies[1]!]))).toBe(true);
    // A Complete listing other parts than the one that succeeded is still refused.
    expect((await s3Error(s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp", UploadId, MultipartUpload: { Parts: parts.slice(0, 1) } })))).name).toBe("NoSuchUpload");
  });

  it("uses the part that finished last when a part is uploaded twice", async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "twice" }));
    await s3.send(new UploadPartCommand({ Bucket: B, Key: "twice", UploadId, PartNumber: 1, Body: pseudoRandom(MiB, 10) }));
    const last = pseudoRandom(MiB, 11);
    const p = await s3.send(new UploadPartCommand({ Bucket: B, Key: "twice", UploadId, PartNumber: 1, Body: last }));
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "twice", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag }] } }));
    expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "twice" }))).Body), last)).toBe(true);
  });

  it("answers CreateBucket of a bucket the caller owns with 200 in us-east-1", async () => {
    expect(cluster.region).toBe("us-east-1");
    const r = await s3.send(new CreateBucketCommand({ Bucket: B }));
    expect(r.$metadata.httpStatusCode).toBe(200);
  });

  it("sends no version id and no delete marker header for a bucket that never had versioning", async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: B, Key: "plain", Body: "x" }));
    expect(put.VersionId).toBeUndefined();
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "plain-mp" }));
    const part = await s3.send(new UploadPartCommand({ Bucket: B, Key: "plain-mp", UploadId, PartNumber: 1, Body: "y" }));
    const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "plain-mp", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    expect(done.VersionId).toBeUndefined();
    const del = await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "plain" }));
    expect(del.VersionId).toBeUndefined();
    expect(del.DeleteMarker).toBeUndefined();
  });

  it("answers max-keys=0 with an empty page that is not truncated, encodes every echoed name, and returns owners when asked", async () => {
    for (const k of ["a b/1", "a b/2"]) await s3.send(new PutObjectCommand({ Bucket: B, Key: k, Body: "z" }));
    const v2 = await s3.send(new ListObjectsV2Command({ Bucket: B, MaxKeys: 0 }));
    expect([v2.KeyCount, v2.IsTruncated, v2.Contents]).toEqual([0, false, undefined]);
    const v1 = await s3.send(new ListObjectsCommand({ Bucket: B, MaxKeys: 0 }));
    expect([v1.IsTruncated, v1.Contents]).toEqual([false, undefined]);
    // The SDK decodes url-encoded fields itself: sent raw, the XML must carry them encoded.
    const raw = await fetch(await getSignedUrl(s3, new ListObjectsV2Command({ Bucket: B, Prefix: "a b/", Delimiter: "/", StartAfter: "a b/0", EncodingType: "url" })));
    const xml = await raw.text();
    expect(xml).toContain("<Prefix>a%20b/</Prefix>");
    expect(xml).toContain("<StartAfter>a%20b/0</StartAfter>");
    expect(xml).toContain("<Key>a%20b/1</Key>");
    const owned = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "a b/", FetchOwner: true }));
    expect(owned.Contents?.[0]?.Owner?.ID).toBeTruthy();
    const bare = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "a b/" }));
    expect(bare.Contents?.[0]?.Owner).toBeUndefined();
    // ListObjects (v1) always names the owner.
    expect((await s3.send(new ListObjectsCommand({ Bucket: B, Prefix: "a b/" }))).Contents?.[0]?.Owner?.ID).toBeTruthy();
  });

  it("answers a checksum that does not match the body with 400 BadDigest, on PutObject and UploadPart alike", async () => {
    const wrong = createHash("sha256").update("not the body").digest("base64");
    const put = new PutObjectCommand({ Bucket: B, Key: "digest", Body: "the body", ChecksumSHA256: wrong });
    expect(await s3Error(s3.send(put))).toEqual({ name: "BadDigest", status: 400 });
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "digest-mp", ChecksumAlgorithm: "SHA256" }));
    const part = new UploadPartCommand({ Bucket: B, Key: "digest-mp", UploadId, PartNumber: 1, Body: "the body", ChecksumSHA256: wrong });
    expect(await s3Error(s3.send(part))).toEqual({ name: "BadDigest", status: 400 });
    // The header form of a CRC, sent by hand, is held to the same rule.
    const crc = withHeaders(new PutObjectCommand({ Bucket: B, Key: "digest-crc", Body: "the body" }), { "x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32" });
    expect(await s3Error(s3.send(crc))).toEqual({ name: "BadDigest", status: 400 });
  });

  it("answers an expired presigned PUT with 403 AccessDenied", async () => {
    const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "late" }), { expiresIn: 1 });
    await new Promise((r) => setTimeout(r, 2_100));
    const res = await fetch(url, { method: "PUT", body: "too late" });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("<Code>AccessDenied</Code>");
  });

  it("stores a PUT sent with Transfer-Encoding: chunked and no Content-Length", async () => {
    const body = pseudoRandom(3 * MiB, 77);
    const url = new URL(await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "streamed" }), { expiresIn: 300 }));
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ method: "PUT", host: url.hostname, port: url.port, path: url.pathname + url.search, headers: { "transfer-encoding": "chunked" } }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      // Written in pieces, as a pipe would deliver it.
      for (let at = 0; at < body.length; at += 256 * 1024) req.write(body.subarray(at, at + 256 * 1024));
      req.end();
    });
    expect(status).toBe(200);
    expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "streamed" }))).Body), body)).toBe(true);
  });
});
