// How a reader asks groups for an object's chunks (gateway/data/read.ts): a group's share of the
// prefetch window goes in as few getChunks calls as fit one RPC reply, by count and by bytes,
// and a reply is used only if it has a chunk for each one asked.

import { describe, expect, it } from "vitest";
import type { Chid } from "../../common/ids.ts";
import type { ChunkRef, VersionManifest } from "../../common/manifest.ts";
import { objectBody, ReplyCountMismatch } from "../../workers/gateway/data/read.ts";
import { MAX_BATCH_BYTES, MAX_GET_BATCH, type ClusterConfig, type Env } from "../../workers/shared/env.ts";

const MiB = 1024 * 1024;

function calls(sizes: number[]): Chid[][] {
  const asked: Chid[][] = [];
  const never = new Promise<never>(() => {});
  const stub = {
    getChunk: (chid: Chid) => (asked.push([chid]), never),
    getChunks: (chids: Chid[]) => (asked.push(chids), never),
  };
  const env = { GROUP: { idFromName: (n: string) => n, get: () => stub } } as unknown as Env;
  let offset = 0;
  const chunks: ChunkRef[] = sizes.map((length, i) => {
    const ref = { offset, length, chid: `00000000${i.toString(16).padStart(56, "0")}` as Chid };
    offset += length;
    return ref;
  });
  const vm = { inline: null, chunks } as unknown as VersionManifest;
  objectBody({ env, cfg: { groupCount: 1, readAheadBytes: 8 << 20 } as ClusterConfig, near: null }, vm, { start: 0, end: offset });
  return asked;
}

describe("reads batched per group", () => {
  it("splits a group's share so that no reply exceeds MAX_BATCH_BYTES", () => {
    const asked = calls(Array(6).fill(8 * MiB));
    expect(asked.flat()).toHaveLength(6);
    for (const c of asked) expect(c.length * 8 * MiB).toBeLessThanOrEqual(MAX_BATCH_BYTES);
  });

  it("asks for a window of small chunks in one call, at most MAX_GET_BATCH", () => {
    const asked = calls(Array(200).fill(16 * 1024));
    expect(asked).toHaveLength(1);
    expect(asked[0]).toHaveLength(MAX_GET_BATCH);
  });

  it("fails the read when a group returns another number of chunks than asked", async () => {
    const stub = { getChunks: async (chids: Chid[]) => chids.slice(1).map(() => new Uint8Array(4)) };
    const env = { GROUP: { idFromName: (n: string) => n, get: () => stub } } as unknown as Env;
    const chunks = [0, 1].map((i) => ({ offset: 4 * i, length: 4, chid: `00000000${String(i).padStart(56, "0")}` as Chid }));
    const body = objectBody({ env, cfg: { groupCount: 1, readAheadBytes: 8 << 20 } as ClusterConfig, near: null }, { inline: null, chunks } as unknown as VersionManifest, { start: 0, end: 8 });
    await expect(body.ready).rejects.toBeInstanceOf(ReplyCountMismatch);
  });
});
