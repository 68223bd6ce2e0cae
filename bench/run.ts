#!/usr/bin/env node
// npm run bench [-- --replicas 1|3] [--client minimal|sdk|both] [--quick] [--gib] [--var NAME=VALUE ...]
//
// Starts a fresh local cluster (wrangler dev + 6 node-targets, state in a temp dir) and prints
// PUT/GET throughput and latency for the workloads named in issue 2, with a minimal SigV4
// client (raw keep-alive HTTP/1.1, UNSIGNED-PAYLOAD) and with @aws-sdk/client-s3, plus the peak RSS of workerd
// and of each target. Never run by CI: timings belong here, not in tests.

import { GetObjectCommand, PutObjectCommand, S3Client, CreateBucketCommand } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { MinimalHttp } from "./http-client.ts";
import { peakRss, report, run, workerdPids } from "./measure.ts";

const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    replicas: { type: "string", default: "1" },
    client: { type: "string", default: "both" },
    quick: { type: "boolean", default: false },
    gib: { type: "boolean", default: false },
    // Any wrangler.toml var for this run, e.g. --var CHUNK_AVG=65536 (repeatable).
    var: { type: "string", multiple: true, default: [] },
  },
});
const extraVars = Object.fromEntries((values.var ?? []).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));

interface Client {
  name: string;
  put(key: string, body: Uint8Array): Promise<void>;
  get(key: string): Promise<number>;
}

/**
 * A minimal SigV4 client: UNSIGNED-PAYLOAD signatures over keep-alive connections with reused
 * read buffers (http-client.ts), the least client-side CPU per request.
 */
function minimalClient(c: LocalCluster, bucket: string): Client & { close(): void } {
  const http = new MinimalHttp(c.endpoint);
  const send = async (method: string, key: string, body?: Uint8Array): Promise<number> => {
    const path = `/${bucket}/${key}`;
    const headers = (await signRequest({ method, url: `${c.endpoint}${path}`, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region })) as unknown as Record<string, string>;
    const r = await http.send(method, path, headers, body ?? null);
    if (r.status !== 200) throw new Error(`${method} ${key}: ${r.status} ${r.body?.toString() ?? ""}`);
    return r.length;
  };
  return {
    name: "minimal SigV4 client (raw keep-alive HTTP/1.1)",
    async put(key, body) {
      await send("PUT", key, body);
    },
    get: (key) => send("GET", key),
    close: () => http.close(),
  };
}

function sdkClient(c: LocalCluster, bucket: string): Client {
  const s3 = new S3Client({ endpoint: c.endpoint, region: c.region, forcePathStyle: true, credentials: { accessKeyId: c.accessKey, secretAccessKey: c.secretKey } });
  return {
    name: "@aws-sdk/client-s3",
    async put(key, body) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    async get(key) {
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      let n = 0;
      for await (const piece of r.Body as AsyncIterable<Uint8Array>) n += piece.length;
      return n;
    },
  };
}

/**
 * A 1 GiB object streamed up and down without the client holding it: the peak RSS printed
 * afterwards shows whether the Worker, the groups and the targets held it either.
 */
async function oneGiB(c: LocalCluster): Promise<void> {
  const size = 1024 * MiB;
  const piece = 4 * MiB;
  const md5Up = createHash("md5");
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      if (sent === size) return ctrl.close();
      const p = pseudoRandom(piece, 77_000 + sent / piece);
      md5Up.update(p);
      sent += p.length;
      ctrl.enqueue(p);
    },
  });
  const url = `${c.endpoint}/bench/one-gib`;
  let h = await signRequest({ method: "PUT", url, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region });
  let t = performance.now();
  const res = await fetch(url, { method: "PUT", body, headers: { ...h, "content-length": String(size) }, duplex: "half" } as RequestInit);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`1 GiB PUT: ${res.status}`);
  process.stdout.write(`PUT 1 GiB streamed                           ${(size / 1e6 / ((performance.now() - t) / 1000)).toFixed(1).padStart(8)} MB/s\n`);
  h = await signRequest({ method: "GET", url, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region });
  t = performance.now();
  const got = await fetch(url, { headers: { ...h } });
  const md5Down = createHash("md5");
  let n = 0;
  for await (const p of got.body as unknown as AsyncIterable<Uint8Array>) {
    md5Down.update(p as Uint8Array);
    n += (p as Uint8Array).length;
  }
  process.stdout.write(`GET 1 GiB streamed                           ${(n / 1e6 / ((performance.now() - t) / 1000)).toFixed(1).padStart(8)} MB/s\n`);
  const up = md5Up.digest("hex");
  const down = md5Down.digest("hex");
  if (n !== size || up !== down) throw new Error(`1 GiB round trip differs: ${n} bytes, md5 ${down} vs ${up}`);
  process.stdout.write(`1 GiB round trip byte-exact (md5 ${up})\n`);
}

async function main(): Promise<void> {
  const replicas = values.replicas!;
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-"));
  const cluster = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: replicas, ...extraVars } });
  process.stdout.write(`starting a local cluster (R=${replicas}, 6 targets) in ${dir}...\n`);
  cluster.stopOnSignal();
  await cluster.start();
  try {
    const sdk = new S3Client({ endpoint: cluster.endpoint, region: cluster.region, forcePathStyle: true, credentials: { accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey } });
    await sdk.send(new CreateBucketCommand({ Bucket: "bench" }));
    const clients = [
      ...(values.client === "sdk" ? [] : [minimalClient(cluster, "bench")]),
      ...(values.client === "minimal" ? [] : [sdkClient(cluster, "bench")]),
    ];
    const n1 = values.quick ? 32 : 256;
    const n4k = values.quick ? 500 : 3000;
    const n64 = values.quick ? 2 : 4;
    // Fresh random bodies for every PUT phase (every client, every concurrency), so that
    // deduplication against an earlier phase cannot flatter a figure.
    let seed = 1;
    const fresh = (n: number, size: number) => Array.from({ length: n }, () => pseudoRandom(size, seed++ * 7919));
    const small = fresh(64, 4096);
    process.stdout.write(`\nR=${replicas}; sizes are decimal MB/s of object bytes; latencies per request\n`);
    if (!values.gib) {
      // Warm up (JIT, connections, buffer pools) so the first measured phase is not the cold one.
      const warm = clients[0]!;
      const w = fresh(16, MiB);
      await run(4, 16, async (i) => (await warm.put(`warm/1m/${i}`, w[i]!), MiB));
      await run(4, 16, (i) => warm.get(`warm/1m/${i}`));
      await run(16, 400, async (i) => (await warm.put(`warm/4k/${i}`, small[i % small.length]!), 4096));
      await run(16, 400, (i) => warm.get(`warm/4k/${i}`));
    }
    for (const [ci, c] of values.gib ? [] : clients.entries()) {
      process.stdout.write(`\n== ${c.name}\n`);
      const tag = `c${ci}`;
      for (const conc of [1, 8]) {
        const bodies = fresh(n1, MiB);
        report(`PUT ${n1} x 1 MiB, concurrency ${conc}`, await run(conc, n1, async (i) => (await c.put(`${tag}/1m-${conc}/${i}`, bodies[i]!), MiB)));
        report(`GET ${n1} x 1 MiB, concurrency ${conc}`, await run(conc, n1, (i) => c.get(`${tag}/1m-${conc}/${i}`)));
      }
      const big = fresh(n64, 64 * MiB);
      report(`PUT ${n64} x 64 MiB, concurrency 1`, await run(1, n64, async (i) => (await c.put(`${tag}/64m/${i}`, big[i]!), 64 * MiB)));
      report(`GET ${n64} x 64 MiB, concurrency 1`, await run(1, n64, (i) => c.get(`${tag}/64m/${i}`)));
      // Small bodies repeat (64 distinct): they are stored inline in their manifests, so there
      // is nothing to deduplicate.
      report(`PUT ${n4k} x 4 KiB, concurrency 16`, await run(16, n4k, async (i) => (await c.put(`${tag}/4k/${i}`, small[i % small.length]!), 4096)));
      report(`GET ${n4k} x 4 KiB, concurrency 16`, await run(16, n4k, (i) => c.get(`${tag}/4k/${i}`)));
    }
    if (values.gib) await oneGiB(cluster);
    process.stdout.write(`\npeak RSS (VmHWM)\n`);
    const wpid = cluster.gatewayPid();
    for (const pid of wpid ? workerdPids(wpid) : []) process.stdout.write(`  workerd pid ${pid}: ${peakRss(pid)?.toFixed(0)} MiB\n`);
    for (const t of cluster.targets) {
      const pid = t.proc?.pid;
      process.stdout.write(`  target ${t.index} ${t.location}: ${pid ? peakRss(pid)?.toFixed(0) : "?"} MiB\n`);
    }
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
