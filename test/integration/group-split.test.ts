// More groups while serving: a real cluster started with 4 groups holds objects (versions, a
// delete marker, a deduplicated pair, a multipart upload in progress), and is redeployed with 8
// and then, before that split is necessarily over, with 16 groups. Names and chunks whose hash now
// selects a new group move there (on first touch, and in the background), and through it all:
// every object reads back byte-exact, versions keep their ids, a point-in-time listing taken
// before the splits answers the same after them, the upload started before completes, clients
// read what they just wrote, and once everything is deleted the targets' disks come back empty.
// Real processes, real files.

import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { groupOf, type Nhid } from "../../common/ids.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { adminJson, bodyBytes, chunkCopies, clusterForSuite, eachObjectDb, eventually, extensionsFor, manifestRows, pseudoRandom, sameBytes, withQuery } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "splitting";

clusterForSuite({ bucket: B, versioned: true, vars: { GROUP_COUNT: "4", CHUNK_HOLD_SECONDS: "2", REMOVED_RETAIN_SECONDS: "1", RECLAIM_GRACE_SECONDS: "0.5" } }, (c) => ({ cluster, s3 } = c));

interface GroupStatus {
  group: number;
  split?: { done: boolean; stepsDone: number; steps: number } | null;
}

async function groups(): Promise<GroupStatus[]> {
  return (await adminJson<{ groups: GroupStatus[] }>(cluster, "status.json")).groups;
}

const get = async (key: string, versionId?: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key, VersionId: versionId }))).Body);

async function listing(asOf?: string): Promise<string[]> {
  const cmd = new ListObjectsV2Command({ Bucket: B });
  const out = await s3.send(asOf ? withQuery(cmd, { "as-of": asOf }) : cmd);
  return (out.Contents ?? []).map((o) => `${o.Key}:${o.ETag}:${o.Size}`);
}

/**
 * For each group object's SQLite file: the groups (of `count`) of the names and chunks it holds
 * rows for, and the hand-overs it still keeps. Once a split is over each file holds one group's ids.
 */
function groupFiles(count: number): { groups: number[]; handoff: number }[] {
  return eachObjectDb(cluster, "split_state", (db) => {
    const ids = [
      ...db.prepare("SELECT nhid AS id FROM versions UNION SELECT nhid FROM names UNION SELECT nhid FROM uploads").all(),
      ...db.prepare("SELECT chid AS id FROM backrefs UNION SELECT chid FROM holds").all(),
    ].map((r) => String(r.id));
    const groups = [...new Set(ids.map((id) => groupOf(id as Nhid, count)))].sort((a, b) => a - b);
    return { groups, handoff: Number(db.prepare("SELECT count(*) AS n FROM handoff").get()!.n) };
  });
}

describe("growing the group count while serving", () => {
  const bodies = new Map<string, Uint8Array>();
  const versions: { id: string; body: Uint8Array }[] = [];
  let upload: { id: string; parts: { ETag: string; PartNumber: number }[]; body: Uint8Array };
  let asOf: string;
  let before: string[];
  let snapshot: string;
  const ext = () => extensionsFor(cluster);

  it("holds objects of every kind under 4 groups", { timeout: 120_000 }, async () => {
    for (let i = 0; i < 40; i++) {
      const body = pseudoRandom(i % 4 === 0 ? 400_000 : 2_000 + i * 100, 9000 + i);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `obj-${i}`, Body: body }));
      bodies.set(`obj-${i}`, body);
    }
    // The same bytes under a second name: one set of chunks, two references.
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "twin", Body: bodies.get("obj-0") }));
    bodies.set("twin", bodies.get("obj-0")!);
    for (let v = 0; v < 3; v++) {
      const body = pseudoRandom(50_000, 9100 + v);
      const r = await s3.send(new PutObjectCommand({ Bucket: B, Key: "versioned", Body: body }));
      versions.push({ id: r.VersionId!, body });
    }
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "deleted", Body: pseudoRandom(1000, 9200) }));
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "deleted" }));
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "multipart" }));
    const partBody = pseudoRandom(5 * 2 ** 20, 9300);
    const p1 = await s3.send(new UploadPartCommand({ Bucket: B, Key: "multipart", UploadId: created.UploadId, PartNumber: 1, Body: partBody }));
    upload = { id: created.UploadId!, parts: [{ ETag: p1.ETag!, PartNumber: 1 }], body: partBody };
    await new Promise((r) => setTimeout(r, 20));
    asOf = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    before = await listing(asOf);
    expect(before.length).toBe(42);
    // A snapshot of the bucket: it holds the versions it names, wherever their names go.
    snapshot = (await ext().commitSnapshot((await ext().createSnapshot({ masks: [`${B}/*`] })).id)).id;
  });

  it("splits 4 -> 8 -> 16 while clients read and write, losing and doubling nothing", { timeout: 240_000 }, async () => {
    await cluster.restartGateway({ GROUP_COUNT: "8" });
    await cluster.waitForTargets();
    // Reads of names still in their old groups, and writes with read-after-write, from the first request on.
    for (const [key, body] of [...bodies].slice(0, 10)) expect(sameBytes(await get(key), body), key).toBe(true);
    for (let i = 0; i < 10; i++) {
      const body = pseudoRandom(3_000 + i, 9400 + i);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `during-${i}`, Body: body }));
      expect(sameBytes(await get(`during-${i}`), body)).toBe(true);
      bodies.set(`during-${i}`, body);
    }
    // A second split before the first is necessarily over: ids may now be two splits from home.
    await cluster.restartGateway({ GROUP_COUNT: "16" });
    await cluster.waitForTargets();
    for (let i = 10; i < 20; i++) {
      const body = pseudoRandom(3_000 + i, 9400 + i);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `during-${i}`, Body: body }));
      expect(sameBytes(await get(`during-${i}`), body)).toBe(true);
      bodies.set(`during-${i}`, body);
    }
    for (const [key, body] of bodies) expect(sameBytes(await get(key), body), key).toBe(true);
    // Versions keep their ids and bytes; a version written now is the newest.
    for (const v of versions) expect(sameBytes(await get("versioned", v.id), v.body)).toBe(true);
    const newest = pseudoRandom(60_000, 9500);
    const put = await s3.send(new PutObjectCommand({ Bucket: B, Key: "versioned", Body: newest }));
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: B, Prefix: "versioned" }));
    expect(listed.Versions!.map((v) => v.VersionId)).toEqual([put.VersionId, ...versions.map((v) => v.id).reverse()]);
    expect(sameBytes(await get("versioned"), newest)).toBe(true);
    // The delete marker still hides its name; the upload begun under 4 groups completes under 16.
    await expect(get("deleted")).rejects.toMatchObject({ name: "NoSuchKey" });
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "multipart", UploadId: upload.id, MultipartUpload: { Parts: upload.parts } }));
    expect(sameBytes(await get("multipart"), upload.body)).toBe(true);
    // The answer as of a time before the splits is the one given then, for a listing and for one name.
    expect(await listing(asOf)).toEqual(before);
    const then = await s3.send(withQuery(new GetObjectCommand({ Bucket: B, Key: "versioned" }), { "as-of": asOf }));
    expect(sameBytes(await bodyBytes(then.Body), versions[2]!.body)).toBe(true);
    // The snapshot still shows what it named, though its versions were overwritten and deleted since.
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "obj-1", Body: pseudoRandom(100, 9600) }));
    const gone = await s3.send(new ListObjectVersionsCommand({ Bucket: B, Prefix: "obj-2" }));
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "obj-2", VersionId: gone.Versions!.find((v) => v.Key === "obj-2")!.VersionId! }));
    for (const key of ["obj-1", "obj-2"]) {
      const through = await s3.send(withQuery(new GetObjectCommand({ Bucket: B, Key: key }), { snapshot }));
      expect(sameBytes(await bodyBytes(through.Body), bodies.get(key)!), key).toBe(true);
    }
    bodies.set("obj-1", pseudoRandom(100, 9600));
    bodies.delete("obj-2");
    // Every new group takes in all its ids from its old groups.
    const done = await eventually(async () => (await groups()).every((g) => g.split === null || g.split === undefined || g.split.done), { ms: 90_000 });
    const status = await groups();
    expect(status.length).toBe(16);
    expect(status.filter((g) => g.group >= 4).every((g) => g.split?.done === true), JSON.stringify(status.map((g) => [g.group, g.split]))).toBe(true);
    expect(done).toBe(true);
    // Each group now holds only its own ids, and nothing handed over waits for a confirmation.
    const files = groupFiles(16);
    expect(files.filter((f) => f.groups.length > 1)).toEqual([]);
    expect(new Set(files.flatMap((f) => f.groups)).size).toBeGreaterThan(8);
    expect(files.reduce((n, f) => n + f.handoff, 0)).toBe(0);
    // Everything reads back from its new group, and the listing holds each name once.
    for (const [key, body] of bodies) expect(sameBytes(await get(key), body), key).toBe(true);
    const now = await listing();
    expect(now.length).toBe(new Set(now.map((l) => l.split(":")[0])).size);
    expect(now.length).toBe(bodies.size + 1 + 1);
  });

  it("gives every byte back once everything is deleted", { timeout: 120_000 }, async () => {
    await ext().deleteSnapshot(snapshot);
    for (;;) {
      const page = await s3.send(new ListObjectVersionsCommand({ Bucket: B }));
      const all = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])];
      if (all.length === 0) break;
      for (const v of all) await s3.send(new DeleteObjectCommand({ Bucket: B, Key: v.Key!, VersionId: v.VersionId! }));
    }
    const empty = await eventually(() => chunkCopies(cluster).size === 0 && manifestRows(cluster) === 0, { ms: 90_000 });
    expect({ chunks: chunkCopies(cluster).size, manifests: manifestRows(cluster) }).toEqual({ chunks: 0, manifests: 0 });
    expect(empty).toBe(true);
  });
});
