// The other way to run the gateway: `npm run dev`, under `wrangler dev` itself (hot reload,
// inspector). It must serve the same S3 API over the same node-targets, and it keeps its state
// where the default Miniflare runtime does, so the two see each other's objects.

import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clientFor, freePort, pseudoRandom, removeDir, sameBytes } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "edgestore-dev-"));
let running: LocalCluster | null = null;

afterAll(async () => {
  await running?.stop();
  removeDir(dir);
});

async function start(runtime: "wrangler-dev" | "miniflare"): Promise<LocalCluster> {
  running = new LocalCluster({ port: await freePort(), dataDir: dir, runtime });
  await running.start();
  return running;
}

describe("the gateway under wrangler dev", () => {
  it("stores and serves objects, and the Miniflare runtime finds them in the same state", async () => {
    const body = pseudoRandom(3 * 1024 * 1024 + 5, 77);
    let c = await start("wrangler-dev");
    let s3 = clientFor(c);
    await s3.send(new CreateBucketCommand({ Bucket: "devrt" }));
    await s3.send(new PutObjectCommand({ Bucket: "devrt", Key: "a/b.bin", Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: "devrt", Key: "a/b.bin" }));
    expect(sameBytes(await bodyBytes(got.Body), body)).toBe(true);
    await c.stop();

    c = await start("miniflare");
    s3 = clientFor(c);
    const again = await s3.send(new GetObjectCommand({ Bucket: "devrt", Key: "a/b.bin" }));
    expect(sameBytes(await bodyBytes(again.Body), body)).toBe(true);
    const list = await s3.send(new ListObjectsV2Command({ Bucket: "devrt" }));
    expect(list.Contents?.map((o) => o.Key)).toEqual(["a/b.bin"]);
  });
});
