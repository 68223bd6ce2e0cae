// Each group keeps its Durable Object storage to a budget below Cloudflare's 10 GB per object.
// Here the budget is set small (DO_STORAGE_BUDGET_BYTES) so that a real cluster reaches it: new
// objects and parts are then refused with 503 and a message saying what is full and what to do,
// nothing half-written becomes visible, deletes still work, and the status page, status.json and
// the metrics show each group's and shard's storage against the budget. Nothing is mocked.

import { CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, UploadPartCommand, type S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { groupOf, nhidOf } from "../../common/ids.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clusterForSuite, s3Error } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "budget";
/** A fresh group's tables already take some 100 KB; a few hundred small objects pass this. */
const BUDGET = 300_000;
clusterForSuite({ bucket: B, vars: { DO_STORAGE_BUDGET_BYTES: String(BUDGET) } }, (c) => ({ cluster, s3 } = c));

interface Status {
  groups: { group: number; storage?: { bytes: number; budget: number } }[];
  shards: { shard: number; storage: { bytes: number; budget: number } }[];
}

const status = async (): Promise<Status> => (await fetch(`${cluster.endpoint}/_admin/status.json`, { headers: { authorization: `Bearer ${cluster.adminToken}` } })).json() as Promise<Status>;

describe("storage budgets", () => {
  it("refuse new objects and parts once a group holds its budget, clearly, and let deletes through", async () => {
    const before = await status();
    for (const g of before.groups) expect(g.storage?.budget).toBe(BUDGET);
    for (const s of before.shards) expect(s.storage.budget).toBe(BUDGET);
    const written: string[] = [];
    let refusal: { status: number | undefined; message: string } | null = null;
    // Bounded: each object adds rows to its group; some group reaches the budget well within this.
    for (let i = 0; i < 3_000 && refusal === null; i++) {
      const key = `k/${i}-${"m".repeat(200)}`;
      try {
        await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: `v${i}`, Metadata: { pad: "x".repeat(1_500) } }));
        written.push(key);
      } catch (e) {
        const err = e as { $metadata?: { httpStatusCode?: number }; message: string; Code?: string };
        refusal = { status: err.$metadata?.httpStatusCode, message: err.message };
      }
    }
    expect(refusal?.status).toBe(503);
    expect(refusal?.message).toMatch(new RegExp(`full: group \\d+ holds \\d+ bytes of metadata, its budget is ${BUDGET}`));
    const full = Number(/group (\d+)/.exec(refusal!.message)![1]);
    const after = await status();
    expect(after.groups.find((g) => g.group === full)!.storage!.bytes).toBeGreaterThanOrEqual(BUDGET);
    // What was acknowledged reads back; the refused write is not visible.
    const listed = (await s3.send(new ListObjectsV2Command({ Bucket: B, MaxKeys: 1000 }))).KeyCount ?? 0;
    expect(listed).toBe(Math.min(written.length, 1000));
    expect(new TextDecoder().decode(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: written[0] }))).Body))).toBe("v0");
    // A part into the full group is refused the same way (the key that was refused lives there).
    const refusedKey = `k/${written.length}-${"m".repeat(200)}`;
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: refusedKey }));
    expect(await s3Error(s3.send(new UploadPartCommand({ Bucket: B, Key: refusedKey, UploadId: up.UploadId, PartNumber: 1, Body: "p" })))).toEqual({ name: "ServiceUnavailable", status: 503 });
    // Deletes go through, in the full group too, and the room they free is taken again: the
    // group's own keys, the newest first, twenty at a time until it is below its budget (SQLite
    // gives a page back once all its rows are gone; bounded by the keys the group holds).
    const inFull: string[] = [];
    for (const key of written) if (groupOf(await nhidOf("default", B, key), 8) === full) inFull.push(key);
    let freed = Infinity;
    for (let end = inFull.length; end > 0 && freed >= BUDGET; end -= 20) {
      for (const key of inFull.slice(Math.max(0, end - 20), end)) await s3.send(new DeleteObjectCommand({ Bucket: B, Key: key }));
      freed = (await status()).groups.find((g) => g.group === full)!.storage!.bytes;
    }
    expect(freed).toBeLessThan(BUDGET);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: refusedKey, Body: "after deletes" }));
    // The metrics and the page say so.
    const metrics = await (await fetch(`${cluster.endpoint}/_admin/metrics`, { headers: { authorization: `Bearer ${cluster.adminToken}` } })).text();
    expect(metrics).toMatch(new RegExp(`edgestore_group_storage_bytes\\{group="${full}"\\} \\d+`));
    expect(metrics).toContain(`edgestore_object_storage_budget_bytes ${BUDGET}`);
  });
});
