// S3 compatibility that current clients rely on (issue 3), against a real local cluster with
// the real @aws-sdk/client-s3 at its default settings (CRC32 trailing checksums on every PUT,
// response checksum validation).

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  DeleteBucketCommand,
  GetBucketVersioningCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  type ChecksumAlgorithm,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crc32, crc32c, crc64nvme, u32ToBase64, u64ToBase64 } from "../../common/checksums.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { s3Error, bodyBytes, chunkCopies, clientFor, isTreeNode, pseudoRandom, removeDir, sameBytes, startTestCluster } from "./helpers.ts";

const MiB = 1024 * 1024;
let cluster: LocalCluster;
let dir: string;
let s3: S3Client;
const B = "compat";

beforeAll(async () => {
  ({ cluster, dir } = await startTestCluster());
  s3 = clientFor(cluster);
  await s3.send(new CreateBucketCommand({ Bucket: B }));
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

/** Base64 checksums of `b` computed here, independently of the gateway. */
function expected(alg: ChecksumAlgorithm, b: Uint8Array): string {
  switch (alg) {
    case "CRC32":
      return u32ToBase64(crc32(b, 0));
    case "CRC32C":
      return u32ToBase64(crc32c(b, 0));
    case "CRC64NVME":
      return u64ToBase64(crc64nvme(b, 0n));
    case "SHA1":
      return createHash("sha1").update(b).digest("base64");
    case "SHA256":
      return createHash("sha256").update(b).digest("base64");
    default:
      throw new Error(`no reference for ${alg}`);
  }
}

const FIELD: Record<string, "ChecksumCRC32" | "ChecksumCRC32C" | "ChecksumCRC64NVME" | "ChecksumSHA1" | "ChecksumSHA256"> = {
  CRC32: "ChecksumCRC32",
  CRC32C: "ChecksumCRC32C",
  CRC64NVME: "ChecksumCRC64NVME",
  SHA1: "ChecksumSHA1",
  SHA256: "ChecksumSHA256",
};

describe("additional checksums", () => {
  it("keeps the SDK's default trailing CRC32 and returns it with x-amz-checksum-mode", async () => {
    const body = pseudoRandom(3 * MiB + 17, 1);
    const put = await s3.send(new PutObjectCommand({ Bucket: B, Key: "ck/default", Body: body }));
    expect(put.ChecksumCRC32).toBe(expected("CRC32", body));
    const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "ck/default", ChecksumMode: "ENABLED" }));
    expect(head.ChecksumCRC32).toBe(expected("CRC32", body));
    expect(head.ChecksumType).toBe("FULL_OBJECT");
    // Without the mode, no checksum is returned.
    expect((await s3.send(new HeadObjectCommand({ Bucket: B, Key: "ck/default" }))).ChecksumCRC32).toBeUndefined();
  });

  for (const alg of ["CRC32C", "CRC64NVME", "SHA1", "SHA256"] as const) {
    it(`stores ${alg}, small and chunked, and GET returns it for the SDK to validate`, async () => {
      for (const size of [1000, 2 * MiB + 3]) {
        const body = pseudoRandom(size, size + alg.length);
        const key = `ck/${alg}-${size}`;
        await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body, ChecksumAlgorithm: alg }));
        const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: key, ChecksumMode: "ENABLED" }));
        expect(got[FIELD[alg]!]).toBe(expected(alg, body));
        expect(sameBytes(await bodyBytes(got.Body), body)).toBe(true);
      }
    });
  }

  it("checks a checksum sent as a header, and refuses a wrong one with BadDigest, storing nothing", async () => {
    const body = pseudoRandom(50_000, 9);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "ck/header-ok", Body: body, ChecksumCRC32C: expected("CRC32C", body) }));
    const wrong = expected("CRC32C", pseudoRandom(50_000, 10));
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "ck/header-bad", Body: body, ChecksumCRC32C: wrong })))).toEqual({
      name: "BadDigest",
      status: 400,
    });
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "ck/header-bad" })))).toMatchObject({ status: 404 });
  });

  it("returns no checksum for a ranged GET (it describes the whole object)", async () => {
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: "ck/default", Range: "bytes=0-99", ChecksumMode: "ENABLED" }));
    expect(got.ChecksumCRC32).toBeUndefined();
    expect((await bodyBytes(got.Body)).length).toBe(100);
  });
});

function md5(b: Uint8Array): string {
  return createHash("md5").update(b).digest("hex");
}

/** S3's multipart ETag: MD5 of the parts' binary MD5s, "-N". */
function multipartEtag(parts: Uint8Array[]): string {
  const h = createHash("md5");
  for (const p of parts) h.update(createHash("md5").update(p).digest());
  return `"${h.digest("hex")}-${parts.length}"`;
}

describe("multipart upload", () => {
  it("uploads a 50 MiB object with @aws-sdk/lib-storage, byte-exact, with S3's multipart ETag", async () => {
    const body = pseudoRandom(50 * MiB + 123, 50);
    const up = new Upload({ client: s3, params: { Bucket: B, Key: "mp/lib-storage.bin", Body: body, ContentType: "application/x-test" }, partSize: 8 * MiB, queueSize: 3 });
    await up.done();
    const parts = [];
    for (let o = 0; o < body.length; o += 8 * MiB) parts.push(body.subarray(o, o + 8 * MiB));
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: "mp/lib-storage.bin" }));
    expect(got.ETag).toBe(multipartEtag(parts));
    expect(got.ContentType).toBe("application/x-test");
    expect(got.ContentLength).toBe(body.length);
    expect(sameBytes(await bodyBytes(got.Body), body)).toBe(true);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "mp/lib-storage" }));
    expect(listed.Contents?.map((c) => [c.Key, c.Size, c.ETag])).toEqual([["mp/lib-storage.bin", body.length, multipartEtag(parts)]]);
  });

  it("serves each part by partNumber, with the part count, and refuses one past the last", async () => {
    const p1 = pseudoRandom(5 * MiB, 61);
    const p2 = pseudoRandom(1234, 62);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp/parts" }));
    const e1 = (await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/parts", UploadId, PartNumber: 1, Body: p1 }))).ETag!;
    const e2 = (await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/parts", UploadId, PartNumber: 2, Body: p2 }))).ETag!;
    expect(e1).toBe(`"${md5(p1)}"`);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp/parts", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] } }));
    const second = await s3.send(new GetObjectCommand({ Bucket: B, Key: "mp/parts", PartNumber: 2 }));
    expect(second.PartsCount).toBe(2);
    expect(second.ContentRange).toBe(`bytes ${p1.length}-${p1.length + p2.length - 1}/${p1.length + p2.length}`);
    expect(sameBytes(await bodyBytes(second.Body), p2)).toBe(true);
    const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "mp/parts", PartNumber: 1 }));
    expect(head.ContentLength).toBe(p1.length);
    expect(await s3Error(s3.send(new GetObjectCommand({ Bucket: B, Key: "mp/parts", PartNumber: 3 })))).toEqual({ name: "InvalidPartNumber", status: 416 });
    // A single-part object has one part: the whole object, and no part count.
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "mp/single", Body: p2 }));
    const whole = await s3.send(new GetObjectCommand({ Bucket: B, Key: "mp/single", PartNumber: 1 }));
    expect(whole.PartsCount).toBeUndefined();
    expect(sameBytes(await bodyBytes(whole.Body), p2)).toBe(true);
  });

  it("answers S3's errors: InvalidPartOrder, InvalidPart, EntityTooSmall, NoSuchUpload", async () => {
    const small = pseudoRandom(100_000, 71);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp/errors" }));
    const e1 = (await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/errors", UploadId, PartNumber: 1, Body: small }))).ETag!;
    const e2 = (await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/errors", UploadId, PartNumber: 2, Body: small }))).ETag!;
    const complete = (Parts: { PartNumber: number; ETag: string }[]) =>
      s3Error(s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp/errors", UploadId, MultipartUpload: { Parts } })));
    expect(await complete([{ PartNumber: 2, ETag: e2 }, { PartNumber: 1, ETag: e1 }])).toEqual({ name: "InvalidPartOrder", status: 400 });
    expect(await complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 3, ETag: e2 }])).toEqual({ name: "InvalidPart", status: 400 });
    expect(await complete([{ PartNumber: 1, ETag: '"00000000000000000000000000000000"' }])).toEqual({ name: "InvalidPart", status: 400 });
    expect(await complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }])).toEqual({ name: "EntityTooSmall", status: 400 });
    // Nothing became visible, and the upload is still there to finish or abort.
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "mp/errors" })))).toMatchObject({ status: 404 });
    const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp/errors", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }] } }));
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: "mp/errors" }));
    expect(sameBytes(await bodyBytes(got.Body), small)).toBe(true);
    // Completed: the upload id is gone. The same Complete again is a retry and gets the same
    // answer (as S3 gives it); any other Complete finds no upload.
    expect((await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp/errors", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }] } }))).ETag).toBe(done.ETag);
    expect(await complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }])).toEqual({ name: "NoSuchUpload", status: 404 });
    expect(await s3Error(s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/errors", UploadId: "no-such-upload", PartNumber: 1, Body: small })))).toEqual({
      name: "NoSuchUpload",
      status: 404,
    });
  });

  it("lists parts and uploads, and an aborted upload leaves nothing visible", async () => {
    const body = pseudoRandom(5 * MiB, 81);
    const a = (await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mpl/dir/a" }))).UploadId!;
    const b = (await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mpl/dir/b" }))).UploadId!;
    const c = (await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mpl/top" }))).UploadId!;
    for (const n of [1, 2, 3]) await s3.send(new UploadPartCommand({ Bucket: B, Key: "mpl/dir/a", UploadId: a, PartNumber: n, Body: body }));
    const parts = await s3.send(new ListPartsCommand({ Bucket: B, Key: "mpl/dir/a", UploadId: a, MaxParts: 2 }));
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([
      [1, body.length, `"${md5(body)}"`],
      [2, body.length, `"${md5(body)}"`],
    ]);
    expect(parts.IsTruncated).toBe(true);
    const rest = await s3.send(new ListPartsCommand({ Bucket: B, Key: "mpl/dir/a", UploadId: a, PartNumberMarker: parts.NextPartNumberMarker }));
    expect(rest.Parts?.map((p) => p.PartNumber)).toEqual([3]);

    const all = await s3.send(new ListMultipartUploadsCommand({ Bucket: B, Prefix: "mpl/" }));
    expect(all.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([
      ["mpl/dir/a", a],
      ["mpl/dir/b", b],
      ["mpl/top", c],
    ]);
    const rolled = await s3.send(new ListMultipartUploadsCommand({ Bucket: B, Prefix: "mpl/", Delimiter: "/" }));
    expect(rolled.CommonPrefixes?.map((p) => p.Prefix)).toEqual(["mpl/dir/"]);
    expect(rolled.Uploads?.map((u) => u.Key)).toEqual(["mpl/top"]);
    const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: B, Prefix: "mpl/", MaxUploads: 1 }));
    expect(page.IsTruncated).toBe(true);
    const next = await s3.send(new ListMultipartUploadsCommand({ Bucket: B, Prefix: "mpl/", KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker }));
    expect(next.Uploads?.map((u) => u.Key)).toEqual(["mpl/dir/b", "mpl/top"]);

    for (const [key, id] of [["mpl/dir/a", a], ["mpl/dir/b", b], ["mpl/top", c]] as const) await s3.send(new AbortMultipartUploadCommand({ Bucket: B, Key: key, UploadId: id }));
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: B, Prefix: "mpl/" }))).Uploads ?? []).toEqual([]);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "mpl/" }))).KeyCount).toBe(0);
    expect(await s3Error(s3.send(new ListPartsCommand({ Bucket: B, Key: "mpl/dir/a", UploadId: a })))).toEqual({ name: "NoSuchUpload", status: 404 });
  });

  it("stores parts as chunks once, and completing copies no chunk data", async () => {
    // Each part is kept as one manifest-tree node: the same bytes twice are the same node.
    const part = pseudoRandom(6 * MiB, 91);
    const before = chunkCopies(cluster);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp/dedup" }));
    // The same bytes as parts 1 and 2: their chunks are stored once.
    const e1 = (await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/dedup", UploadId, PartNumber: 1, Body: part }))).ETag!;
    const e2 = (await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/dedup", UploadId, PartNumber: 2, Body: part }))).ETag!;
    const afterParts = chunkCopies(cluster);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp/dedup", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] } }));
    const afterComplete = chunkCopies(cluster);
    const added = [...afterParts.keys()].filter((k) => !before.has(k));
    const nodes = added.filter((k) => isTreeNode(cluster, k));
    expect(nodes).toHaveLength(1);
    const bytes = added.filter((k) => !nodes.includes(k)).reduce((s, k) => s + afterParts.get(k)![0]!, 0);
    expect(bytes).toBe(part.length);
    expect(afterComplete.size).toBe(afterParts.size);
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: "mp/dedup" }));
    const whole = await bodyBytes(got.Body);
    expect(sameBytes(whole.subarray(0, part.length), part) && sameBytes(whole.subarray(part.length), part)).toBe(true);
  });

  it("keeps a composite or full-object checksum from the parts' checksums", async () => {
    const p1 = pseudoRandom(5 * MiB, 101);
    const p2 = pseudoRandom(77_777, 102);
    for (const [alg, type] of [["SHA256", "COMPOSITE"], ["CRC32C", "FULL_OBJECT"], ["CRC64NVME", "FULL_OBJECT"]] as const) {
      const key = `mp/ck-${alg}`;
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: key, ChecksumAlgorithm: alg, ChecksumType: type }));
      const r1 = await s3.send(new UploadPartCommand({ Bucket: B, Key: key, UploadId, PartNumber: 1, Body: p1, ChecksumAlgorithm: alg }));
      const r2 = await s3.send(new UploadPartCommand({ Bucket: B, Key: key, UploadId, PartNumber: 2, Body: p2, ChecksumAlgorithm: alg }));
      const f = FIELD[alg]!;
      expect(r1[f]).toBe(expected(alg, p1));
      await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: r1.ETag, [f]: r1[f] }, { PartNumber: 2, ETag: r2.ETag, [f]: r2[f] }] } }));
      const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: key, ChecksumMode: "ENABLED" }));
      const whole = new Uint8Array(p1.length + p2.length);
      whole.set(p1);
      whole.set(p2, p1.length);
      if (type === "FULL_OBJECT") {
        expect(head[f]).toBe(expected(alg, whole));
      } else {
        const joined = Buffer.concat([Buffer.from(expected(alg, p1), "base64"), Buffer.from(expected(alg, p2), "base64")]);
        expect(head[f]).toBe(`${createHash("sha256").update(joined).digest("base64")}-2`);
      }
      expect(head.ChecksumType).toBe(type);
    }
  });
});

describe("conditional writes", () => {
  it("If-None-Match: * creates only if absent; of racing creators exactly one wins", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "cond/new", Body: "first", IfNoneMatch: "*" }));
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "cond/new", Body: "second", IfNoneMatch: "*" })))).toEqual({ name: "PreconditionFailed", status: 412 });
    for (let round = 0; round < 3; round++) {
      const key = `cond/race-${round}`;
      const bodies = Array.from({ length: 6 }, (_, i) => `writer ${i}`);
      const results = await Promise.allSettled(bodies.map((Body) => s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body, IfNoneMatch: "*" }))));
      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect((r.reason as { name: string }).name).toBe("PreconditionFailed");
      const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: key }));
      expect(await got.Body!.transformToString()).toBe(bodies[won[0]!]);
    }
  });

  it("If-Match replaces only the version with that ETag (compare-and-swap), also on CompleteMultipartUpload", async () => {
    const first = await s3.send(new PutObjectCommand({ Bucket: B, Key: "cond/cas", Body: "v1" }));
    const second = await s3.send(new PutObjectCommand({ Bucket: B, Key: "cond/cas", Body: "v2", IfMatch: first.ETag }));
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "cond/cas", Body: "v3", IfMatch: first.ETag })))).toEqual({ name: "PreconditionFailed", status: 412 });
    expect(await (await s3.send(new GetObjectCommand({ Bucket: B, Key: "cond/cas" }))).Body!.transformToString()).toBe("v2");
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: "cond/absent", Body: "x", IfMatch: second.ETag })))).toEqual({ name: "PreconditionFailed", status: 412 });

    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "cond/cas" }));
    const p = await s3.send(new UploadPartCommand({ Bucket: B, Key: "cond/cas", UploadId, PartNumber: 1, Body: "mp" }));
    const parts = { Parts: [{ PartNumber: 1, ETag: p.ETag }] };
    expect(await s3Error(s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "cond/cas", UploadId, MultipartUpload: parts, IfNoneMatch: "*" })))).toEqual({
      name: "PreconditionFailed",
      status: 412,
    });
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "cond/cas", UploadId, MultipartUpload: parts, IfMatch: second.ETag }));
    expect(await (await s3.send(new GetObjectCommand({ Bucket: B, Key: "cond/cas" }))).Body!.transformToString()).toBe("mp");
  });
});

describe("copy", () => {
  it("CopyObject writes no chunk data, keeps metadata with COPY and takes new with REPLACE", async () => {
    const body = pseudoRandom(9 * MiB + 5, 111);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "copy/src", Body: body, ContentType: "image/png", Metadata: { camera: "x1" }, CacheControl: "max-age=5" }));
    const before = chunkCopies(cluster);
    const r = await s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/dst", CopySource: `${B}/copy/src` }));
    expect(r.CopyObjectResult?.ETag).toBe(`"${md5(body)}"`);
    expect(chunkCopies(cluster).size).toBe(before.size);
    const dst = await s3.send(new GetObjectCommand({ Bucket: B, Key: "copy/dst" }));
    expect([dst.ContentType, dst.Metadata, dst.CacheControl]).toEqual(["image/png", { camera: "x1" }, "max-age=5"]);
    expect(sameBytes(await bodyBytes(dst.Body), body)).toBe(true);

    await s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/dst2", CopySource: `/${B}/copy/src`, MetadataDirective: "REPLACE", ContentType: "text/plain", Metadata: { a: "b" } }));
    const dst2 = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "copy/dst2" }));
    expect([dst2.ContentType, dst2.Metadata, dst2.CacheControl]).toEqual(["text/plain", { a: "b" }, undefined]);
  });

  it("a copy is independent: deleting or overwriting the source leaves it whole", async () => {
    const body = pseudoRandom(3 * MiB, 112);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "copy/indep-src", Body: body }));
    await s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/indep-dst", CopySource: `${B}/copy/indep-src` }));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "copy/indep-src", Body: "replaced" }));
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "copy/indep-src" }));
    const dst = await s3.send(new GetObjectCommand({ Bucket: B, Key: "copy/indep-dst" }));
    expect(sameBytes(await bodyBytes(dst.Body), body)).toBe(true);
  });

  it("honours the copy-source conditions and refuses what S3 refuses", async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: B, Key: "copy/cond", Body: "hello" }));
    const copy = (extra: Record<string, unknown>) => s3Error(s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/cond-dst", CopySource: `${B}/copy/cond`, ...extra })));
    expect(await copy({ CopySourceIfMatch: '"nope"' })).toEqual({ name: "PreconditionFailed", status: 412 });
    expect(await copy({ CopySourceIfNoneMatch: put.ETag })).toEqual({ name: "PreconditionFailed", status: 412 });
    expect(await copy({ CopySourceIfUnmodifiedSince: new Date(Date.now() - 3_600_000) })).toEqual({ name: "PreconditionFailed", status: 412 });
    expect(await copy({ CopySourceIfModifiedSince: new Date(Date.now() + 3_600_000) })).toEqual({ name: "PreconditionFailed", status: 412 });
    await s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/cond-dst", CopySource: `${B}/copy/cond`, CopySourceIfMatch: put.ETag }));
    expect(await s3Error(s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/x", CopySource: `${B}/copy/missing` })))).toEqual({ name: "NoSuchKey", status: 404 });
    expect(await s3Error(s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/cond", CopySource: `${B}/copy/cond` })))).toEqual({ name: "InvalidRequest", status: 400 });
    expect(await s3Error(s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/x", CopySource: `no-such-bucket/copy/cond` })))).toEqual({ name: "NoSuchBucket", status: 404 });
  });

  it("copies a key that needs URL encoding, and a specific version of the source", async () => {
    const VB = "compat-copy-versions";
    await s3.send(new CreateBucketCommand({ Bucket: VB }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: VB, VersioningConfiguration: { Status: "Enabled" } }));
    const key = "copy/ünï cødé/a+b%c";
    const first = await s3.send(new PutObjectCommand({ Bucket: VB, Key: key, Body: "one" }));
    const copied = await s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/enc-dst", CopySource: encodeURIComponent(`${VB}/${key}`) }));
    expect(copied.CopySourceVersionId).toBe(first.VersionId);
    await s3.send(new PutObjectCommand({ Bucket: VB, Key: key, Body: "two" }));
    expect(await (await s3.send(new GetObjectCommand({ Bucket: B, Key: "copy/enc-dst" }))).Body!.transformToString()).toBe("one");
    // The version the first copy came from, though the key has moved on.
    await s3.send(new CopyObjectCommand({ Bucket: B, Key: "copy/enc-old", CopySource: `${encodeURIComponent(`${VB}/${key}`)}?versionId=${first.VersionId}` }));
    expect(await (await s3.send(new GetObjectCommand({ Bucket: B, Key: "copy/enc-old" }))).Body!.transformToString()).toBe("one");
    expect(first.ETag).toBe(`"${md5(new TextEncoder().encode("one"))}"`);
  });

  it("UploadPartCopy builds parts from ranges of an existing object", async () => {
    const src = pseudoRandom(12 * MiB + 10, 113);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "copy/big", Body: src }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "copy/assembled" }));
    const ranges: [number, number][] = [[0, 6 * MiB - 1], [6 * MiB, src.length - 1]];
    const parts = [];
    for (const [i, [a, b]] of ranges.entries()) {
      const r = await s3.send(new UploadPartCopyCommand({ Bucket: B, Key: "copy/assembled", UploadId, PartNumber: i + 1, CopySource: `${B}/copy/big`, CopySourceRange: `bytes=${a}-${b}` }));
      expect(r.CopyPartResult?.ETag).toBe(`"${md5(src.subarray(a, b + 1))}"`);
      parts.push({ PartNumber: i + 1, ETag: r.CopyPartResult!.ETag! });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "copy/assembled", UploadId, MultipartUpload: { Parts: parts } }));
    const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: "copy/assembled" }));
    expect(sameBytes(await bodyBytes(got.Body), src)).toBe(true);
    expect(await s3Error(s3.send(new UploadPartCopyCommand({ Bucket: B, Key: "copy/assembled2", UploadId: "nope", PartNumber: 1, CopySource: `${B}/copy/big`, CopySourceRange: `bytes=0-${src.length}` })))).toEqual({
      name: "InvalidRange",
      status: 416,
    });
  });
});

describe("DeleteObjects", () => {
  it("deletes up to 1,000 keys in one request, verbose and quiet, with the SDK's checksum", async () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `del/k-${String(i).padStart(4, "0")}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < 300; i = next++) await s3.send(new PutObjectCommand({ Bucket: B, Key: keys[i], Body: keys[i] }));
      }),
    );
    // 300 exist, 700 do not: deleting a missing key succeeds too, as in S3.
    const verbose = await s3.send(new DeleteObjectsCommand({ Bucket: B, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
    expect(verbose.Deleted?.length).toBe(1000);
    expect(verbose.Errors ?? []).toEqual([]);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "del/" }))).KeyCount).toBe(0);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "del/quiet", Body: "q" }));
    const quiet = await s3.send(new DeleteObjectsCommand({ Bucket: B, Delete: { Objects: [{ Key: "del/quiet" }], Quiet: true } }));
    expect(quiet.Deleted ?? []).toEqual([]);
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "del/quiet" })))).toMatchObject({ status: 404 });
  });

  it("reports per-key errors, and refuses more than 1,000 keys or a body without an integrity check", async () => {
    const r = await s3.send(new DeleteObjectsCommand({ Bucket: B, Delete: { Objects: [{ Key: "del/a" }, { Key: "x".repeat(1100) }] } }));
    expect(r.Deleted?.map((d) => d.Key)).toEqual(["del/a"]);
    expect(r.Errors?.map((e) => e.Code)).toEqual(["KeyTooLongError"]);
    expect(await s3Error(s3.send(new DeleteObjectsCommand({ Bucket: B, Delete: { Objects: Array.from({ length: 1001 }, (_, i) => ({ Key: `k${i}` })) } })))).toEqual({
      name: "MalformedXML",
      status: 400,
    });
    const url = `${cluster.endpoint}/${B}?delete`;
    const xml = `<Delete><Object><Key>del/a</Key></Object></Delete>`;
    const { signRequest } = await import("../../common/s3/sign-request.ts");
    const { UNSIGNED_PAYLOAD } = await import("../../common/s3/sigv4.ts");
    const headers = await signRequest({ method: "POST", url, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    const res = await fetch(url, { method: "POST", body: xml, headers: headers as unknown as Record<string, string> });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("<Code>InvalidRequest</Code>");
  });
});

describe("versioning", () => {
  const VB = "compat-versions";
  const text = async (p: Promise<{ Body?: { transformToString(): Promise<string> } }>) => (await p).Body!.transformToString();
  beforeAll(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: VB }));
  });

  it("starts unversioned, with an empty configuration, no version ids, and deletes that remove", async () => {
    expect((await s3.send(new GetBucketVersioningCommand({ Bucket: VB }))).Status).toBeUndefined();
    const put = await s3.send(new PutObjectCommand({ Bucket: VB, Key: "u/k", Body: "v1" }));
    expect(put.VersionId).toBeUndefined();
    await s3.send(new PutObjectCommand({ Bucket: VB, Key: "u/k", Body: "v2" }));
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: VB, Prefix: "u/" }));
    // Overwriting replaced the null version: one version, "null".
    expect(versions.Versions?.map((v) => [v.Key, v.VersionId, v.IsLatest])).toEqual([["u/k", "null", true]]);
    await s3.send(new DeleteObjectCommand({ Bucket: VB, Key: "u/k" }));
    const after = await s3.send(new ListObjectVersionsCommand({ Bucket: VB, Prefix: "u/" }));
    expect([after.Versions ?? [], after.DeleteMarkers ?? []]).toEqual([[], []]);
  });

  it("keeps every version while enabled, each readable by id, newest current", async () => {
    await s3.send(new PutBucketVersioningCommand({ Bucket: VB, VersioningConfiguration: { Status: "Enabled" } }));
    expect((await s3.send(new GetBucketVersioningCommand({ Bucket: VB }))).Status).toBe("Enabled");
    const ids: string[] = [];
    for (const body of ["a", "bb", "ccc"]) ids.push((await s3.send(new PutObjectCommand({ Bucket: VB, Key: "e/k", Body: body }))).VersionId!);
    expect(new Set(ids).size).toBe(3);
    expect(ids.every((id) => id !== "null")).toBe(true);
    expect(await text(s3.send(new GetObjectCommand({ Bucket: VB, Key: "e/k" })))).toBe("ccc");
    expect(await text(s3.send(new GetObjectCommand({ Bucket: VB, Key: "e/k", VersionId: ids[0] })))).toBe("a");
    const head = await s3.send(new HeadObjectCommand({ Bucket: VB, Key: "e/k", VersionId: ids[1] }));
    expect([head.ContentLength, head.VersionId]).toEqual([2, ids[1]]);
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: VB, Prefix: "e/" }));
    expect(listed.Versions?.map((v) => [v.VersionId, v.IsLatest, v.Size])).toEqual([
      [ids[2], true, 3],
      [ids[1], false, 2],
      [ids[0], false, 1],
    ]);
    expect(await s3Error(s3.send(new GetObjectCommand({ Bucket: VB, Key: "e/k", VersionId: "0".repeat(22) })))).toEqual({ name: "NoSuchVersion", status: 404 });
    expect(await s3Error(s3.send(new GetObjectCommand({ Bucket: VB, Key: "e/k", VersionId: "not-a-version" })))).toEqual({ name: "InvalidArgument", status: 400 });
  });

  it("a delete makes a delete marker; deleting the marker by id brings the object back", async () => {
    const del = await s3.send(new DeleteObjectCommand({ Bucket: VB, Key: "e/k" }));
    expect(del.DeleteMarker).toBe(true);
    expect(await s3Error(s3.send(new GetObjectCommand({ Bucket: VB, Key: "e/k" })))).toEqual({ name: "NoSuchKey", status: 404 });
    expect((await s3.send(new ListObjectsV2Command({ Bucket: VB, Prefix: "e/" }))).KeyCount).toBe(0);
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: VB, Prefix: "e/" }));
    expect(listed.DeleteMarkers?.map((m) => [m.VersionId, m.IsLatest])).toEqual([[del.VersionId, true]]);
    expect(listed.Versions?.length).toBe(3);
    // Asking for the marker itself is 405 in S3.
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: VB, Key: "e/k", VersionId: del.VersionId })))).toMatchObject({ status: 405 });
    const undo = await s3.send(new DeleteObjectCommand({ Bucket: VB, Key: "e/k", VersionId: del.VersionId }));
    expect([undo.DeleteMarker, undo.VersionId]).toEqual([true, del.VersionId]);
    expect(await text(s3.send(new GetObjectCommand({ Bucket: VB, Key: "e/k" })))).toBe("ccc");
    // Removing the current version by id makes the previous one current.
    const newest = listed.Versions![0]!.VersionId!;
    await s3.send(new DeleteObjectCommand({ Bucket: VB, Key: "e/k", VersionId: newest }));
    expect(await text(s3.send(new GetObjectCommand({ Bucket: VB, Key: "e/k" })))).toBe("bb");
  });

  it("suspended: writes replace the null version and keep the versions made while enabled", async () => {
    await s3.send(new PutObjectCommand({ Bucket: VB, Key: "s/k", Body: "kept" }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: VB, VersioningConfiguration: { Status: "Suspended" } }));
    const n1 = await s3.send(new PutObjectCommand({ Bucket: VB, Key: "s/k", Body: "null-1" }));
    expect(n1.VersionId).toBe("null");
    await s3.send(new PutObjectCommand({ Bucket: VB, Key: "s/k", Body: "null-2" }));
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: VB, Prefix: "s/" }));
    expect(listed.Versions?.map((v) => v.VersionId).filter((id) => id === "null")).toEqual(["null"]);
    expect(listed.Versions?.length).toBe(2);
    expect(await text(s3.send(new GetObjectCommand({ Bucket: VB, Key: "s/k", VersionId: "null" })))).toBe("null-2");
    const del = await s3.send(new DeleteObjectCommand({ Bucket: VB, Key: "s/k" }));
    expect([del.DeleteMarker, del.VersionId]).toEqual([true, "null"]);
    const after = await s3.send(new ListObjectVersionsCommand({ Bucket: VB, Prefix: "s/" }));
    expect(after.DeleteMarkers?.map((m) => m.VersionId)).toEqual(["null"]);
    expect(after.Versions?.map((v) => v.VersionId).includes("null")).toBe(false);
    await s3.send(new PutBucketVersioningCommand({ Bucket: VB, VersioningConfiguration: { Status: "Enabled" } }));
  });

  it("lists versions in pages with key and version-id markers and under a delimiter", async () => {
    for (const k of ["p/a", "p/b", "p/dir/x"]) for (let i = 0; i < 3; i++) await s3.send(new PutObjectCommand({ Bucket: VB, Key: k, Body: `${k}-${i}` }));
    const seen: [string, string][] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (let page = 0; page < 20; page++) {
      const r = await s3.send(new ListObjectVersionsCommand({ Bucket: VB, Prefix: "p/", MaxKeys: 2, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }));
      for (const v of r.Versions ?? []) seen.push([v.Key!, v.VersionId!]);
      if (!r.IsTruncated) break;
      keyMarker = r.NextKeyMarker;
      versionIdMarker = r.NextVersionIdMarker;
    }
    expect(seen.length).toBe(9);
    expect(new Set(seen.map((s) => s.join(" "))).size).toBe(9);
    expect(seen.map((s) => s[0])).toEqual(["p/a", "p/a", "p/a", "p/b", "p/b", "p/b", "p/dir/x", "p/dir/x", "p/dir/x"]);
    const rolled = await s3.send(new ListObjectVersionsCommand({ Bucket: VB, Prefix: "p/", Delimiter: "/" }));
    expect(rolled.CommonPrefixes?.map((c) => c.Prefix)).toEqual(["p/dir/"]);
    expect(rolled.Versions?.length).toBe(6);
  });

  it("DeleteObjects removes versions by id, and a bucket with versions is not empty", async () => {
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: VB }));
    const all = [...(listed.Versions ?? []), ...(listed.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key!, VersionId: v.VersionId! }));
    expect(await s3Error(s3.send(new DeleteBucketCommand({ Bucket: VB })))).toEqual({ name: "BucketNotEmpty", status: 409 });
    const r = await s3.send(new DeleteObjectsCommand({ Bucket: VB, Delete: { Objects: all } }));
    expect(r.Errors ?? []).toEqual([]);
    expect(r.Deleted?.length).toBe(all.length);
    const empty = await s3.send(new ListObjectVersionsCommand({ Bucket: VB }));
    expect([empty.Versions ?? [], empty.DeleteMarkers ?? []]).toEqual([[], []]);
    await s3.send(new DeleteBucketCommand({ Bucket: VB }));
  });
});
