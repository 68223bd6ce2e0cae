// Chunker throughput on 256 MiB of pseudo-random data with the default config, best of 3 runs:
//   boundaries          Chunker.push in 4 MiB pieces (includes copying chunks out)
//   + SHA-256           plus crypto.subtle.digest per chunk, awaited one at a time
//   + SHA-256 + MD5     plus a streaming MD5 over the whole body, as the gateway's ETag needs
// Run: ./node_modules/.bin/node bench/chunker.ts
import { createHash } from "node:crypto";
import { Chunker, DEFAULT_CHUNKER } from "../common/chunker.ts";
import type { ChunkerConfig } from "../common/chunker.ts";
import { gearScan } from "../client/gear-scan.ts";

const TOTAL = 256 * 1024 * 1024;
const PIECE = 4 * 1024 * 1024;
const RUNS = 3;

function randomData(n: number): Uint8Array {
  const words = new Uint32Array(n / 4);
  let s = 0x2545f491;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
  return new Uint8Array(words.buffer);
}

// One digest at a time, as a gateway that must know each CHID before placing the chunk would.
async function sha256Each(list: Uint8Array<ArrayBuffer>[]): Promise<number> {
  for (const chunk of list) await crypto.subtle.digest("SHA-256", chunk);
  return list.length;
}

interface Stage {
  name: string;
  run(data: Uint8Array, cfg: ChunkerConfig): Promise<number>;
}

// Each stage returns its chunk count, so the work cannot be optimized away and can be printed.
const stages: Stage[] = [
  {
    name: "boundaries",
    async run(data, cfg) {
      const c = new Chunker(cfg, gearScan);
      let chunks = 0;
      for (let p = 0; p < data.length; p += PIECE) chunks += c.push(data.subarray(p, p + PIECE)).length;
      return chunks + c.finish().length;
    },
  },
  {
    name: "boundaries + SHA-256",
    async run(data, cfg) {
      const c = new Chunker(cfg, gearScan);
      let chunks = 0;
      for (let p = 0; p < data.length; p += PIECE) chunks += await sha256Each(c.push(data.subarray(p, p + PIECE)));
      return chunks + (await sha256Each(c.finish()));
    },
  },
  {
    name: "boundaries + SHA-256 + MD5",
    async run(data, cfg) {
      const c = new Chunker(cfg, gearScan);
      const md5 = createHash("md5");
      let chunks = 0;
      for (let p = 0; p < data.length; p += PIECE) {
        const piece = data.subarray(p, p + PIECE);
        md5.update(piece);
        chunks += await sha256Each(c.push(piece));
      }
      chunks += await sha256Each(c.finish());
      md5.digest();
      return chunks;
    },
  },
];

async function main(): Promise<void> {
  const cfg = DEFAULT_CHUNKER;
  const data = randomData(TOTAL);
  console.log(
    `chunker bench: ${TOTAL / 1024 / 1024} MiB random, pieces ${PIECE / 1024 / 1024} MiB, ` +
      `min/avg/max ${cfg.min / 1024}/${cfg.avg / 1024}/${cfg.max / 1024} KiB, best of ${RUNS}, node ${process.version}`,
  );
  for (const stage of stages) {
    let best = Infinity;
    let chunks = 0;
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      chunks = await stage.run(data, cfg);
      best = Math.min(best, performance.now() - t0);
    }
    const mbps = TOTAL / 1e6 / (best / 1e3);
    const mean = TOTAL / chunks / 1024;
    console.log(
      `${stage.name.padEnd(28)} ${mbps.toFixed(0).padStart(6)} MB/s  ${chunks} chunks, mean ${mean.toFixed(0)} KiB`,
    );
  }
}

await main();
