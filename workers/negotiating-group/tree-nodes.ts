// The manifest-tree nodes this group stores (common/manifest-tree.ts). A node is a chunk like
// any other to repair and reclamation; what is its own: while it lives it references its
// entries (`n:<chid>`, in their groups), with as many copies as the most any user of the node
// wants, and when it is reclaimed it lets go of them. Its entries are not kept here (a large
// object's nodes would outgrow this object's storage): they are read back from the members,
// verified by the CHID, when they are needed. Every change goes out through this group's one
// reference outbox, so a node stored again after its reclaim reaches its entries in order.

import { asChid, chidOf, type Chid } from "../../common/ids.ts";
import { nodeEntries } from "../../common/manifest-tree.ts";
import { nodeRef, type RefBook } from "./backrefs.ts";
import type { RefOutbox } from "./ref-outbox.ts";

/** Nodes whose entries are read in one alarm round (each holds up to a fan-out of ids in memory). */
const READ_BATCH = 16;
/** A node due for reclaim whose entries were not read yet (one batch a round) is looked at again this much later. */
const NEXT_ROUND_MS = 1_000;
/** A node that could not be read is tried again after this, doubling each time, up to an hour. */
const RETRY_MS = 5_000;
const RETRY_MAX_MS = 3_600_000;
/**
 * How long a released node's row stays: a reference arriving after the release but before the
 * members deleted the node brings it back (RefBook revives it), and its entries must then be
 * told again. Past this the node is gone from every member or back in use.
 */
const RELEASED_KEEP_MS = 86_400_000;

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
  /** Entries of nodes about to be reclaimed, read ahead of the step that may not await; valid for one round. */
  private readonly loaded = new Map<Chid, Chid[]>();
  /** Nodes that could not be read: how often, and not before when to try again. */
  private readonly failing = new Map<Chid, { times: number; next: number }>();

  constructor(c: TreeNodeContext) {
    this.c = c;
    // `replicas`: the count the node's entries were last told (null: the cluster's R); `recount`:
    // its users' counts changed since, so its entries must be told again; `released_at`: when
    // the node let go of its entries on its way to being reclaimed (null: it holds them).
    c.sql.exec("CREATE TABLE IF NOT EXISTS tree_nodes (chid TEXT PRIMARY KEY, replicas INTEGER, recount INTEGER NOT NULL DEFAULT 0, released_at INTEGER)");
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
    // Stored again while it holds its entries (an edit re-seals a tree whose other nodes did not
    // change): they are referenced already, with at least this count.
    if (row && !row.released && this.effective(row.replicas) >= this.effective(replicas)) return chid;
    this.c.sql.exec(
      "INSERT INTO tree_nodes (chid, replicas) VALUES (?, ?) ON CONFLICT(chid) DO UPDATE SET replicas = excluded.replicas, released_at = NULL",
      chid,
      replicas,
    );
    this.c.outbox.queue("+", nodeRef(chid), entries.map((e) => e.chid), replicas);
    this.c.refsSoon();
    return chid;
  }

  /**
   * References to these chunks changed: nodes among them whose users now want another count are
   * told to recount, and so is a released node that has a user again (a reference came before
   * its members deleted it): its entries must be referenced again.
   */
  changed(chids: Iterable<Chid>): void {
    // Every reference push comes here: a group that stores no node pays one probe.
    if (this.c.sql.exec("SELECT 1 FROM tree_nodes LIMIT 1").toArray().length === 0) return;
    const list = JSON.stringify([...new Set(chids)]);
    const rows = this.c.sql.exec("SELECT chid, replicas, released_at FROM tree_nodes WHERE chid IN (SELECT value FROM json_each(?))", list).toArray();
    let marked = false;
    for (const r of rows) {
      const chid = asChid(r.chid);
      const wanted = this.c.refs.wanted(chid, this.c.replicas());
      if (wanted === null) continue;
      if (r.released_at !== null || wanted !== this.effective(r.replicas === null ? null : Number(r.replicas))) {
        this.c.sql.exec("UPDATE tree_nodes SET recount = 1, released_at = NULL WHERE chid = ?", chid);
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
    const now = Date.now();
    // Nodes that failed to read wait their turn without holding back those after them.
    const rows = this.c.sql
      .exec("SELECT chid FROM tree_nodes WHERE recount = 1 LIMIT ?", READ_BATCH * 16)
      .toArray()
      .map((r) => asChid(r.chid))
      .filter((chid) => (this.failing.get(chid)?.next ?? 0) <= now)
      .slice(0, READ_BATCH);
    for (const chid of rows) {
      const entries = await this.entriesOf(chid);
      if (!entries) continue;
      // Read again after the await: the count is whatever the users want now.
      const wanted = this.c.refs.wanted(chid, this.c.replicas());
      const row = this.row(chid);
      if (!row || row.released) continue;
      if (wanted === null) {
        // No user left: reclamation releases its entries.
        this.c.sql.exec("UPDATE tree_nodes SET recount = 0 WHERE chid = ?", chid);
        continue;
      }
      const count = wanted === this.c.replicas() ? null : wanted;
      this.c.sql.exec("UPDATE tree_nodes SET replicas = ?, recount = 0 WHERE chid = ?", count, chid);
      this.c.outbox.queue("+", nodeRef(chid), entries, count);
    }
    if (rows.length > 0) this.c.refsSoon();
  }

  /**
   * Before a reclamation round: read the entries of the nodes among `due`, a batch at a time. A
   * node that cannot be read now stays unloaded, and `release` keeps it back.
   */
  async prepare(due: readonly Chid[]): Promise<void> {
    const now = Date.now();
    this.c.sql.exec("DELETE FROM tree_nodes WHERE released_at < ?", now - RELEASED_KEEP_MS);
    const nodes = this.nodesAmong(due).filter((c) => !this.loaded.has(c) && (this.failing.get(c)?.next ?? 0) <= now).slice(0, READ_BATCH);
    for (const chid of nodes) {
      const entries = await this.entriesOf(chid);
      if (entries) this.loaded.set(chid, entries);
    }
  }

  /**
   * In the reclamation's step that may not await: nodes among `due` whose entries were read let
   * go of them now (in the same transaction as their reclaim); returns the chunks that may be
   * reclaimed, and the nodes that must wait for their entries to be read, with when to look again.
   */
  release(due: readonly Chid[], now: number): { go: Chid[]; wait: { chid: Chid; until: number }[] } {
    const nodes = new Set(this.nodesAmong(due));
    const go: Chid[] = [];
    const wait: { chid: Chid; until: number }[] = [];
    for (const chid of due) {
      if (!nodes.has(chid)) {
        go.push(chid);
        continue;
      }
      const entries = this.loaded.get(chid);
      if (!entries) {
        wait.push({ chid, until: Math.max(now + NEXT_ROUND_MS, this.failing.get(chid)?.next ?? 0) });
        continue;
      }
      this.c.outbox.queue("-", nodeRef(chid), entries);
      this.c.sql.exec("UPDATE tree_nodes SET released_at = ?, recount = 0 WHERE chid = ?", now, chid);
      go.push(chid);
    }
    // What was read for nodes that gained a user meanwhile is read again should they come due.
    this.loaded.clear();
    if (go.length > 0) this.c.refsSoon();
    return { go, wait };
  }

  /** A node's entries from the members, or null (logged, and tried again later) if none can be read. */
  private async entriesOf(chid: Chid): Promise<Chid[] | null> {
    try {
      const entries = nodeEntries(chid, await this.c.read(chid)).map((e) => e.chid);
      this.failing.delete(chid);
      return entries;
    } catch (e) {
      // Kept back, not guessed: a node released without its entries would leave them
      // referenced for good, and one recounted without them would tell them nothing.
      const times = (this.failing.get(chid)?.times ?? 0) + 1;
      this.failing.set(chid, { times, next: Date.now() + Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** (times - 1)) });
      console.log(JSON.stringify({ msg: "tree node unreadable", group: this.c.group, chid, times, error: String(e) }));
      return null;
    }
  }

  /** Nodes that still hold their entries. */
  private nodesAmong(chids: readonly Chid[]): Chid[] {
    if (chids.length === 0) return [];
    return this.c.sql
      .exec("SELECT chid FROM tree_nodes WHERE released_at IS NULL AND chid IN (SELECT value FROM json_each(?))", JSON.stringify(chids))
      .toArray()
      .map((r) => asChid(r.chid));
  }

  private row(chid: Chid): { replicas: number | null; released: boolean } | null {
    const r = this.c.sql.exec("SELECT replicas, released_at FROM tree_nodes WHERE chid = ?", chid).toArray()[0];
    return r ? { replicas: r.replicas === null ? null : Number(r.replicas), released: r.released_at !== null } : null;
  }

  /** What a count means: never fewer than the cluster's R (as RefBook.wanted counts). */
  private effective(replicas: number | null): number {
    return Math.max(this.c.replicas(), replicas ?? this.c.replicas());
  }
}
