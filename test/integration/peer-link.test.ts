// Chain replication's links between targets (node-target/peer-link.ts), from the side that
// accepts them: whatever another target (or anything that can reach the port) sends, a record is
// taken only whole and well-formed, with a chain id and a list of "host:port" peers, and a frame
// at least as long as its header; anything else closes that connection and reaches no handler.

import fc from "fast-check";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FRAME_HEADER, FRAME_PUT_DATA, framesOf } from "../../common/protocol.ts";
import { isPeerAddress } from "../../common/wire-decode.ts";
import { PeerLink, type Hop } from "../../node-target/peer-link.ts";

let link: PeerLink;
const got: { group: number; hop: Hop; frame: Buffer }[] = [];

beforeAll(async () => {
  link = await PeerLink.start(
    "127.0.0.1:0",
    undefined,
    async (group, frame, hop) => void got.push({ group, hop, frame: Buffer.from(frame) }),
    () => {},
  );
});
afterAll(() => link.close());

/** A record as peer-link.ts lays it out: u32 length of the rest, u16 group, u16 list length, the list, the frame. */
function record(group: number, list: string, frame: Uint8Array, claimed?: number): Buffer {
  const l = Buffer.from(list);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(claimed ?? 4 + l.length + frame.length, 0);
  head.writeUInt16BE(group, 4);
  head.writeUInt16BE(l.length, 6);
  return Buffer.concat([head, l, frame]);
}

/** Send `bytes` on a fresh connection; resolves "closed" if the link closed it, "open" otherwise. */
function send(bytes: Buffer): Promise<"closed" | "open"> {
  return new Promise((resolve) => {
    const s = connect(Number(link.address.split(":")[1]), "127.0.0.1", () => s.write(bytes));
    const timer = setTimeout(() => {
      s.destroy();
      resolve("open");
    }, 300);
    s.on("close", () => {
      clearTimeout(timer);
      resolve("closed");
    });
    s.on("error", () => {});
  });
}

const frame = [...framesOf(FRAME_PUT_DATA, 7, 0, new Uint8Array(100).fill(3))][0]!;

describe("a target's peer link", () => {
  it("takes a well-formed record and hands on its group, chain and frame", async () => {
    expect(await send(record(5, JSON.stringify({ chain: "c-1", rest: ["127.0.0.1:7001", "[::1]:7002"] }), frame))).toBe("open");
    expect(got).toHaveLength(1);
    expect(got[0]!.group).toBe(5);
    expect(got[0]!.hop).toEqual({ chain: "c-1", rest: ["127.0.0.1:7001", "[::1]:7002"] });
    expect(Buffer.compare(got[0]!.frame, Buffer.from(frame))).toBe(0);
  });

  it("closes on a record whose chain or forward list it could not use, before any handler sees it", async () => {
    const before = got.length;
    for (const list of [
      JSON.stringify({ chain: "c", rest: [1] }),
      JSON.stringify({ chain: "c", rest: ["no port"] }),
      JSON.stringify({ chain: "c", rest: Array.from({ length: 17 }, (_, i) => `10.0.0.${i}:1`) }),
      JSON.stringify({ rest: [] }),
      JSON.stringify({ chain: 3, rest: [] }),
      "not json",
      "null",
    ]) {
      expect(await send(record(1, list, frame)), list).toBe("closed");
    }
    expect(got.length).toBe(before);
  });

  it("closes on a record too short to hold a frame header, or longer than any frame", async () => {
    const before = got.length;
    const list = JSON.stringify({ chain: "c", rest: [] });
    expect(await send(record(1, list, new Uint8Array(FRAME_HEADER - 1)))).toBe("closed");
    expect(await send(record(1, list, frame, 3 * 1024 * 1024))).toBe("closed");
    expect(got.length).toBe(before);
  });

  it("takes records with dialable peers only; anything else (fuzzed) reaches no handler and leaves the link serving", async () => {
    const before = got.length;
    const address = fc.oneof(fc.constantFrom("127.0.0.1:7001", "h:0", "h:65535", "h:65536", "h:99999", "[::1]:1", "no-port", ":1", "a b:2"), fc.string({ maxLength: 12 }));
    const list = fc.oneof(
      fc.record({ chain: fc.oneof(fc.string({ maxLength: 10 }), fc.constant("")), rest: fc.array(address, { maxLength: 18 }) }).map((v) => JSON.stringify(v)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
    );
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: 65535 }), list, fc.uint8Array({ maxLength: 64 }), fc.boolean(), async (group, l, tail, whole) => {
        await send(record(group, l, whole ? frame : tail));
      }),
      { numRuns: 60, seed: 0x5eed },
    );
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => void (await send(Buffer.from(bytes)))), { numRuns: 30, seed: 0x5eed });
    for (const g of got.slice(before)) expect(g.hop.rest.every(isPeerAddress) && g.hop.chain.length > 0).toBe(true);
    // Still serving: a good record after all that is taken.
    const n = got.length;
    expect(await send(record(2, JSON.stringify({ chain: "after", rest: [] }), frame))).toBe("open");
    expect(got.length).toBe(n + 1);
  });
});
