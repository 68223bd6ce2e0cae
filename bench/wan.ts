#!/usr/bin/env node
// npm run bench:wan [-- --mbit 1000] [--rtts 0,20,50,100] [--mib 64] [--read-ahead-mib 8] [--part targets|proxy|both]
//
// Part "proxy": the S3 proxy's upload savings over a 100 Mbit/s link at 50 ms (the relay
// limits the rate too): a 32 MiB file PUT and then re-PUT with 1 MiB of it changed, once
// straight to the gateway and once through a proxy on the client's side of the link; the
// bytes that crossed the link and the time each took.
//
// Part "targets":
// The storage hosts across a WAN, made on this machine: three targets in one network
// namespace (scripts/netns.ts), its link limited to --mbit each way with `tc tbf`, reaching the
// gateway through a relay that adds each round trip in --rtts (scripts/delay-relay.ts; this
// kernel has no netem). The client talks to the gateway on loopback, as a client near a
// Cloudflare edge would; what the round trip costs is the edge's distance to the targets. For
// each round trip: one PUT and one GET of --mib MiB (a single request: does one large PUT fill
// the link?), and the latency of sequential 4 KiB PUTs and GETs. R = 3, chains inside the site.
// --read-ahead-mib sets READ_AHEAD_BYTES, what one GET keeps in flight.
// Needs root, ip and tc. Never run by CI.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LOCAL_LOCATIONS, LocalCluster } from "../scripts/cluster.ts";
import { DelayRelay } from "../scripts/delay-relay.ts";
import { Site, sitesUnavailable } from "../scripts/netns.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { S3Proxy } from "../client/proxy/server.ts";
import { MinimalHttp, signedSend } from "./http-client.ts";
import { pct } from "./measure.ts";

const { values } = parseArgs({
  options: {
    mbit: { type: "string", default: "1000" },
    rtts: { type: "string", default: "0,20,50,100" },
    mib: { type: "string", default: "64" },
    "read-ahead-mib": { type: "string", default: "8" },
    part: { type: "string", default: "both" },
  },
});
const MiB = 1024 * 1024;

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

async function targetsAcrossWan(): Promise<void> {
  const why = sitesUnavailable();
  if (why) throw new Error(`bench:wan needs network namespaces: ${why}`);
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-wan-"));
  const mbit = Number(values.mbit);
  const c = new LocalCluster({ port: await freePort(), dataDir: dir, locations: LOCAL_LOCATIONS.slice(0, 3), initialTargets: 0, vars: { REPLICAS: "3", GROUP_MEMBERS: "3", READ_AHEAD_BYTES: String(Number(values["read-ahead-mib"]) * MiB) } });
  c.stopOnSignal();
  const site = Site.create({ index: 60, mbit });
  let relay: DelayRelay | null = null;
  const http = new MinimalHttp(c.endpoint);
  try {
    log(`starting a local cluster: 3 targets in namespace ${site.netns}, ${mbit} Mbit/s each way, R=3, in ${dir}...`);
    await c.start();
    relay = await DelayRelay.to(c.endpoint, { host: site.hostAddress, rttMs: 0 });
    for (let i = 0; i < 3; i++) c.startTarget(i, { site, gateway: relay.url });
    await c.waitForTargets(120_000);
    const send = signedSend(http, c);
    await send("PUT", "/wan");
    const size = Number(values.mib) * MiB;
    log(`link: ${mbit} Mbit/s = ${(mbit / 8).toFixed(1)} MB/s each way; a PUT at R=3 with chains crosses it once; READ_AHEAD_BYTES ${values["read-ahead-mib"]} MiB`);
    log("rtt ms | PUT MB/s | GET MB/s | PUT 4 KiB p50 / p99 ms | GET 4 KiB p50 / p99 ms");
    for (const rtt of values.rtts!.split(",").map(Number)) {
      relay.rttMs = rtt;
      const key = `big-${rtt}`;
      // A fresh body each time: a body stored before would dedup, and cross nothing.
      const big = pseudoRandom(size, 77 + rtt);
      let t = performance.now();
      await send("PUT", `/wan/${key}`, big);
      const put = size / 1e6 / ((performance.now() - t) / 1000);
      t = performance.now();
      await send("GET", `/wan/${key}`);
      const get = size / 1e6 / ((performance.now() - t) / 1000);
      const small: number[] = [];
      const reads: number[] = [];
      for (let i = 0; i < 40; i++) {
        t = performance.now();
        await send("PUT", `/wan/small-${rtt}-${i}`, pseudoRandom(4096, rtt * 1000 + i));
        small.push(performance.now() - t);
      }
      for (let i = 0; i < 40; i++) {
        t = performance.now();
        await send("GET", `/wan/small-${rtt}-${i}`);
        reads.push(performance.now() - t);
      }
      log(`${String(rtt).padStart(6)} | ${put.toFixed(1).padStart(8)} | ${get.toFixed(1).padStart(8)} | ${pct(small, 50).toFixed(1).padStart(10)} / ${pct(small, 99).toFixed(1).padEnd(10)} | ${pct(reads, 50).toFixed(1).padStart(10)} / ${pct(reads, 99).toFixed(1)}`);
    }
  } finally {
    http.close();
    await c.stop();
    await relay?.close();
    site.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What one PUT cost over the link: seconds, and bytes that crossed it towards the gateway. */
async function across(relay: DelayRelay, put: () => Promise<unknown>): Promise<{ s: number; bytes: number }> {
  const b0 = relay.sentFromSite;
  const t0 = performance.now();
  await put();
  return { s: (performance.now() - t0) / 1000, bytes: relay.sentFromSite - b0 };
}

async function proxySavings(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-wan-proxy-"));
  const c = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: "3" } });
  c.stopOnSignal();
  log(`\nstarting a local cluster (R=3, 6 targets) for the proxy part in ${dir}...`);
  await c.start();
  const relay = await DelayRelay.to(c.endpoint, { host: "127.0.0.1", rttMs: 50, mbit: 100 });
  const local = { accessKeyId: "BENCHLOCALKEY0000001", secretAccessKey: "bench-local-secret" };
  const proxy = new S3Proxy({ cluster: { endpoint: relay.url, region: c.region, accessKeyId: c.accessKey, secretAccessKey: c.secretKey }, local: { ...local, region: c.region }, log: () => {} });
  const proxyUrl = `http://127.0.0.1:${(await proxy.listen(await freePort())).port}`;
  const directHttp = new MinimalHttp(relay.url);
  const viaHttp = new MinimalHttp(proxyUrl);
  try {
    const direct = signedSend(directHttp, { ...c, endpoint: relay.url });
    const via = signedSend(viaHttp, { endpoint: proxyUrl, accessKey: local.accessKeyId, secretKey: local.secretAccessKey, region: c.region });
    await direct("PUT", "/wan-proxy");
    const size = 32 * MiB;
    /** A file and its next version: 1 MiB in the middle rewritten. */
    const versions = (seed: number) => {
      const first = pseudoRandom(size, seed);
      const second = first.slice();
      second.set(pseudoRandom(MiB, seed + 1), 10 * MiB);
      return [first, second] as const;
    };
    log("100 Mbit/s each way, 50 ms RTT between the client side and the gateway; a 32 MiB file, then 1 MiB of it changed");
    log("way    | first PUT: s, MB over the link | changed re-PUT: s, MB over the link");
    for (const [way, send, seed] of [
      ["direct", direct, 500],
      ["proxy ", via, 600],
    ] as const) {
      const [first, second] = versions(seed);
      const a = await across(relay, () => send("PUT", `/wan-proxy/file-${seed}`, first));
      const b = await across(relay, () => send("PUT", `/wan-proxy/file-${seed}`, second));
      log(`${way} | ${a.s.toFixed(2).padStart(6)} s, ${(a.bytes / 1e6).toFixed(1).padStart(6)} MB          | ${b.s.toFixed(2).padStart(6)} s, ${(b.bytes / 1e6).toFixed(1).padStart(6)} MB`);
    }
  } finally {
    directHttp.close();
    viaHttp.close();
    await proxy.close();
    await relay.close();
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.part !== "proxy") await targetsAcrossWan();
if (values.part !== "targets") await proxySavings();
