// The read half of the data path: stream an object's bytes in [start, end) by fetching its
// chunks from their groups in order, a few ahead of the client. Each group returns only bytes
// that hash to the CHID (a bad replica is skipped there), so what is streamed is verified.

import { awaitedLater, deferred, type Deferred } from "../../../common/deferred.ts";
import { groupOf, type Chid } from "../../../common/ids.ts";
import { base64Decode, chunksInRange, isNode, type ChunkRef, type VersionManifest } from "../../../common/manifest.ts";
import { leafRuns } from "../../../common/manifest-tree.ts";
import { nodeLoader } from "./tree.ts";
import { logicalBytes } from "../../../common/chunk-encoding.ts";
import { groupStub, MAX_BATCH_BYTES, MAX_GET_BATCH, type ClusterConfig, type Env } from "../../shared/env.ts";
import { Unavailable } from "../../shared/unavailable.ts";

/**
 * Chunks fetched ahead of the one being sent, to overlap group round trips with sending: at
 * least PREFETCH_MIN chunks, and more while they add up to less than the read-ahead
 * (READ_AHEAD_BYTES: the targets' bandwidth × round trip), so small chunks keep as many bytes
 * in flight as large ones (a round trip costs the same for 64 KiB as for 1 MiB). At most what
 * one getChunks call may ask for per 8 MiB of read-ahead.
 */
const PREFETCH_MIN = 6;
const PREFETCH_UNIT = 8 * 1024 * 1024;
/** Chunks already sent kept in a tree's list before they are let go of in one splice. */
const RUN_KEEP = 4096;

/** The bytes a group sends back for a ref: the whole stored chunk, even for a slice of it. */
function storedSize(ref: ChunkRef): number {
  return ref.stored ?? ref.whole ?? ref.length;
}

/** One getChunks call's worth for one group. */
interface Batch {
  group: number;
  chids: Chid[];
  waiting: Deferred<Uint8Array>[];
  bytes: number;
}

/** A group answered a getChunks call with another number of chunks than it was asked for: none of them is used, and the read may be retried. */
export class ReplyCountMismatch extends Unavailable {
  constructor(group: number, asked: number, got: number) {
    super(`group ${group} returned ${got} chunks for the ${asked} asked`);
    this.name = "ReplyCountMismatch";
  }
}

export interface BodySource {
  /** Resolves once the first piece is available, so a failure can still become an error status. */
  ready: Promise<void>;
  stream: ReadableStream<Uint8Array>;
}

/** Who reads: the cluster, and the reader's location (`near`), so each chunk is served by the healthy holder nearest to it. */
export interface Reader {
  env: Env;
  cfg: ClusterConfig;
  near: string | null;
}

/** Bytes [start, end) of a version. */
export function objectBody(reader: Reader, vm: VersionManifest, range: { start: number; end: number }): BodySource {
  const { env, cfg, near } = reader;
  const { start, end } = range;
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
  // A list with no node in the range is read as it is; a tree hands its chunks over a node's
  // run at a time, the next run found while the read-ahead reaches it.
  const top = chunksInRange(vm.chunks, start, end);
  const leaves = top.every((e): e is ChunkRef => !isNode(e)) ? top : null;
  const flat = leaves !== null;
  const runs = flat ? null : leafRuns(vm.chunks, range, nodeLoader(reader));
  const refs: ChunkRef[] = leaves ?? [];
  let more: Promise<void> | null = null;
  let ended = flat;
  let failed: unknown = null;
  // A reader that went away stops the read-ahead, and finding the next run, where they are.
  let cancelled = false;
  const prefetchBytes = cfg.readAheadBytes;
  const prefetchMax = MAX_GET_BATCH * Math.max(1, Math.ceil(prefetchBytes / PREFETCH_UNIT));
  const queue: Promise<Uint8Array>[] = [];
  let next = 0;
  let ahead = 0;
  const findMore = () => {
    if (ended || more || !runs || cancelled) return;
    more = runs.next().then(
      (r) => {
        if (r.done) ended = true;
        else refs.push(...r.value);
        more = null;
        fill();
      },
      (e: unknown) => {
        failed = e;
        ended = true;
        more = null;
      },
    );
  };
  // The window is topped up once it has half emptied, so that each top-up asks each group for
  // several chunks in one call (getChunks) rather than for one chunk per call.
  const fill = () => {
    if (cancelled) return;
    if (queue.length >= PREFETCH_MIN / 2 && ahead >= prefetchBytes / 2) return;
    // A group's share goes in one call while it fits one reply (MAX_BATCH_BYTES, MAX_GET_BATCH), else in several.
    const current = new Map<number, Batch>();
    const batches: Batch[] = [];
    while (next < refs.length && queue.length < prefetchMax && (queue.length < PREFETCH_MIN || ahead + refs[next]!.length <= prefetchBytes)) {
      const ref = refs[next++]!;
      ahead += ref.length;
      const g = groupOf(ref.chid, cfg.groupCount);
      const size = storedSize(ref);
      let batch = current.get(g);
      if (!batch || batch.chids.length >= MAX_GET_BATCH || batch.bytes + size > MAX_BATCH_BYTES) {
        batch = { group: g, chids: [], waiting: [], bytes: 0 };
        current.set(g, batch);
        batches.push(batch);
      }
      const s = deferred<Uint8Array>();
      batch.chids.push(ref.chid);
      batch.waiting.push(s);
      batch.bytes += size;
      queue.push(awaitedLater(s.promise));
    }
    if (next === refs.length) findMore();
    for (const b of batches) {
      const g = b.group;
      const stub = groupStub(env, g);
      const got: Promise<Uint8Array[]> = b.chids.length === 1 ? stub.getChunk(b.chids[0]!, near).then((x) => [x]) : stub.getChunks(b.chids, near);
      got.then(
        (all) => {
          if (all.length !== b.chids.length) {
            const e = new ReplyCountMismatch(g, b.chids.length, all.length);
            b.waiting.forEach((s) => s.reject(e));
          } else b.waiting.forEach((s, i) => s.resolve(all[i]!));
        },
        (e: unknown) => b.waiting.forEach((s) => s.reject(e instanceof Error ? e : new Error(String(e)))),
      );
    }
  };
  /** The next chunk's place in `refs` once it is there (false: the object's range is all sent). */
  const arrived = async (): Promise<boolean> => {
    while (sent === refs.length && !ended) {
      findMore();
      await more;
    }
    if (failed !== null) throw failed;
    return sent < refs.length;
  };
  fill();
  let sent = 0;
  const ready = flat ? (queue.length > 0 ? queue[0]!.then(() => {}) : Promise.resolve()) : arrived().then(async (any) => (any ? void (await queue[0]) : undefined));
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!(await arrived())) {
          controller.close();
          return;
        }
        const stored = await queue.shift()!;
        const ref = refs[sent++]!;
        ahead -= ref.length;
        // What was sent is let go of, so a tree of any size holds only its read-ahead.
        if (sent >= RUN_KEEP) {
          refs.splice(0, sent);
          next -= sent;
          sent = 0;
        }
        fill();
        const bytes = await logicalBytes(ref, stored);
        const s = Math.max(start, ref.offset) - ref.offset;
        const e = Math.min(end, ref.offset + ref.length) - ref.offset;
        controller.enqueue(bytes.subarray(s, e));
      },
      async cancel() {
        cancelled = true;
        await runs?.return(undefined);
      },
    },
    { highWaterMark: 0 },
  );
  return { ready, stream };
}
