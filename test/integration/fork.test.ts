// Fork-edit-merge (issue 5, point 6) on a real local cluster: a session forks a set of objects
// whose names live in different negotiating groups, edits them, and merges them with one shared
// stamp — or a conflicting write makes the merge fail and nothing of the fork appears. The
// client (client/fork.ts over client/session.ts) talks over a real signed WebSocket; reads go
// through @aws-sdk/client-s3, including as-of reads on both sides of the merge's stamp.

import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { Fork } from "../../client/fork.ts";
import { SessionError } from "../../client/session.ts";
import { groupOf, nhidOf, parseUvid } from "../../common/ids.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clusterForSuite, openSession, s3Error, sessionFailure, withQuery } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "forks";
const enc = new TextEncoder();
const dec = new TextDecoder();

clusterForSuite({ bucket: B, versioned: true }, (c) => ({ cluster, s3 } = c));

const open = () => openSession(cluster);
const text = async (key: string, asOf?: number) => {
  const cmd = new GetObjectCommand({ Bucket: B, Key: key });
  return dec.decode(await bodyBytes((await s3.send(asOf === undefined ? cmd : withQuery(cmd, { "as-of": asOf, "as-of-wait": 10_000 }))).Body));
};
const put = (key: string, body: string) => s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body }));


/** The tenant every test key lives in (one access key until issue 7: the default tenant). */
async function groupsOf(keys: string[]): Promise<Set<number>> {
  const groups = await Promise.all(keys.map(async (k) => groupOf(await nhidOf("default", B, k), 8)));
  return new Set(groups);
}

describe("fork-edit-merge", () => {
  it("merges edits to objects in different groups under one stamp: as of any time, all or none", async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `site/page-${i}.html`);
    for (const k of keys) await put(k, `old ${k}`);
    // The keys span several negotiating groups, so the merge is a commit across groups.
    expect((await groupsOf(keys)).size).toBeGreaterThan(1);
    const s = await open();
    try {
      const f = await Fork.open(s, { fork: "release-2", bucket: B, keys });
      for (const k of keys) {
        const e = f.edit(k);
        expect(e.size).toBe(`old ${k}`.length);
        await e.write(0, enc.encode("new"));
        await e.meta({ "x-amz-meta-release": "2" });
      }
      const added = await f.add("site/new.html", "replace");
      await added.write(0, enc.encode("brand new"));
      // Pending: nothing of the fork is visible yet.
      for (const k of keys) expect(await text(k)).toBe(`old ${k}`);
      expect((await s3Error(text("site/new.html"))).name).toBe("NoSuchKey");

      const merged = await f.merge();
      expect(merged.map((v) => v.key).sort()).toEqual([...keys, "site/new.html"].sort());
      for (const k of keys) expect(await text(k)).toBe(`new ${k}`);
      expect(await text("site/new.html")).toBe("brand new");
      // One stamp: every merged version carries the same time and sequence (only the group differs).
      const stamps = new Set(merged.map((v) => { const u = parseUvid(v.versionId!); return `${u.ms}.${u.seq}`; }));
      expect(stamps.size).toBe(1);
      const at = parseUvid(merged[0]!.versionId!).ms;
      // A millisecond before the stamp every object is old and the new one absent; at it, all new.
      for (const k of keys) expect(await text(k, at - 1)).toBe(`old ${k}`);
      expect((await s3Error(text("site/new.html", at - 1))).name).toBe("NoSuchKey");
      for (const k of keys) expect(await text(k, at)).toBe(`new ${k}`);
      const listed = await s3.send(withQuery(new ListObjectsV2Command({ Bucket: B, Prefix: "site/" }), { "as-of": at, "as-of-wait": 10_000 }));
      expect(listed.Contents?.length).toBe(9);
      // Merged versions are ordinary versions with their tokens; the keys are free again.
      expect(merged.every((v) => v.manifestToken.startsWith("mt1_") && v.payloadToken.startsWith("pt1_"))).toBe(true);
      const again = await s.begin({ bucket: B, key: keys[0]!, mode: "append" });
      await again.abort();
    } finally {
      await s.close();
    }
  });

  it("fails the whole merge if any forked key changed meanwhile, leaving every key as it was", async () => {
    const keys = ["conf/a", "conf/b", "conf/c"];
    for (const k of keys) await put(k, `v1 ${k}`);
    const s = await open();
    try {
      const f = await Fork.open(s, { fork: "f", bucket: B, keys });
      for (const k of keys) await f.edit(k).write(0, enc.encode("v2"));
      // A plain PUT lands on one forked key before the merge.
      await put("conf/b", "changed by someone else");
      expect(await sessionFailure(f.merge())).toBe("PreconditionFailed");
      expect(await text("conf/a")).toBe("v1 conf/a");
      expect(await text("conf/b")).toBe("changed by someone else");
      expect(await text("conf/c")).toBe("v1 conf/c");
      // The failed merge ended the fork and freed every key.
      for (const k of keys) await (await s.begin({ bucket: B, key: k, mode: "append" })).abort();
    } finally {
      await s.close();
    }
  });

  it("abandon, or closing the session, drops the fork: nothing visible, every key free", async () => {
    await put("tmp/x", "x1");
    const s = await open();
    const f = await Fork.open(s, { fork: "drop", bucket: B, keys: ["tmp/x", "tmp/y"] });
    await f.edit("tmp/x").write(0, enc.encode("X"));
    await f.edit("tmp/y").write(0, enc.encode("Y"));
    // A fork's member is committed only by the merge.
    expect(await sessionFailure(f.edit("tmp/x").commit())).toBe("InvalidRequest");
    await f.abandon();
    expect(await text("tmp/x")).toBe("x1");
    expect((await s3Error(text("tmp/y"))).name).toBe("NoSuchKey");
    const g = await Fork.open(s, { fork: "drop-2", bucket: B, keys: ["tmp/x"] });
    await g.edit("tmp/x").write(0, enc.encode("Z"));
    await s.close();
    expect(await text("tmp/x")).toBe("x1");
    const t = await open();
    try {
      // The closed session's lease is released when its socket closes (a bounded wait for that).
      let got = false;
      for (let i = 0; i < 100 && !got; i++) {
        try {
          await (await t.begin({ bucket: B, key: "tmp/x", mode: "append" })).abort();
          got = true;
        } catch (e) {
          if (!(e instanceof SessionError && e.code === "KeyLeased")) throw e;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      expect(got).toBe(true);
    } finally {
      await t.close();
    }
  });

  it("refuses a fork of no keys, or of a key twice", async () => {
    const s = await open();
    try {
      expect(await sessionFailure(Fork.open(s, { fork: "bad", bucket: B, keys: [] }))).toBe("InvalidArgument");
      expect(await sessionFailure(Fork.open(s, { fork: "bad", bucket: B, keys: ["k", "k"] }))).toBe("InvalidArgument");
      expect(await sessionFailure(Fork.open(s, { fork: "bad", bucket: "no-such-bucket", keys: ["k"] }))).toBe("NoSuchBucket");
    } finally {
      await s.close();
    }
  });
});
