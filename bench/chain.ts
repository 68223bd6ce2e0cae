#!/usr/bin/env node
// npm run bench:chain [-- --mib 256] [--object-mib 8] [--concurrency 4] [--rounds 2]
//
// Issue 6, point 7: chain replication against fan-out at R = 3. Two fresh local clusters of
// six targets started with --peer-listen, one with CHAIN_REPLICATION=auto and one with "off",
// run alternately (`--rounds` times each, so machine noise falls on both). Each target dials the
// gateway through a loopback proxy (scripts/partition-proxy.ts) that counts what the gateway
// sends it: edge-bound bytes. Prints, per mode, edge bytes per byte stored and PUT throughput.
// On this one machine the "edge" link is loopback, so the throughput figure shows the cost of
// the hops and the gateway's CPU per copy, not what a real wide-area link would add. Never run
// by CI.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster } from "../scripts/cluster.ts";
import { PartitionProxy } from "../scripts/partition-proxy.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { MinimalHttp } from "./http-client.ts";

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "256" },
    "object-mib": { type: "string", default: "8" },
    concurrency: { type: "string", default: "4" },
    rounds: { type: "string", default: "2" },
  },
});
const MiB = 1024 * 1024;
const total = Number(values.mib) * MiB;
const objectSize = Number(values["object-mib"]) * MiB;
const concurrency = Number(values.concurrency);

interface Outcome {
  edgeRatio: number;
  mibPerS: number;
}

async function once(mode: "auto" | "off", round: number): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), `edgestore-bench-chain-${mode}-`));
  const port = await freePort();
  const proxies: PartitionProxy[] = [];
  for (let i = 0; i < 6; i++) proxies.push(await PartitionProxy.to(`http://127.0.0.1:${port}`));
  const c = new LocalCluster({
    port,
    dataDir: dir,
    vars: { REPLICAS: "3", CHAIN_REPLICATION: mode },
    gatewayFor: (i) => proxies[i]!.url,
    peers: true, targetArgs: ["--scrub-rate", "0"],
  });
  c.stopOnSignal();
  await c.start();
  const http = Array.from({ length: concurrency }, () => new MinimalHttp(c.endpoint));
  const send = async (h: MinimalHttp, method: string, path: string, body: Uint8Array | null = null) => {
    const headers = (await signRequest({ method, url: `${c.endpoint}${path}`, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region })) as unknown as Record<string, string>;
    const r = await h.send(method, path, headers, body);
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.body?.toString() ?? ""}`);
  };
  try {
    await send(http[0]!, "PUT", "/chain");
    const count = Math.ceil(total / objectSize);
    const bodies = Array.from({ length: Math.min(count, 8) }, (_, i) => pseudoRandom(objectSize, 7000 + round * 100 + i));
    // Fresh bytes for every object (no dedup): each body gets its own first bytes.
    const bodyFor = (i: number) => {
      const b = new Uint8Array(bodies[i % bodies.length]!);
      new DataView(b.buffer).setUint32(0, i);
      for (let at = 4096; at < b.length; at += 65536) new DataView(b.buffer).setUint32(at, i);
      return b;
    };
    const e0 = proxies.reduce((a, p) => a + p.sentToTarget, 0);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      http.map(async (h) => {
        for (let i = next++; i < count; i = next++) await send(h, "PUT", `/chain/obj-${i}`, bodyFor(i));
      }),
    );
    const s = (performance.now() - t0) / 1000;
    const edge = proxies.reduce((a, p) => a + p.sentToTarget, 0) - e0;
    return { edgeRatio: edge / (count * objectSize), mibPerS: (count * objectSize) / MiB / s };
  } finally {
    await c.stop();
    for (const p of proxies) await p.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const results: Record<string, Outcome[]> = { auto: [], off: [] };
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const mode of ["auto", "off"] as const) {
      const o = await once(mode, r);
      results[mode]!.push(o);
      process.stdout.write(`round ${r + 1} ${mode === "auto" ? "chain  " : "fan-out"}: ${values.mib} MiB in ${values["object-mib"]} MiB PUTs, c${concurrency}: ${o.mibPerS.toFixed(1)} MiB/s, edge bytes ${o.edgeRatio.toFixed(2)}x the data\n`);
    }
  }
  for (const mode of ["auto", "off"] as const) {
    const rs = results[mode]!;
    process.stdout.write(`${mode === "auto" ? "chain  " : "fan-out"}: ${rs.map((o) => o.mibPerS.toFixed(1)).join(" / ")} MiB/s; edge ${rs.map((o) => o.edgeRatio.toFixed(2)).join(" / ")}x\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
