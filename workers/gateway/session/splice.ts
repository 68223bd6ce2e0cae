// Where an edit lands in a pending version's chunk list. Chunks are immutable, so an edit over
// [a, b) keeps every chunk wholly outside it, drops every chunk wholly inside it, and keeps the
// unchanged part of a chunk it cuts through at either edge as a slice of it (manifest.ts
// sliceOf): on the server, so the client never handles a chunk, and without re-storing bytes.

import type { ChunkRef } from "../../../common/manifest.ts";

export interface Cut {
  /** Chunks wholly before the edit, kept as they are. */
  before: ChunkRef[];
  /** The chunk cut by the edit's start, whose bytes [offset, a) are kept; null if none. */
  left: ChunkRef | null;
  /** The chunk cut by the edit's end, whose bytes [b, end) are kept; null if none. */
  right: ChunkRef | null;
  /** Chunks wholly after the edit, kept as they are. */
  after: ChunkRef[];
}

/** How an edit over [a, b) (a < b, a ≤ the content's size) cuts a chunk list sorted by offset. */
export function cutAt(chunks: readonly ChunkRef[], a: number, b: number): Cut {
  const cut: Cut = { before: [], left: null, right: null, after: [] };
  for (const c of chunks) {
    const end = c.offset + c.length;
    if (end <= a) cut.before.push(c);
    else if (c.offset >= b) cut.after.push(c);
    else {
      if (c.offset < a) cut.left = c;
      if (end > b) cut.right = c;
    }
  }
  return cut;
}

/** Chunk refs stored for a region starting at `base`, moved to their place in the object. */
export function placed(refs: readonly ChunkRef[], base: number): ChunkRef[] {
  return refs.map((r) => ({ ...r, offset: r.offset + base }));
}

/** The chunks of content cut to `size`: those wholly below it, and the one it cuts through (if any). */
export function cutTo(chunks: readonly ChunkRef[], size: number): { kept: ChunkRef[]; cut: ChunkRef | null } {
  const kept: ChunkRef[] = [];
  let cut: ChunkRef | null = null;
  for (const c of chunks) {
    if (c.offset + c.length <= size) kept.push(c);
    else if (c.offset < size) cut = c;
  }
  return { kept, cut };
}
