// Validation against kept tokens (issue 5, point 4) on a real cluster: the targets re-hash their
// own copies, a corrupted or deleted copy on disk is found and repaired from a good one, and
// only the verdict travels to the client. Corruption is real: bytes flipped in a chunk file.

import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import { signRequest } from "../../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../../common/s3/sigv4.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { chunkCopies, clusterForSuite, copyOn, damageCopy, dropCopy, pseudoRandom } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
let ext: EdgestoreExtensions;
const B = "kept";

clusterForSuite({ bucket: B }, (c) => {
  ({ cluster, s3 } = c);
  ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
});

async function tokensOf(key: string): Promise<{ manifest: string; payload: string }> {
  const url = `${cluster.endpoint}/${B}/${key}`;
  const headers = { "x-edgestore-tokens": "true" };
  const auth = await signRequest({ method: "HEAD", url, headers, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
  const res = await fetch(url, { method: "HEAD", headers: { ...headers, ...auth } });
  return { manifest: res.headers.get("x-edgestore-manifest-token")!, payload: res.headers.get("x-edgestore-payload-token")! };
}

/** The targets holding a copy of one chunk. */
function copiesOf(chid: string): number[] {
  return cluster.targets.map((t) => t.index).filter((i) => copyOn(cluster, i, chid) !== null);
}

describe("validation", () => {
  const key = "archive.bin";
  let chids: string[] = [];
  let tokens: { manifest: string; payload: string };

  beforeAll(async () => {
    const before = new Set(chunkCopies(cluster).keys());
    await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: pseudoRandom(3 * 1024 * 1024, 77), ContentType: "application/x-archive" }));
    chids = [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
    tokens = await tokensOf(key);
  });

  it("finds an untouched version intact and matching its manifest token, sending only a verdict", async () => {
    const v = await ext.validate({ bucket: B, key }, tokens.manifest);
    expect(v).toMatchObject({ token: "matches", tokenKind: "manifest", state: "intact", repaired: 0, lost: 0 });
    // The manifest and every chunk, each on R = 3 targets.
    expect(v.items).toBe(1 + chids.length);
    expect(v.copies).toEqual({ good: 3 * v.items, bad: 0 });
    expect(JSON.stringify(v).length).toBeLessThan(1024);
    expect((await ext.validate({ bucket: B, key }, tokens.payload)).tokenKind).toBe("payload");
    expect((await ext.validate({ bucket: B, key }, "mt1_not-this-one")).token).toBe("differs");
  });

  it("finds a corrupted copy, quarantines it, and restores the replica count from a good one", async () => {
    const victim = copiesOf(chids[0]!)[0]!;
    damageCopy(copyOn(cluster, victim, chids[0]!)!, 1000);
    const v = await ext.validate({ bucket: B, key }, tokens.manifest);
    expect(v).toMatchObject({ token: "matches", state: "repaired", repaired: 1, lost: 0 });
    expect(v.copies.bad).toBe(1);
    expect(copiesOf(chids[0]!)).toHaveLength(3);
    expect(await ext.validate({ bucket: B, key })).toMatchObject({ state: "intact", copies: { good: 3 * v.items, bad: 0 } });
  });

  it("restores copies deleted from two of three targets; reports lost when none is left", async () => {
    const holders = copiesOf(chids.at(-1)!);
    dropCopy(cluster, holders[0]!, chids.at(-1)!);
    dropCopy(cluster, holders[1]!, chids.at(-1)!);
    const v = await ext.validate({ bucket: B, key });
    expect(v).toMatchObject({ state: "repaired", repaired: 2, lost: 0 });
    expect(copiesOf(chids.at(-1)!)).toHaveLength(3);
    for (const i of copiesOf(chids.at(-1)!)) dropCopy(cluster, i, chids.at(-1)!);
    expect(await ext.validate({ bucket: B, key })).toMatchObject({ state: "lost", lost: 1 });
  });

  it("validates a whole snapshot against its token", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "small-1", Body: "one" }));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "small-2", Body: pseudoRandom(600_000, 78) }));
    const s = await ext.createSnapshot({ masks: [`${B}/small-*`] });
    const c = await ext.commitSnapshot(s.id);
    const v = await ext.validate({ snapshot: s.id }, c.token!);
    expect(v).toMatchObject({ token: "matches", tokenKind: "snapshot", state: "intact", lost: 0 });
    // The snapshot's own pages and root, and each version's manifest and chunks.
    expect(v.items).toBeGreaterThanOrEqual(2 + 2 + 1);
    expect((await ext.validate({ snapshot: s.id }, "st1_other")).token).toBe("differs");
  });
});

describe("replication count per version", () => {
  async function putWith(key: string, body: Uint8Array, replicas: string): Promise<Response> {
    const url = `${cluster.endpoint}/${B}/${key}`;
    const headers = { "x-edgestore-replicas": replicas, "content-length": String(body.length) };
    const auth = await signRequest({ method: "PUT", url, headers, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    return fetch(url, { method: "PUT", headers: { ...headers, ...auth }, body: body as Uint8Array<ArrayBuffer> });
  }

  async function headReplicas(key: string): Promise<string | null> {
    const url = `${cluster.endpoint}/${B}/${key}`;
    const auth = await signRequest({ method: "HEAD", url, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    return (await fetch(url, { method: "HEAD", headers: { ...auth } })).headers.get("x-edgestore-replicas");
  }

  it("is set on PUT, honoured by placement, changed later without changing the tokens, and honoured by repair", async () => {
    const before = new Set(chunkCopies(cluster).keys());
    const res = await putWith("one-copy.bin", pseudoRandom(2 * 1024 * 1024, 90), "1");
    expect(res.status).toBe(200);
    const mine = [...chunkCopies(cluster)].filter(([c]) => !before.has(c));
    expect(mine.length).toBeGreaterThan(0);
    for (const [chid] of mine) expect(copiesOf(chid)).toHaveLength(1);
    expect(await headReplicas("one-copy.bin")).toBe("1");
    const tokens = await tokensOf("one-copy.bin");
    expect(await ext.validate({ bucket: B, key: "one-copy.bin" })).toMatchObject({ state: "intact", repaired: 0 });

    const r = await ext.setReplicas({ bucket: B, key: "one-copy.bin" }, 3);
    expect(r).toMatchObject({ replicas: 3, state: "repaired" });
    expect(r.added).toBe(2 * r.items);
    for (const [chid] of mine) expect(copiesOf(chid)).toHaveLength(3);
    expect(await headReplicas("one-copy.bin")).toBe("3");
    expect(await tokensOf("one-copy.bin")).toEqual(tokens);
    // At least three good copies of every item (a put may place a fourth: placement counts the
    // targets it chose, not every copy that already existed).
    const v = await ext.validate({ bucket: B, key: "one-copy.bin" }, tokens.manifest);
    expect(v).toMatchObject({ token: "matches", state: "intact", copies: { bad: 0 } });
    expect(v.copies.good).toBeGreaterThanOrEqual(3 * r.items);
  });

  it("is set for a session's new version too, on the chunks the session stores", async () => {
    const { EditingSession } = await import("../../client/session.ts");
    const s = await EditingSession.open({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    try {
      const before = new Set(chunkCopies(cluster).keys());
      const e = await s.begin({ bucket: B, key: "edited-once.bin", base: null, mode: "replace", replicas: 2 });
      await e.write(0, pseudoRandom(1_500_000, 91));
      await e.commit();
      const mine = [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
      expect(mine.length).toBeGreaterThan(0);
      for (const chid of mine) expect(copiesOf(chid)).toHaveLength(2);
      expect(await headReplicas("edited-once.bin")).toBe("2");
      const bad = await s.begin({ bucket: B, key: "edited-twice.bin", base: null, mode: "replace", replicas: 0 }).catch((x: { code: string }) => x.code);
      expect(bad).toBe("InvalidArgument");
    } finally {
      await s.close();
    }
  });

  it("is set for a multipart upload at creation, and honoured by every part and the completed object", async () => {
    const create = new CreateMultipartUploadCommand({ Bucket: B, Key: "mp-one.bin" });
    create.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers["x-edgestore-replicas"] = "1";
        return next(args);
      },
      { step: "build", name: "replicasHeader" },
    );
    const { UploadId } = await s3.send(create);
    const before = new Set(chunkCopies(cluster).keys());
    const parts = [pseudoRandom(5 * 1024 * 1024, 92), pseudoRandom(1024 * 1024, 93)];
    const etags: string[] = [];
    for (const [i, p] of parts.entries()) etags.push((await s3.send(new UploadPartCommand({ Bucket: B, Key: "mp-one.bin", UploadId, PartNumber: i + 1, Body: p }))).ETag!);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp-one.bin", UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
    const mine = [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
    expect(mine.length).toBeGreaterThan(1);
    for (const chid of mine) expect(copiesOf(chid)).toHaveLength(1);
    expect(await headReplicas("mp-one.bin")).toBe("1");
  });

  it("is set on a copy, raising the shared chunks' copies to it", async () => {
    const before = new Set(chunkCopies(cluster).keys());
    expect((await putWith("copy-src.bin", pseudoRandom(1_500_000, 94), "1")).status).toBe(200);
    const mine = [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
    for (const chid of mine) expect(copiesOf(chid)).toHaveLength(1);
    const url = `${cluster.endpoint}/${B}/copy-dst.bin`;
    const headers = { "x-amz-copy-source": `/${B}/copy-src.bin`, "x-edgestore-replicas": "3" };
    const auth = await signRequest({ method: "PUT", url, headers, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
    expect((await fetch(url, { method: "PUT", headers: { ...headers, ...auth } })).status).toBe(200);
    for (const chid of mine) expect(copiesOf(chid).length).toBeGreaterThanOrEqual(3);
    expect(await headReplicas("copy-dst.bin")).toBe("3");
    expect(await headReplicas("copy-src.bin")).toBe("1");
  });

  it("refuses a count outside 1..GROUP_MEMBERS with InvalidArgument", async () => {
    for (const bad of ["0", "9", "two"]) {
      const res = await putWith("bad-count", new Uint8Array(10), bad);
      expect(res.status).toBe(400);
      expect(await res.text()).toMatch(/<Code>InvalidArgument<\/Code>/);
    }
  });
});
