// Chunk-aware editing sessions (issue 5, points 1, 2 and 4's tokens) on a real local cluster:
// the client (client/session.ts) over a real signed WebSocket to the gateway, real targets
// storing the chunks, @aws-sdk/client-s3 to read what was committed. Nothing is mocked.

import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import { EditingSession, HttpEditingSession, SessionError } from "../../client/session.ts";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clusterForSuite, concat, openSession, pseudoRandom, s3Error, sameBytes, sessionFailure } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "edits";
const MiB = 1024 * 1024;

// HTTP-form sessions expire after 2 idle seconds here, so that expiry can be seen.
clusterForSuite({ bucket: B, versioned: true, vars: { SESSION_TTL_SECONDS: "2" } }, (c) => ({ cluster, s3 } = c));

const open = () => openSession(cluster);
const ext = () => new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
const get = async (key: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body);
/** Distinct chunk ids stored on the targets. */
const chunkIds = () => new Set(chunkCopies(cluster).keys());


describe("an editing session", () => {
  it("builds a new object from writes and metadata, invisible until it commits, with tokens", async () => {
    const s = await open();
    try {
      const e = await s.begin({ bucket: B, key: "new.bin", base: null, mode: "replace" });
      const a = pseudoRandom(300_000, 1);
      const b = pseudoRandom(200_000, 2);
      await e.write(0, a);
      await e.write(a.length, b);
      await e.meta({ "content-type": "application/x-test", "x-amz-meta-owner": "ana" });
      expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "new.bin" })))).toMatchObject({ status: 404 });
      const c = await e.commit();
      expect(c.size).toBe(500_000);
      expect(c.etag).toMatch(/^"[0-9a-f]{32}-\d+"$/);
      expect(c.manifestToken).toMatch(/^mt1_[A-Za-z0-9_-]{43}$/);
      expect(c.payloadToken).toMatch(/^pt1_[A-Za-z0-9_-]{43}$/);
      expect(sameBytes(await get("new.bin"), concat(a, b))).toBe(true);
      const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "new.bin" }));
      expect([head.ContentType, head.Metadata, head.VersionId, head.ETag]).toEqual(["application/x-test", { owner: "ana" }, c.versionId, c.etag]);
    } finally {
      await s.close();
    }
  });

  it("appends to a base version, and refuses a write anywhere but the end in append mode", async () => {
    const base = pseudoRandom(5000, 3);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "log.txt", Body: base }));
    const s = await open();
    try {
      const e = await s.begin({ bucket: B, key: "log.txt", mode: "append" });
      expect(e.size).toBe(5000);
      expect(await sessionFailure(e.write(10, new Uint8Array(5)))).toBe("InvalidArgument");
      const more = pseudoRandom(7000, 4);
      await e.write(5000, more);
      await e.commit();
      expect(sameBytes(await get("log.txt"), concat(base, more))).toBe(true);
    } finally {
      await s.close();
    }
  });

  it("writes over kept content in the middle of a large object, storing only the write", async () => {
    const base = pseudoRandom(6 * MiB + 123, 5);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "big.bin", Body: base }));
    const before = chunkIds();
    const s = await open();
    try {
      const e = await s.begin({ bucket: B, key: "big.bin", mode: "random" });
      const patch = pseudoRandom(1000, 6);
      const at = 3 * MiB + 17;
      await e.write(at, patch);
      const c = await e.commit();
      const want = base.slice();
      want.set(patch, at);
      expect(c.size).toBe(base.length);
      expect(sameBytes(await get("big.bin"), want)).toBe(true);
      // The cut chunk's head and tail stay as slices of it: the patch is the one new chunk,
      // whatever the object's size, and the layout shows the slices.
      const added = [...chunkIds()].filter((id) => !before.has(id));
      expect(added.length).toBe(1);
      const layout = await ext().chunkLayout(B, "big.bin");
      const patched = layout.chunks.findIndex((ch) => ch.offset === at);
      expect(layout.chunks[patched]!.length).toBe(1000);
      expect(layout.chunks[patched - 1]!.skip).toBe(0);
      expect(layout.chunks[patched + 1]!.skip).toBe(at + 1000 - layout.chunks[patched - 1]!.offset);
    } finally {
      await s.close();
    }
  });

  it("truncates inside a chunk, and extends with zeros", async () => {
    const base = pseudoRandom(2 * MiB, 7);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "cut.bin", Body: base }));
    const s = await open();
    try {
      const e = await s.begin({ bucket: B, key: "cut.bin", mode: "random" });
      const before = chunkIds();
      await e.truncate(MiB + 5);
      await e.commit();
      expect(sameBytes(await get("cut.bin"), base.subarray(0, MiB + 5))).toBe(true);
      // The chunk cut is kept as a slice, not read and re-stored.
      expect([...chunkIds()].filter((id) => !before.has(id))).toEqual([]);
      const f = await s.begin({ bucket: B, key: "cut.bin", mode: "random" });
      await f.truncate(MiB + 5 + 3000);
      await f.write(MiB + 5 + 3000 + 10, new Uint8Array([1, 2, 3]));
      await f.commit();
      expect(sameBytes(await get("cut.bin"), concat(base.subarray(0, MiB + 5), new Uint8Array(3010), new Uint8Array([1, 2, 3])))).toBe(true);
    } finally {
      await s.close();
    }
  });

  it("sync sends only what changed: an edited 8 MiB object costs a few chunks, not the object", async () => {
    const base = pseudoRandom(8 * MiB, 8);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "doc.bin", Body: base }));
    const edited = concat(base.subarray(0, 100_000), pseudoRandom(1000, 9), base.subarray(100_000, 5 * MiB), pseudoRandom(500, 10), base.subarray(5 * MiB + 500));
    const s = await open();
    try {
      const e = await s.begin({ bucket: B, key: "doc.bin", mode: "replace" });
      const r = await e.sync(edited);
      expect(r.reused).toBeGreaterThan(0);
      // Two edits, each touching one or two chunks of at most CHUNK_MAX (4 MiB, avg 1 MiB).
      expect(r.sent).toBeLessThan(edited.length / 2);
      await e.commit();
      expect(sameBytes(await get("doc.bin"), edited)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it("a metadata-only edit keeps the payload token and changes the manifest token", async () => {
    const s = await open();
    try {
      const a = await s.begin({ bucket: B, key: "tok.bin", base: null, mode: "replace" });
      await a.write(0, pseudoRandom(100_000, 11));
      const c1 = await a.commit();
      const b = await s.begin({ bucket: B, key: "tok.bin", mode: "random" });
      await b.meta({ "x-amz-meta-note": "relabelled" });
      const c2 = await b.commit();
      expect(c2.payloadToken).toBe(c1.payloadToken);
      expect(c2.manifestToken).not.toBe(c1.manifestToken);
    } finally {
      await s.close();
    }
  });
});

describe("sessions own their pending versions", () => {
  it("closing the connection aborts: nothing becomes visible, and the key is free for the next session", async () => {
    const s = await open();
    const e = await s.begin({ bucket: B, key: "abandoned.bin", base: null, mode: "replace" });
    await e.write(0, pseudoRandom(50_000, 12));
    await s.close();
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "abandoned.bin" })))).toMatchObject({ status: 404 });
    const t = await open();
    try {
      // The lease goes with the closed session: released when the gateway sees the close (a
      // moment after the client does), not after the lease's 60 s expiry.
      const t0 = Date.now();
      let f = null;
      for (let i = 0; i < 50 && !f; i++) {
        f = await t.begin({ bucket: B, key: "abandoned.bin", base: null, mode: "replace" }).catch((e: SessionError) => (e.code === "KeyLeased" ? null : Promise.reject(e)));
        if (!f) await sleep(50);
      }
      expect(f).not.toBeNull();
      expect(Date.now() - t0).toBeLessThan(10_000);
      await f!.abort();
    } finally {
      await t.close();
    }
  });

  it("only one session may hold a pending version of a key", async () => {
    const [s, t] = await Promise.all([open(), open()]);
    try {
      const e = await s.begin({ bucket: B, key: "contended", base: null, mode: "replace" });
      expect(await sessionFailure(t.begin({ bucket: B, key: "contended", base: null, mode: "replace" }))).toBe("KeyLeased");
      await e.write(0, new Uint8Array([1]));
      await e.commit();
      const f = await t.begin({ bucket: B, key: "contended", mode: "append" });
      await f.write(1, new Uint8Array([2]));
      await f.commit();
      expect([...(await get("contended"))]).toEqual([1, 2]);
    } finally {
      await Promise.all([s.close(), t.close()]);
    }
  });

  it("if-absent and if-version are decided by the name's group at commit", async () => {
    const s = await open();
    try {
      const e = await s.begin({ bucket: B, key: "cond-new", base: null, mode: "replace", ifAbsent: true });
      await e.write(0, new Uint8Array([1]));
      await s3.send(new PutObjectCommand({ Bucket: B, Key: "cond-new", Body: "someone else" }));
      expect(await sessionFailure(e.commit())).toBe("PreconditionFailed");
      expect(new TextDecoder().decode(await get("cond-new"))).toBe("someone else");

      const v1 = await s3.send(new PutObjectCommand({ Bucket: B, Key: "cond-cas", Body: "v1" }));
      const f = await s.begin({ bucket: B, key: "cond-cas", mode: "append", ifVersion: v1.VersionId });
      await f.write(2, new TextEncoder().encode("+edit"));
      await s3.send(new PutObjectCommand({ Bucket: B, Key: "cond-cas", Body: "v2" }));
      expect(await sessionFailure(f.commit())).toBe("PreconditionFailed");
      const g = await s.begin({ bucket: B, key: "cond-cas", mode: "append", ifVersion: (await s3.send(new HeadObjectCommand({ Bucket: B, Key: "cond-cas" }))).VersionId });
      await g.write(2, new TextEncoder().encode("+edit"));
      await g.commit();
      expect(new TextDecoder().decode(await get("cond-cas"))).toBe("v2+edit");
    } finally {
      await s.close();
    }
  });

  it("refuses a bad session with S3's error, and an unsigned one", async () => {
    const s = await open();
    try {
      expect(await sessionFailure(s.begin({ bucket: "no-such-bucket", key: "k", base: null, mode: "replace" }))).toBe("NoSuchBucket");
      expect(await sessionFailure(s.begin({ bucket: B, key: "k", base: "0000000000000000000000", mode: "replace" }))).toBe("NoSuchVersion");
      expect(await sessionFailure(s.begin({ bucket: B, key: "k", base: null, mode: "sideways" as never }))).toBe("InvalidArgument");
    } finally {
      await s.close();
    }
    const bad = EditingSession.open({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: "wrong" });
    await expect(bad).rejects.toMatchObject({ code: "SignatureDoesNotMatch" });
  });
});

describe("tokens on HEAD and GET", () => {
  it("are given when asked with x-edgestore-tokens, and match what the commit said", async () => {
    const s = await open();
    let committed: { manifestToken: string; payloadToken: string };
    try {
      const e = await s.begin({ bucket: B, key: "asked.bin", base: null, mode: "replace" });
      await e.write(0, pseudoRandom(70_000, 13));
      committed = await e.commit();
    } finally {
      await s.close();
    }
    const url = `${cluster.endpoint}/${B}/asked.bin`;
    const { signRequest } = await import("../../common/s3/sign-request.ts");
    const { UNSIGNED_PAYLOAD } = await import("../../common/s3/sigv4.ts");
    const headers = { "x-edgestore-tokens": "true" };
    const auth = await signRequest({ method: "HEAD", url, headers, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    const res = await fetch(url, { method: "HEAD", headers: { ...headers, ...auth } });
    expect(res.headers.get("x-edgestore-manifest-token")).toBe(committed.manifestToken);
    expect(res.headers.get("x-edgestore-payload-token")).toBe(committed.payloadToken);
    expect(createHash("md5").update(await get("asked.bin")).digest("hex")).toBe(createHash("md5").update(pseudoRandom(70_000, 13)).digest("hex"));
  });
});

describe("the HTTP form of a session", () => {
  const creds = () => ({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });

  it("edits and commits one command per request, with the pending version kept between them", async () => {
    const s = await HttpEditingSession.open(creds());
    const e = await s.begin({ bucket: B, key: "http.bin", base: null, mode: "replace" });
    const a = pseudoRandom(3 * MiB, 20);
    const b = pseudoRandom(123_456, 21);
    await e.write(0, a);
    await e.write(a.length, b);
    await e.meta({ "x-amz-meta-via": "http" });
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "http.bin" })))).toMatchObject({ status: 404 });
    const c = await e.commit();
    expect(c.manifestToken).toMatch(/^mt1_/);
    expect(sameBytes(await get("http.bin"), concat(a, b))).toBe(true);
    // And sync, which needs the chunking: the client is told it at open.
    const f = await s.begin({ bucket: B, key: "http.bin", mode: "replace" });
    const edited = concat(a.subarray(0, 200_000), pseudoRandom(10, 22), a.subarray(200_000), b);
    const r = await f.sync(edited);
    expect(r.reused).toBeGreaterThan(0);
    expect(r.sent).toBeLessThan(edited.length);
    await f.commit();
    expect(sameBytes(await get("http.bin"), edited)).toBe(true);
    await s.close();
  });

  it("shares leases with WebSocket sessions, and ending it aborts and frees the key", async () => {
    const ws = await open();
    const s = await HttpEditingSession.open(creds());
    try {
      const held = await ws.begin({ bucket: B, key: "shared-lease", base: null, mode: "replace" });
      expect(await sessionFailure(s.begin({ bucket: B, key: "shared-lease", base: null, mode: "replace" }))).toBe("KeyLeased");
      await held.abort();
      const e = await s.begin({ bucket: B, key: "shared-lease", base: null, mode: "replace" });
      await e.write(0, new Uint8Array([9]));
      await s.close();
      expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "shared-lease" })))).toMatchObject({ status: 404 });
      const again = await ws.begin({ bucket: B, key: "shared-lease", base: null, mode: "replace" });
      await again.abort();
      expect(await sessionFailure(s.call({ op: "abort", txn: "t1" }))).toBe("NoSuchSession");
    } finally {
      await ws.close();
    }
  });

  it("expires when unused for its TTL, aborting what it held", async () => {
    const s = await HttpEditingSession.open(creds());
    const e = await s.begin({ bucket: B, key: "expiring", base: null, mode: "replace" });
    await e.write(0, new Uint8Array([1, 2, 3]));
    // TTL 2 s here; the alarm runs at expiry. Bounded wait for the key to come free.
    let free = false;
    const ws = await open();
    try {
      for (let i = 0; i < 40 && !free; i++) {
        await sleep(250);
        const t = await ws.begin({ bucket: B, key: "expiring", base: null, mode: "replace" }).catch(() => null);
        if (t) (free = true), await t.abort();
      }
    } finally {
      await ws.close();
    }
    expect(free).toBe(true);
    expect(await sessionFailure(e.commit())).toBe("NoSuchSession");
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: "expiring" })))).toMatchObject({ status: 404 });
  });

  it("refuses an unknown session, and a write payload signed with a hash it would not check", async () => {
    const fake = await HttpEditingSession.open(creds());
    await fake.close();
    expect(await sessionFailure(fake.call({ op: "abort", txn: "t1" }))).toBe("NoSuchSession");
    const url = `${cluster.endpoint}/_sessions/not-an-id`;
    const { signRequest } = await import("../../common/s3/sign-request.ts");
    const body = new Uint8Array([1, 2, 3]);
    const hash = createHash("sha256").update(body).digest("hex");
    const headers = { "x-edgestore-command": JSON.stringify({ op: "write", txn: "t1", offset: 0, length: 3 }) };
    const auth = await signRequest({ method: "POST", url, headers, payloadHash: hash, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    const res = await fetch(url, { method: "POST", headers: { ...headers, ...auth }, body });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/<Code>InvalidRequest<\/Code>/);
  });
});
