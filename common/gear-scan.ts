// The chunker's scan (chunker.ts) runs as WebAssembly (gear-scan.wat): ahead-of-time code runs
// at one speed, where the JavaScript loop ran at ~1 GB/s or, after V8 deoptimized it in some
// Worker starts (a thrash between Maglev and on-stack replacement, "dependent property cell
// changed"), at ~90 MB/s for the rest of the run: every 1 MiB PUT then paid ~10 ms more.
//
// The module comes from its runtime's loader (a Worker imports the .wasm; Node reads it: see
// client/gear-scan.ts): Workers refuse to compile WebAssembly from bytes at run time. One
// instance per module serves every chunker of an isolate: scans are synchronous and never nest.

/** Bytes one call of the WebAssembly scan takes (its data area); longer ranges go in blocks. */
const BLOCK = 65_536;
/** Where the data area starts in the module's memory: the gear table comes first. */
const DATA = 1024;

export class GearScan {
  readonly #mem: Uint8Array;
  readonly #scan: (len: number, h: number, mask: number) => number;
  readonly #carry: () => number;
  /**
   * The running hash: a run starts from it, and one that finds no cut leaves its end here. Kept
   * on the scan rather than passed in and returned, so the chunker's inner loop hands over and
   * gets back a hash without an object per call.
   */
  carry = 0;

  constructor(module: WebAssembly.Module, gear: Uint32Array) {
    const x = new WebAssembly.Instance(module, {}).exports;
    const memory = x.memory;
    const scan = x.scan;
    const carry = x.carry;
    if (!(memory instanceof WebAssembly.Memory) || typeof scan !== "function" || typeof carry !== "function") {
      throw new Error("gear-scan.wasm does not export memory, scan and carry");
    }
    if (memory.buffer.byteLength < DATA + BLOCK || gear.length !== 256) throw new Error("gear-scan.wasm's memory cannot hold the table and a block");
    const table = new DataView(memory.buffer, 0, DATA);
    gear.forEach((g, i) => table.setUint32(i * 4, g, true));
    this.#mem = new Uint8Array(memory.buffer);
    this.#scan = scan as (len: number, h: number, mask: number) => number;
    this.#carry = carry as () => number;
  }

  /**
   * Hash data[i, end) on from the hash in `carry`; the index just past the first byte whose hash
   * has no `mask` bit set, or -1 with the running hash in `carry`. Blocks change nothing: the
   * hash runs on from one to the next.
   */
  run(data: Uint8Array, i: number, end: number, mask: number): number {
    let h = this.carry;
    while (i < end) {
      const e = end - i < BLOCK ? end : i + BLOCK;
      this.#mem.set(data.subarray(i, e), DATA);
      const cut = this.#scan(e - i, h, mask);
      if (cut >= 0) return i + cut;
      h = this.#carry();
      i = e;
    }
    this.carry = h;
    return -1;
  }
}
