// Compressed chunks (seed 003): a chunk may be stored compressed, by a client that sends it so
// or by the gateway where that saves space. Its CHID names the stored bytes, so targets verify
// what they hold without decompressing; readers decompress. Web-standard streams only, so the
// Worker and clients share it.

import type { ChunkEncoding, ChunkRef } from "./manifest.ts";

export const CHUNK_ENCODINGS: readonly ChunkEncoding[] = ["gzip", "deflate-raw"];

async function through(bytes: Uint8Array, t: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }): Promise<Uint8Array> {
  const w = t.writable.getWriter();
  void w.write(bytes).then(() => w.close()).catch(() => {});
  return new Uint8Array(await new Response(t.readable).arrayBuffer());
}

export function compress(bytes: Uint8Array, enc: ChunkEncoding): Promise<Uint8Array> {
  return through(bytes, new CompressionStream(enc) as unknown as { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> });
}

export function decompress(bytes: Uint8Array, enc: ChunkEncoding): Promise<Uint8Array> {
  return through(bytes, new DecompressionStream(enc) as unknown as { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> });
}

/** A chunk's logical bytes from its stored ones, checked against the ref's logical length. */
export async function logicalBytes(ref: ChunkRef, stored: Uint8Array): Promise<Uint8Array> {
  const bytes = ref.enc ? await decompress(stored, ref.enc) : stored;
  if (bytes.length !== ref.length) throw new Error(`chunk ${ref.chid} is ${bytes.length} bytes, its ref says ${ref.length}`);
  return bytes;
}

/** Keep a compressed form only if it saves at least this much. */
const WORTH = 0.9;
const SAMPLE = 8192;

/**
 * The chunk compressed (deflate-raw), if that makes it at least 10% smaller; else null. A sample
 * is tried first, so incompressible data (most media, anything encrypted) costs one small
 * compression per chunk rather than a whole one.
 */
export async function compressIfWorth(bytes: Uint8Array): Promise<Uint8Array | null> {
  if (bytes.length < SAMPLE * 2) return null;
  const mid = Math.floor(bytes.length / 2);
  const sample = await compress(bytes.subarray(mid, mid + SAMPLE), "deflate-raw");
  if (sample.length > SAMPLE * WORTH) return null;
  const packed = await compress(bytes, "deflate-raw");
  return packed.length <= bytes.length * WORTH ? packed : null;
}
