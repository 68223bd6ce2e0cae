// The running cluster, for real: workerd (through Miniflare, as npm start runs it) with its
// Durable Objects, six node-target processes writing real files, real WebSockets between them,
// driven by @aws-sdk/client-s3. Nothing is mocked. The tests run in order: the last ones kill a target and restart the cluster.

import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signRequest } from "../../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../../common/s3/sigv4.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clientFor, copyOn, damageCopy, eventually, pseudoRandom, readOnDisk, removeDir, s3Error, sameBytes, startTestCluster } from "./helpers.ts";

const MiB = 1024 * 1024;
let cluster: LocalCluster;
let dir: string;
let s3: S3Client;
/** Every object the cluster acknowledged, to check after failures and restarts. */
const acked = new Map<string, Uint8Array>();

async function put(key: string, body: Uint8Array, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await s3.send(new PutObjectCommand({ Bucket: "itest", Key: key, Body: body, ...extra }));
  acked.set(key, body);
  return r.ETag!;
}

async function get(key: string, range?: string) {
  const r = await s3.send(new GetObjectCommand({ Bucket: "itest", Key: key, Range: range }));
  return { res: r, bytes: await bodyBytes(r.Body) };
}

beforeAll(async () => {
  ({ cluster, dir } = await startTestCluster());
  s3 = clientFor(cluster);
  await s3.send(new CreateBucketCommand({ Bucket: "itest" }));
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

describe("buckets", () => {
  it("creates, heads, lists and deletes buckets", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "scratch-1" }));
    await s3.send(new HeadBucketCommand({ Bucket: "scratch-1" }));
    const names = (await s3.send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name);
    expect(names).toEqual(expect.arrayContaining(["itest", "scratch-1"]));
    // Again, by its owner: 200 in us-east-1 (the local cluster's region), as S3 answers there.
    expect((await s3.send(new CreateBucketCommand({ Bucket: "scratch-1" }))).$metadata.httpStatusCode).toBe(200);
    await s3.send(new DeleteBucketCommand({ Bucket: "scratch-1" }));
    expect(await s3Error(s3.send(new HeadBucketCommand({ Bucket: "scratch-1" })))).toMatchObject({ status: 404 });
  });

  it("refuses to delete a bucket that still has objects", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "scratch-2" }));
    await s3.send(new PutObjectCommand({ Bucket: "scratch-2", Key: "x", Body: "x" }));
    expect(await s3Error(s3.send(new DeleteBucketCommand({ Bucket: "scratch-2" })))).toEqual({ name: "BucketNotEmpty", status: 409 });
    await s3.send(new DeleteObjectCommand({ Bucket: "scratch-2", Key: "x" }));
    await s3.send(new DeleteBucketCommand({ Bucket: "scratch-2" }));
  });

  it("answers NoSuchBucket and InvalidBucketName as S3 does", async () => {
    expect(await s3Error(s3.send(new PutObjectCommand({ Bucket: "no-such-bucket", Key: "k", Body: "x" })))).toEqual({ name: "NoSuchBucket", status: 404 });
    expect(await s3Error(s3.send(new ListObjectsV2Command({ Bucket: "no-such-bucket" })))).toEqual({ name: "NoSuchBucket", status: 404 });
    expect(await s3Error(s3.send(new CreateBucketCommand({ Bucket: "Bad_Name" })))).toEqual({ name: "InvalidBucketName", status: 400 });
  });
});

describe("authentication", () => {
  it("rejects a wrong secret with SignatureDoesNotMatch", async () => {
    const bad = clientFor(cluster, "not-the-secret");
    expect(await s3Error(bad.send(new ListBucketsCommand({})))).toEqual({ name: "SignatureDoesNotMatch", status: 403 });
  });

  it("rejects an unknown access key with InvalidAccessKeyId", async () => {
    const bad = clientFor(cluster, cluster.secretKey, "AKIDOESNOTEXIST00000");
    expect(await s3Error(bad.send(new ListBucketsCommand({})))).toEqual({ name: "InvalidAccessKeyId", status: 403 });
  });

  it("rejects an anonymous request with an S3 XML error", async () => {
    const res = await fetch(`${cluster.endpoint}/itest`);
    expect(res.status).toBe(403);
    const text = await res.text();
    expect(text).toContain("<Code>AccessDenied</Code>");
  });

  async function rawPut(key: string, body: Uint8Array, payloadHash: string): Promise<Response> {
    const url = `${cluster.endpoint}/itest/${key}`;
    const headers = await signRequest({
      method: "PUT",
      url,
      headers: { "content-length": String(body.length) },
      payloadHash,
      accessKey: cluster.accessKey,
      secretKey: cluster.secretKey,
      region: cluster.region,
    });
    return fetch(url, { method: "PUT", body: body as Uint8Array<ArrayBuffer>, headers: { ...headers, "content-length": String(body.length) } });
  }

  it("accepts UNSIGNED-PAYLOAD and a correct signed payload hash", async () => {
    const body = pseudoRandom(1000, 7);
    const r1 = await rawPut("raw-unsigned", body, UNSIGNED_PAYLOAD);
    expect(r1.status).toBe(200);
    const r2 = await rawPut("raw-signed", body, createHash("sha256").update(body).digest("hex"));
    expect(r2.status).toBe(200);
    acked.set("raw-unsigned", body);
    acked.set("raw-signed", body);
  });

  it("rejects a body that does not match its signed hash, and stores nothing", async () => {
    const body = pseudoRandom(300_000, 8);
    const wrong = createHash("sha256").update("something else").digest("hex");
    const res = await rawPut("raw-mismatch", body, wrong);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("<Code>XAmzContentSHA256Mismatch</Code>");
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: "itest", Key: "raw-mismatch" })))).toMatchObject({ status: 404 });
  });
});

describe("objects", () => {
  it.each([
    ["empty", 0],
    ["one-byte", 1],
    ["five-mib", 5 * MiB],
    ["sixty-four-mib", 64 * MiB],
  ])("round-trips a %s object byte for byte", async (name, size) => {
    const body = pseudoRandom(size, size + 1);
    const etag = await put(`sizes/${name}`, body);
    expect(etag).toBe(`"${createHash("md5").update(body).digest("hex")}"`);
    const { res, bytes } = await get(`sizes/${name}`);
    expect(res.ContentLength).toBe(size);
    expect(res.ETag).toBe(etag);
    expect(sameBytes(bytes, body)).toBe(true);
  });

  it("serves every range form, and 416 when unsatisfiable", async () => {
    const body = pseudoRandom(5 * MiB, 5 * MiB + 1);
    const size = body.length;
    const cases: [string, number, number][] = [
      ["bytes=0-0", 0, 1],
      ["bytes=1000-2000", 1000, 2001],
      ["bytes=1048570-3145740", 1048570, 3145741],
      [`bytes=${size - 10}-`, size - 10, size],
      ["bytes=-4096", size - 4096, size],
      [`bytes=0-${size + 100}`, 0, size],
      [`bytes=-${size + 5}`, 0, size],
    ];
    for (const [range, start, end] of cases) {
      const { res, bytes } = await get("sizes/five-mib", range);
      expect(res.$metadata.httpStatusCode, range).toBe(206);
      expect(res.ContentRange, range).toBe(`bytes ${start}-${end - 1}/${size}`);
      expect(sameBytes(bytes, body.subarray(start, end)), range).toBe(true);
    }
    expect(await s3Error(get("sizes/five-mib", `bytes=${size}-`))).toEqual({ name: "InvalidRange", status: 416 });
    expect(await s3Error(get("sizes/one-byte", "bytes=-0"))).toEqual({ name: "InvalidRange", status: 416 });
  });

  it("keeps metadata, content type and standard headers", async () => {
    await put("meta/doc.json", new TextEncoder().encode('{"a":1}'), {
      ContentType: "application/json",
      Metadata: { owner: "alice", "camera-model": "X100" },
      CacheControl: "max-age=60",
      ContentDisposition: 'attachment; filename="doc.json"',
    });
    const h = await s3.send(new HeadObjectCommand({ Bucket: "itest", Key: "meta/doc.json" }));
    expect(h.ContentType).toBe("application/json");
    expect(h.Metadata).toEqual({ owner: "alice", "camera-model": "X100" });
    expect(h.CacheControl).toBe("max-age=60");
    expect(h.ContentDisposition).toBe('attachment; filename="doc.json"');
    expect(h.ContentLength).toBe(7);
    expect(h.LastModified).toBeInstanceOf(Date);
  });

  it("overwrites and deletes", async () => {
    await put("ow/key", new TextEncoder().encode("first"));
    await put("ow/key", new TextEncoder().encode("second version"));
    expect(new TextDecoder().decode((await get("ow/key")).bytes)).toBe("second version");
    await s3.send(new DeleteObjectCommand({ Bucket: "itest", Key: "ow/key" }));
    acked.delete("ow/key");
    expect(await s3Error(get("ow/key"))).toEqual({ name: "NoSuchKey", status: 404 });
    // Deleting what does not exist is not an error in S3.
    await s3.send(new DeleteObjectCommand({ Bucket: "itest", Key: "ow/never-existed" }));
  });

  it("stores chunks shared by two objects once", async () => {
    const a = pseudoRandom(12 * MiB, 4242);
    const b = new Uint8Array(a);
    // Change 64 bytes in the middle: content-defined chunking confines the change to one or two chunks.
    b.set(pseudoRandom(64, 99), 6 * MiB);
    const before = chunkCopies(cluster);
    await put("dedup/a.bin", a);
    const afterA = chunkCopies(cluster);
    await put("dedup/b.bin", b);
    const afterB = chunkCopies(cluster);
    const newOf = (now: Map<string, number[]>, then: Map<string, number[]>) => [...now.keys()].filter((k) => !then.has(k));
    const chunksA = newOf(afterA, before);
    const chunksB = newOf(afterB, afterA);
    const uniqueBytes = (names: string[], m: Map<string, number[]>) => names.reduce((s, n) => s + m.get(n)![0]!, 0);
    expect(uniqueBytes(chunksA, afterA)).toBe(a.length);
    // b stored only the chunks around the change (at most 2 × max chunk size), not 12 MiB again.
    expect(uniqueBytes(chunksB, afterB)).toBeLessThanOrEqual(8 * MiB);
    expect(chunksB.length).toBeLessThanOrEqual(2);
    // Every chunk has exactly R=3 copies on disk, whichever object stored it first, and each copy is whole.
    for (const n of [...chunksA, ...chunksB]) {
      const copies = afterB.get(n)!;
      expect(copies.length).toBe(3);
      expect(new Set(copies).size).toBe(1);
    }
    expect(sameBytes((await get("dedup/b.bin")).bytes, b)).toBe(true);
  });
});

describe("integrity", () => {
  it("never serves a corrupt replica, and repairs: with two of three copies of every chunk damaged, GET is byte-exact and R comes back", async () => {
    const body = pseudoRandom(6 * MiB, 2024);
    const before = chunkCopies(cluster);
    await put("integrity/obj", body);
    const mine = [...chunkCopies(cluster).keys()].filter((k) => !before.has(k));
    expect(mine.length).toBeGreaterThan(0);
    for (const chid of mine) {
      const copies = cluster.targets.flatMap((t) => copyOn(cluster, t.index, chid) ?? []);
      expect(copies.length).toBe(3);
      for (const c of copies.slice(0, 2)) damageCopy(c);
    }
    for (let i = 0; i < 3; i++) expect(sameBytes((await get("integrity/obj")).bytes, body)).toBe(true);
    // A read that met a bad copy had its target quarantine it and its group restore R (check,
    // then copy from the good one); reads rotate over holders, so more GETs meet them all.
    const hashes = (chid: string) => cluster.targets.flatMap((t) => copyOn(cluster, t.index, chid) ?? []).map((c) => createHash("sha256").update(readOnDisk(c)).digest("hex"));
    const good = (chid: string) => hashes(chid).filter((h) => h === chid).length;
    const bad = (chid: string) => hashes(chid).filter((h) => h !== chid).length;
    const readAndCheck = async () => {
      expect(sameBytes((await get("integrity/obj")).bytes, body)).toBe(true);
      return mine.every((c) => good(c) >= 3 && bad(c) === 0);
    };
    await eventually(readAndCheck, { ms: 4_000, every: 100 });
    for (const chid of mine) expect([good(chid), bad(chid)]).toEqual([3, 0]);
  });

  it("counts a target's claim to hold a chunk only with proof over the group's nonce: a damaged copy is not a copy", async () => {
    // The target's index still says it holds the chunk; its bytes no longer are the chunk. A
    // second PUT of the same content asks every member for bids: the damaged holder's "have"
    // fails its proof, so the group places a third good copy elsewhere instead of counting it,
    // and tells the holder, which finds the copy bad and quarantines it.
    const body = pseudoRandom(300_000, 31337);
    const before = chunkCopies(cluster);
    await put("possession/first", body);
    const mine = [...chunkCopies(cluster).keys()].filter((k) => !before.has(k));
    expect(mine.length).toBeGreaterThan(0);
    const chid = mine[0]!;
    const holders = cluster.targets.filter((t) => copyOn(cluster, t.index, chid) !== null);
    expect(holders).toHaveLength(3);
    const damaged = holders[0]!.index;
    damageCopy(copyOn(cluster, damaged, chid)!);
    await put("possession/second", body);
    const hashes = () => cluster.targets.flatMap((t) => copyOn(cluster, t.index, chid) ?? []).map((c) => createHash("sha256").update(readOnDisk(c)).digest("hex"));
    expect(hashes().filter((h) => h === chid)).toHaveLength(3);
    expect(await eventually(() => copyOn(cluster, damaged, chid) === null, { ms: 5_000 })).toBe(true);
    expect(sameBytes((await get("possession/second")).bytes, body)).toBe(true);
  });

  it("refuses a target that does not present the join secret", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${cluster.endpoint.replace("http", "ws")}/_cluster/connect`, {
        headers: { "x-target-id": "00000000-0000-4000-8000-000000000000", "x-target-location": "/x/y", "x-join-secret": "wrong" },
      });
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => reject(new Error("connected with a wrong join secret")));
      ws.on("error", () => {});
    });
    expect(status).toBe(403);
  });
});

describe("listing", () => {
  const keys: string[] = [];
  beforeAll(async () => {
    for (let d = 0; d < 12; d++) for (let i = 0; i < 100; i++) keys.push(`list/dir-${String(d).padStart(2, "0")}/file-${String(i).padStart(3, "0")}`);
    const queue = [...keys];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let k = queue.shift(); k !== undefined; k = queue.shift()) {
          await s3.send(new PutObjectCommand({ Bucket: "itest", Key: k, Body: k }));
        }
      }),
    );
  });

  it("lists 1,200 keys in pages with continuation tokens, in order", async () => {
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: "list/", MaxKeys: 250, ContinuationToken: token }));
      seen.push(...r.Contents!.map((c) => c.Key!));
      expect(r.KeyCount).toBe(r.Contents!.length);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
      pages++;
      expect(pages).toBeLessThanOrEqual(10);
    } while (token);
    expect(pages).toBe(5);
    expect(seen).toEqual([...keys].sort());
  });

  it("rolls keys up into common prefixes under a delimiter, and pages through them", async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: "list/", Delimiter: "/" }));
    expect(r.Contents ?? []).toEqual([]);
    expect(r.CommonPrefixes!.map((p) => p.Prefix)).toEqual(Array.from({ length: 12 }, (_, d) => `list/dir-${String(d).padStart(2, "0")}/`));
    const p1 = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: "list/", Delimiter: "/", MaxKeys: 5 }));
    expect(p1.IsTruncated).toBe(true);
    expect(p1.CommonPrefixes!.length).toBe(5);
    const p2 = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: "list/", Delimiter: "/", MaxKeys: 5, ContinuationToken: p1.NextContinuationToken }));
    expect(p2.CommonPrefixes![0]!.Prefix).toBe("list/dir-05/");
    const top = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Delimiter: "/" }));
    expect(top.CommonPrefixes!.map((p) => p.Prefix)).toContain("list/");
  });

  it("honours start-after and max-keys", async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: "list/dir-03/", StartAfter: "list/dir-03/file-097", MaxKeys: 10 }));
    expect(r.Contents!.map((c) => c.Key)).toEqual(["list/dir-03/file-098", "list/dir-03/file-099"]);
    expect(r.IsTruncated).toBe(false);
    const one = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: "list/dir-00/", MaxKeys: 1 }));
    expect(one.Contents!.map((c) => c.Key)).toEqual(["list/dir-00/file-000"]);
    expect(one.IsTruncated).toBe(true);
  });

  it("lists keys that need URL encoding and unicode keys", async () => {
    const odd = ["enc/a b+c", "enc/ü/é", "enc/😀", "enc/x%y", "enc/&<>"];
    for (const k of odd) await s3.send(new PutObjectCommand({ Bucket: "itest", Key: k, Body: k }));
    const r = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: "enc/" }));
    const utf8Order = [...odd].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(r.Contents!.map((c) => c.Key)).toEqual(utf8Order);
    for (const k of odd) expect(new TextDecoder().decode((await get(k)).bytes)).toBe(k);
  });
});

describe("failures and restarts", () => {
  it("keeps every acknowledged object readable after a target is killed, and still takes writes", async () => {
    await cluster.killTarget(0);
    for (const [key, body] of acked) {
      const { bytes } = await get(key);
      expect(sameBytes(bytes, body), key).toBe(true);
    }
    const body = pseudoRandom(3 * MiB, 31337);
    await put("after-kill/obj", body);
    expect(sameBytes((await get("after-kill/obj")).bytes, body)).toBe(true);
  });

  it("never makes a failed PUT visible: a chunk that cannot be placed leaves no version behind", async () => {
    // With two of six targets down, groups that had both among their four members are below
    // R=3 writers: a multi-chunk object almost surely meets one of them.
    await cluster.killTarget(2);
    const failed: string[] = [];
    for (let i = 0; i < 6 && failed.length === 0; i++) {
      const key = `half/obj-${i}`;
      const body = pseudoRandom(24 * MiB, 4242 + i);
      try {
        await put(key, body);
        expect(sameBytes((await get(key)).bytes, body)).toBe(true);
      } catch (e) {
        // 503 ServiceUnavailable; or, when the refusal comes while the SDK is still sending the
        // body, the connection is cut under it and it reports a socket error with no status
        // (seen once in CI; the gateway answering before draining the body is a known issue).
        const err = e as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
        if (err.name === "AssertionError") throw e;
        if (err.$metadata?.httpStatusCode !== undefined) expect(err.$metadata.httpStatusCode).toBe(503);
        acked.delete(key);
        failed.push(key);
      }
    }
    expect(failed.length).toBeGreaterThan(0);
    for (const key of failed) {
      expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: "itest", Key: key })))).toEqual({ name: "NotFound", status: 404 });
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: key }));
      expect(listed.KeyCount).toBe(0);
    }
  });

  it("keeps everything across a full cluster restart", async () => {
    await cluster.stop();
    await cluster.start();
    s3 = clientFor(cluster);
    for (const [key, body] of acked) {
      const { bytes } = await get(key);
      expect(sameBytes(bytes, body), key).toBe(true);
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "itest", Prefix: "list/dir-11/" }));
    expect(listed.KeyCount).toBe(100);
  });

  it("refuses writes with 503 ServiceUnavailable while fewer than R targets are live", async () => {
    for (let i = 0; i < 4; i++) await cluster.killTarget(i);
    const err = await s3Error(s3.send(new PutObjectCommand({ Bucket: "itest", Key: "too-few", Body: pseudoRandom(100_000, 1) })));
    expect(err).toEqual({ name: "ServiceUnavailable", status: 503 });
  });
});
