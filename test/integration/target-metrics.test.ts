// Each node-target's Prometheus metrics (issue 7, point 3), scraped over HTTP from the real
// targets of a local cluster: what they report matches what is on their disks, counts move
// with writes, fsyncs and repairs, and a damaged copy found by a check is counted where it was.

import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { chunkCopies, clusterForSuite, copyOn, damageCopy, flipByte, pseudoRandom } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "metrics";
clusterForSuite({ bucket: B }, (c) => ({ cluster, s3 } = c));

type Sample = { name: string; labels: Record<string, string>; value: number };

/** The samples of a Prometheus text exposition (no timestamps are sent). */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape(i: number): Promise<Sample[]> {
  const url = cluster.targets[i]!.metrics;
  expect(url, `target ${i} said where its metrics are`).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const res = await fetch(url!);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

const all = () => Promise.all(cluster.targets.map((t) => scrape(t.index)));

describe("node-target metrics", () => {
  it("report what each target holds on disk, its links and its capacity", async () => {
    for (let i = 0; i < 4; i++) await s3.send(new PutObjectCommand({ Bucket: B, Key: `obj-${i}`, Body: pseudoRandom(600_000, 700 + i) }));
    const scraped = await all();
    for (const t of cluster.targets) {
      const m = scraped[t.index]!;
      const files = [...chunkCopies(cluster, [t.index]).entries()];
      const fileBytes = files.reduce((a, [, sizes]) => a + sizes.reduce((x, y) => x + y, 0), 0);
      expect(value(m, "edgestore_target_chunks"), `target ${t.index}`).toBe(files.length);
      // Stored bytes are chunks plus the version manifests kept in the manifest log.
      expect(value(m, "edgestore_target_stored_bytes")).toBeGreaterThanOrEqual(fileBytes);
      expect(value(m, "edgestore_target_group_links")).toBe(t.assigned.size);
      expect(value(m, "edgestore_target_capacity_bytes")).toBeGreaterThan(value(m, "edgestore_target_free_bytes"));
      expect(value(m, "edgestore_target_queue_bytes")).toBe(0);
      // The process's own metrics come along.
      expect(value(m, "edgestore_target_process_resident_memory_bytes")).toBeGreaterThan(0);
    }
    const sum = (name: string, labels?: Record<string, string>) => scraped.reduce((a, m) => a + value(m, name, labels), 0);
    const copies = [...chunkCopies(cluster).values()].reduce((a, s) => a + s.length, 0);
    // Every chunk copy on disk was a bid the group selected (or placed without bids, which counts as won); every write was made durable.
    expect(sum("edgestore_target_put_bids_won_total")).toBeGreaterThanOrEqual(copies);
    expect(sum("edgestore_target_put_bids_total", { bid: "accept" })).toBeGreaterThanOrEqual(sum("edgestore_target_put_bids_won_total"));
    expect(sum("edgestore_target_written_bytes_total", { kind: "chunk" })).toBeGreaterThan(0);
    expect(sum("edgestore_target_fsync_seconds_count")).toBeGreaterThanOrEqual(copies);
    expect(sum("edgestore_target_repair_bytes_total")).toBe(0);
  });

  it("count a damaged copy where a check found it, and the repair's bytes where it went", async () => {
    const before = await all();
    const [chid] = [...chunkCopies(cluster).keys()];
    const holder = cluster.targets.find((t) => copyOn(cluster, t.index, chid!))!;
    damageCopy(copyOn(cluster, holder.index, chid!)!);
    const ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    // Validate every object: the one whose chunk was damaged is repaired.
    let repaired = 0;
    for (let i = 0; i < 4; i++) repaired += (await ext.validate({ bucket: B, key: `obj-${i}` })).repaired;
    expect(repaired).toBe(1);
    const after = await all();
    const failures = (i: number, m: Sample[][]) => value(m[i]!, "edgestore_target_verify_failures_total", { by: "check" });
    expect(failures(holder.index, after) - failures(holder.index, before)).toBe(1);
    const repairBytes = (m: Sample[][]) => m.reduce((a, s) => a + value(s, "edgestore_target_repair_bytes_total"), 0);
    expect(repairBytes(after) - repairBytes(before)).toBeGreaterThan(0);
  });

  it("serve nothing but GET /metrics", async () => {
    const url = new URL(cluster.targets[0]!.metrics!);
    expect((await fetch(new URL("/other", url))).status).toBe(404);
    expect((await fetch(url, { method: "POST" })).status).toBe(404);
  });
});
