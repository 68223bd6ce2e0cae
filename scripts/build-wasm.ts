#!/usr/bin/env node
// Compiles the WebAssembly text sources of common/ (gear-scan.wat) to the binaries committed
// beside them. `--check`: exit 1 if a committed binary differs from what its source compiles to.
//
//   node scripts/build-wasm.ts [--check]

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import wabt from "wabt";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SOURCES = [join(ROOT, "common", "gear-scan.wat")];

/** The binary a .wat source compiles to. */
export async function compileWat(path: string): Promise<Uint8Array> {
  const w = await wabt();
  const mod = w.parseWat(path, readFileSync(path, "utf8"));
  try {
    mod.validate();
    return mod.toBinary({}).buffer;
  } finally {
    mod.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes("--check");
  let stale = 0;
  for (const src of SOURCES) {
    const out = src.replace(/\.wat$/, ".wasm");
    const bin = await compileWat(src);
    if (check) {
      if (!Buffer.from(bin).equals(readFileSync(out))) {
        console.error(`${out} is not what ${src} compiles to: run npm run build:wasm`);
        stale++;
      }
    } else {
      writeFileSync(out, bin);
      console.log(`${out}: ${bin.length} bytes`);
    }
  }
  process.exit(stale > 0 ? 1 : 0);
}
