import { describe, expect, it } from "vitest";
import {
  Chunker,
  DEFAULT_CHUNKER,
  findCut,
  gearScanFrom,
  gearTable,
  validateChunkerConfig,
  type ChunkerConfig,
} from "../../common/chunker.ts";
import gearScanWasm from "../../common/gear-scan.wasm";

const scan = gearScanFrom(gearScanWasm);

const SMALL: ChunkerConfig = { min: 2 * 1024, avg: 8 * 1024, max: 32 * 1024 };
const MiB = 1024 * 1024;

// Pinned from the first release of this chunker. Never update these to make a test pass: a
// change here means a change of chunk boundaries, which breaks dedup against all stored data.
const PINNED_GEAR_HEAD = [0xe3d69b94, 0x27e6e2c6, 0x22ae64d7, 0x93c44321];
const PINNED_GEAR_FOLD = 0x1783e6e2;
const PINNED_SMALL_COUNT = 117;
const PINNED_SMALL_HEAD = [5736, 11981, 9565, 11049, 9270, 6358, 7834, 8587, 8492, 2472, 8439, 8309];
const PINNED_DEFAULT = [
  1311398, 1259211, 1049823, 1454791, 1728635, 1095169, 1189507, 1112830, 1203628, 1460239, 1362470, 1240016,
  1221485, 88014,
];

// xorshift32: deterministic across runs and runtimes, unlike Math.random/getRandomValues.
function randomBytes(n: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let s = seed | 0 || 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
  // Fix the byte order so pinned vectors do not depend on host endianness.
  const view = new DataView(words.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i]!, true);
  return new Uint8Array(words.buffer, 0, n);
}

// Small deterministic PRNG for piece sizes.
function rng(seed: number): (bound: number) => number {
  let s = seed | 0 || 1;
  return (bound) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % bound;
  };
}

function chunkAll(data: Uint8Array, cfg: ChunkerConfig): Uint8Array[] {
  const c = new Chunker(cfg, scan);
  return [...c.push(data), ...c.finish()];
}

function chunkPieces(data: Uint8Array, cfg: ChunkerConfig, sizes: () => number): Uint8Array[] {
  const c = new Chunker(cfg, scan);
  const out: Uint8Array[] = [];
  for (let p = 0; p < data.length; ) {
    const n = Math.min(sizes(), data.length - p);
    out.push(...c.push(data.subarray(p, p + n)));
    p += n;
  }
  out.push(...c.finish());
  return out;
}

function lengths(chunks: Uint8Array[]): number[] {
  return chunks.map((c) => c.length);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function expectSameChunks(a: Uint8Array[], b: Uint8Array[]): void {
  expect(lengths(a)).toEqual(lengths(b));
  expect(a.every((c, i) => bytesEqual(c, b[i]!))).toBe(true);
}

function expectWellFormed(data: Uint8Array, chunks: Uint8Array[], cfg: ChunkerConfig): void {
  expect(bytesEqual(concat(chunks), data)).toBe(true);
  chunks.forEach((c, i) => {
    expect(c.length).toBeLessThanOrEqual(cfg.max);
    if (i < chunks.length - 1) expect(c.length).toBeGreaterThanOrEqual(cfg.min);
    else expect(c.length).toBeGreaterThan(0);
  });
}

async function digestSet(chunks: Uint8Array[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const c of chunks) {
    const d = new Uint8Array(await crypto.subtle.digest("SHA-256", c));
    out.add(Array.from(d, (b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return out;
}

describe("chunker: pinned vectors (a failure here means every stored CHID would change)", () => {
  it("gear table", () => {
    const g = gearTable();
    expect(g.length).toBe(256);
    expect(Array.from(g.subarray(0, 4))).toEqual(PINNED_GEAR_HEAD);
    let fold = 0;
    for (const v of g) fold = (Math.imul(fold, 31) + v) | 0;
    expect(fold >>> 0).toBe(PINNED_GEAR_FOLD);
  });

  it("cut points, small config", () => {
    const chunks = chunkAll(randomBytes(MiB, 0x12345678), SMALL);
    expect(chunks.length).toBe(PINNED_SMALL_COUNT);
    expect(lengths(chunks).slice(0, 12)).toEqual(PINNED_SMALL_HEAD);
  });

  it("cut points, default config", () => {
    expect(lengths(chunkAll(randomBytes(16 * MiB, 0x9abcdef), DEFAULT_CHUNKER))).toEqual(PINNED_DEFAULT);
  });
});

describe("chunker: the WebAssembly scan", () => {
  // The gear hash as its definition reads, one byte at a time: the scan must find the same byte.
  function reference(data: Uint8Array, i: number, end: number, h: number, mask: number): { cut: number; h: number } {
    const g = gearTable();
    for (; i < end; i++) {
      h = ((h << 1) + g[data[i]!]!) | 0;
      if ((h & mask) === 0) return { cut: i + 1, h };
    }
    return { cut: -1, h };
  }

  it("finds the byte the definition finds, at any alignment, across blocks, carrying the hash", () => {
    const data = randomBytes(300_000, 77);
    const next = rng(5);
    for (let k = 0; k < 400; k++) {
      const i = next(1000);
      const end = i + next(k < 40 ? 8 : 200_000);
      // From loose (a hit every few bytes) to strict (none in a range): both outcomes, every path.
      const mask = (-1 << (32 - (3 + next(18)))) | 0;
      const h = k % 2 === 0 ? 0 : next(1 << 30);
      const want = reference(data, i, end, h, mask);
      scan.carry = h;
      const got = scan.run(data, i, end, mask);
      expect(got).toBe(want.cut);
      if (got < 0) expect(scan.carry).toBe(want.h);
    }
  });
});

describe("chunker: output shape", () => {
  it("empty input yields no chunks", () => {
    const c = new Chunker(SMALL, scan);
    expect(c.push(new Uint8Array(0))).toEqual([]);
    expect(c.finish()).toEqual([]);
    expect(findCut(new Uint8Array(0), { start: 0, end: 0 }, SMALL, scan)).toBe(0);
  });

  it("input no larger than min yields exactly one chunk", () => {
    for (const n of [1, 100, SMALL.min - 1, SMALL.min]) {
      const data = randomBytes(n, n);
      const chunks = chunkAll(data, SMALL);
      expect(chunks.length).toBe(1);
      expect(bytesEqual(chunks[0]!, data)).toBe(true);
      expect(findCut(data, { start: 0, end: n }, SMALL, scan)).toBe(n);
    }
  });

  it("32 MiB, small config: concatenation, bounds, mean size", () => {
    const data = randomBytes(32 * MiB, 1);
    const chunks = chunkAll(data, SMALL);
    expectWellFormed(data, chunks, SMALL);
    const mean = data.length / chunks.length;
    expect(mean).toBeGreaterThan(SMALL.avg * 0.75);
    expect(mean).toBeLessThan(SMALL.avg * 1.5);
  });

  it("32 MiB, default config: concatenation, bounds, mean size", () => {
    const data = randomBytes(32 * MiB, 2);
    const chunks = chunkAll(data, DEFAULT_CHUNKER);
    expectWellFormed(data, chunks, DEFAULT_CHUNKER);
    const mean = data.length / chunks.length;
    expect(mean).toBeGreaterThan(DEFAULT_CHUNKER.avg * 0.5);
    expect(mean).toBeLessThan(DEFAULT_CHUNKER.avg * 2);
  });

  it("data with no boundary is hard-cut at max", () => {
    // 32 equal bytes drive the gear hash to a fixed point (-GEAR[b] mod 2^32), so a long run
    // of one byte value cuts soon after min or never; with this table zeros never cut.
    const data = new Uint8Array(SMALL.max * 3 + 5);
    expect(lengths(chunkAll(data, SMALL))).toEqual([SMALL.max, SMALL.max, SMALL.max, 5]);
  });

  it("findCut agrees with Chunker and respects its contract", () => {
    const data = randomBytes(4 * MiB, 3);
    const expected = lengths(chunkAll(data, SMALL));
    const got: number[] = [];
    for (let p = 0; p < data.length; ) {
      const n = findCut(data, { start: p, end: data.length }, SMALL, scan);
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThanOrEqual(SMALL.max);
      got.push(n);
      p += n;
    }
    expect(got).toEqual(expected);
    // A window that stops short of the cut reports "no boundary yet" as its own length.
    const first = expected[0]!;
    expect(findCut(data, { start: 0, end: first - 1 }, SMALL, scan)).toBe(first - 1);
    expect(findCut(data, { start: 0, end: first + 100 }, SMALL, scan)).toBe(first);
    // Offsets into a larger buffer give the same answer as a copy.
    const off = expected[0]! + expected[1]!;
    expect(findCut(data, { start: off, end: data.length }, SMALL, scan)).toBe(expected[2]);
    expect(findCut(data.slice(off), { start: 0, end: data.length - off }, SMALL, scan)).toBe(expected[2]);
  });
});

describe("chunker: streaming", () => {
  it("chunks do not depend on push sizes", () => {
    const data = randomBytes(4 * MiB + 1234, 4);
    const oneShot = chunkAll(data, SMALL);
    const next = rng(42);
    // Mix tiny, sub-min, around-max and multi-max pieces.
    const sizes = [1, 7, 100, SMALL.min - 1, SMALL.min, SMALL.avg, SMALL.max - 1, SMALL.max, SMALL.max + 1, 3 * SMALL.max];
    expectSameChunks(chunkPieces(data, SMALL, () => sizes[next(sizes.length)]!), oneShot);
    expectSameChunks(chunkPieces(data, SMALL, () => 1 + next(5 * SMALL.max)), oneShot);
    expectSameChunks(chunkPieces(data, SMALL, () => SMALL.max), oneShot);
  });

  it("1-byte pushes give the same chunks", () => {
    const data = randomBytes(300 * 1024, 5);
    expectSameChunks(chunkPieces(data, SMALL, () => 1), chunkAll(data, SMALL));
  });

  it("unaligned views give the same chunks", () => {
    // The scan reads aligned 32-bit words where it can; byteOffset must not matter.
    const data = randomBytes(MiB, 6);
    const oneShot = lengths(chunkAll(data, SMALL));
    for (const shift of [1, 2, 3]) {
      const backing = new Uint8Array(data.length + shift);
      backing.set(data, shift);
      expect(lengths(chunkAll(backing.subarray(shift), SMALL))).toEqual(oneShot);
    }
  });

  it("returned chunks survive the caller reusing its input buffer", () => {
    const data = randomBytes(2 * MiB, 7);
    const next = rng(7);
    const buf = new Uint8Array(3 * SMALL.max);
    const c = new Chunker(SMALL, scan);
    const out: Uint8Array[] = [];
    for (let p = 0; p < data.length; ) {
      const n = Math.min(1 + next(buf.length), data.length - p);
      buf.set(data.subarray(p, p + n));
      out.push(...c.push(buf.subarray(0, n)));
      buf.fill(0xa5);
      p += n;
    }
    out.push(...c.finish());
    expectSameChunks(out, chunkAll(data, SMALL));
  });

  it("a chunker can be reused after finish", () => {
    const a = randomBytes(200 * 1024, 8);
    const b = randomBytes(150 * 1024, 9);
    const c = new Chunker(SMALL, scan);
    const first = [...c.push(a.subarray(0, 5000)), ...c.push(a.subarray(5000)), ...c.finish()];
    const second = [...c.push(b), ...c.finish()];
    expectSameChunks(first, chunkAll(a, SMALL));
    expectSameChunks(second, chunkAll(b, SMALL));
  });
});

describe("chunker: content-defined boundaries", () => {
  const data = randomBytes(8 * MiB, 10);

  async function shared(edited: Uint8Array): Promise<{ kept: number; total: number }> {
    const before = await digestSet(chunkAll(data, SMALL));
    const after = await digestSet(chunkAll(edited, SMALL));
    let kept = 0;
    for (const d of before) if (after.has(d)) kept++;
    return { kept, total: before.size };
  }

  it("an insertion near the start changes only nearby chunks", async () => {
    const edited = new Uint8Array(data.length + 7);
    edited.set(data.subarray(0, 1000));
    edited.set([1, 2, 3, 4, 5, 6, 7], 1000);
    edited.set(data.subarray(1000), 1007);
    const { kept, total } = await shared(edited);
    expect(total).toBeGreaterThan(500);
    expect(total - kept).toBeLessThanOrEqual(3);
  });

  it("a deletion near the start changes only nearby chunks", async () => {
    const edited = new Uint8Array(data.length - 5);
    edited.set(data.subarray(0, 20_000));
    edited.set(data.subarray(20_005), 20_000);
    const { kept, total } = await shared(edited);
    expect(total - kept).toBeLessThanOrEqual(3);
  });
});

describe("chunker: config validation", () => {
  it("accepts the default and small configs", () => {
    expect(validateChunkerConfig(DEFAULT_CHUNKER)).toBe(DEFAULT_CHUNKER);
    expect(validateChunkerConfig(SMALL)).toBe(SMALL);
    expect(() => validateChunkerConfig({ min: 64, avg: 128, max: 16 * MiB })).not.toThrow();
  });

  it("rejects bad configs with a clear message", () => {
    const bad: [ChunkerConfig, RegExp][] = [
      [{ min: 63, avg: 1024, max: 4096 }, /min must be >= 64/],
      [{ min: 1024, avg: 1024, max: 4096 }, /min < avg < max/],
      [{ min: 512, avg: 4096, max: 4096 }, /min < avg < max/],
      [{ min: 512, avg: 3000, max: 8192 }, /power of two/],
      [{ min: 512, avg: 1024, max: 16 * MiB + 1 }, /<= 16 MiB/],
      [{ min: 512.5, avg: 1024, max: 4096 }, /integer/],
      [{ min: 512, avg: Number.NaN, max: 4096 }, /integer/],
    ];
    for (const [cfg, msg] of bad) {
      expect(() => validateChunkerConfig(cfg)).toThrow(msg);
      expect(() => new Chunker(cfg, scan)).toThrow(msg);
    }
  });
});
