// FastCDC content-defined chunking (Xia et al., USENIX ATC 2016; IEEE TPDS 2020).
//
// Chunk boundaries depend only on the bytes near them, so an insertion or deletion early in an
// object moves only the chunks around the edit and every later chunk keeps its CHID: that is
// what makes deduplication across versions of an object work.
//
// The three FastCDC ideas used here:
// - gear rolling hash: h = ((h << 1) + GEAR[byte]) mod 2^32, one shift, one add, one load per byte;
// - cut-point skipping: the first `min` bytes of a chunk are never hashed (no cut can fall there);
// - normalized chunking, level 2: before offset `avg` a cut needs log2(avg)+2 zero bits (rare),
//   after it log2(avg)-2 zero bits (frequent), which pulls chunk sizes towards `avg`.
// Plus a hard cut at `max`.
//
// Masks test the HIGH bits of the hash, not the paper's spread masks. With a left-shifting gear
// hash, bit k of h depends only on the last k+1 bytes, so low bits have a tiny window and are
// poorly mixed; the top bits see (nearly) the whole 32-byte window: with N mask bits the lowest
// tested bit already depends on the last 33-N bytes. Still a single AND, like the paper's.
//
// The scan itself is WebAssembly (gear-scan.wat, gear-scan.ts), given to each chunker.
//
// STABILITY: the GEAR table, the seed that generates it, the mask choice and the offset rules
// below define every chunk boundary, hence every CHID ever stored. Changing any of them changes
// the chunking of all data, so new uploads stop deduplicating against everything already
// stored. test/unit/chunker.test.ts pins table values and cut points; never "fix" that test by
// updating the pinned numbers.

import { GearScan } from "./gear-scan.ts";

export interface ChunkerConfig {
  min: number;
  avg: number;
  max: number;
}

/**
 * A reference configuration: the one the pinned cut points in test/unit/chunker.test.ts and
 * bench/chunker.ts use. The cluster's own comes from wrangler.toml (CHUNK_*).
 */
export const DEFAULT_CHUNKER: ChunkerConfig = { min: 256 * 1024, avg: 1024 * 1024, max: 4 * 1024 * 1024 };

const MAX_CHUNK_LIMIT = 16 * 1024 * 1024;

// splitmix32 (Steele/Lea/Flood's SplitMix with murmur3's fmix32 finalizer), fixed seed. Chosen
// because it is a few lines, has no state beyond one integer and cannot drift between runtimes:
// only Math.imul, xor and shifts on 32-bit integers.
const GEAR_SEED = 0x6a09e667; // first 32 bits of the fractional part of sqrt(2): nothing up the sleeve

function makeGear(): Uint32Array {
  const table = new Uint32Array(256);
  let state = GEAR_SEED;
  for (let i = 0; i < 256; i++) {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    table[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return table;
}

const GEAR_U32 = makeGear();

/** A copy of the 256-entry gear table, for tests and tooling; mutating it changes nothing. */
export function gearTable(): Uint32Array {
  return GEAR_U32.slice();
}

function log2Exact(n: number): number {
  return 31 - Math.clz32(n);
}

function highMask(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? -1 : (-1 << (32 - bits)) | 0;
}

export function validateChunkerConfig(c: ChunkerConfig): ChunkerConfig {
  const { min, avg, max } = c;
  for (const [name, v] of [["min", min], ["avg", avg], ["max", max]] as const) {
    if (!Number.isSafeInteger(v)) throw new Error(`chunker config: ${name} must be an integer, got ${String(v)}`);
  }
  if (min < 64) throw new Error(`chunker config: min must be >= 64, got ${min}`);
  if (!(min < avg && avg < max)) {
    throw new Error(`chunker config: need min < avg < max, got min=${min} avg=${avg} max=${max}`);
  }
  if (max > MAX_CHUNK_LIMIT) throw new Error(`chunker config: max must be <= 16 MiB, got ${max}`);
  // Safe as a 32-bit test only because avg < max <= 16 MiB was checked first.
  if ((avg & (avg - 1)) !== 0) throw new Error(`chunker config: avg must be a power of two, got ${avg}`);
  return c;
}

interface Masks {
  strict: number;
  loose: number;
}

function masksFor(cfg: ChunkerConfig): Masks {
  const bits = log2Exact(cfg.avg);
  return { strict: highMask(bits + 2), loose: highMask(bits - 2) };
}

/** The least a pending buffer is allocated with: below it, growing would copy more than it saves. */
const STASH_MIN = 4096;

const scans = new WeakMap<WebAssembly.Module, GearScan>();

/** The scan of gear-scan.wasm (as its runtime loaded it) with this chunker's table: one per module. */
export function gearScanFrom(module: WebAssembly.Module): GearScan {
  let s = scans.get(module);
  if (s === undefined) {
    s = new GearScan(module, GEAR_U32);
    scans.set(module, s);
  }
  return s;
}

// Hashes data[i, end) carrying hash `h`; returns the index just past the cut byte, or -1 with
// the running hash in `scan.carry`. `normalEnd` is the index whose chunk offset is `avg`: bytes
// before it need the strict mask, from it on the loose one. One function serves both findCut
// and the resumable streaming scan, so the two cannot disagree about boundaries.
function gearScan(scan: GearScan, data: Uint8Array, at: { i: number; end: number; normalEnd: number; h: number }, masks: Masks): number {
  const { i, end, normalEnd } = at;
  const n1 = normalEnd < end ? normalEnd : end;
  scan.carry = at.h;
  if (i < n1) {
    const cut = scan.run(data, i, n1, masks.strict);
    if (cut >= 0) return cut;
  }
  const from = i > n1 ? i : n1;
  if (from < end) return scan.run(data, from, end, masks.loose);
  return -1;
}

// Keyed by the config object, so findCut treats a config as immutable once used.
const masksCache = new WeakMap<ChunkerConfig, Masks>();

function cachedMasks(cfg: ChunkerConfig): Masks {
  let m = masksCache.get(cfg);
  if (m === undefined) {
    m = masksFor(validateChunkerConfig(cfg));
    masksCache.set(cfg, m);
  }
  return m;
}

/**
 * Length of the chunk starting at `start`, looking only at data[start, end). Returns end-start
 * when that is <= min, and never more than max. A result equal to end-start (< max) only means
 * "no boundary yet": it is final only at the end of the input.
 */
export function findCut(data: Uint8Array, range: { start: number; end: number }, cfg: ChunkerConfig, scan: GearScan): number {
  const { start, end } = range;
  const n = end - start;
  if (n <= cfg.min) return n;
  const limit = n < cfg.max ? n : cfg.max;
  const m = cachedMasks(cfg);
  const cut = gearScan(scan, data, { i: start + cfg.min, end: start + limit, normalEnd: start + cfg.avg, h: 0 }, m);
  return cut < 0 ? limit : cut - start;
}

/**
 * Streaming chunker. Chunks do not depend on how the input is split across push() calls.
 * Returned chunks are owned by the caller: they never alias the input and are never reused.
 * They are typed over a plain ArrayBuffer so they can go straight to crypto.subtle and fetch;
 * use the view itself, never `.buffer`, which may be larger than the chunk.
 */
export class Chunker {
  readonly #min: number;
  readonly #avg: number;
  readonly #max: number;
  readonly #masks: Masks;
  readonly #scan: GearScan;
  // Prefix of the chunk in progress, all of it already scanned without finding a cut.
  // Allocated lazily and grown as the prefix grows (doubling, up to max): a small object is all
  // prefix, and a max-sized buffer for each (512 KiB zeroed for a 4 KiB PUT) was a tenth of the
  // Worker's time on small PUTs, most of it garbage collection.
  #pending: Uint8Array<ArrayBuffer> | null = null;
  #pendLen = 0;
  // Gear hash over pending[min, pendLen); 0 while pendLen <= min.
  #hash = 0;

  /** `scan`: gearScanFrom(the runtime's gear-scan.wasm). */
  constructor(cfg: ChunkerConfig, scan: GearScan) {
    validateChunkerConfig(cfg);
    this.#min = cfg.min;
    this.#avg = cfg.avg;
    this.#max = cfg.max;
    this.#masks = masksFor(cfg);
    this.#scan = scan;
  }

  push(data: Uint8Array): Uint8Array<ArrayBuffer>[] {
    const out: Uint8Array<ArrayBuffer>[] = [];
    const n = data.length;
    if (n === 0) return out;
    const min = this.#min;
    const avg = this.#avg;
    const max = this.#max;
    const masks = this.#masks;
    const scan = this.#scan;
    let p = 0;

    if (this.#pendLen > 0) {
      // Resume the scan across the push boundary straight from `data`, so bytes are copied into
      // pending only up to the cut and the scan never revisits bytes it has hashed.
      const have = this.#pendLen;
      const take = Math.min(max - have, n);
      const cut = gearScan(scan, data, { i: Math.max(0, min - have), end: take, normalEnd: avg - have, h: this.#hash }, masks);
      const used = cut >= 0 ? cut : take;
      this.#reserve(have + used).set(used === n ? data : data.subarray(0, used), have);
      if (cut < 0 && have + take < max) {
        this.#pendLen = have + take;
        this.#hash = scan.carry;
        return out;
      }
      out.push(this.#takePending(have + used));
      p = used;
    }

    // Chunks that lie wholly inside `data` are copied out once, directly.
    while (p < n) {
      const rest = n - p;
      if (rest <= min) {
        this.#stash(data, p, n, 0);
        break;
      }
      const limit = rest < max ? rest : max;
      const cut = gearScan(scan, data, { i: p + min, end: p + limit, normalEnd: p + avg, h: 0 }, masks);
      if (cut < 0 && rest < max) {
        this.#stash(data, p, n, scan.carry);
        break;
      }
      const end = cut < 0 ? p + limit : cut;
      out.push(data.slice(p, end));
      p = end;
    }
    return out;
  }

  finish(): Uint8Array<ArrayBuffer>[] {
    if (this.#pendLen === 0) return [];
    return [this.#takePending(this.#pendLen)];
  }

  #stash(data: Uint8Array, from: number, to: number, hash: number): void {
    this.#pendLen = 0;
    // Sized by the piece it came in: a stream in large pieces will fill the prefix up to max
    // (no growing), a small object never will.
    this.#reserve(Math.max(to - from, Math.min(data.length, this.#max))).set(data.subarray(from, to), 0);
    this.#pendLen = to - from;
    this.#hash = hash;
  }

  /** The pending buffer, with room for `need` bytes; what it holds (#pendLen) is kept. */
  #reserve(need: number): Uint8Array<ArrayBuffer> {
    const old = this.#pending;
    if (old !== null && old.length >= need) return old;
    const grown = new Uint8Array(Math.min(this.#max, Math.max(need, STASH_MIN, old === null ? 0 : old.length * 2)));
    if (old !== null && this.#pendLen > 0) grown.set(old.subarray(0, this.#pendLen));
    this.#pending = grown;
    return grown;
  }

  // A chunk filling at least half of the buffer takes the buffer with it (no second copy, at
  // most 2x slack); a smaller one is copied out so the caller does not pin a max-sized buffer
  // for a small chunk.
  #takePending(len: number): Uint8Array<ArrayBuffer> {
    const pending = this.#pending!;
    this.#pendLen = 0;
    this.#hash = 0;
    if (len * 2 >= pending.length) {
      this.#pending = null;
      return pending.subarray(0, len);
    }
    return pending.slice(0, len);
  }
}
