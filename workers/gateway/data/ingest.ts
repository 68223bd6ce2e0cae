// The write half of the data path: read a body in large pieces, cut it into content-defined
// chunks, name each by its SHA-256, and put each chunk to its group while the next ones are
// being read and hashed. The MD5 (ETag) and, when the client signed it, the SHA-256 of the whole
// body are computed on the way. At most IN_FLIGHT_BYTES of chunks are held at once, so memory
// does not grow with the object.

import { Chunker } from "../../../common/chunker.ts";
import { gearScan } from "./gear-scan.ts";
import { chidOf, groupOf, toHex, type Chid } from "../../../common/ids.ts";
import type { ChecksumAlgorithm, ChunkRef } from "../../../common/manifest.ts";
import { compressIfWorth } from "../../../common/chunk-encoding.ts";
import { groupStub, MAX_BATCH_BYTES, type ClusterConfig, type Env } from "../../shared/env.ts";
import { checksumOf, newChecksummer } from "../../../common/s3/checksums.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { digestStreams } from "./digest-stream.ts";
import { holdChunksAgain } from "./references.ts";

const READ_PIECE = 1024 * 1024;
const IN_FLIGHT_BYTES = 16 * 1024 * 1024;

export interface IngestResult {
  size: number;
  md5: string;
  /** Hex SHA-256 of the body, when asked for. */
  sha256: string | null;
  /** Base64 of the additional checksum asked for (x-amz-checksum-*), if any. */
  checksum: string | null;
  chunks: ChunkRef[];
  /** The body itself when it is small enough to live in the manifest. */
  inline: Uint8Array | null;
  /**
   * Resolves when every chunk is confirmed on R targets, rejects if any put failed. The body is
   * fully read and hashed when ingest returns, but the last chunks may still be on their way,
   * so the caller can put the version manifest meanwhile and commit it only after this.
   */
  stored: Promise<void>;
}

type Reader = { read(): Promise<{ done: boolean; value?: Uint8Array }> };

/**
 * Prefer a BYOB reader that fills large buffers; fall back for streams that are not byte
 * streams. The buffer is no larger than the body needs: a new ArrayBuffer is zeroed, and a
 * 1 MiB one for a 4 KiB PUT was measurable.
 */
function piecewiseReader(body: ReadableStream<Uint8Array>, sizeHint: number): Reader {
  let byob: ReadableStreamBYOBReader | null = null;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    return body.getReader();
  }
  const piece = Math.max(1, Math.min(READ_PIECE, sizeHint));
  let buf = new ArrayBuffer(piece);
  return {
    async read() {
      const r = await byob!.readAtLeast(Math.ceil(piece / 2), new Uint8Array(buf, 0, piece));
      const value = r.value as Uint8Array | undefined;
      // The read transferred our buffer; reuse the one it came back in.
      if (value) buf = value.buffer as ArrayBuffer;
      return { done: r.done, value };
    },
  };
}

/**
 * A body declared no larger than INLINE_MAX is read whole and hashed in one call each: it will
 * live inside its manifest, and the streaming machinery below (a digest stream, the chunker,
 * a reader loop) cost ~0.35 ms of the Worker thread per small PUT, a sixth of all it does for
 * one. The read is bounded: the runtime delivers no more than Content-Length, and the
 * aws-chunked decoder no more than the decoded length.
 */
async function ingestSmall(body: ReadableStream<Uint8Array>, opts: IngestOptions): Promise<IngestResult> {
  const bytes = new Uint8Array(await new Response(body).arrayBuffer());
  const [md5, sha, checksum] = await Promise.all([
    crypto.subtle.digest("MD5", bytes),
    opts.sha256 ? crypto.subtle.digest("SHA-256", bytes) : Promise.resolve(null),
    opts.checksum ? checksumOf(opts.checksum, bytes) : Promise.resolve(null),
  ]);
  return {
    size: bytes.length,
    md5: toHex(new Uint8Array(md5)),
    sha256: sha ? toHex(new Uint8Array(sha)) : null,
    checksum,
    chunks: [],
    inline: bytes,
    stored: Promise.resolve(),
  };
}

/**
 * A chunk's hold runs from its put: the version's references must reach its group before the
 * hold runs out, or it is reclaimed under an acknowledged write. A write that took more than a
 * quarter of the hold (a slow client, a large body, a short CHUNK_HOLD_SECONDS) holds every
 * chunk again first, which leaves the commit and the reference push at least 3/4 of a hold; a
 * chunk already reclaimed fails the write instead of acknowledging a version without its data.
 * Faster writes, nearly all of them, pay nothing.
 */
async function holdIfSlow(env: Env, cfg: ClusterConfig, refs: readonly ChunkRef[], firstPutAt: number | null): Promise<void> {
  if (firstPutAt === null || Date.now() - firstPutAt <= cfg.chunkHoldMs / 4) return;
  const gone = await holdChunksAgain(env, cfg, refs);
  if (gone.length > 0) {
    throw new S3Error("InternalError", `this write took longer than CHUNK_HOLD_SECONDS (${cfg.chunkHoldMs / 1000} s) and ${gone.length} of its chunks were reclaimed meanwhile: nothing was stored, send it again`);
  }
}

export interface IngestOptions {
  /** Compute the SHA-256 of the whole body (a signed payload hash to check). */
  sha256: boolean;
  /** The declared length: it only chooses the path and sizes read buffers (the body is counted, not trusted). */
  sizeHint: number;
  /** An additional checksum to compute over the body. */
  checksum: ChecksumAlgorithm | null;
  /** Never keep the body inline, whatever its size (a part of a multipart upload). */
  noInline?: boolean;
  /** Copies of each chunk (x-edgestore-replicas); absent: the cluster's R. */
  replicas?: number | null;
  /** Refuse a body past this many bytes while reading it (one whose length was not declared). */
  maxSize?: number;
}

export async function ingest(env: Env, cfg: ClusterConfig, body: ReadableStream<Uint8Array> | null, opts: IngestOptions): Promise<IngestResult> {
  if (body && opts.sizeHint <= cfg.inlineMax && !opts.noInline) {
    const small = await ingestSmall(body, opts);
    // A body longer than declared is refused by the caller's length check; it is still only
    // kept inline if it fits.
    if (small.size <= cfg.inlineMax) return small;
    return ingest(env, cfg, new Response(small.inline).body, { ...opts, sizeHint: small.size });
  }
  const md5 = new crypto.DigestStream("MD5");
  const md5w = md5.getWriter();
  const sha = opts.sha256 ? new crypto.DigestStream("SHA-256") : null;
  const shaw = sha?.getWriter() ?? null;
  const extra = opts.checksum ? newChecksummer(opts.checksum, digestStreams) : null;
  const chunker = new Chunker(cfg.chunk, gearScan);
  const refs: ChunkRef[] = [];
  let offset = 0;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  let failure: unknown = null;
  let tail: Uint8Array[] = [];
  let firstPutAt: number | null = null;

  // Natural batching: a group gets at most one putChunks call at a time from this request; the
  // chunks cut for it meanwhile wait and go together in its next call, so one proposal and one
  // bid round cover them all. An idle group gets each chunk at once, so nothing waits for a
  // batch to fill.
  const queues = new Map<number, { busy: boolean; chunks: { chid: Chid; bytes: Uint8Array }[] }>();
  const flush = (g: number): void => {
    const q = queues.get(g)!;
    if (q.busy || q.chunks.length === 0) return;
    let bytes = 0;
    let n = 0;
    while (n < q.chunks.length && (n === 0 || bytes + q.chunks[n]!.bytes.length <= MAX_BATCH_BYTES)) bytes += q.chunks[n++]!.bytes.length;
    const batch = q.chunks.splice(0, n);
    q.busy = true;
    const p: Promise<void> = groupStub(env, g)
      .putChunks(batch, opts.replicas ?? null)
      .catch((e: unknown) => {
        failure ??= e;
      })
      .finally(() => {
        inFlight -= bytes;
        q.busy = false;
        pending.delete(p);
        flush(g);
      });
    pending.add(p);
  };

  const dispatch = async (raw: Uint8Array): Promise<void> => {
    // Stored compressed where that saves space; the CHID names the stored bytes either way.
    const packed = cfg.compress ? await compressIfWorth(raw) : null;
    const chunk = packed ?? raw;
    const chid = await chidOf(chunk);
    refs.push(packed ? { offset, length: raw.length, chid, enc: "deflate-raw", stored: packed.length, raw: await chidOf(raw) } : { offset, length: raw.length, chid });
    offset += raw.length;
    while (inFlight > 0 && inFlight + chunk.length > IN_FLIGHT_BYTES && failure === null) await Promise.race(pending);
    if (failure !== null) throw failure;
    const g = groupOf(chid, cfg.groupCount);
    firstPutAt ??= Date.now();
    inFlight += chunk.length;
    let q = queues.get(g);
    if (!q) queues.set(g, (q = { busy: false, chunks: [] }));
    q.chunks.push({ chid, bytes: chunk as Uint8Array<ArrayBuffer> });
    flush(g);
  };

  let size = 0;
  if (body) {
    const reader = piecewiseReader(body, opts.sizeHint);
    for (;;) {
      const { done, value } = await reader.read();
      if (value && value.length > 0) {
        size += value.length;
        // What was stored so far is referenced by nothing, and reclaimed as such.
        if (opts.maxSize !== undefined && size > opts.maxSize) throw new S3Error("EntityTooLarge", `Your proposed upload exceeds the maximum allowed size (${opts.maxSize} bytes)`, { MaxSizeAllowed: String(opts.maxSize) });
        await md5w.write(value);
        if (shaw) await shaw.write(value);
        if (extra) await extra.update(value);
        for (const c of chunker.push(value)) await dispatch(c);
      }
      if (done) break;
    }
  }
  tail = chunker.finish();
  let inline: Uint8Array | null = null;
  if (refs.length === 0 && size <= cfg.inlineMax && !opts.noInline) {
    inline = new Uint8Array(size);
    let at = 0;
    for (const t of tail) {
      inline.set(t, at);
      at += t.length;
    }
  } else {
    for (const c of tail) await dispatch(c);
  }
  // A finishing call starts its group's next batch, so wait until nothing is pending at all.
  const stored = (async () => {
    while (pending.size > 0) await Promise.all(pending);
    if (failure !== null) throw failure;
    await holdIfSlow(env, cfg, refs, firstPutAt);
  })();
  // The caller may find the body bad and never wait for this: do not let it go unhandled.
  stored.catch(() => {});
  await md5w.close();
  if (shaw) await shaw.close();
  return {
    size,
    md5: toHex(new Uint8Array(await md5.digest)),
    sha256: sha ? toHex(new Uint8Array(await sha.digest)) : null,
    checksum: extra ? await extra.result() : null,
    chunks: refs,
    inline,
    stored,
  };
}
