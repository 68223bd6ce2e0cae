// A target's bids on a put proposal (node-target/group-link.ts), against its real store on a
// temporary disk: an item it holds is bid "have" with the proof of possession the group asks
// for (HMAC of the stored bytes under the proposal's nonce, as common/possession.ts defines it,
// computed here as the copy is read); one it does not hold is an accept; a copy whose bytes no
// longer are the chunk gives a proof the group will not take. The group's socket is a stand-in.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chidOf, type Chid } from "../../common/ids.ts";
import { possessionProof } from "../../common/possession.ts";
import type { Bid, ToGroup, ToTarget } from "../../common/protocol.ts";
import { GroupLink } from "../../node-target/group-link.ts";
import { ChunkStore } from "../../node-target/store.ts";
import { chunkOnDisk, damageCopy, eventually } from "./helpers.ts";

let dir: string;
let store: ChunkStore;
let link: GroupLink;
const sent: ToGroup[] = [];
const groupSocket = { send: (m: string) => sent.push(JSON.parse(m) as ToGroup) };
const onText = (msg: ToTarget) => (link as unknown as { onText(ws: unknown, m: ToTarget): Promise<void> }).onText(groupSocket, msg);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "edgestore-bids-"));
  store = new ChunkStore(dir, { directIo: false });
  await store.open();
  link = new GroupLink(0, "ws://127.0.0.1:9/nothing", { store, capacity: 2 ** 30, queue: { bytes: 0 } }, { headers: {}, hello: { t: "hello", id: "t-bids0001" as never, location: "/x" } });
});

afterAll(() => {
  link.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function stored(seed: number): Promise<{ bytes: Uint8Array; chid: Chid }> {
  const bytes = new Uint8Array(200_000).map((_, i) => (i * 13 + seed) & 0xff);
  const chid = await chidOf(bytes);
  const w = store.beginWrite({ kind: "chunk", chid }, bytes.length);
  await w.write(0, bytes);
  await w.commit();
  return { bytes, chid };
}

async function bidsFor(txn: number, chids: Chid[], nonce: string): Promise<Bid[]> {
  await onText({ t: "propose-put", txn, items: chids.map((chid) => ({ kind: "chunk", chid, size: 200_000 })), nonce });
  let reply: ToGroup | undefined;
  await eventually(() => (reply = sent.find((m) => m.t === "bid-put" && m.txn === txn)) !== undefined, { ms: 5_000, every: 10 });
  return reply && reply.t === "bid-put" ? reply.bids : [];
}

describe("a target's bids on a put proposal", () => {
  it("proves what it holds over the group's nonce, and accepts what it does not", async () => {
    const held = await stored(1);
    const absent = await chidOf(new Uint8Array([1, 2, 3]));
    const nonce = "5a".repeat(16);
    const [have, accept] = await bidsFor(1, [held.chid, absent], nonce);
    expect(have).toEqual({ item: 0, bid: "have", proof: await possessionProof(nonce, held.bytes) });
    expect(accept).toMatchObject({ item: 1, bid: "accept" });
    // Another nonce, another proof: an answer kept from before does not serve.
    const [again] = await bidsFor(2, [held.chid], "c3".repeat(16));
    expect(again).toMatchObject({ bid: "have" });
    expect(again && "proof" in again ? again.proof : "").not.toBe(have && "proof" in have ? have.proof : "");
  });

  it("cannot prove a copy whose bytes are no longer the chunk", async () => {
    const held = await stored(2);
    damageCopy(chunkOnDisk(dir, held.chid)!);
    const nonce = "77".repeat(16);
    const [bid] = await bidsFor(3, [held.chid], nonce);
    expect(bid).toMatchObject({ bid: "have" });
    expect(bid && "proof" in bid ? bid.proof : "").not.toBe(await possessionProof(nonce, held.bytes));
  });
});
