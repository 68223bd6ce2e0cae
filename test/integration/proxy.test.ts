// The co-deployed S3 proxy (client/proxy/), the streaming sync under it (client/session.ts)
// and the `edgestore` CLI (client/cli.ts), on a real local cluster: an unchanged
// @aws-sdk/client-s3 client talks plain S3 to the proxy, the proxy talks sessions to the
// gateway over a real WebSocket, real targets store the chunks. Nothing is mocked.

import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { execFile } from "node:child_process";
import { request } from "node:http";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Chunker } from "../../common/chunker.ts";
import { gearScan } from "../../client/gear-scan.ts";
import { EMPTY_SHA256, deriveSigningKey, sha256Hex, signHex } from "../../common/s3/sigv4.ts";
import { signRequest } from "../../common/s3/sign-request.ts";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import { request as httpRequest } from "node:http";
import { S3Proxy } from "../../client/proxy/server.ts";
import { EditingSession } from "../../client/session.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clientFor, freePort, pseudoRandom, removeDir, s3Error, sameBytes, startTestCluster } from "./helpers.ts";

const MiB = 1024 * 1024;
const B = "proxied";
const LOCAL = { accessKeyId: "PROXYLOCALKEY0000001", secretAccessKey: "proxy-local-secret" };

let cluster: LocalCluster;
let dir: string;
let direct: S3Client;
let proxy: S3Proxy;
let viaProxy: S3Client;
let chunking: { min: number; avg: number; max: number };
const logs: Record<string, unknown>[] = [];

const creds = () => ({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
const proxyClient = (secret = LOCAL.secretAccessKey) =>
  new S3Client({ endpoint: proxyEndpoint, region: cluster.region, forcePathStyle: true, credentials: { accessKeyId: LOCAL.accessKeyId, secretAccessKey: secret }, maxAttempts: 1 });
let proxyEndpoint: string;

beforeAll(async () => {
  ({ cluster, dir } = await startTestCluster());
  direct = clientFor(cluster);
  proxy = new S3Proxy({ cluster: creds(), local: { ...LOCAL, region: cluster.region }, log: (e) => void logs.push(e) });
  const { port } = await proxy.listen(await freePort());
  proxyEndpoint = `http://127.0.0.1:${port}`;
  viaProxy = proxyClient();
  const s = await EditingSession.open(creds());
  chunking = s.hello.chunking;
  await s.close();
});

afterAll(async () => {
  viaProxy?.destroy();
  await proxy?.close();
  await cluster?.stop();
  if (dir) removeDir(dir);
});

const getVia = async (c: S3Client, key: string, bucket = B) => bodyBytes((await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body);
/**
 * The proxy's log entry for the last request matching, once written: the proxy logs a request
 * when it has finished with it, which may be just after the client has its answer.
 */
let seen = 0;
async function lastLog(method: string, path: string): Promise<Record<string, unknown>> {
  for (let waited = 0; waited < 5_000; waited += 10) {
    const i = logs.findLastIndex((e) => e.event === "request" && e.method === method && e.path === path);
    if (i >= seen) {
      seen = i + 1;
      return logs[i]!;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no new log entry for ${method} ${path}`);
}
/** Bytes of the chunks of `next` that `prev` does not have: what a perfect delta costs. */
function newChunkBytes(prev: Uint8Array, next: Uint8Array): number {
  const cut = (b: Uint8Array) => {
    const c = new Chunker(chunking, gearScan);
    return [...c.push(b), ...c.finish()];
  };
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  const known = new Set(cut(prev).map(sha));
  return cut(next).filter((c) => !known.has(sha(c))).reduce((n, c) => n + c.length, 0);
}

/**
 * A PUT with a signed aws-chunked body (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), as the Java SDK
 * and others send it (@aws-sdk/client-s3 does not): each chunk's signature chains from the last.
 */
async function signedChunkedPut(key: string, body: Uint8Array, chunk: number, tamper = false): Promise<{ status: number; text: string }> {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += chunk) pieces.push(body.subarray(at, at + chunk));
  pieces.push(new Uint8Array(0));
  const frameLength = pieces.reduce((n, p) => n + p.length.toString(16).length + ";chunk-signature=".length + 64 + 4 + p.length, 0);
  const url = new URL(`/${B}/${key}`, proxyEndpoint);
  const headers: Record<string, string> = { "content-encoding": "aws-chunked", "x-amz-decoded-content-length": String(body.length), "content-length": String(frameLength) };
  const date = new Date();
  const auth = await signRequest({ method: "PUT", url, headers, payloadHash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", accessKey: LOCAL.accessKeyId, secretKey: LOCAL.secretAccessKey, region: cluster.region, date });
  const amzDate = auth["x-amz-date"];
  const scope = `${amzDate.slice(0, 8)}/${cluster.region}/s3/aws4_request`;
  const key4 = await deriveSigningKey(LOCAL.secretAccessKey, amzDate.slice(0, 8), cluster.region);
  let previous = /Signature=([0-9a-f]{64})/.exec(auth.authorization)![1]!;
  const frames: Uint8Array[] = [];
  for (const [i, p] of pieces.entries()) {
    previous = await signHex(key4, `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${previous}\n${EMPTY_SHA256}\n${p.length === 0 ? EMPTY_SHA256 : await sha256Hex(p)}`);
    const data = tamper && i === 2 ? p.map((b, i) => (i === 0 ? b ^ 1 : b)) : p;
    frames.push(Buffer.from(`${p.length.toString(16)};chunk-signature=${previous}\r\n`), data, Buffer.from("\r\n"));
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "PUT", headers: { ...headers, ...auth } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    for (const f of frames) req.write(f);
    req.end();
  });
}

describe("the S3 proxy", () => {
  it("forwards bucket operations, and turns a PutObject into a session that re-sends only changed chunks", async () => {
    await viaProxy.send(new CreateBucketCommand({ Bucket: B }));
    await viaProxy.send(new PutBucketVersioningCommand({ Bucket: B, VersioningConfiguration: { Status: "Enabled" } }));
    const base = pseudoRandom(8 * MiB, 31);
    const first = await viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "doc.bin", Body: base, ContentType: "application/x-one", Metadata: { a: "1" } }));
    const put1 = await lastLog("PUT", `/${B}/doc.bin`);
    expect(put1).toMatchObject({ status: 200, route: "session", size: base.length, reused: 0 });
    expect(put1.upstreamBytesSent as number).toBeGreaterThanOrEqual(base.length);

    const edited = base.slice();
    edited.set(pseudoRandom(1000, 32), 4 * MiB + 123);
    const second = await viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "doc.bin", Body: edited, Metadata: { b: "2" } }));
    const put2 = await lastLog("PUT", `/${B}/doc.bin`);
    // Exactly the chunks the first version lacks, cut as the gateway cuts: one or two here.
    const delta = newChunkBytes(base, edited);
    expect(delta).toBeLessThan(edited.length / 4);
    expect(put2).toMatchObject({ status: 200, route: "session", size: edited.length, payload: delta });
    // Commands and answers cost a few hundred bytes a chunk on top of the payload.
    expect(put2.upstreamBytesSent as number).toBeLessThan(delta + 64 * 1024);
    expect(put2.clientBytesIn as number).toBeGreaterThanOrEqual(edited.length);
    console.log(`proxy: second PUT of ${edited.length} bytes sent ${put2.upstreamBytesSent as number} bytes upstream: ${JSON.stringify(put2)}`);

    expect(first.VersionId).toBeTruthy();
    expect(second.VersionId).toBeTruthy();
    expect(second.VersionId).not.toBe(first.VersionId);
    expect(sameBytes(await getVia(viaProxy, "doc.bin"), edited)).toBe(true);
    expect(sameBytes(await getVia(direct, "doc.bin"), edited)).toBe(true);
    // The previous version is kept, as for any PUT to a versioned bucket.
    const old = await direct.send(new GetObjectCommand({ Bucket: B, Key: "doc.bin", VersionId: first.VersionId }));
    expect(sameBytes(await bodyBytes(old.Body), base)).toBe(true);

    // Metadata is the request's, as PutObject's: nothing is inherited from the replaced version.
    await direct.send(new PutObjectCommand({ Bucket: B, Key: "plain.bin", Body: new Uint8Array(10) }));
    const plain = await direct.send(new HeadObjectCommand({ Bucket: B, Key: "plain.bin" }));
    const head = await viaProxy.send(new HeadObjectCommand({ Bucket: B, Key: "doc.bin" }));
    expect([head.ETag, head.VersionId, head.Metadata, head.ContentType, head.ContentLength]).toEqual([second.ETag, second.VersionId, { b: "2" }, plain.ContentType, edited.length]);
  });

  it("decodes a streamed (aws-chunked, CRC32-trailer) body, checks its checksum, and still sends only what changed", async () => {
    const base = pseudoRandom(6 * MiB + 17, 33);
    await viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "stream.bin", Body: base }));
    expect(await lastLog("PUT", `/${B}/stream.bin`)).toMatchObject({ status: 200, route: "session" });
    const edited = new Uint8Array(base.length + 5000);
    edited.set(base.subarray(0, 2 * MiB));
    edited.set(pseudoRandom(5000, 34), 2 * MiB);
    edited.set(base.subarray(2 * MiB), 2 * MiB + 5000);
    const r = await viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "stream.bin", Body: Readable.from([edited.subarray(0, 3 * MiB), edited.subarray(3 * MiB)]), ContentLength: edited.length, ChecksumAlgorithm: "CRC32" }));
    const log = await lastLog("PUT", `/${B}/stream.bin`);
    expect(log).toMatchObject({ status: 200, route: "session", size: edited.length });
    expect(log.payload as number).toBe(newChunkBytes(base, edited));
    expect(r.ChecksumCRC32).toBeTruthy();
    expect(sameBytes(await getVia(direct, "stream.bin"), edited)).toBe(true);
  });

  it("verifies a signed aws-chunked body chunk by chunk, through a session and when forwarded", async () => {
    const big = pseudoRandom(3 * MiB + 5, 44);
    const r = await signedChunkedPut("signed.bin", big, 64 * 1024);
    expect(r.status, r.text).toBe(200);
    expect(await lastLog("PUT", `/${B}/signed.bin`)).toMatchObject({ status: 200, route: "session", size: big.length });
    expect(sameBytes(await getVia(direct, "signed.bin"), big)).toBe(true);
    // Below the session threshold: decoded here, sent on as plain bytes.
    const small = pseudoRandom(100_000, 45);
    const f = await signedChunkedPut("signed-small.bin", small, 8192);
    expect(f.status, f.text).toBe(200);
    expect(await lastLog("PUT", `/${B}/signed-small.bin`)).toMatchObject({ status: 200, route: "forwarded", upstreamBytesSent: small.length });
    expect(sameBytes(await getVia(direct, "signed-small.bin"), small)).toBe(true);
    // One flipped bit in the third chunk: refused, and neither object changes.
    for (const [key, body, chunk] of [["signed.bin", pseudoRandom(3 * MiB + 5, 46), 64 * 1024], ["signed-small.bin", pseudoRandom(100_000, 47), 8192]] as const) {
      const bad = await signedChunkedPut(key, body, chunk, true);
      expect(bad.status).toBe(403);
      expect(bad.text).toMatch(/<Code>SignatureDoesNotMatch<\/Code>/);
    }
    expect(sameBytes(await getVia(direct, "signed.bin"), big)).toBe(true);
    expect(sameBytes(await getVia(direct, "signed-small.bin"), small)).toBe(true);
  });

  it("refuses a body that does not match its Content-MD5, and keeps the stored version", async () => {
    const before = await getVia(direct, "doc.bin");
    const wrong = createHash("md5").update("something else").digest("base64");
    const err = await s3Error(viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "doc.bin", Body: pseudoRandom(2 * MiB, 35), ContentMD5: wrong })));
    expect(err).toEqual({ name: "BadDigest", status: 400 });
    expect(await lastLog("PUT", `/${B}/doc.bin`)).toMatchObject({ status: 400, error: { code: "BadDigest" } });
    expect(sameBytes(await getVia(direct, "doc.bin"), before)).toBe(true);
  });

  it("forwards small PUTs, multipart uploads, listings and deletes", async () => {
    const small = await viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "dir/small.txt", Body: "hello" }));
    expect(await lastLog("PUT", `/${B}/dir/small.txt`)).toMatchObject({ status: 200, route: "forwarded" });
    expect(small.ETag).toBe(`"${createHash("md5").update("hello").digest("hex")}"`);

    const big = pseudoRandom(11 * MiB, 36);
    await new Upload({ client: viaProxy, params: { Bucket: B, Key: "dir/multi.bin", Body: big }, partSize: 5 * MiB, queueSize: 2 }).done();
    expect(sameBytes(await getVia(direct, "dir/multi.bin"), big)).toBe(true);

    const listed = await viaProxy.send(new ListObjectsV2Command({ Bucket: B, Prefix: "dir/" }));
    expect(listed.Contents?.map((c) => c.Key)).toEqual(["dir/multi.bin", "dir/small.txt"]);
    await viaProxy.send(new DeleteObjectCommand({ Bucket: B, Key: "dir/small.txt" }));
    await viaProxy.send(new DeleteObjectsCommand({ Bucket: B, Delete: { Objects: [{ Key: "dir/multi.bin" }] } }));
    expect((await viaProxy.send(new ListObjectsV2Command({ Bucket: B, Prefix: "dir/" }))).KeyCount).toBe(0);
    expect(await s3Error(viaProxy.send(new GetObjectCommand({ Bucket: B, Key: "dir/small.txt" })))).toEqual({ name: "NoSuchKey", status: 404 });
  });

  it("answers S3's errors: the cluster's through the proxy, and its own for a bad local signature", async () => {
    expect(await s3Error(viaProxy.send(new GetObjectCommand({ Bucket: B, Key: "missing" })))).toEqual({ name: "NoSuchKey", status: 404 });
    expect(await s3Error(viaProxy.send(new PutObjectCommand({ Bucket: "no-such-bucket", Key: "k", Body: pseudoRandom(MiB, 37) })))).toEqual({ name: "NoSuchBucket", status: 404 });
    const bad = proxyClient("not-the-secret");
    try {
      expect(await s3Error(bad.send(new GetObjectCommand({ Bucket: B, Key: "doc.bin" })))).toEqual({ name: "SignatureDoesNotMatch", status: 403 });
    } finally {
      bad.destroy();
    }
    // The cluster's own key pair is not the proxy's.
    const clusterKeyed = new S3Client({ endpoint: proxyEndpoint, region: cluster.region, forcePathStyle: true, credentials: { accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey }, maxAttempts: 1 });
    try {
      expect(await s3Error(clusterKeyed.send(new HeadObjectCommand({ Bucket: B, Key: "doc.bin" })))).toMatchObject({ status: 403 });
    } finally {
      clusterKeyed.destroy();
    }
  });

  it("queues concurrent PUTs of one key, and forwards a PUT whose key another session holds", async () => {
    const a = pseudoRandom(MiB, 38);
    const b = pseudoRandom(MiB, 39);
    const [ra, rb] = await Promise.all([viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "race.bin", Body: a })), viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "race.bin", Body: b }))]);
    expect(ra.VersionId).not.toBe(rb.VersionId);
    const s = await EditingSession.open(creds());
    try {
      await s.begin({ bucket: B, key: "held.bin", base: null, mode: "replace" });
      const body = pseudoRandom(MiB, 40);
      await viaProxy.send(new PutObjectCommand({ Bucket: B, Key: "held.bin", Body: body }));
      expect(await lastLog("PUT", `/${B}/held.bin`)).toMatchObject({ status: 200, route: "forwarded (key leased)" });
      expect(sameBytes(await getVia(direct, "held.bin"), body)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it("with --trust-loopback, answers only requests addressed to a loopback host (no DNS rebinding)", async () => {
    const open = new S3Proxy({ cluster: creds(), local: null, log: () => {} });
    const { port } = await open.listen(await freePort());
    const get = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const r = httpRequest({ host: "127.0.0.1", port, path: "/", method: "GET", headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        r.on("error", reject);
        r.end();
      });
    try {
      expect(await get(`rebound.example:${port}`)).toBe(403);
      expect(await get(`127.0.0.1:${port}`)).toBe(200);
      expect(await get(`localhost:${port}`)).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe("streaming sync", () => {
  it("probing ahead past a chunk that must be sent leaves the same content and chunk list as one probe at a time", async () => {
    const base = pseudoRandom(8 * MiB, 41);
    await direct.send(new PutObjectCommand({ Bucket: B, Key: "ahead.bin", Body: base }));
    await direct.send(new PutObjectCommand({ Bucket: B, Key: "step.bin", Body: base }));
    // Changed chunks late in the object, with known ones after them: by then the window is open.
    const edited = base.slice();
    edited.set(pseudoRandom(300, 42), 5 * MiB);
    edited.set(pseudoRandom(300, 43), 6 * MiB + 500_000);
    const s = await EditingSession.open(creds());
    try {
      const progress: number[] = [];
      const e = await s.begin({ bucket: B, key: "ahead.bin", mode: "replace" });
      async function* pieces() {
        for (let at = 0; at < edited.length; at += 100_000) yield edited.subarray(at, at + 100_000);
      }
      const r = await e.syncStream(pieces(), { window: 16, onProgress: (p) => progress.push(p.done) });
      const ahead = await e.commit();
      const f = await s.begin({ bucket: B, key: "step.bin", mode: "replace" });
      const one = await f.sync(edited, { window: 1 });
      const step = await f.commit();
      expect([r.sent, r.chunks, r.reused]).toEqual([one.sent, one.chunks, one.reused]);
      expect(r.sent).toBe(newChunkBytes(base, edited));
      expect(progress.at(-1)).toBe(edited.length);
      // The ETag is the MD5 of the chunk list: the same list, chunk for chunk.
      expect(ahead.etag).toBe(step.etag);
      expect(ahead.payloadToken).not.toBe("");
      expect(sameBytes(await getVia(direct, "ahead.bin"), edited)).toBe(true);
      const layout = await new EdgestoreExtensions(creds()).chunkLayout(B, "ahead.bin");
      expect(layout.chunks.length).toBe(r.chunks);
    } finally {
      await s.close();
    }
  });
});

describe("the edgestore CLI", () => {
  const cli = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ["client/cli.ts", ...args],
        { cwd: join(import.meta.dirname, "../.."), env: { ...process.env, EDGESTORE_ENDPOINT: cluster.endpoint, AWS_ACCESS_KEY_ID: cluster.accessKey, AWS_SECRET_ACCESS_KEY: cluster.secretKey, AWS_REGION: cluster.region, ...env }, maxBuffer: 16 * MiB },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const json = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>;
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "edgestore-cli-"));
  });
  afterAll(() => removeDir(work));

  it("puts a file, then re-puts it edited sending only the changed chunks, and validates it by token", async () => {
    const file = join(work, "a.bin");
    const base = pseudoRandom(5 * MiB, 51);
    writeFileSync(file, base);
    const p1 = await cli(["put", file, `s3://${B}/cli/a.bin`, "--json"]);
    expect(p1.code, p1.stderr).toBe(0);
    const c1 = json(p1.stdout);
    expect(c1).toMatchObject({ command: "put", bucket: B, key: "cli/a.bin", size: base.length, sent: base.length, reused: 0 });
    expect(c1.manifestToken).toMatch(/^mt1_/);

    const edited = base.slice();
    edited.set(pseudoRandom(64, 52), 3 * MiB);
    writeFileSync(file, edited);
    const p2 = await cli(["put", file, `s3://${B}/cli/a.bin`, "--progress"]);
    expect(p2.code, p2.stderr).toBe(0);
    expect(p2.stdout).toMatch(/committed/);
    expect(p2.stdout).toMatch(/by reference/);
    const sent = Number(/\((\d+) bytes, /.exec(p2.stdout)?.[1]);
    expect(sent).toBe(newChunkBytes(base, edited));
    // --progress draws on stderr (not a terminal here), redrawn with \r, ending at 100%.
    expect(p2.stderr).toMatch(/\r.*100%/);
    const token = /manifest {2}(mt1_\S+)/.exec(p2.stdout)?.[1];
    expect(sameBytes(await getVia(direct, "cli/a.bin"), edited)).toBe(true);

    const v = await cli(["validate", `s3://${B}/cli/a.bin`, "--token", token!, "--json"]);
    expect(v.code, v.stderr).toBe(0);
    expect(json(v.stdout)).toMatchObject({ token: "matches", tokenKind: "manifest", state: "intact", lost: 0 });
    // The first version's token no longer names what is current: exit status 3.
    const stale = await cli(["validate", `s3://${B}/cli/a.bin`, "--token", String(c1.manifestToken)]);
    expect(stale.code).toBe(3);
    expect(stale.stdout).toMatch(/token {5}differs/);
    const old = await cli(["validate", `s3://${B}/cli/a.bin`, "--version", String(c1.versionId), "--token", String(c1.manifestToken), "--json"]);
    expect(old.code, old.stderr).toBe(0);
    expect(json(old.stdout)).toMatchObject({ token: "matches", state: "intact" });
  });

  it("appends, writes at an offset, and gets", async () => {
    const file = join(work, "b.bin");
    const head = pseudoRandom(300_000, 53);
    writeFileSync(file, head);
    expect((await cli(["put", file, `s3://${B}/cli/b.bin`, "--quiet"])).code).toBe(0);
    const tail = pseudoRandom(200_000, 54);
    writeFileSync(file, tail);
    const a = await cli(["append", file, `s3://${B}/cli/b.bin`, "--json"]);
    expect(a.code, a.stderr).toBe(0);
    expect(json(a.stdout)).toMatchObject({ command: "append", offset: head.length, size: head.length + tail.length });
    const patch = new TextEncoder().encode("PATCHED");
    writeFileSync(file, patch);
    const w = await cli(["write", file, `s3://${B}/cli/b.bin`, "--offset", "1000", "--json"]);
    expect(w.code, w.stderr).toBe(0);
    const want = new Uint8Array(head.length + tail.length);
    want.set(head);
    want.set(tail, head.length);
    want.set(patch, 1000);
    const out = join(work, "b.out");
    const g = await cli(["get", `s3://${B}/cli/b.bin`, out]);
    expect(g.code, g.stderr).toBe(0);
    expect(sameBytes(readFileSync(out), want)).toBe(true);
  });

  it("exits non-zero with S3's error code", async () => {
    const file = join(work, "c.bin");
    writeFileSync(file, pseudoRandom(1000, 55));
    const missing = await cli(["put", file, "s3://no-such-bucket/x"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^edgestore: NoSuchBucket: /m);
    const nokey = await cli(["get", `s3://${B}/cli/none`, join(work, "none.out"), "--json"]);
    expect(nokey.code).toBe(1);
    expect(json(nokey.stdout)).toMatchObject({ error: { code: "NoSuchKey" } });
    const badSecret = await cli(["validate", `s3://${B}/cli/a.bin`], { AWS_SECRET_ACCESS_KEY: "wrong" });
    expect(badSecret.code).toBe(1);
    expect(badSecret.stderr).toMatch(/SignatureDoesNotMatch/);
    expect((await cli(["put", file])).code).toBe(2);
    expect((await cli(["frobnicate"])).code).toBe(2);
  });
});
