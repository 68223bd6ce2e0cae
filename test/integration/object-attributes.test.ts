// GetObjectAttributes against a real local cluster with the real SDK: each attribute when asked
// for and only then, parts paged by x-amz-max-parts and x-amz-part-number-marker, versions by id.

import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { clusterForSuite, pseudoRandom, s3Error } from "./helpers.ts";

const B = "attributes";
const MiB = 1024 * 1024;
let s3: S3Client;
clusterForSuite({ bucket: B }, (c) => ({ s3 } = c));

describe("GetObjectAttributes", () => {
  it("answers the attributes asked for of a single-part object, and only those", async () => {
    const body = pseudoRandom(200_000, 5);
    const sha = createHash("sha256").update(body).digest("base64");
    const put = await s3.send(new PutObjectCommand({ Bucket: B, Key: "one", Body: body, ChecksumSHA256: sha }));
    const all = await s3.send(new GetObjectAttributesCommand({ Bucket: B, Key: "one", ObjectAttributes: ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"] }));
    expect(`"${all.ETag}"`).toBe(put.ETag);
    expect(all.Checksum).toEqual({ ChecksumSHA256: sha, ChecksumType: "FULL_OBJECT" });
    expect(all.ObjectParts).toBeUndefined();
    expect([all.StorageClass, all.ObjectSize]).toEqual(["STANDARD", body.length]);
    expect(all.LastModified).toBeInstanceOf(Date);
    const some = await s3.send(new GetObjectAttributesCommand({ Bucket: B, Key: "one", ObjectAttributes: ["ObjectSize"] }));
    expect([some.ETag, some.Checksum, some.StorageClass, some.ObjectSize]).toEqual([undefined, undefined, undefined, body.length]);
  });

  it("lists a multipart object's parts a page at a time", async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "parts" }));
    const sizes = [5 * MiB, 5 * MiB, 1234];
    const parts = [];
    for (let i = 0; i < sizes.length; i++) {
      const r = await s3.send(new UploadPartCommand({ Bucket: B, Key: "parts", UploadId, PartNumber: i + 1, Body: pseudoRandom(sizes[i]!, 50 + i) }));
      parts.push({ PartNumber: i + 1, ETag: r.ETag });
    }
    const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "parts", UploadId, MultipartUpload: { Parts: parts } }));
    const first = await s3.send(new GetObjectAttributesCommand({ Bucket: B, Key: "parts", ObjectAttributes: ["ObjectParts", "ETag", "ObjectSize"], MaxParts: 2 }));
    expect(`"${first.ETag}"`).toBe(done.ETag);
    expect(first.ObjectSize).toBe(sizes.reduce((a, b) => a + b));
    expect(first.ObjectParts).toMatchObject({ TotalPartsCount: 3, MaxParts: 2, IsTruncated: true, NextPartNumberMarker: "2" });
    expect(first.ObjectParts!.Parts!.map((p) => [p.PartNumber, p.Size])).toEqual([[1, sizes[0]], [2, sizes[1]]]);
    const rest = await s3.send(new GetObjectAttributesCommand({ Bucket: B, Key: "parts", ObjectAttributes: ["ObjectParts"], MaxParts: 2, PartNumberMarker: "2" }));
    expect(rest.ObjectParts).toMatchObject({ TotalPartsCount: 3, IsTruncated: false });
    expect(rest.ObjectParts!.Parts!.map((p) => [p.PartNumber, p.Size])).toEqual([[3, sizes[2]]]);
  });

  it("reads a version by id, and refuses what S3 refuses", async () => {
    await s3.send(new PutBucketVersioningCommand({ Bucket: B, VersioningConfiguration: { Status: "Enabled" } }));
    const v1 = await s3.send(new PutObjectCommand({ Bucket: B, Key: "v", Body: "first" }));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "v", Body: "second, longer" }));
    const old = await s3.send(new GetObjectAttributesCommand({ Bucket: B, Key: "v", VersionId: v1.VersionId, ObjectAttributes: ["ObjectSize"] }));
    expect([old.ObjectSize, old.VersionId]).toEqual([5, v1.VersionId]);
    expect(await s3Error(s3.send(new GetObjectAttributesCommand({ Bucket: B, Key: "absent", ObjectAttributes: ["ETag"] })))).toEqual({ name: "NoSuchKey", status: 404 });
    expect((await s3Error(s3.send(new GetObjectAttributesCommand({ Bucket: B, Key: "v", ObjectAttributes: ["Colour" as never] })))).status).toBe(400);
  });
});
