// The read half of the data path: stream an object's bytes in [start, end) by fetching its
// chunks from their groups in order, a few ahead of the client. Each group returns only bytes
// that hash to the CHID (a bad replica is skipped there), so what is streamed is verified.

import { deferred, type Deferred } from "../../../common/deferred.ts";
import { groupOf, type Chid } from "../../../common/ids.ts";
import { base64Decode, chunksInRange, type VersionManifest } from "../../../common/manifest.ts";
import { logicalBytes } from "../../../common/chunk-encoding.ts";
import { groupStub, type ClusterConfig, type Env } from "../../shared/env.ts";

/**
 * Chunks fetched ahead of the one being sent, to overlap group round trips with sending: at
 * least PREFETCH_MIN chunks, and more while they add up to less than PREFETCH_BYTES, so small
 * chunks keep as many bytes in flight as large ones (a round trip costs the same for 64 KiB
 * as for 1 MiB).
 */
const PREFETCH_MIN = 6;
const PREFETCH_MAX = 64;
const PREFETCH_BYTES = 8 * 1024 * 1024;

export interface BodySource {
  /** Resolves once the first piece is available, so a failure can still become an error status. */
  ready: Promise<void>;
  stream: ReadableStream<Uint8Array>;
}

/** `near`: the reader's location; each chunk is served by the holder nearest to it that is healthy. */
export function objectBody(env: Env, cfg: ClusterConfig, vm: VersionManifest, start: number, end: number, near: string | null): BodySource {
  if (vm.inline !== null) {
    const bytes = base64Decode(vm.inline).subarray(start, end);
    return {
      ready: Promise.resolve(),
      stream: new ReadableStream({
        start(c) {
          if (bytes.length > 0) c.enqueue(bytes);
          c.close();
        },
      }),
    };
  }
  const refs = chunksInRange(vm.chunks, start, end);
  const queue: Promise<Uint8Array>[] = [];
  let next = 0;
  let ahead = 0;
  // The window is topped up once it has half emptied, so that each top-up asks each group for
  // several chunks in one call (getChunks) rather than for one chunk per call.
  const fill = () => {
    if (queue.length >= PREFETCH_MIN / 2 && ahead >= PREFETCH_BYTES / 2) return;
    const byGroup = new Map<number, { chids: Chid[]; waiting: Deferred<Uint8Array>[] }>();
    while (next < refs.length && queue.length < PREFETCH_MAX && (queue.length < PREFETCH_MIN || ahead + refs[next]!.length <= PREFETCH_BYTES)) {
      const ref = refs[next++]!;
      ahead += ref.length;
      const g = groupOf(ref.chid, cfg.groupCount);
      const batch = byGroup.get(g) ?? { chids: [], waiting: [] };
      byGroup.set(g, batch);
      const s = deferred<Uint8Array>();
      batch.chids.push(ref.chid);
      batch.waiting.push(s);
      s.promise.catch(() => {});
      queue.push(s.promise);
    }
    for (const [g, b] of byGroup) {
      const stub = groupStub(env, g);
      const got: Promise<Uint8Array[]> = b.chids.length === 1 ? stub.getChunk(g, b.chids[0]!, near).then((x) => [x]) : stub.getChunks(g, b.chids, near);
      got.then(
        (all) => b.waiting.forEach((s, i) => s.resolve(all[i]!)),
        (e: unknown) => b.waiting.forEach((s) => s.reject(e instanceof Error ? e : new Error(String(e)))),
      );
    }
  };
  fill();
  let sent = 0;
  const ready = queue.length > 0 ? queue[0]!.then(() => {}) : Promise.resolve();
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (sent === refs.length) {
          controller.close();
          return;
        }
        const stored = await queue.shift()!;
        const ref = refs[sent++]!;
        ahead -= ref.length;
        fill();
        const bytes = await logicalBytes(ref, stored);
        const s = Math.max(start, ref.offset) - ref.offset;
        const e = Math.min(end, ref.offset + ref.length) - ref.offset;
        controller.enqueue(bytes.subarray(s, e));
      },
    },
    { highWaterMark: 0 },
  );
  return { ready, stream };
}
