// Internal blobs stored in the cluster like any object body (chunked, content-addressed, R
// replicas), but named by no version: the pages and root of a snapshot manifest. A blob is
// small enough to be read whole (a page is at most a few hundred KiB).

import { groupOf } from "../../../common/ids.ts";
import { logicalBytes } from "../../../common/chunk-encoding.ts";
import { groupStub, type ClusterConfig, type Env } from "../../shared/env.ts";
import type { StoredBlob } from "../../snapshots/manifest.ts";
import { ingest } from "./ingest.ts";

/** Stores the bytes; resolves once every chunk is on R targets. `sha256` (hex) names the content. */
export async function storeBlob(env: Env, cfg: ClusterConfig, bytes: Uint8Array): Promise<StoredBlob & { sha256: string }> {
  const r = await ingest(env, cfg, new Response(bytes).body, { sha256: true, sizeHint: bytes.length, checksum: null, noInline: true });
  await r.stored;
  return { size: r.size, chunks: r.chunks, sha256: r.sha256! };
}

/** The blob's bytes, every chunk verified against its CHID by its group. */
export async function readBlob(env: Env, cfg: ClusterConfig, blob: StoredBlob): Promise<Uint8Array> {
  const parts = await Promise.all(
    blob.chunks.map(async (c) => logicalBytes(c, await groupStub(env, groupOf(c.chid, cfg.groupCount)).getChunk(c.chid))),
  );
  const out = new Uint8Array(blob.size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
