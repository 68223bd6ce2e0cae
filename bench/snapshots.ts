#!/usr/bin/env node
// npm run bench:snapshots [-- --objects 100000] [--replicas 1|3] [--seconds 15] [--every 2000]
//
// Starts a fresh local cluster, loads N small objects across every shard, then prints (issue 4):
// - the developing time: from a moment T until an answer as of T is complete, idle and under
//   write load;
// - snapshot creation time: commit of a snapshot of all N objects (develop + merge + store);
// - query latency: a suffix query (*.mp3) over the N names, first page and all pages;
// - write throughput with and without snapshots being taken at the same time.
// Never run by CI: timings belong here, not in tests.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { EdgestoreExtensions } from "../client/extensions.ts";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster } from "../scripts/cluster.ts";
import { freePort } from "../test/integration/helpers.ts";
import { MinimalHttp } from "./http-client.ts";
import { cpuMs, peakRss, pct, report, run, runFor, workerdPids } from "./measure.ts";

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "100000" },
    replicas: { type: "string", default: "1" },
    seconds: { type: "string", default: "15" },
    // One snapshot started every this many ms while writers run (0: back to back).
    every: { type: "string", default: "2000" },
  },
});
const N = Number(values.objects);
const SECONDS = Number(values.seconds);
const EXT = ["mp3", "flac", "jpg"];
const nameOf = (i: number) => `lib/artist-${i % 500}/album-${i % 37}/track-${i}.${EXT[i % 3]}`;

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-snap-"));
  const cluster = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: values.replicas! } });
  log(`starting a local cluster (R=${values.replicas}, 6 targets) in ${dir}...`);
  cluster.stopOnSignal();
  await cluster.start();
  const http = new MinimalHttp(cluster.endpoint);
  const ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
  const send = async (method: string, path: string, body: Uint8Array | null = null): Promise<number> => {
    const headers = (await signRequest({ method, url: `${cluster.endpoint}${path}`, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region })) as unknown as Record<string, string>;
    const r = await http.send(method, path, headers, body);
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.body?.toString() ?? ""}`);
    return r.length;
  };
  const body = new TextEncoder().encode("x".repeat(100));
  try {
    await send("PUT", "/lib");
    let t = performance.now();
    await run(16, N, async (i) => (await send("PUT", `/lib/${nameOf(i)}`, body), body.length));
    log(`loaded ${N} objects of 100 B at concurrency 16 in ${((performance.now() - t) / 1000).toFixed(1)} s (${(N / ((performance.now() - t) / 1000)).toFixed(0)} PUT/s)`);

    // Developing time, idle: how long after T an answer as of T is complete.
    const developIdle: number[] = [];
    for (let i = 0; i < 10; i++) {
      const at = Date.now();
      t = performance.now();
      await send("GET", `/lib?list-type=2&max-keys=1&as-of=${at}&as-of-wait=30000`);
      developIdle.push(performance.now() - t);
    }
    log(`developing time, idle cluster: p50 ${pct(developIdle, 50).toFixed(1)} ms, max ${Math.max(...developIdle).toFixed(1)} ms (as-of listing of 1 key, asked at T)`);

    // Snapshot creation: all N objects.
    const commits: number[] = [];
    const cpu: number[] = [];
    const workerd = workerdPids(cluster.gatewayPid()!);
    const workerdCpu = () => workerd.reduce((sum, pid) => sum + cpuMs(pid), 0);
    let objects = 0;
    for (let i = 0; i < 5; i++) {
      const s = await ext.createSnapshot({ masks: ["lib/*"] });
      t = performance.now();
      const c0 = workerdCpu();
      const c = await ext.commitSnapshot(s.id, 30_000);
      commits.push(performance.now() - t);
      cpu.push(workerdCpu() - c0);
      objects = c.objects ?? 0;
      await ext.deleteSnapshot(s.id);
    }
    log(`snapshot of ${objects} objects: commit (develop + select + store manifest) p50 ${pct(commits, 50).toFixed(0)} ms, min ${Math.min(...commits).toFixed(0)} ms; workerd CPU p50 ${pct(cpu, 50).toFixed(0)} ms`);

    // Query: names ending in .mp3.
    const first: number[] = [];
    for (let i = 0; i < 5; i++) {
      t = performance.now();
      await ext.query({ bucket: "lib", name: "*.mp3", maxKeys: 1000 });
      first.push(performance.now() - t);
    }
    t = performance.now();
    const all = await ext.queryAll({ bucket: "lib", name: "*.mp3" });
    const allMs = performance.now() - t;
    log(`suffix query *.mp3 over ${N} names: first page (1,000) p50 ${pct(first, 50).toFixed(0)} ms; all ${all.length} matches in ${allMs.toFixed(0)} ms`);

    // Writes with and without snapshots being taken.
    const phase = async (label: string, withSnapshots: boolean) => {
      let stop = false;
      const developed: number[] = [];
      const taken: number[] = [];
      const snapper = async () => {
        while (!stop) {
          const started = performance.now();
          const s = await ext.createSnapshot({ masks: ["lib/*"] });
          const t0 = performance.now();
          await ext.commitSnapshot(s.id, 30_000);
          taken.push(performance.now() - t0);
          await ext.deleteSnapshot(s.id);
          const at = Date.now();
          const t1 = performance.now();
          await send("GET", `/lib?list-type=2&max-keys=1&as-of=${at}&as-of-wait=30000`);
          developed.push(performance.now() - t1);
          const rest = Number(values.every) - (performance.now() - started);
          if (rest > 0 && !stop) await new Promise((r) => setTimeout(r, rest));
        }
      };
      const snapping = withSnapshots ? snapper() : Promise.resolve();
      const r = await runFor(16, SECONDS, async (i) => (await send("PUT", `/lib/load-${label.replace(/\W+/g, "-")}/${i}`, body), body.length));
      stop = true;
      await snapping;
      report(`PUT 100 B, concurrency 16, ${label}`, r);
      if (withSnapshots) {
        log(`  meanwhile: ${taken.length} snapshots (one every ${values.every} ms at most) of ${N}+ objects committed, p50 ${pct(taken, 50).toFixed(0)} ms; developing time under load p50 ${pct(developed, 50).toFixed(1)} ms, max ${Math.max(...developed).toFixed(1)} ms`);
      }
    };
    await phase("no snapshots", false);
    await phase("snapshots running", true);

    log(`\npeak RSS (VmHWM)`);
    const wpid = cluster.gatewayPid();
    for (const pid of wpid ? workerdPids(wpid) : []) log(`  workerd pid ${pid}: ${peakRss(pid)?.toFixed(0)} MiB`);
  } finally {
    http.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
