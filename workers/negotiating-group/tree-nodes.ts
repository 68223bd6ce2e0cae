// The manifest-tree nodes this group stores (common/manifest-tree.ts). A node is a chunk like
// any other to repair and reclamation; what is its own: while it lives it references its
// entries (`n:<chid>`, in their groups), with as many copies as the most any user of the node
// wants, and when it is reclaimed it lets go of them. Its entries are not kept here (a large
// object's nodes would outgrow this object's storage): they are read back from the members,
// verified by the CHID, when they are needed. Every change goes out through this group's one
// reference outbox, so a node stored again after its reclaim reaches its entries in order.

import { asChid, chidOf, type Chid } from "../../common/ids.ts";
import { nodeEntries } from "../../common/manifest-tree.ts";
import type { RefBook } from "./backrefs.ts";
import type { RefOutbox } from "./ref-outbox.ts";

/** Nodes whose entries are read in one alarm round (each holds up to a fan-out of ids in memory). */
const READ_BATCH = 16;

/** The back-reference a node holds on each of its entries. */
export function nodeRef(chid: Chid): string {
  return `n:${chid}`;
}

export interface TreeNodeContext {
  readonly group: number;
  readonly sql: SqlStorage;
  readonly refs: RefBook;
  readonly outbox: RefOutbox;
  /** The cluster's R: what a count of null stands for. */
  replicas(): number;
  /** Stores the node's bytes on R members (or `replicas`), holding it like a put chunk. */
  store(chid: Chid, bytes: Uint8Array, replicas: number | null): Promise<void>;
  /** The node's bytes from a member, verified against its CHID. */
  read(chid: Chid): Promise<Uint8Array>;
  /** References were queued: push them soon. */
  refsSoon(): void;
}

export class TreeNodes {
  private readonly c: TreeNodeContext;
  /** Entries of nodes about to be reclaimed, read ahead of the step that may not await. */
  private readonly loaded = new Map<Chid, Chid[]>();

  constructor(c: TreeNodeContext) {
    this.c = c;
    // `replicas`: the count the node's entries were last told (null: the cluster's R); `recount`:
    // its users' counts changed since, so its entries must be told again.
    c.sql.exec("CREATE TABLE IF NOT EXISTS tree_nodes (chid TEXT PRIMARY KEY, replicas INTEGER, recount INTEGER NOT NULL DEFAULT 0)");
    c.sql.exec("CREATE INDEX IF NOT EXISTS tree_nodes_recount ON tree_nodes (recount) WHERE recount = 1");
  }

  /**
   * Store a node a writer built: its bytes are checked to be a node (a BadNode otherwise), stored
   * like a chunk, and from then on its entries are referenced by it.
   */
  async put(bytes: Uint8Array, replicas: number | null): Promise<Chid> {
    const chid = await chidOf(bytes);
    const entries = nodeEntries(chid, bytes);
    await this.c.store(chid, bytes, replicas);
    const row = this.row(chid);
    // Stored again (the same content written twice): its entries keep the larger count.
    const count = row && this.effective(row.replicas) >= this.effective(replicas) ? row.replicas : replicas;
    this.c.sql.exec("INSERT INTO tree_nodes (chid, replicas) VALUES (?, ?) ON CONFLICT(chid) DO UPDATE SET replicas = excluded.replicas", chid, count);
    this.c.outbox.queue("+", nodeRef(chid), entries.map((e) => e.chid), count);
    this.c.refsSoon();
    return chid;
  }

  /** References to these chunks changed: nodes among them whose users now want another count are told to recount. */
  changed(chids: Iterable<Chid>): void {
    // Every reference push comes here: a group that stores no node pays one probe.
    if (this.c.sql.exec("SELECT 1 FROM tree_nodes LIMIT 1").toArray().length === 0) return;
    const list = JSON.stringify([...new Set(chids)]);
    const rows = this.c.sql.exec("SELECT chid, replicas FROM tree_nodes WHERE chid IN (SELECT value FROM json_each(?))", list).toArray();
    let marked = false;
    for (const r of rows) {
      const chid = asChid(r.chid);
      const wanted = this.c.refs.wanted(chid, this.c.replicas());
      if (wanted !== null && wanted !== this.effective(r.replicas === null ? null : Number(r.replicas))) {
        this.c.sql.exec("UPDATE tree_nodes SET recount = 1 WHERE chid = ?", chid);
        marked = true;
      }
    }
    if (marked) this.c.refsSoon();
  }

  /** Nodes waiting to tell their entries a new count. */
  recountWaiting(): boolean {
    return this.c.sql.exec("SELECT 1 FROM tree_nodes WHERE recount = 1 LIMIT 1").toArray().length > 0;
  }

  /** Tell the entries of nodes whose users' counts changed the count they want now (read from the members). */
  async recount(): Promise<void> {
    const rows = this.c.sql.exec("SELECT chid FROM tree_nodes WHERE recount = 1 LIMIT ?", READ_BATCH).toArray();
    for (const r of rows) {
      const chid = asChid(r.chid);
      const entries = nodeEntries(chid, await this.c.read(chid));
      // Read again after the await: the count is whatever the users want now.
      const wanted = this.c.refs.wanted(chid, this.c.replicas());
      if (wanted === null || !this.row(chid)) continue;
      const count = wanted === this.c.replicas() ? null : wanted;
      this.c.sql.exec("UPDATE tree_nodes SET replicas = ?, recount = 0 WHERE chid = ?", count, chid);
      this.c.outbox.queue("+", nodeRef(chid), entries.map((e) => e.chid), count);
    }
    if (rows.length > 0) this.c.refsSoon();
  }

  /**
   * Before a reclamation round: read the entries of the nodes among `due`, a batch at a time. A
   * node that cannot be read now stays unloaded, and `release` keeps it back.
   */
  async prepare(due: readonly Chid[]): Promise<void> {
    const nodes = this.nodesAmong(due).filter((c) => !this.loaded.has(c)).slice(0, READ_BATCH);
    for (const chid of nodes) {
      try {
        this.loaded.set(chid, nodeEntries(chid, await this.c.read(chid)).map((e) => e.chid));
      } catch (e) {
        // Kept back, not guessed: a node reclaimed without its entries would leave them referenced for good.
        console.log(JSON.stringify({ msg: "tree node unreadable before its reclaim", group: this.c.group, chid, error: String(e) }));
      }
    }
  }

  /**
   * In the reclamation's step that may not await: nodes among `due` whose entries were read let
   * go of them now (in the same transaction as their reclaim); returns the chunks that may be
   * reclaimed, and the nodes that must wait for their entries to be read.
   */
  release(due: readonly Chid[]): { go: Chid[]; wait: Chid[] } {
    const nodes = new Set(this.nodesAmong(due));
    const go: Chid[] = [];
    const wait: Chid[] = [];
    for (const chid of due) {
      if (!nodes.has(chid)) {
        go.push(chid);
        continue;
      }
      const entries = this.loaded.get(chid);
      if (!entries) {
        wait.push(chid);
        continue;
      }
      this.loaded.delete(chid);
      this.c.outbox.queue("-", nodeRef(chid), entries);
      this.c.sql.exec("DELETE FROM tree_nodes WHERE chid = ?", chid);
      go.push(chid);
    }
    if (go.length > 0) this.c.refsSoon();
    return { go, wait };
  }

  private nodesAmong(chids: readonly Chid[]): Chid[] {
    if (chids.length === 0) return [];
    return this.c.sql.exec("SELECT chid FROM tree_nodes WHERE chid IN (SELECT value FROM json_each(?))", JSON.stringify(chids)).toArray().map((r) => asChid(r.chid));
  }

  private row(chid: Chid): { replicas: number | null } | null {
    const r = this.c.sql.exec("SELECT replicas FROM tree_nodes WHERE chid = ?", chid).toArray()[0];
    return r ? { replicas: r.replicas === null ? null : Number(r.replicas) } : null;
  }

  /** What a count means: never fewer than the cluster's R (as RefBook.wanted counts). */
  private effective(replicas: number | null): number {
    return Math.max(this.c.replicas(), replicas ?? this.c.replicas());
  }
}
