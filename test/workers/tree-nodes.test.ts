// A group's manifest-tree nodes (workers/negotiating-group/tree-nodes.ts) against real Durable
// Object SQLite storage: a stored node references its entries, tells them again when its users
// want another count of copies, and lets go of them when it is reclaimed, only once it could read
// them. The members are stood in for by a map of bytes (the targets' side is
// test/integration/manifest-tree.test.ts).

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { chidOf, type Chid } from "../../common/ids.ts";
import { encodeNode } from "../../common/manifest-tree.ts";
import type { ChunkRef } from "../../common/manifest.ts";
import { nodeRef, RefBook, type RefChange } from "../../workers/negotiating-group/backrefs.ts";
import { RefOutbox } from "../../workers/negotiating-group/ref-outbox.ts";
import { TreeNodes } from "../../workers/negotiating-group/tree-nodes.ts";

let n = 0;
const R = 3;

async function setUp(sql: SqlStorage, readable = true) {
  const sent: RefChange[] = [];
  const refs = new RefBook(sql);
  const outbox = new RefOutbox(sql, 1, async (_g, changes) => void sent.push(...changes));
  const members = new Map<Chid, Uint8Array>();
  const nodes = new TreeNodes({
    group: 0,
    sql,
    refs,
    outbox,
    replicas: () => R,
    store: async (chid, bytes) => void members.set(chid, bytes),
    read: async (chid) => {
      if (!readable) throw new Error("no member answers");
      return members.get(chid)!;
    },
    refsSoon: () => {},
  });
  const entries: ChunkRef[] = [];
  for (let i = 0; i < 3; i++) entries.push({ offset: i * 10, length: 10, chid: await chidOf(new Uint8Array([i])) });
  const bytes = encodeNode(entries);
  /** What the outbox pushes next. */
  const pushed = async () => {
    sent.length = 0;
    await outbox.push();
    return sent.map((c) => ({ op: c.op, ref: c.ref, chids: [...c.chids].sort(), replicas: c.replicas ?? null }));
  };
  return { refs, nodes, bytes, entries: entries.map((e) => e.chid).sort(), pushed };
}

const withSql = <T,>(fn: (sql: SqlStorage) => T | Promise<T>) =>
  runInDurableObject(env.GROUP.get(env.GROUP.idFromName(`group-0-tree-${n++}`)), (_o, state) => fn(state.storage.sql));

describe("a group's tree nodes", () => {
  it("reference their entries once stored, with the count the writer asked", async () => {
    await withSql(async (sql) => {
      const t = await setUp(sql);
      const chid = await t.nodes.put(t.bytes, 2);
      expect(await t.pushed()).toEqual([{ op: "+", ref: nodeRef(chid), chids: t.entries, replicas: 2 }]);
      // Stored again with no more copies asked: the entries hold the reference already.
      await t.nodes.put(t.bytes, null);
      expect(await t.pushed()).toEqual([]);
      // With more: they are told the larger count.
      await t.nodes.put(t.bytes, 4);
      expect(await t.pushed()).toEqual([{ op: "+", ref: nodeRef(chid), chids: t.entries, replicas: 4 }]);
    });
  });

  it("tell their entries the most copies any user of the node wants, as it changes", async () => {
    await withSql(async (sql) => {
      const t = await setUp(sql);
      const chid = await t.nodes.put(t.bytes, null);
      await t.pushed();
      t.refs.apply([{ op: "+", ref: "v:a/1", chids: [chid] }], Date.now(), 100);
      t.nodes.changed([chid]);
      expect(t.nodes.recountWaiting()).toBe(false);
      t.refs.apply([{ op: "+", ref: "v:b/1", chids: [chid], replicas: 5 }], Date.now(), 100);
      t.nodes.changed([chid]);
      expect(t.nodes.recountWaiting()).toBe(true);
      await t.nodes.recount();
      expect(t.nodes.recountWaiting()).toBe(false);
      expect(await t.pushed()).toEqual([{ op: "+", ref: nodeRef(chid), chids: t.entries, replicas: 5 }]);
      // The user that wanted five goes: back to the cluster's R.
      t.refs.apply([{ op: "-", ref: "v:b/1", chids: [chid] }], Date.now(), 100);
      t.nodes.changed([chid]);
      await t.nodes.recount();
      expect(await t.pushed()).toEqual([{ op: "+", ref: nodeRef(chid), chids: t.entries, replicas: null }]);
    });
  });

  it("let go of their entries when reclaimed, only once they were read", async () => {
    await withSql(async (sql) => {
      const t = await setUp(sql);
      const chid = await t.nodes.put(t.bytes, null);
      const other = await chidOf(new Uint8Array([9]));
      await t.pushed();
      // Not read yet: the node waits a round, a plain chunk goes.
      expect(t.nodes.release([chid, other], 1000)).toEqual({ go: [other], wait: [{ chid, until: 2000 }] });
      await t.nodes.prepare([chid, other]);
      expect(t.nodes.release([chid, other], 1000)).toEqual({ go: [chid, other], wait: [] });
      expect(await t.pushed()).toEqual([{ op: "-", ref: nodeRef(chid), chids: t.entries, replicas: null }]);
      // Released: a later round treats the id as a plain chunk.
      expect(t.nodes.release([chid], 1000)).toEqual({ go: [chid], wait: [] });
    });
  });

  it("reference their entries again when a user comes back after the release, before the members deleted the node", async () => {
    await withSql(async (sql) => {
      const t = await setUp(sql);
      const chid = await t.nodes.put(t.bytes, null);
      await t.pushed();
      await t.nodes.prepare([chid]);
      t.nodes.release([chid], Date.now());
      expect((await t.pushed())[0]!.op).toBe("-");
      // A copy's late reference revives the node (RefBook keeps its bytes): it takes its entries back.
      t.refs.apply([{ op: "+", ref: "v:late/1", chids: [chid] }], Date.now(), 100);
      t.nodes.changed([chid]);
      await t.nodes.recount();
      expect(await t.pushed()).toEqual([{ op: "+", ref: nodeRef(chid), chids: t.entries, replicas: null }]);
    });
  });

  it("keep a node back whose entries cannot be read, rather than leave them referenced for good", async () => {
    await withSql(async (sql) => {
      const t = await setUp(sql, false);
      const chid = await t.nodes.put(t.bytes, null);
      await t.pushed();
      await t.nodes.prepare([chid]);
      const now = Date.now();
      const { go, wait } = t.nodes.release([chid], now);
      expect(go).toEqual([]);
      // Tried again later, backing off, not every round.
      expect(wait[0]!.until).toBeGreaterThanOrEqual(now + 4000);
      expect(await t.pushed()).toEqual([]);
    });
  });

  it("refuse bytes that are not a node", async () => {
    await withSql(async (sql) => {
      const t = await setUp(sql);
      await expect(t.nodes.put(new TextEncoder().encode("plain chunk data"), null)).rejects.toThrow(/not JSON|not a node/);
    });
  });
});
