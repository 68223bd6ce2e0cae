#!/usr/bin/env node
// npm run bench:tree [-- --mib 2048] [--fanouts 16,4096]
//
// Manifest trees on a multi-GiB object. For each node size (MANIFEST_NODE_ENTRIES) a fresh local
// cluster (R=1, so the machine's disk and CPU go to the object, not to copies) takes a multipart
// upload of N MiB in parts of 256 MiB, and a single PUT of up to 1 GiB. Printed per node size:
// how the manifest is kept (its entries, the nodes stored, the tree's depth under a part), upload
// and whole-object read throughput (the read's SHA-256 checked against what was sent), ranged
// reads of 1 MiB at random places (p50/p99), and finding the n-th chunk by number. A small node
// size (16) makes the tree several levels deep on a few GiB, as 4,096 does on the largest
// objects S3 allows; the default is the baseline in the same run. Never run by CI.

import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { EdgestoreExtensions } from "../client/extensions.ts";
import { chunksOnDisk } from "../node-target/packs/on-disk.ts";
import { LocalCluster, LOCAL_LOCATIONS } from "../scripts/cluster.ts";
import { clientFor, freePort, isTreeNode, pseudoRandom } from "../test/integration/helpers.ts";
import { pct } from "./measure.ts";

const { values } = parseArgs({ options: { mib: { type: "string", default: "2048" }, fanouts: { type: "string", default: "16,4096" }, ranges: { type: "string", default: "200" } } });
const MiB = 1024 * 1024;
const PART = 256 * MiB;

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

/** Part `i`'s bytes: distinct per part, generated so the whole object is never held. */
function partBytes(i: number, size: number): Uint8Array {
  return pseudoRandom(size, 7000 + i);
}

async function run(fanout: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-tree-"));
  const c = new LocalCluster({ port: await freePort(), dataDir: dir, locations: LOCAL_LOCATIONS.slice(0, 3), targetArgs: ["--scrub-rate", "0"], vars: { REPLICAS: "1", GROUP_MEMBERS: "1", MIN_LIVE_TARGETS: "1", MANIFEST_NODE_ENTRIES: String(fanout) } });
  c.stopOnSignal();
  await c.start();
  const s3 = clientFor(c);
  const ext = new EdgestoreExtensions({ endpoint: c.endpoint, region: c.region, accessKeyId: c.accessKey, secretAccessKey: c.secretKey });
  /** Tree nodes the targets hold (content repeats within the generated data, so chunks on disk are fewer than the layout's). */
  const nodesOnDisk = () => c.targets.reduce((n, t) => n + chunksOnDisk(t.dataDir).filter((x) => isTreeNode(c, x.chid)).length, 0);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: "trees" }));
    const total = Number(values.mib) * MiB;
    const sizes: number[] = [];
    for (let at = 0; at < total; at += PART) sizes.push(Math.min(PART, total - at));
    const sent = createHash("sha256");
    let t = performance.now();
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "trees", Key: "big" }));
    const parts: { ETag: string; PartNumber: number }[] = [];
    for (const [i, size] of sizes.entries()) {
      const body = partBytes(i, size);
      sent.update(body);
      const r = await s3.send(new UploadPartCommand({ Bucket: "trees", Key: "big", UploadId, PartNumber: i + 1, Body: body }));
      parts.push({ ETag: r.ETag!, PartNumber: i + 1 });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: "trees", Key: "big", UploadId, MultipartUpload: { Parts: parts } }));
    const putS = (performance.now() - t) / 1000;
    const layout = await ext.chunkLayout("trees", "big");
    const leaves = layout.chunks.length;
    const nodes = nodesOnDisk();
    // Under a part: the part's root, then levels of `fanout` down to the chunks.
    const perPart = Math.ceil(leaves / sizes.length);
    const depth = Math.max(1, Math.ceil(Math.log(perPart) / Math.log(fanout)));

    t = performance.now();
    const got = createHash("sha256");
    const whole = await s3.send(new GetObjectCommand({ Bucket: "trees", Key: "big" }));
    for await (const piece of whole.Body as Readable) got.update(piece as Buffer);
    const getS = (performance.now() - t) / 1000;
    const same = got.digest("hex") === sent.digest("hex");

    const ranged: number[] = [];
    for (let i = 0; i < Number(values.ranges); i++) {
      const at = Math.floor(Math.random() * (total - MiB));
      const s = performance.now();
      const r = await s3.send(new GetObjectCommand({ Bucket: "trees", Key: "big", Range: `bytes=${at}-${at + MiB - 1}` }));
      const bytes = await r.Body!.transformToByteArray();
      ranged.push(performance.now() - s);
      if (bytes.length !== MiB) throw new Error(`ranged read at ${at} gave ${bytes.length} bytes`);
    }
    const nth: number[] = [];
    for (let i = 0; i < 50; i++) {
      const n = Math.floor(Math.random() * leaves);
      const s = performance.now();
      const chunk = await ext.storedChunk("trees", "big", n);
      nth.push(performance.now() - s);
      if (chunk.offset !== layout.chunks[n]!.offset) throw new Error(`chunk ${n} at ${chunk.offset}, not ${layout.chunks[n]!.offset}`);
    }

    // A single PUT of up to 1 GiB: a tree of its own once it passes one node's worth of chunks.
    const single = Math.min(total, 1024 * MiB);
    const before = nodesOnDisk();
    t = performance.now();
    await s3.send(new PutObjectCommand({ Bucket: "trees", Key: "single", Body: partBytes(99, single) }));
    const singlePutS = (performance.now() - t) / 1000;
    const singleLeaves = (await ext.chunkLayout("trees", "single")).chunks.length;
    const singleNodes = nodesOnDisk() - before;

    log(
      `| ${fanout} | ${sizes.length} × 256 MiB | ${leaves} | ${nodes} | ${depth} | ${((total / MiB) / putS).toFixed(1)} MB/s | ${((total / MiB) / getS).toFixed(1)} MB/s${same ? "" : " (DIFFERS)"} | ${pct(ranged, 50).toFixed(1)} / ${pct(ranged, 99).toFixed(1)} ms | ${pct(nth, 50).toFixed(1)} ms | ${singleLeaves} chunks, ${singleNodes} nodes, ${((single / MiB) / singlePutS).toFixed(1)} MB/s |`,
    );
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  log(`manifest trees: a ${values.mib} MiB multipart object (R=1) and a single PUT, per node size`);
  log("| node entries | parts | chunks | nodes | levels under a part | upload | whole read | 1 MiB ranged read p50 / p99 | n-th chunk p50 | single PUT |");
  log("|---|---|---|---|---|---|---|---|---|---|");
  for (const f of values.fanouts!.split(",").map(Number)) await run(f);
}

await main();
