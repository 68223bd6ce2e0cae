// The chunker's scan in Node: gear-scan.wasm read beside its source and compiled once
// (common/gear-scan.ts says why WebAssembly).

import { readFileSync } from "node:fs";
import { gearScanFrom } from "../common/chunker.ts";

export const gearScan = gearScanFrom(new WebAssembly.Module(readFileSync(new URL("../common/gear-scan.wasm", import.meta.url))));
