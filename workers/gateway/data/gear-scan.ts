// The chunker's scan as this isolate runs it: gear-scan.wasm, compiled when the Worker was
// uploaded (common/gear-scan.ts says why WebAssembly).

import { gearScanFrom } from "../../../common/chunker.ts";
import gearScanWasm from "../../../common/gear-scan.wasm";

export const gearScan = gearScanFrom(gearScanWasm);
