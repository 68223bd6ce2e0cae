// Chain replication's links between targets (node-target/peer-link.ts), from the side that
// accepts them: only a peer showing a certificate one of the target's groups lists gets a link
// at all; and whatever such a peer sends, a record is taken only whole and well-formed, with a
// chain id and a list of "host:port" peers, and a frame at least as long as its header;
// anything else closes that connection and reaches no handler. From the side that dials: only
// addresses on the roster, and nothing sent before the peer showed the certificate pinned for it.

import fc from "fast-check";
import { connect as tcpConnect, createServer as tcpServer } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FRAME_HEADER, FRAME_PUT_DATA, framesOf } from "../../common/protocol.ts";
import { isPeerAddress } from "../../common/wire-decode.ts";
import { makePeerIdentity, type PeerIdentity } from "../../node-target/peer-identity.ts";
import { PeerLink, type Hop } from "../../node-target/peer-link.ts";

let link: PeerLink;
const got: { group: number; hop: Hop; frame: Buffer }[] = [];
const broken: { to: string; reason: string }[] = [];
/** A member of the link's group (on its roster), and a stranger with a certificate of its own. */
const member = makePeerIdentity("t-member");
const stranger = makePeerIdentity("t-stranger");

beforeAll(async () => {
  link = await PeerLink.start({
    listen: "127.0.0.1:0",
    identity: makePeerIdentity("t-under-test"),
    onFrame: async (group, frame, hop) => void got.push({ group, hop, frame: Buffer.from(frame) }),
    onBroken: (_passed, to, reason) => void broken.push({ to, reason }),
  });
  link.setRoster(1, [{ address: "127.0.0.1:7001", cert: member.fingerprint }]);
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

/** Send `bytes` on a fresh TLS connection as `as`; resolves "closed" if the link closed it, "open" otherwise. */
function send(bytes: Buffer, as: PeerIdentity | null = member): Promise<"closed" | "open"> {
  return new Promise((resolve) => {
    const port = Number(link.address.split(":")[1]);
    const s = as
      ? tlsConnect({ host: "127.0.0.1", port, key: as.key, cert: as.cert, rejectUnauthorized: false }, () => s.write(bytes))
      : tcpConnect(port, "127.0.0.1", () => s.write(bytes));
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
  it("takes links only from a certificate its groups list, over TLS", async () => {
    const before = got.length;
    const list = JSON.stringify({ chain: "c-who", rest: [] });
    // Plain TCP, a certificate no group lists, no certificate at all: closed, nothing handled.
    expect(await send(record(5, list, frame), null)).toBe("closed");
    expect(await send(record(5, list, frame), stranger)).toBe("closed");
    const bare = await new Promise<"closed" | "open">((resolve) => {
      const s = tlsConnect({ host: "127.0.0.1", port: Number(link.address.split(":")[1]), rejectUnauthorized: false }, () => s.write(record(5, list, frame)));
      const timer = setTimeout(() => (s.destroy(), resolve("open")), 300);
      s.on("close", () => (clearTimeout(timer), resolve("closed")));
      s.on("error", () => {});
    });
    expect(bare).toBe("closed");
    expect(got.length).toBe(before);
    // A member is heard.
    expect(await send(record(5, list, frame))).toBe("open");
    expect(got.length).toBe(before + 1);
  });

  it("closes a member's link once no group lists it any more", async () => {
    const s = tlsConnect({ host: "127.0.0.1", port: Number(link.address.split(":")[1]), key: member.key, cert: member.cert, rejectUnauthorized: false });
    await new Promise<void>((r) => s.once("secureConnect", () => r()));
    const closed = new Promise<void>((r) => s.once("close", () => r()));
    s.on("error", () => {});
    // Another group's roster changing leaves it; its own group dropping it closes the link.
    link.setRoster(2, [{ address: "127.0.0.1:7002", cert: stranger.fingerprint }]);
    // The link staying open is an absence: seen by giving a close time to happen.
    await new Promise((r) => setTimeout(r, 100));
    expect(s.destroyed).toBe(false);
    link.setRoster(1, []);
    await closed;
    link.setRoster(2, []);
    link.setRoster(1, [{ address: "127.0.0.1:7001", cert: member.fingerprint }]);
  });

  it("dials only peers on its roster, and sends nothing to one that shows another certificate", async () => {
    // Something listening where a stranger's address would be: it must never be dialled.
    let dialled = 0;
    const listener = tcpServer((c) => {
      dialled++;
      c.destroy();
    });
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    const strangerAt = `127.0.0.1:${(listener.address() as { port: number }).port}`;
    // An impostor: a real peer link at an address the roster pins to the member's certificate.
    const received: Buffer[] = [];
    const impostor = await PeerLink.start({ listen: "127.0.0.1:0", identity: stranger, onFrame: async (_g, f) => void received.push(Buffer.from(f)), onBroken: () => {} });
    impostor.setRoster(3, [{ address: link.address, cert: link.fingerprint }]);
    link.setRoster(3, [{ address: impostor.address, cert: member.fingerprint }]);
    try {
      const before = broken.length;
      await link.forward(strangerAt, { chain: "c-out", rest: [] }, 3, frame);
      await link.forward(impostor.address, { chain: "c-out", rest: [] }, 3, frame);
      for (let i = 0; i < 50 && broken.length < before + 2; i++) await new Promise((r) => setTimeout(r, 20));
      expect(broken.slice(before).map((b) => b.to)).toEqual([strangerAt, impostor.address]);
      expect(dialled).toBe(0);
      expect(received).toHaveLength(0);
    } finally {
      link.setRoster(3, []);
      impostor.close();
      listener.close();
    }
  });

  it("takes a well-formed record and hands on its group, chain and frame", async () => {
    const before = got.length;
    expect(await send(record(5, JSON.stringify({ chain: "c-1", rest: ["127.0.0.1:7001", "[::1]:7002"] }), frame))).toBe("open");
    expect(got).toHaveLength(before + 1);
    expect(got[before]!.group).toBe(5);
    expect(got[before]!.hop).toEqual({ chain: "c-1", rest: ["127.0.0.1:7001", "[::1]:7002"] });
    expect(Buffer.compare(got[before]!.frame, Buffer.from(frame))).toBe(0);
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
