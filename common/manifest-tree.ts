// Manifest trees: a chunk list too long for one manifest (or for one multipart part's row) is
// stored as nodes, each a list of at most a fan-out's entries, itself stored as a chunk: content
// addressed, R copies, verified by its CHID when read. A node's entries count their offsets from
// the node's start, so the same node serves wherever its bytes sit (a part in any upload, a copy
// of a range). Readers walk only the nodes their range touches; the n-th chunk is found by the
// leaf counts every node ref carries.

import { chidOf, type Chid } from "./ids.ts";
import { chunksInRange, chunkToWire, chunkFromWire, isNode, type ChunkRef, type ChunkWire, type Extent, type NodeRef } from "./manifest.ts";

export const NODE_FORMAT = 1;

/** How deep a tree may go: 16 levels of even 2 entries cover more than any S3 object's chunks. */
const MAX_DEPTH = 48;

/** Leaves handed on at once by `leafRuns`: a read streams one run while the next is found. */
const RUN_MAX = 4096;

/** Stores one node (its bytes hash to `chid`); resolves once it is on R targets. */
export type StoreNode = (node: { chid: Chid; bytes: Uint8Array }) => Promise<void>;

/** A node's entries (offsets from 0), read and checked against the ref that names it. */
export type LoadNode = (ref: NodeRef) => Promise<Extent[]>;

/**
 * What a tree is built to: nodes of at most `fanout` entries and `maxBytes` encoded (a node is
 * read and stored as a chunk, within a chunk's limit), until at most `maxTop` entries remain.
 */
export interface TreeShape {
  fanout: number;
  maxBytes: number;
  maxTop: number;
}

/** Bytes an entry adds to its node's encoding (its wire form and a separator). */
function encodedSize(e: Extent, base: number): number {
  return JSON.stringify(chunkToWire({ ...e, offset: e.offset - base })).length + 1;
}

/** The framing of a node's encoding around its entries. */
const NODE_FRAME_BYTES = encodeNode([]).length;

export class BadNode extends Error {
  constructor(chid: Chid, why: string) {
    super(`manifest node ${chid}: ${why}`);
    this.name = "BadNode";
  }
}

export function encodeNode(entries: readonly Extent[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ format: NODE_FORMAT, node: entries.map(chunkToWire) }));
}

/**
 * A node's bytes as its entries: they must start at 0, follow each other without a gap, and add
 * up to the length and leaf count the ref names. Anything else is a BadNode, never a guess.
 */
export function decodeNode(ref: NodeRef, bytes: Uint8Array): Extent[] {
  const entries = nodeEntries(ref.chid, bytes);
  const at = entries.reduce((n, e) => n + e.length, 0);
  const leaves = leafTotal(entries);
  if (at !== ref.length || leaves !== ref.leaves) throw new BadNode(ref.chid, `covers ${at} bytes in ${leaves} chunks, not the ${ref.length} in ${ref.leaves} its ref names`);
  return entries;
}

/** A node's entries, checked to start at 0 and follow each other (what a group storing one checks). */
export function nodeEntries(chid: Chid, bytes: Uint8Array): Extent[] {
  const ref = { chid };
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new BadNode(ref.chid, "not JSON");
  }
  const r = raw as { format?: unknown; node?: unknown };
  if (typeof raw !== "object" || raw === null || Object.keys(raw).length !== 2 || r.format !== NODE_FORMAT || !Array.isArray(r.node) || r.node.length === 0) {
    throw new BadNode(ref.chid, "not a node");
  }
  const entries = (r.node as unknown[]).map((w) => {
    if (!isEntryWire(w)) throw new BadNode(ref.chid, "an entry is malformed");
    return chunkFromWire(w);
  });
  let at = 0;
  for (const e of entries) {
    if (e.offset !== at) throw new BadNode(ref.chid, `entries must follow each other from 0 (expected ${at}, got ${e.offset})`);
    at += e.length;
  }
  return entries;
}

const count = (v: unknown, min: number): boolean => Number.isSafeInteger(v) && (v as number) >= min;
const hash = (v: unknown): boolean => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
const encoding = (v: unknown): boolean => v === "gzip" || v === "deflate-raw";

/** Whether `w` is one of the wire forms `chunkToWire` writes, every field in range. */
function isEntryWire(w: unknown): w is ChunkWire {
  if (!Array.isArray(w) || !count(w[0], 0) || !count(w[1], 1) || !hash(w[2])) return false;
  switch (w.length) {
    case 3:
      return true;
    case 5:
      return w[3] === "node" && count(w[4], 1);
    case 6:
      return encoding(w[3]) && count(w[4], 1) && hash(w[5]);
    case 8: {
      const stored = w[3] === null ? w[4] === null && w[5] === null : encoding(w[3]) && count(w[4], 1) && hash(w[5]);
      return stored && count(w[6], 0) && count(w[7], 1) && (w[6] as number) + (w[1] as number) <= (w[7] as number);
    }
    default:
      return false;
  }
}

/** The chunks a list stands for, nodes counted by what they hold. */
export function leafTotal(entries: readonly Extent[]): number {
  return entries.reduce((n, e) => n + leafCount(e), 0);
}

/** The bytes a list covers, from its first entry's offset to its last one's end. */
export function spanOf(entries: readonly Extent[]): { start: number; end: number } {
  const last = entries.at(-1);
  return { start: entries[0]?.offset ?? 0, end: last ? last.offset + last.length : 0 };
}

export function leafCount(e: Extent): number {
  return isNode(e) ? e.leaves : 1;
}

export function hasNodes(entries: readonly Extent[]): boolean {
  return entries.some(isNode);
}

/**
 * `entries` as a tree: runs of `fanout` entries become nodes (stored by `store`, a few at a
 * time), level on level, until at most `maxTop` entries remain, which are returned. A list short
 * enough is returned as it is; a run of one entry stays that entry.
 */
export async function buildTree(entries: readonly Extent[], shape: TreeShape, store: StoreNode): Promise<Extent[]> {
  if (shape.fanout < 2 || shape.maxTop < 1) throw new Error(`a tree needs a fan-out of 2 or more and room for 1 entry at the top, not ${shape.fanout} and ${shape.maxTop}`);
  let level: Extent[] = [...entries];
  while (level.length > shape.maxTop) {
    const next: Extent[] = [];
    const nodes: { chid: Chid; bytes: Uint8Array }[] = [];
    for (let i = 0; i < level.length; ) {
      // A run ends at `fanout` entries or where one more would pass `maxBytes`; it has at
      // least two entries (any two fit a chunk's limit), so every level is shorter than the last.
      const base = level[i]!.offset;
      let bytes = NODE_FRAME_BYTES + encodedSize(level[i]!, base);
      let j = i + 1;
      while (j < level.length && j - i < shape.fanout) {
        const more = encodedSize(level[j]!, base);
        if (j - i >= 2 && bytes + more > shape.maxBytes) break;
        bytes += more;
        j++;
      }
      const run = level.slice(i, j);
      i = j;
      if (run.length === 1) {
        next.push(run[0]!);
        continue;
      }
      const node = encodeNode(run.map((e) => ({ ...e, offset: e.offset - base })));
      const chid = await chidOf(node);
      nodes.push({ chid, bytes: node });
      next.push({ offset: base, length: run.reduce((n, e) => n + e.length, 0), chid, leaves: leafTotal(run) });
    }
    await inBatches(nodes, store);
    level = next;
  }
  return level;
}

/** Nodes stored a few at a time: a level of a large object has hundreds. */
async function inBatches(nodes: { chid: Chid; bytes: Uint8Array }[], store: StoreNode): Promise<void> {
  const AT_ONCE = 8;
  for (let i = 0; i < nodes.length; i += AT_ONCE) await Promise.all(nodes.slice(i, i + AT_ONCE).map(store));
}

/**
 * The chunks overlapping [start, end), in order, in runs of at most RUN_MAX: nodes are read only
 * where the range touches them, one at a time, as the caller asks for the next run.
 */
export async function* leafRuns(entries: readonly Extent[], range: { start: number; end: number }, load: LoadNode, depth = 0): AsyncGenerator<ChunkRef[]> {
  if (depth > MAX_DEPTH) throw new Error(`a manifest tree deeper than ${MAX_DEPTH} levels`);
  let run: ChunkRef[] = [];
  for (const e of chunksInRange(entries, range.start, range.end)) {
    if (!isNode(e)) {
      run.push(e);
      if (run.length >= RUN_MAX) {
        yield run;
        run = [];
      }
      continue;
    }
    if (run.length > 0) {
      yield run;
      run = [];
    }
    const inner = await load(e);
    for await (const r of leafRuns(inner, { start: range.start - e.offset, end: range.end - e.offset }, load, depth + 1)) {
      yield r.map((c) => ({ ...c, offset: c.offset + e.offset }));
    }
  }
  if (run.length > 0) yield run;
}

/** Every chunk of the list, in order (for lists known to be bounded: a part, a session's base). */
export async function allLeaves(entries: readonly Extent[], load: LoadNode): Promise<ChunkRef[]> {
  const out: ChunkRef[] = [];
  for await (const run of leafRuns(entries, spanOf(entries), load)) out.push(...run);
  return out;
}

/** The n-th chunk of the list (0-based), reading one node per level on the way down. */
export async function leafAt(entries: readonly Extent[], n: number, load: LoadNode): Promise<ChunkRef | null> {
  let list = entries;
  let base = 0;
  let left = n;
  for (let depth = 0; depth <= MAX_DEPTH; depth++) {
    const e = list.find((x) => {
      if (left < leafCount(x)) return true;
      left -= leafCount(x);
      return false;
    });
    if (!e) return null;
    if (!isNode(e)) return { ...e, offset: e.offset + base };
    list = await load(e);
    base += e.offset;
  }
  throw new Error(`a manifest tree deeper than ${MAX_DEPTH} levels`);
}
