// The generated data of issue 5's storage benchmark (bench/dedup.ts): a text document edited
// in small places, a tree of small text files of which a tenth change per version, and a disk
// image of which 1% of the 4 KiB blocks are rewritten per version. Deterministic (seeded), so
// two runs with different chunker settings see exactly the same bytes.
//
// The content is meant to compress and repeat like the real thing, neither better nor worse:
// text is words drawn from a Zipf-distributed vocabulary (English-like entropy, ~2.5–3× with
// deflate); the disk image is extents of zeros (unallocated), text (documents, logs, source) and
// incompressible bytes (media, archives, already-compressed files).

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): 128 bits of state, no short cycles. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed | 0;
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** In [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }

  float(): number {
    return this.u32() / 2 ** 32;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    const words = new Uint32Array(out.buffer, 0, n >>> 2);
    for (let i = 0; i < words.length; i++) words[i] = this.u32();
    for (let i = words.length * 4; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

const LETTERS = "etaoinshrdlcumwfgypbvkjxqz";

/** Words and their cumulative Zipf weights (s = 1.1), generated once. */
function vocabulary(rng: Rng, size: number): { words: Uint8Array[]; cumulative: Float64Array } {
  const enc = new TextEncoder();
  const words: Uint8Array[] = [];
  const cumulative = new Float64Array(size);
  let total = 0;
  for (let i = 0; i < size; i++) {
    const len = 2 + rng.int(9);
    let w = "";
    // Skewed letter choice, as in natural language: frequent letters are drawn more often.
    for (let j = 0; j < len; j++) w += LETTERS[Math.floor(rng.float() ** 2 * LETTERS.length)];
    words.push(enc.encode(w));
    total += 1 / (i + 1) ** 1.1;
    cumulative[i] = total;
  }
  for (let i = 0; i < size; i++) cumulative[i]! /= total;
  return { words, cumulative };
}

export class TextSource {
  private readonly rng: Rng;
  private readonly vocab: { words: Uint8Array[]; cumulative: Float64Array };

  constructor(seed: number) {
    this.rng = new Rng(seed);
    this.vocab = vocabulary(new Rng(7), 20_000);
  }

  private word(): Uint8Array {
    const x = this.rng.float();
    const c = this.vocab.cumulative;
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return this.vocab.words[lo]!;
  }

  /** `n` bytes of prose: sentences of 6–24 words, paragraphs of 2–8 sentences. */
  text(n: number): Uint8Array {
    const out = new Uint8Array(n + 64);
    let at = 0;
    let inSentence = 0;
    let sentences = 0;
    while (at < n) {
      const w = this.word();
      if (inSentence === 0) {
        out.set(w, at);
        out[at] = out[at]! - 32; // capitalised
      } else {
        out[at++] = 32;
        out.set(w, at);
      }
      at += w.length;
      if (++inSentence >= 6 + this.rng.int(19)) {
        out[at++] = this.rng.int(10) === 0 ? 63 : 46; // ? or .
        inSentence = 0;
        if (++sentences >= 2 + this.rng.int(7)) {
          out[at++] = 10;
          out[at++] = 10;
          sentences = 0;
        } else out[at++] = 32;
      }
    }
    return out.subarray(0, n);
  }
}

function splice(doc: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(doc.length - remove + insert.length);
  out.set(doc.subarray(0, at), 0);
  out.set(insert, at);
  out.set(doc.subarray(at + remove), at + insert.length);
  return out;
}

/** `count` small edits, each an insert, a delete or an overwrite of 1–200 bytes at a random place. */
export function editText(doc: Uint8Array, text: TextSource, rng: Rng, count: number): Uint8Array {
  let out = doc;
  for (let i = 0; i < count; i++) {
    const len = 1 + rng.int(Math.min(200, Math.max(1, out.length >> 1)));
    const at = rng.int(Math.max(1, out.length - len));
    const kind = rng.int(3);
    if (kind === 0) out = splice(out, at, 0, text.text(len));
    else if (kind === 1) out = splice(out, at, len, new Uint8Array(0));
    else out = splice(out, at, len, text.text(len));
  }
  return out;
}

/** A tree of `count` small files: log-normal sizes (median ~6 KiB, 200 B to 256 KiB). */
export function makeTree(text: TextSource, rng: Rng, count: number): Map<string, Uint8Array> {
  const tree = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    // Box-Muller: a normal deviate for the log of the size.
    const z = Math.sqrt(-2 * Math.log(1 - rng.float())) * Math.cos(2 * Math.PI * rng.float());
    const size = Math.min(256 * 1024, Math.max(200, Math.round(Math.exp(Math.log(6144) + 1.2 * z))));
    tree.set(`src/d${i % 40}/f${i}.txt`, text.text(size));
  }
  return tree;
}

/** A tenth of the files change per version, each by 1–3 small edits. */
export function changeTree(tree: Map<string, Uint8Array>, text: TextSource, rng: Rng): string[] {
  const names = [...tree.keys()];
  const changed = new Set<string>();
  while (changed.size < Math.round(names.length / 10)) changed.add(names[rng.int(names.length)]!);
  for (const n of changed) tree.set(n, editText(tree.get(n)!, text, rng, 1 + rng.int(3)));
  return [...changed];
}

export const BLOCK = 4096;

/** A block's fresh content when rewritten: text or incompressible, never zeros. */
function newBlock(text: TextSource, rng: Rng): Uint8Array {
  return rng.int(2) === 0 ? text.text(BLOCK) : rng.bytes(BLOCK);
}

/** A disk image of extents of 1–64 blocks: 35% zeros, 35% text, 30% incompressible. */
export function makeImage(text: TextSource, rng: Rng, size: number): Uint8Array {
  const img = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const len = Math.min(size - at, BLOCK * (1 + rng.int(64)));
    const kind = rng.float();
    if (kind >= 0.35) img.set(kind < 0.7 ? text.text(len) : rng.bytes(len), at);
    at += len;
  }
  return img;
}

/** Rewrite 1% of the image's blocks in place; returns the block indexes, ascending. */
export function rewriteBlocks(img: Uint8Array, text: TextSource, rng: Rng): number[] {
  const blocks = img.length / BLOCK;
  const chosen = new Set<number>();
  while (chosen.size < Math.round(blocks / 100)) chosen.add(rng.int(blocks));
  const sorted = [...chosen].sort((a, b) => a - b);
  for (const b of sorted) img.set(newBlock(text, rng), b * BLOCK);
  return sorted;
}
