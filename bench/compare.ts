#!/usr/bin/env node
// npm run bench:compare [-- --quick] [--runs N] [--systems rgw,r1,r3] [--var NAME=VALUE ...]
//
// Our store against Ceph RGW, side by side in one run on this machine: the same workloads with
// the same client (bench/http-client.ts: raw keep-alive HTTP/1.1, SigV4 with UNSIGNED-PAYLOAD)
// against a single-node RGW on loopback (bench/rgw-single.sh: one bluestore OSD, pool size 1,
// installed from Debian if missing) and against a fresh local cluster at R=1 and at R=3. Prints
// one table of throughput with the ratios to RGW, and the CPU each part spent per MB moved
// (per operation for 4 KiB objects). This VM is noisy (±30 % between runs); ratios measured
// side by side hold better, which is why everything runs in one go. Never run by CI.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { MinimalHttp } from "./http-client.ts";
import { clusterProcesses, cpuMs, pidsNamed, type Result, run } from "./measure.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    /** Runs of the whole workload list per system; the table shows medians. */
    runs: { type: "string", default: "2" },
    systems: { type: "string", default: "rgw,r1,r3" },
    var: { type: "string", multiple: true, default: [] },
  },
});
const extraVars = Object.fromEntries(values.var!.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
const runs = Number(values.runs);
const systems = values.systems!.split(",");

interface Workload {
  label: string;
  method: "PUT" | "GET";
  size: number;
  count: number;
  concurrency: number;
  /** The PUT whose objects a GET reads. */
  reads?: string;
}

const n1 = values.quick ? 64 : 256;
const n4k = values.quick ? 600 : 3000;
const n64 = values.quick ? 2 : 4;
const WORKLOADS: Workload[] = [
  { label: `PUT ${n1} × 1 MiB, c=1`, method: "PUT", size: MiB, count: n1, concurrency: 1 },
  { label: `GET ${n1} × 1 MiB, c=1`, method: "GET", size: MiB, count: n1, concurrency: 1, reads: "1m-c1" },
  { label: `PUT ${n1} × 1 MiB, c=8`, method: "PUT", size: MiB, count: n1, concurrency: 8 },
  { label: `GET ${n1} × 1 MiB, c=8`, method: "GET", size: MiB, count: n1, concurrency: 8, reads: "1m-c8" },
  { label: `PUT ${n64} × 64 MiB, c=1`, method: "PUT", size: 64 * MiB, count: n64, concurrency: 1 },
  { label: `GET ${n64} × 64 MiB, c=1`, method: "GET", size: 64 * MiB, count: n64, concurrency: 1, reads: "64m-c1" },
  { label: `PUT ${n4k} × 4 KiB, c=16`, method: "PUT", size: 4096, count: n4k, concurrency: 16 },
  { label: `GET ${n4k} × 4 KiB, c=16`, method: "GET", size: 4096, count: n4k, concurrency: 16, reads: "4k-c16" },
];
const keyOf = (w: Workload) => `${w.size >= 64 * MiB ? "64m" : w.size >= MiB ? "1m" : "4k"}-c${w.concurrency}`;

/** One measured workload: throughput, and CPU ms per role over the phase. */
interface Phase {
  result: Result;
  cpu: Map<string, number>;
}

interface System {
  name: string;
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** Processes whose CPU is counted, by role (a role may have several). */
  processes(): Map<string, number[]>;
  stop(): Promise<void>;
}

let seed = 1;
/** Fresh bodies for every PUT phase, so deduplication never flatters a figure. 4 KiB bodies are all distinct too. */
const fresh = (n: number, size: number) => Array.from({ length: n }, () => pseudoRandom(size, seed++ * 7919));

async function measure(sys: System, round: number): Promise<Map<string, Phase>> {
  const http = new MinimalHttp(sys.endpoint);
  const send = async (method: string, path: string, body: Uint8Array | null): Promise<number> => {
    const headers = (await signRequest({ method, url: `${sys.endpoint}${path}`, payloadHash: UNSIGNED_PAYLOAD, accessKey: sys.accessKey, secretKey: sys.secretKey, region: sys.region })) as unknown as Record<string, string>;
    const r = await http.send(method, path, headers, body);
    if (r.status !== 200) throw new Error(`${sys.name}: ${method} ${path}: ${r.status} ${r.body?.toString() ?? ""}`);
    return method === "PUT" ? (body?.length ?? 0) : r.length;
  };
  const bucket = `/cmp${round}`;
  await send("PUT", bucket, null);
  // Warm up (JIT, connections, buffer pools): the first measured phase must not be the cold one.
  const warm = fresh(16, MiB);
  await run(4, 16, (i) => send("PUT", `${bucket}/warm/${i}`, warm[i]!));
  await run(4, 16, (i) => send("GET", `${bucket}/warm/${i}`, null));
  const out = new Map<string, Phase>();
  try {
    for (const w of WORKLOADS) {
      const bodies = w.method === "PUT" ? fresh(w.count, w.size) : [];
      const procs = sys.processes();
      const before = new Map([...procs].map(([role, pids]) => [role, pids.reduce((a, p) => a + cpuMs(p), 0)]));
      const key = keyOf(w);
      const result = await run(w.concurrency, w.count, (i) => send(w.method, `${bucket}/${key}/${i}`, w.method === "PUT" ? bodies[i]! : null));
      const cpu = new Map([...procs].map(([role, pids]) => [role, pids.reduce((a, p) => a + cpuMs(p), 0) - before.get(role)!]));
      out.set(w.label, { result, cpu });
      const rate = w.size < MiB ? `${(result.ops / result.seconds).toFixed(0)} ops/s` : `${(result.bytes / 1e6 / result.seconds).toFixed(1)} MB/s`;
      process.stdout.write(`  ${sys.name} run ${round + 1}: ${w.label.padEnd(26)} ${rate}\n`);
    }
  } finally {
    http.close();
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

// ---- the systems ----

async function rgw(): Promise<System> {
  if (!existsSync("/usr/bin/radosgw")) {
    process.stdout.write("installing Ceph RGW from Debian (radosgw ceph-mon ceph-osd ceph-common)...\n");
    const r = spawnSync("bash", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends radosgw ceph-mon ceph-osd ceph-common"], { stdio: "inherit" });
    if (r.status !== 0) throw new Error("could not install Ceph RGW (needs root and Debian's apt)");
  }
  const dir = mkdtempSync(join(tmpdir(), "edgestore-rgw-"));
  const script = join(HERE, "rgw-single.sh");
  const r = spawnSync("bash", [script, "start", dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`RGW did not start:\n${r.stdout}\n${r.stderr}`);
  process.stdout.write(`${r.stdout.trim().split("\n").at(-1)}\n`);
  return {
    name: "RGW",
    endpoint: "http://127.0.0.1:7480",
    accessKey: "BENCHKEY",
    secretKey: "BENCHSECRET",
    region: "us-east-1",
    processes: () => new Map([["radosgw", pidsNamed("radosgw")], ["ceph-osd", pidsNamed("ceph-osd")], ["ceph-mon", pidsNamed("ceph-mon")]]),
    async stop() {
      spawnSync("bash", [script, "stop", dir]);
      await new Promise((res) => setTimeout(res, 2_000));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function ours(replicas: number): Promise<System> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-compare-"));
  const cluster = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: String(replicas), ...extraVars } });
  cluster.stopOnSignal();
  await cluster.start();
  return {
    name: `R=${replicas}`,
    endpoint: cluster.endpoint,
    accessKey: cluster.accessKey,
    secretKey: cluster.secretKey,
    region: cluster.region,
    processes: () => clusterProcesses(cluster),
    async stop() {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- the report ----

function rateOf(w: Workload, p: Phase[]): number {
  return median(p.map((x) => (w.size < MiB ? x.result.ops / x.result.seconds : x.result.bytes / 1e6 / x.result.seconds)));
}

/** CPU of one role per MB moved (per operation for small objects), median over runs. */
function cpuOf(w: Workload, p: Phase[], role: string): number {
  return median(p.map((x) => (x.cpu.get(role) ?? 0) / (w.size < MiB ? x.result.ops / 1000 : x.result.bytes / 1e6)));
}

function report(results: Map<string, Map<string, Phase[]>>): void {
  const names = [...results.keys()];
  const anchor = results.get("RGW");
  const head = ["workload", ...names.flatMap((n) => (n === "RGW" || !anchor ? [n] : [n, "ratio"]))];
  const rows: string[][] = [];
  for (const w of WORKLOADS) {
    const unit = w.size < MiB ? "ops/s" : "MB/s";
    const base = anchor ? rateOf(w, anchor.get(w.label)!) : null;
    const cells = names.flatMap((n) => {
      const r = rateOf(w, results.get(n)!.get(w.label)!);
      const v = `${r.toFixed(w.size < MiB ? 0 : 1)} ${unit}`;
      return n === "RGW" || base === null ? [v] : [v, `${(r / base).toFixed(2)}×`];
    });
    rows.push([w.label, ...cells]);
  }
  process.stdout.write(`\nThroughput (median of ${runs} run${runs > 1 ? "s" : ""}):\n\n${table(head, rows)}\n`);
  // CPU: per MB for 1 MiB and 64 MiB objects, per 1,000 operations for 4 KiB objects.
  const cpuHead = ["workload", ...names.flatMap((n) => [...roles(results.get(n)!)].map((r) => `${n} ${r}`))];
  const cpuRows = WORKLOADS.map((w) => [
    `${w.label} (${w.size < MiB ? "ms/1k ops" : "ms/MB"})`,
    ...names.flatMap((n) => [...roles(results.get(n)!)].map((r) => cpuOf(w, results.get(n)!.get(w.label)!, r).toFixed(w.size < MiB ? 0 : 2))),
  ]);
  process.stdout.write(`\nCPU time per MB moved (per 1,000 operations for 4 KiB objects):\n\n${table(cpuHead, cpuRows)}\n`);
}

function roles(byWorkload: Map<string, Phase[]>): Set<string> {
  const out = new Set<string>();
  for (const ps of byWorkload.values()) for (const p of ps) for (const r of p.cpu.keys()) out.add(r);
  return out;
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const results = new Map<string, Map<string, Phase[]>>();
  for (const s of systems) {
    process.stdout.write(`\n== ${s}: starting\n`);
    const sys = s === "rgw" ? await rgw() : await ours(Number(s.replace(/^r/, "")));
    try {
      const phases = new Map<string, Phase[]>();
      for (let round = 0; round < runs; round++) {
        for (const [label, p] of await measure(sys, round)) phases.set(label, [...(phases.get(label) ?? []), p]);
      }
      results.set(sys.name, phases);
    } finally {
      await sys.stop();
    }
  }
  report(results);
}

await main();
