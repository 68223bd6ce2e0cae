// The groups' half of fork-edit-merge (workers/negotiating-group/merges.ts), in workerd against
// real Durable Object storage: what a prepared name refuses, how a merge's held stamp and the
// clock behave. The end-to-end merge over real targets is test/integration/fork.test.ts; here
// no target is connected, so only what comes before any target work is exercised.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { formatUvid, nhidOf, parseUvid, type Nhid } from "../../common/ids.ts";
import type { VersionBody } from "../../common/manifest.ts";
import type { MergeItem } from "../../workers/negotiating-group/merges.ts";
import { VersionBook } from "../../workers/negotiating-group/versions.ts";

let n = 0;
const freshGroup = () => env.GROUP.get(env.GROUP.idFromName(`group-0-merges-${n++}`));

const body = (key: string): VersionBody => ({
  tenant: "t", bucket: "b", key, size: 0, etag: "d41d8cd98f00b204e9800998ecf8427e", contentType: "text/plain",
  userMeta: {}, httpMeta: {}, chunks: [], inline: "", deleteMarker: false, creator: "AK",
});
const item = (nhid: Nhid, key: string, holder: string): MergeItem => ({ nhid, shard: 0, body: body(key), versioning: "Enabled", condition: { ifNoneMatch: true }, holder, replicas: null });

describe("a prepared merge in a group", () => {
  it("refuses plain writes and deletes of its names with OperationAborted, and a second merge, until aborted", async () => {
    const g = freshGroup();
    const nhid = await nhidOf("t", "b", "k");
    expect(await g.leaseName(nhid, "s1", 60_000)).toBe(true);
    const prepared = await g.prepareMerge("m1", [item(nhid, "k", "s1")]);
    expect("hold" in prepared).toBe(true);
    const put = await g.putVersion(nhid, body("k"), "Enabled");
    expect(put).toMatchObject({ refused: "OperationAborted", details: { Key: "k" } });
    expect(await g.deleteName(nhid, { ...body("k"), deleteMarker: true }, "Enabled")).toMatchObject({ refused: "OperationAborted" });
    expect(await g.prepareMerge("m2", [item(nhid, "k", "s1")])).toMatchObject({ refused: "OperationAborted" });
    await g.abortMerge("m1");
    expect(await g.prepareMerge("m3", [item(nhid, "k", "s1")])).toHaveProperty("hold");
  });

  it("prepares nothing when one name's condition or lease fails", async () => {
    const g = freshGroup();
    const a = await nhidOf("t", "b", "a");
    const b = await nhidOf("t", "b", "b");
    await g.leaseName(a, "s1", 60_000);
    // No lease on b for this holder.
    expect(await g.prepareMerge("m", [item(a, "a", "s1"), item(b, "b", "s1")])).toMatchObject({ refused: "KeyLeased", details: { Key: "b" } });
    // Nothing was prepared: a merge of a alone goes ahead.
    expect(await g.prepareMerge("m2", [item(a, "a", "s1")])).toHaveProperty("hold");
  });
});

describe("the merge's stamp", () => {
  it("is above every held stamp, and a group that witnesses it stamps after it", async () => {
    const stub = freshGroup();
    await runInDurableObject(stub, (_i, state) => {
      const book = new VersionBook(state.storage.sql);
      const own = book.stamp(2, 1000);
      const shared = formatUvid({ ms: 5000, seq: 7, group: 5 });
      book.witness(shared);
      const next = book.stamp(2, 1001);
      expect(next > shared).toBe(true);
      expect(parseUvid(next)).toEqual({ ms: 5000, seq: 8, group: 2 });
      expect(own < shared).toBe(true);
    });
  });
});
