// Reads as of a time (issue 4, points 1, 2 and 5) on a real local cluster: concurrent writers on
// many names and groups keep a log of what was acknowledged, and listings and GETs as of times
// taken while they write must equal what the log says was current then, and never change once
// answered. Driven by @aws-sdk/client-s3, with the `as-of` extension parameter added to the
// signed query by a middleware.

import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type S3Client,
  type ListObjectsV2CommandOutput,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseUvid } from "../../common/ids.ts";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clientFor, removeDir, s3Error, startTestCluster, withQuery } from "./helpers.ts";

let cluster: LocalCluster;
let dir: string;
let s3: S3Client;
const B = "pit";

beforeAll(async () => {
  ({ cluster, dir } = await startTestCluster());
  s3 = clientFor(cluster);
  await s3.send(new CreateBucketCommand({ Bucket: B }));
  await s3.send(new PutBucketVersioningCommand({ Bucket: B, VersioningConfiguration: { Status: "Enabled" } }));
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

/** The point-in-time parameters on a command. */
function asOf<C extends { middlewareStack: { add: (...a: never[]) => void } }>(cmd: C, t: number | string, waitMs?: number): C {
  return withQuery(cmd, { "as-of": t, "as-of-wait": waitMs });
}

const md5 = (s: string) => createHash("md5").update(s).digest("hex");
const stampMs = (versionId: string) => parseUvid(versionId).ms;

/** Every key's listing as of a time, all pages: key → ETag (unquoted). */
async function listAsOf(t: number, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  for (let page = 0; page < 100; page++) {
    const r: ListObjectsV2CommandOutput = await s3.send(asOf(new ListObjectsV2Command({ Bucket: B, Prefix: prefix, MaxKeys: 25, ContinuationToken: token }), t, 10_000));
    for (const c of r.Contents ?? []) out.set(c.Key!, c.ETag!.replace(/"/g, ""));
    if (!r.IsTruncated) return out;
    token = r.NextContinuationToken;
  }
  throw new Error("listing did not end in 100 pages");
}

interface Acked {
  key: string;
  versionId: string;
  /** null: a delete marker. */
  body: string | null;
}

describe("as of a time, under concurrent writers", () => {
  it("every listing as of T equals the writers' log of what was current at T, and never changes", async () => {
    const P = "w/";
    const KEYS = 40;
    const log: Acked[] = [];
    let writing = true;
    const writer = async (w: number) => {
      for (let i = 0; i < 45; i++) {
        const key = `${P}k${(w * 7 + i * 3) % KEYS}`;
        if (i % 9 === 8) {
          const r = await s3.send(new DeleteObjectCommand({ Bucket: B, Key: key }));
          log.push({ key, versionId: r.VersionId!, body: null });
        } else {
          const body = `writer ${w} op ${i}`;
          const r = await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body }));
          log.push({ key, versionId: r.VersionId!, body });
        }
      }
    };
    // Readings taken while the writers run: the time asked for, and the answer as it was given.
    const readings: { t: number; answer: Map<string, string> }[] = [];
    const reader = async () => {
      for (let i = 0; i < 6 && writing; i++) {
        await sleep(150);
        const t = Date.now();
        readings.push({ t, answer: await listAsOf(t, P) });
      }
    };
    const writers = Promise.all([0, 1, 2, 3].map(writer)).finally(() => (writing = false));
    await Promise.all([writers, reader()]);
    expect(readings.length).toBeGreaterThan(1);

    const expectedAt = (t: number) => {
      const newest = new Map<string, Acked>();
      for (const a of log) {
        if (stampMs(a.versionId) > t) continue;
        const cur = newest.get(a.key);
        if (!cur || a.versionId > cur.versionId) newest.set(a.key, a);
      }
      const m = new Map<string, string>();
      for (const [k, a] of newest) if (a.body !== null) m.set(k, md5(a.body));
      return m;
    };
    const sorted = (m: Map<string, string>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    for (const r of readings) {
      // Given while writers ran, equal to the full log afterwards: complete and final when answered.
      expect(sorted(r.answer)).toEqual(sorted(expectedAt(r.t)));
      expect(sorted(await listAsOf(r.t, P))).toEqual(sorted(r.answer));
    }
    // And times chosen afterwards, between any two acknowledged stamps.
    const stamps = log.map((a) => stampMs(a.versionId)).sort((a, b) => a - b);
    for (const t of [stamps[0]! - 1, stamps[Math.floor(stamps.length / 3)]!, stamps[Math.floor(stamps.length / 2)]!, stamps[stamps.length - 1]!]) {
      expect(sorted(await listAsOf(t, P))).toEqual(sorted(expectedAt(t)));
    }
  });
});

describe("GetObject, HeadObject and ListObjectVersions as of a time", () => {
  it("GET as of T returns the body current at T; before the first write and after a delete, NoSuchKey", async () => {
    const key = "doc.txt";
    const v1 = await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: "first" }));
    await sleep(5);
    const v2 = await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: "second" }));
    await sleep(5);
    const del = await s3.send(new DeleteObjectCommand({ Bucket: B, Key: key }));
    const [t1, t2, t3] = [v1, v2, del].map((r) => stampMs(r.VersionId!));
    const read = async (t: number) => new TextDecoder().decode(await bodyBytes((await s3.send(asOf(new GetObjectCommand({ Bucket: B, Key: key }), t))).Body));
    expect(await read(t1!)).toBe("first");
    expect(await read(t2! - 1)).toBe("first");
    expect(await read(t2!)).toBe("second");
    const head = await s3.send(asOf(new HeadObjectCommand({ Bucket: B, Key: key }), new Date(t2!).toISOString()));
    expect(head.VersionId).toBe(v2.VersionId);
    expect(head.ETag).toBe(`"${md5("second")}"`);
    expect(await s3Error(s3.send(asOf(new GetObjectCommand({ Bucket: B, Key: key }), t1! - 1)))).toEqual({ name: "NoSuchKey", status: 404 });
    expect(await s3Error(s3.send(asOf(new GetObjectCommand({ Bucket: B, Key: key }), t3!)))).toEqual({ name: "NoSuchKey", status: 404 });
    // And now, without as-of, the delete marker is current.
    expect((await s3Error(s3.send(new GetObjectCommand({ Bucket: B, Key: key })))).name).toBe("NoSuchKey");
  });

  it("a version deleted by id is still read as of a time before its deletion", async () => {
    const key = "gone-by-id";
    const v = await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: "kept in history" }));
    await sleep(5);
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: key, VersionId: v.VersionId }));
    const t = stampMs(v.VersionId!);
    const got = await s3.send(asOf(new GetObjectCommand({ Bucket: B, Key: key }), t));
    expect(new TextDecoder().decode(await bodyBytes(got.Body))).toBe("kept in history");
    expect(await s3Error(s3.send(asOf(new HeadObjectCommand({ Bucket: B, Key: key }), Date.now())))).toEqual({ name: "NotFound", status: 404 });
  });

  it("ListObjectVersions as of T shows the versions that existed then, IsLatest as it was", async () => {
    const key = "lv/a";
    const v1 = await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: "1" }));
    await sleep(5);
    const v2 = await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: "2" }));
    const r = await s3.send(asOf(new ListObjectVersionsCommand({ Bucket: B, Prefix: "lv/" }), stampMs(v1.VersionId!)));
    expect(r.Versions!.map((v) => [v.VersionId, v.IsLatest])).toEqual([[v1.VersionId, true]]);
    const now = await s3.send(asOf(new ListObjectVersionsCommand({ Bucket: B, Prefix: "lv/" }), stampMs(v2.VersionId!)));
    expect(now.Versions!.map((v) => [v.VersionId, v.IsLatest])).toEqual([
      [v2.VersionId, true],
      [v1.VersionId, false],
    ]);
  });
});

describe("incomplete and bad point-in-time requests", () => {
  it("a time no group can have promised past yet is answered 503 PointInTimeIncomplete, naming the groups, never partially", async () => {
    const future = Date.now() + 3_600_000;
    const res = await fetch(
      await (async () => {
        // A presigned URL carries as-of in its signed query, so the raw XML error can be read.
        const { getSignedUrl } = await import("@aws-sdk/s3-request-presigner");
        return getSignedUrl(s3, asOf(new ListObjectsV2Command({ Bucket: B }), future, 200));
      })(),
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    const xml = await res.text();
    expect(xml).toMatch(/<Code>PointInTimeIncomplete<\/Code>/);
    expect(xml).toMatch(/<WaitingFor>group 0, group 1/);
    expect(await s3Error(s3.send(asOf(new GetObjectCommand({ Bucket: B, Key: "doc.txt" }), future, 0)))).toMatchObject({ name: "PointInTimeIncomplete", status: 503 });
  });

  it("a malformed time, or as-of with a version id, is 400 InvalidArgument", async () => {
    expect(await s3Error(s3.send(asOf(new ListObjectsV2Command({ Bucket: B }), "yesterday")))).toEqual({ name: "InvalidArgument", status: 400 });
    expect(await s3Error(s3.send(asOf(new ListObjectsV2Command({ Bucket: B }), Date.now(), 999_999)))).toEqual({ name: "InvalidArgument", status: 400 });
    const v = await s3.send(new PutObjectCommand({ Bucket: B, Key: "x", Body: "x" }));
    expect(await s3Error(s3.send(asOf(new GetObjectCommand({ Bucket: B, Key: "x", VersionId: v.VersionId }), Date.now())))).toEqual({ name: "InvalidArgument", status: 400 });
  });
});
