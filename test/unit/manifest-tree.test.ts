import { describe, expect, it } from "vitest";
import { chidOf, formatUvid, type Chid } from "../../common/ids.ts";
import { allLeaves, BadNode, buildTree, decodeNode, encodeNode, leafAt, leafRuns, type LoadNode } from "../../common/manifest-tree.ts";
import { decodeManifest, encodeManifest, isNode, MANIFEST_FORMAT, type ChunkRef, type Extent, type NodeRef } from "../../common/manifest.ts";

/** A list of `n` chunks of varied sizes (some compressed, one a slice), and the nodes a tree of it stores, kept in memory. */
async function chunksOf(n: number): Promise<ChunkRef[]> {
  const out: ChunkRef[] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const length = 100 + ((i * 37) % 50);
    const chid = await chidOf(new TextEncoder().encode(`chunk ${i}`));
    if (i % 7 === 3) out.push({ offset: at, length, chid, enc: "deflate-raw", stored: length - 10, raw: chid });
    else if (i % 11 === 5) out.push({ offset: at, length, chid, skip: 3, whole: length + 9 });
    else out.push({ offset: at, length, chid });
    at += length;
  }
  return out;
}

function memoryStore(): { nodes: Map<Chid, Uint8Array>; load: LoadNode; loads: () => number } {
  const nodes = new Map<Chid, Uint8Array>();
  let loads = 0;
  return {
    nodes,
    load: async (ref) => {
      loads++;
      return decodeNode(ref, nodes.get(ref.chid)!);
    },
    loads: () => loads,
  };
}

describe("manifest trees", () => {
  it("keeps a list of at most maxTop entries as it is", async () => {
    const list = await chunksOf(8);
    const m = memoryStore();
    const top = await buildTree(list, { fanout: 4, maxBytes: 1 << 20, maxTop: 8 }, async (n) => void m.nodes.set(n.chid, n.bytes));
    expect(top).toEqual(list);
    expect(m.nodes.size).toBe(0);
  });

  it("builds levels of nodes until the top fits, and gives back every chunk in order", async () => {
    const list = await chunksOf(100);
    const m = memoryStore();
    const top = await buildTree(list, { fanout: 4, maxBytes: 1 << 20, maxTop: 4 }, async (n) => {
      expect(await chidOf(n.bytes)).toBe(n.chid);
      m.nodes.set(n.chid, n.bytes);
    });
    expect(top.length).toBeLessThanOrEqual(4);
    expect(top.every(isNode)).toBe(true);
    expect(top.reduce((n, e) => n + (e as NodeRef).leaves, 0)).toBe(100);
    // 100 chunks -> 25 nodes -> 7 entries (6 nodes and a run of one carried up) -> 2 nodes
    expect(m.nodes.size).toBe(25 + 6 + 2);
    expect(await allLeaves(top, m.load)).toEqual(list);
  });

  it("a part is one node, and a run of one entry is carried up as it is", async () => {
    const list = await chunksOf(5);
    const m = memoryStore();
    const top = await buildTree(list, { fanout: 4, maxBytes: 1 << 20, maxTop: 1 }, async (n) => void m.nodes.set(n.chid, n.bytes));
    expect(top).toHaveLength(1);
    // 5 -> [node(4), chunk] -> node(node, chunk)
    expect(m.nodes.size).toBe(2);
    expect(await allLeaves(top, m.load)).toEqual(list);
  });

  it("closes a node before it passes the byte limit", async () => {
    const list = await chunksOf(200);
    const sizes: number[] = [];
    await buildTree(list, { fanout: 100, maxBytes: 2000, maxTop: 1 }, async (n) => void sizes.push(n.bytes.length));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2000);
  });

  it("reads only the nodes a range touches, in runs", async () => {
    const list = await chunksOf(64);
    const m = memoryStore();
    const top = await buildTree(list, { fanout: 4, maxBytes: 1 << 20, maxTop: 4 }, async (n) => void m.nodes.set(n.chid, n.bytes));
    const start = list[21]!.offset + 5;
    const end = list[23]!.offset + 1;
    const got: ChunkRef[] = [];
    for await (const run of leafRuns(top, { start, end }, m.load)) got.push(...run);
    expect(got).toEqual(list.slice(21, 24));
    // one node per level on the way down: 64 -> 16 -> 4 (top), so two levels below the top
    expect(m.loads()).toBe(2);
  });

  it("finds the n-th chunk by the leaf counts", async () => {
    const list = await chunksOf(50);
    const m = memoryStore();
    const top = await buildTree(list, { fanout: 3, maxBytes: 1 << 20, maxTop: 2 }, async (n) => void m.nodes.set(n.chid, n.bytes));
    for (const n of [0, 1, 17, 48, 49]) expect(await leafAt(top, n, m.load)).toEqual(list[n]);
    expect(await leafAt(top, 50, m.load)).toBeNull();
  });

  it("shares a node wherever its bytes sit: offsets in a node count from its start", async () => {
    const list = await chunksOf(4);
    const shifted: Extent[] = list.map((c) => ({ ...c, offset: c.offset + 1000 }));
    const a = await buildTree(list, { fanout: 4, maxBytes: 1 << 20, maxTop: 1 }, async () => {});
    const b = await buildTree(shifted, { fanout: 4, maxBytes: 1 << 20, maxTop: 1 }, async () => {});
    expect(a[0]!.chid).toBe(b[0]!.chid);
    expect(b[0]!.offset).toBe(1000);
  });

  it("a manifest carries node entries through its canonical encoding", async () => {
    const list = await chunksOf(9);
    const top = await buildTree(list, { fanout: 4, maxBytes: 1 << 20, maxTop: 2 }, async () => {});
    const size = list.reduce((n, c) => n + c.length, 0);
    const vm = { format: MANIFEST_FORMAT, uvid: formatUvid({ ms: 1, seq: 0, group: 0 }), created: 1, tenant: "t", bucket: "b", key: "k", size, etag: "e", contentType: "x", userMeta: {}, httpMeta: {}, chunks: top, inline: null, deleteMarker: false, creator: "c" };
    expect(decodeManifest(encodeManifest(vm)).chunks).toEqual(top);
  });

  it("refuses a node that does not match its ref or is not a node", async () => {
    const list = await chunksOf(4);
    const bytes = encodeNode(list);
    const chid = await chidOf(bytes);
    const total = list.reduce((n, c) => n + c.length, 0);
    expect(decodeNode({ offset: 0, length: total, chid, leaves: 4 }, bytes)).toEqual(list);
    expect(() => decodeNode({ offset: 0, length: total + 1, chid, leaves: 4 }, bytes)).toThrow(BadNode);
    expect(() => decodeNode({ offset: 0, length: total, chid, leaves: 5 }, bytes)).toThrow(BadNode);
    expect(() => decodeNode({ offset: 0, length: 1, chid, leaves: 1 }, new TextEncoder().encode("chunk data, not a node"))).toThrow(BadNode);
    const gap = encodeNode([list[0]!, { ...list[1]!, offset: list[1]!.offset + 1 }]);
    expect(() => decodeNode({ offset: 0, length: 1, chid, leaves: 2 }, gap)).toThrow(/follow each other/);
  });
});

describe("the limits of the largest uploads S3 allows", () => {
  const GiB = 1024 ** 3;

  it("a 5 GiB part of the smallest chunks is one entry over nodes far below a chunk's size", async () => {
    const chids = await Promise.all(Array.from({ length: 64 }, (_, i) => chidOf(new Uint8Array([i]))));
    const MIN_CHUNK = 32 * 1024;
    const list: ChunkRef[] = [];
    for (let i = 0; i < (5 * GiB) / MIN_CHUNK; i++) list.push({ offset: i * MIN_CHUNK, length: MIN_CHUNK, chid: chids[i % 64]!, enc: "deflate-raw", stored: MIN_CHUNK - 1, raw: chids[(i + 1) % 64]! });
    expect(list).toHaveLength(163_840);
    const sizes: number[] = [];
    const top = await buildTree(list, { fanout: 4096, maxBytes: 512 * 1024, maxTop: 1 }, async (n) => void sizes.push(n.bytes.length));
    expect(top).toHaveLength(1);
    expect(top[0]).toMatchObject({ offset: 0, length: 5 * GiB, leaves: 163_840 });
    // Compressed entries are long: nodes close at a chunk's 512 KiB before 4,096 entries, and
    // one root above them.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(512 * 1024);
    expect(sizes.length).toBeGreaterThan(40 + 1);
    expect(sizes.length).toBeLessThan(64);
  });

  it("completing 10,000 parts of 5 GiB makes a manifest of about a megabyte", async () => {
    const { assemble } = await import("../../workers/negotiating-group/complete.ts");
    const chid = await chidOf(new Uint8Array([1]));
    const uploaded = new Map<number, { partNumber: number; etag: string; size: number; chunks: Extent[]; checksum: null; uploaded: number }>();
    for (let n = 1; n <= 10_000; n++) uploaded.set(n, { partNumber: n, etag: "0".repeat(32), size: 5 * GiB, chunks: [{ offset: 0, length: 5 * GiB, chid, leaves: 163_840 }], checksum: null, uploaded: 0 });
    const upload = { uploadId: "u", tenant: "t", bucket: "b", key: "k", initiated: 0, creator: "c", contentType: "x", userMeta: {}, httpMeta: {}, checksum: null };
    const got = await assemble(upload, [...uploaded.keys()].map((partNumber) => ({ partNumber, etag: "0".repeat(32), checksum: null })), uploaded);
    if ("refused" in got) throw new Error(got.refused);
    expect(got.body.size).toBe(10_000 * 5 * GiB);
    expect(Number.isSafeInteger(got.body.size)).toBe(true);
    const bytes = encodeManifest({ ...got.body, format: MANIFEST_FORMAT, uvid: formatUvid({ ms: 1, seq: 0, group: 0 }), created: 1 });
    expect(bytes.length).toBeLessThan(2 * 1024 * 1024);
    expect(decodeManifest(bytes).chunks.reduce((n, e) => n + (isNode(e) ? e.leaves : 1), 0)).toBe(1_638_400_000);
  });
});
