// A target's half of chain replication (node-target/group-link.ts): frames of one item may come
// from the group and from a peer, early (before the select-put) or twice (the group resends an
// item to a target whose chain broke). Each must be written once, in offset order, and the copy
// committed only when whole and matching its name. Real store on a temporary disk; the group's
// socket is a stand-in (nothing listens at its address), and no peer link is needed: the frames
// are handed in as the peer link would.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chidOf } from "../../common/ids.ts";
import { FRAME_PUT_DATA, framesOf, type ToTarget } from "../../common/protocol.ts";
import { GroupLink } from "../../node-target/group-link.ts";
import { makePeerIdentity } from "../../node-target/peer-identity.ts";
import { PeerLink } from "../../node-target/peer-link.ts";
import { ChunkStore } from "../../node-target/store.ts";
import { chunkOnDisk, eventually, readOnDisk } from "./helpers.ts";

let dir: string;
let store: ChunkStore;
let link: GroupLink;
const sent: unknown[] = [];
const groupSocket = { send: (m: string) => sent.push(JSON.parse(m)) };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "edgestore-chain-frames-"));
  store = new ChunkStore(dir, { directIo: false });
  await store.open();
  link = new GroupLink(0, "ws://127.0.0.1:9/nothing", { store, capacity: 2 ** 30, queue: { bytes: 0 } }, { headers: {}, hello: { t: "hello", id: "t-test0001" as never, location: "/x" } });
});

afterAll(() => {
  link.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const hop = (chain: string) => ({ chain, rest: [] });
const onTextOf = (l: GroupLink) => (msg: ToTarget) => (l as unknown as { onText(ws: unknown, m: ToTarget): Promise<void> }).onText(groupSocket, msg);
const onText = (msg: ToTarget) => onTextOf(link)(msg);

async function item(size: number, seed: number): Promise<{ bytes: Uint8Array; chid: Awaited<ReturnType<typeof chidOf>> }> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return { bytes, chid: await chidOf(bytes) };
}

async function stored(chid: string, timeoutMs = 5_000): Promise<Buffer | null> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (store.has({ kind: "chunk", chid: chid as never })) return readOnDisk(chunkOnDisk(dir, chid as never)!);
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}

describe("frames of a chained put", () => {
  it("writes an item once from frames that come early, out of order and twice", async () => {
    const { bytes, chid } = await item(2_600_000, 1);
    const frames = [...framesOf(FRAME_PUT_DATA, 11, 0, bytes)].map((f) => Buffer.from(f));
    expect(frames.length).toBe(3);
    await onText({ t: "propose-put", txn: 11, items: [{ kind: "chunk", chid, size: bytes.length }] });
    // The second frame arrives from a peer before this target knows it was selected.
    const early = link.peerFrame(frames[1]!, hop("c11"));
    await onText({ t: "select-put", txn: 11, items: [0], chain: "c11" });
    await early;
    // Then the last (ahead of its turn), the first, and all three again (a resend after a break).
    const rest = [link.peerFrame(frames[2]!, hop("c11")), link.peerFrame(frames[0]!, hop("c11")), ...frames.map((f) => link.peerFrame(f, hop("c11")))];
    await Promise.all(rest);
    const got = await stored(chid);
    expect(got).not.toBeNull();
    expect(Buffer.compare(got!, Buffer.from(bytes))).toBe(0);
  });

  it("keeps nothing under the name when the frames do not match it", async () => {
    const { bytes } = await item(300_000, 2);
    const { chid: other } = await item(300_000, 3);
    await onText({ t: "propose-put", txn: 12, items: [{ kind: "chunk", chid: other, size: bytes.length }] });
    await onText({ t: "select-put", txn: 12, items: [0], chain: "c12" });
    for (const f of framesOf(FRAME_PUT_DATA, 12, 0, bytes)) await link.peerFrame(Buffer.from(f), hop("c12"));
    expect(await stored(other, 500)).toBeNull();
  });

  it("takes a peer's frames only under the chain they were sent down", async () => {
    // Transaction ids start again when a group restarts: a frame of an earlier life's chain,
    // still on its way between targets, must not land in a new transaction's item.
    const { bytes, chid } = await item(200_000, 4);
    const { bytes: stale } = await item(200_000, 5);
    await onText({ t: "propose-put", txn: 13, items: [{ kind: "chunk", chid, size: bytes.length }] });
    await onText({ t: "select-put", txn: 13, items: [0], chain: "new-life" });
    for (const f of framesOf(FRAME_PUT_DATA, 13, 0, stale)) await link.peerFrame(Buffer.from(f), hop("old-life"));
    for (const f of framesOf(FRAME_PUT_DATA, 13, 0, bytes)) await link.peerFrame(Buffer.from(f), hop("new-life"));
    const got = await stored(chid);
    expect(got && Buffer.compare(got, Buffer.from(bytes))).toBe(0);
  });
});

describe("frames a peer passes on", () => {
  it("go further down a chain only as its group told it, or at once to a member of its groups", async () => {
    // The next hop, a member of the group: counts what reaches it over its TLS link.
    const nextId = makePeerIdentity("t-next");
    let reached = 0;
    const next = createTlsServer({ key: nextId.key, cert: nextId.cert, requestCert: true, rejectUnauthorized: false }, (sock) => sock.on("data", (d: Buffer) => (reached += d.length)));
    await new Promise<void>((r) => next.listen(0, "127.0.0.1", r));
    const nextAt = `127.0.0.1:${(next.address() as { port: number }).port}`;
    // The group's side: a listener that never answers the handshake, so the link neither comes
    // up nor fails (a failed link drops every transaction, kept frames included).
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const broken: string[] = [];
    const peer = await PeerLink.start({ listen: "127.0.0.1:0", identity: makePeerIdentity("t-relaying"), onFrame: async () => {}, onBroken: (_passed, to) => void broken.push(to) });
    const relaying = new GroupLink(1, `ws://127.0.0.1:${(silent.address() as { port: number }).port}/g`, { store, capacity: 2 ** 30, queue: { bytes: 0 } }, { headers: {}, hello: { t: "hello", id: "t-test0002" as never, location: "/x" }, peer });
    const wait = (until: () => boolean) => eventually(until, { ms: 2_000, every: 20 });
    try {
      const { bytes, chid } = await item(150_000, 6);
      const frame = Buffer.from([...framesOf(FRAME_PUT_DATA, 21, 0, bytes)][0]!);
      // From a peer, down a chain no group told this target of, to an address no group lists: kept, not sent on.
      void relaying.peerFrame(frame, { chain: "c21", rest: [nextAt] });
      void relaying.peerFrame(Buffer.from(frame), { chain: "never-named", rest: [nextAt] });
      // That nothing is sent is seen only by waiting: long enough for a forward on loopback to arrive.
      await new Promise((r) => setTimeout(r, 200));
      expect(reached).toBe(0);
      // The group lists its members, and names the chain: the kept frame goes on, and is written here too.
      await onTextOf(relaying)({ t: "peers", peers: [{ address: nextAt, cert: nextId.fingerprint }] });
      await onTextOf(relaying)({ t: "put-eager", txn: 21, items: [{ kind: "chunk", chid, size: bytes.length }], at: [0], chains: [{ forward: [nextAt], chain: "c21" }] });
      await wait(() => reached >= frame.length);
      expect(reached).toBeGreaterThanOrEqual(frame.length);
      expect(reached).toBeLessThan(2 * frame.length);
      const got = await stored(chid);
      expect(got && Buffer.compare(got, Buffer.from(bytes))).toBe(0);
      // A frame of a chain not yet named here may go on at once to a member of the group...
      const before = reached;
      void relaying.peerFrame(Buffer.from(frame), { chain: "c23", rest: [nextAt] });
      await wait(() => reached >= before + frame.length);
      expect(reached).toBeGreaterThanOrEqual(before + frame.length);
      // ...and never to anyone else, even once its chain is named: the group's list is the one followed.
      const after = reached;
      void relaying.peerFrame(Buffer.from(frame), { chain: "c24", rest: ["127.0.0.1:9"] });
      await onTextOf(relaying)({ t: "put-eager", txn: 24, items: [{ kind: "chunk", chid, size: bytes.length }], at: [0], chains: [{ forward: [], chain: "c24" }] });
      // As above: an absence, seen by waiting as long as a forward would take.
      await new Promise((r) => setTimeout(r, 200));
      expect(reached).toBe(after);
      expect(broken).toEqual([]);
    } finally {
      relaying.close();
      peer.close();
      next.close();
      silent.close();
    }
  });
});
