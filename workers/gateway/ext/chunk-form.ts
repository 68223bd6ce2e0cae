// A version's chunks as they are stored (seed 003: "a client that asks for it may get the
// stored compressed form"): the layout — offsets, logical and stored lengths, encodings, never
// chunk ids — and one chunk's stored bytes, compressed as they are on the targets. A client
// that relays or caches compressed data takes it without a decompress-recompress round.
//
//   GET /{bucket}/{key}?chunks[&versionId=]      → JSON layout
//   GET /{bucket}/{key}?chunk=N[&versionId=]     → chunk N's stored bytes (a slice: the whole
//                                                  chunk, with x-edgestore-chunk-skip/-whole)

import { groupOf } from "../../../common/ids.ts";
import { base64Decode } from "../../../common/manifest.ts";
import { allLeaves, leafAt, leafTotal } from "../../../common/manifest-tree.ts";
import { nodeLoader } from "../data/tree.ts";
import { groupStub } from "../../shared/env.ts";
import type { RequestContext } from "../s3/context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { existingVersion, versionHeader } from "../s3/object-get.ts";
import type { VersionId } from "../params.ts";
import { jsonResponse } from "./json.ts";

/** Chunks one layout answer lists: about 32 GiB of object at 128 KiB chunks. */
const LAYOUT_MAX = 262_144;

export async function getChunkLayout(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId }): Promise<Response> {
  const { info, vm, isNull } = await existingVersion(ctx, at.bucket, at.key, at.versionId);
  // A tree's chunks are its leaves: a client sees one list, however the manifest keeps it.
  const count = leafTotal(vm.chunks);
  if (count > LAYOUT_MAX) {
    throw new S3Error("InvalidRequest", `This version has ${count} chunks; a layout lists at most ${LAYOUT_MAX} (one answer held in memory): ask for chunks by number with ?chunk=N`);
  }
  const chunks =
    vm.inline !== null
      ? [{ index: 0, offset: 0, length: vm.size, encoding: null, storedLength: vm.size }]
      : (await allLeaves(vm.chunks, nodeLoader(ctx))).map((c, index) => ({
          index,
          offset: c.offset,
          length: c.length,
          encoding: c.enc ?? null,
          storedLength: c.enc ? c.stored! : (c.whole ?? c.length),
          // A slice: these bytes are [skip, skip+length) of a chunk of `whole` logical bytes.
          ...(c.whole !== undefined ? { skip: c.skip!, whole: c.whole } : {}),
        }));
  const res = jsonResponse({ size: vm.size, chunks });
  for (const [k, v] of Object.entries(versionHeader(info, vm.uvid, isNull))) res.headers.set(k, v);
  return res;
}

export async function getStoredChunk(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId; chunk: number }): Promise<Response> {
  const n = at.chunk;
  const { info, vm, isNull } = await existingVersion(ctx, at.bucket, at.key, at.versionId);
  const count = vm.inline !== null ? 1 : leafTotal(vm.chunks);
  if (n >= count) throw new S3Error("InvalidArgument", `chunk is a whole number below ${count} (the version's chunk count)`, { ArgumentName: "chunk", ArgumentValue: String(n) });
  const headers: Record<string, string> = { "content-type": "application/octet-stream", ...versionHeader(info, vm.uvid, isNull) };
  if (vm.inline !== null) {
    const bytes = base64Decode(vm.inline);
    return new Response(bytes, { headers: { ...headers, "x-edgestore-chunk-encoding": "identity", "x-edgestore-chunk-offset": "0", "x-edgestore-chunk-length": String(bytes.length) } });
  }
  const ref = (await leafAt(vm.chunks, n, nodeLoader(ctx)))!;
  const g = groupOf(ref.chid, ctx.cfg.groupCount);
  // The group returns only bytes that hash to the CHID: what is sent is verified.
  const stored = await groupStub(ctx.env, g).getChunk(ref.chid, ctx.near);
  return new Response(stored, {
    headers: {
      ...headers,
      ...(ref.whole !== undefined ? { "x-edgestore-chunk-skip": String(ref.skip!), "x-edgestore-chunk-whole": String(ref.whole) } : {}),
      "x-edgestore-chunk-encoding": ref.enc ?? "identity",
      "x-edgestore-chunk-offset": String(ref.offset),
      "x-edgestore-chunk-length": String(ref.length),
    },
  });
}
