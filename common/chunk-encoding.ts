// Compressed chunks (seed 003): a chunk may be stored compressed, by a client that sends it so
// or by the gateway where that saves space. Its CHID names the stored bytes, so targets verify
// what they hold without decompressing; readers decompress. Web-standard streams only, so the
// Worker and clients share it.

import type { ChunkEncoding, ChunkRef } from "./manifest.ts";

export const CHUNK_ENCODINGS: readonly ChunkEncoding[] = ["gzip", "deflate-raw"];

async function through(bytes: Uint8Array, t: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }): Promise<Uint8Array> {
  const w = t.writable.getWriter();
  // A failed write or close errors the readable too, and the read below throws it: this
  // promise's own rejection would only say the same thing a second time, unhandled.
  void w.write(bytes).then(() => w.close()).catch(() => {});
  return new Uint8Array(await new Response(t.readable).arrayBuffer());
}

export function compress(bytes: Uint8Array, enc: ChunkEncoding): Promise<Uint8Array> {
  return through(bytes, new CompressionStream(enc) as unknown as { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> });
}

export function decompress(bytes: Uint8Array, enc: ChunkEncoding): Promise<Uint8Array> {
  return through(bytes, new DecompressionStream(enc) as unknown as { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> });
}

/** The logical bytes a ref names (a slice's part only) from its chunk's stored ones, checked against the chunk's logical length. */
export async function logicalBytes(ref: ChunkRef, stored: Uint8Array): Promise<Uint8Array> {
  const bytes = ref.enc ? await decompress(stored, ref.enc) : stored;
  const whole = ref.whole ?? ref.length;
  if (bytes.length !== whole) throw new Error(`chunk ${ref.chid} is ${bytes.length} bytes, its ref says ${whole}`);
  return ref.whole === undefined ? bytes : bytes.subarray(ref.skip!, ref.skip! + ref.length);
}

/** Keep a compressed form only if it saves at least this much. */
const WORTH = 0.9;
const SAMPLE = 4096;
/**
 * Smaller chunks are stored as they are. Small files are most of a source tree's versions (issue
 * 5's benchmark (b): with an 8 KiB floor the tree's median 6 KiB files were never compressed).
 */
const COMPRESS_MIN = 1024;
/** Bits per byte above which a sample is taken as incompressible (random data is ~7.95, text ~4-5). */
const ENTROPY_MAX = 7.2;

/**
 * Order-0 entropy of a sample from the chunk's middle, in bits per byte. A plain loop costs a
 * few microseconds, where even a small trial compression costs a millisecond of stream setup:
 * measured, a trial per chunk took 20% more Worker CPU per MB on incompressible PUTs.
 */
function sampleEntropy(bytes: Uint8Array): number {
  const n = Math.min(SAMPLE, bytes.length);
  const mid = Math.max(0, Math.floor(bytes.length / 2) - Math.floor(n / 2));
  const counts = new Uint32Array(256);
  for (let i = mid; i < mid + n; i++) counts[bytes[i]!]!++;
  let h = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / n;
    h -= p * Math.log2(p);
  }
  return h;
}

/**
 * The chunk compressed (deflate-raw), if that makes it at least 10% smaller; else null.
 * Incompressible data (most media, anything encrypted or already compressed) is recognised
 * from a sample's entropy and never compressed.
 */
export async function compressIfWorth(bytes: Uint8Array): Promise<Uint8Array | null> {
  if (bytes.length < COMPRESS_MIN || sampleEntropy(bytes) > ENTROPY_MAX) return null;
  const packed = await compress(bytes, "deflate-raw");
  return packed.length <= bytes.length * WORTH ? packed : null;
}
