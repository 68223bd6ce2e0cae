// Manifest trees from the gateway's side (common/manifest-tree.ts): nodes are stored in the
// group their CHID selects, which references their entries from then on, and read back from
// there, verified against the CHID and checked against the ref that names them. Nodes never
// change, so a few recently read ones are kept for the ranged reads that come back for more.

import { groupOf, type Chid } from "../../../common/ids.ts";
import { buildTree, decodeNode, leafRuns, spanOf, type LoadNode, type StoreNode } from "../../../common/manifest-tree.ts";
import { isNode, type Extent } from "../../../common/manifest.ts";
import { groupStub, type ClusterConfig, type Env } from "../../shared/env.ts";

/** Nodes kept decoded (each up to a fan-out of entries, a few hundred KiB at the default). */
const CACHED_NODES = 8;
const cache = new Map<Chid, Uint8Array>();

/** Who reads or writes: the cluster, and where the reader is. */
export interface TreeCluster {
  env: Env;
  cfg: ClusterConfig;
  near?: string | null;
}

export function nodeLoader(c: TreeCluster): LoadNode {
  return async (ref) => {
    let bytes = cache.get(ref.chid);
    if (bytes) cache.delete(ref.chid);
    else bytes = await groupStub(c.env, groupOf(ref.chid, c.cfg.groupCount)).getChunk(ref.chid, c.near ?? null);
    const entries = decodeNode(ref, bytes);
    cache.set(ref.chid, bytes);
    if (cache.size > CACHED_NODES) cache.delete(cache.keys().next().value!);
    return entries;
  };
}

function nodeStore(c: TreeCluster, replicas: number | null): StoreNode {
  return ({ chid, bytes }) => groupStub(c.env, groupOf(chid, c.cfg.groupCount)).putNode(bytes, replicas);
}

/**
 * A chunk list as it is kept in a manifest or a part's row: as it is while it has at most
 * `maxTop` entries (and no more than a node holds), else as a tree with at most that many at
 * the top. A multipart part asks for one entry, so that completing 10,000 parts makes a
 * manifest of at most 10,000 entries whatever their size.
 */
export function asTree(c: TreeCluster, entries: readonly Extent[], o: { maxTop: number; replicas: number | null }): Promise<Extent[]> {
  const fanout = c.cfg.manifestNodeEntries;
  // A node is stored and read as a chunk: it keeps within a chunk's size.
  return buildTree(entries, { fanout, maxBytes: c.cfg.chunk.max, maxTop: Math.min(o.maxTop, fanout) }, nodeStore(c, o.replicas));
}

/**
 * Every chunk id the list names, nodes and the chunks under them, a node's run at a time: for
 * what must see each item (validation, raising a copy's replicas), holding no more than a run.
 */
export async function* itemsOf(c: TreeCluster, entries: readonly Extent[]): AsyncGenerator<Chid[]> {
  const load = nodeLoader(c);
  // Nodes met so far and not yet handed on: those at the top, then those inside each node read.
  const nodes: Chid[] = entries.filter(isNode).map((e) => e.chid);
  const noting: LoadNode = async (ref) => {
    const inner = await load(ref);
    for (const e of inner) if (isNode(e)) nodes.push(e.chid);
    return inner;
  };
  for await (const run of leafRuns(entries, spanOf(entries), noting)) yield [...run.map((r) => r.chid), ...nodes.splice(0)];
  if (nodes.length > 0) yield nodes.splice(0);
}
