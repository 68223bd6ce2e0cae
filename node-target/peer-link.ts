// Chain replication's wire between targets (seed 004: "send data to the first node in the list,
// replicates down the chain"). A group sends a chunk's frames once, to the head of a chain; each
// target on it passes every frame on to the next over a direct TCP connection as it arrives,
// before writing it, so the copies are written in a pipeline and the edge sends one copy
// instead of R. Only targets started with --peer-listen take part (they advertise the address
// when they dial their groups); the group falls back to sending directly to any target whose
// upstream link fails (`chain-broken`), and a target drops frames it already has, so a resend
// after a break costs nothing twice.
//
// A record: u32 length of the rest, u16 group, u16 length of a JSON {chain, rest} (the chain's
// id, which the group gave every target of it in its select-put, and the addresses still to
// pass it to), that JSON, then the frame exactly as the group sent it (its header names the
// transaction, item and offset). The chain id keeps a frame from a transaction of an earlier
// life of the group (whose ids start again at 1) out of a new one. One connection per peer,
// reused; TCP keeps records in order.

import { createConnection, createServer, type Server, type Socket } from "node:net";
import { FRAME_HEADER } from "../common/protocol.ts";
import { isPeerAddress } from "../common/wire-decode.ts";
import { log } from "./log.ts";
import { giveBlock, MESSAGE_BLOCK, takeBlock } from "./message-blocks.ts";

/** Frames passed on but not yet known to be past a broken link are reported for this long. */
const RECENT_MS = 60_000;
const MAX_RECORD = 2 * 1024 * 1024;
/** A frame the next peer has not taken this long after it was passed on breaks the link. */
const FORWARD_WAIT_MS = 5_000;
/** Frames from one upstream in progress before its socket is paused: backpressure down the chain. */
const MAX_PENDING = 32;

/** Resolves once the frame is written here and passed on: until then the sender is slowed down. */
export type PeerFrameHandler = (group: number, frame: Buffer, hop: Hop) => Promise<void>;

/** Where a frame is in its chain: the chain's id and the peers it is still to reach. */
export interface Hop {
  chain: string;
  rest: string[];
}
export type BrokenHandler = (group: number, txn: number, item: number, to: string, reason: string) => void;

/** More peers than any chain has (a chain is R - 1 long past its head). */
const MAX_HOPS = 16;

/**
 * A record's chain id and forward list, checked where they come in from another target: the
 * list is dialled and the id looked up by, so anything but an id and "host:port" strings is a
 * bad record (a number among them threw deep in the frame handler, and took the target down).
 */
function hopOf(json: Buffer): Hop | null {
  let v: unknown;
  try {
    v = JSON.parse(json.toString());
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const { chain, rest } = v as Record<string, unknown>;
  if (typeof chain !== "string" || chain.length === 0 || chain.length > 128) return null;
  if (!Array.isArray(rest) || rest.length > MAX_HOPS || !rest.every(isPeerAddress)) return null;
  return { chain, rest: rest as string[] };
}

/** A record's head and chain list; the frame follows as it is (no copy into one buffer). */
function recordHead(group: number, hop: Hop, frameLength: number): Buffer {
  const list = Buffer.from(JSON.stringify(hop));
  const head = Buffer.allocUnsafe(8 + list.length);
  head.writeUInt32BE(4 + list.length + frameLength, 0);
  head.writeUInt16BE(group, 4);
  head.writeUInt16BE(list.length, 6);
  list.copy(head, 8);
  return head;
}

/**
 * Splits a byte stream into records. Each record's frame is gathered into a reused block
 * (message-blocks.ts) that `onRecord`'s `done` gives back; nothing is joined or copied twice.
 */
class RecordReader {
  private readonly head = Buffer.alloc(8);
  private headLen = 0;
  private list: Buffer | null = null;
  private listLen = 0;
  private frame: Buffer | null = null;
  private frameLen = 0;
  private frameAt = 0;
  private group = 0;
  private hop: Hop | null = null;
  private failed = false;
  private readonly onRecord: (group: number, hop: Hop, frame: Buffer, done: () => void) => void;
  private readonly onBad: (why: string) => void;

  constructor(onRecord: (group: number, hop: Hop, frame: Buffer, done: () => void) => void, onBad: (why: string) => void) {
    this.onRecord = onRecord;
    this.onBad = onBad;
  }

  push(data: Buffer): void {
    let at = 0;
    while (at < data.length && !this.failed) {
      if (this.headLen < 8) {
        const n = Math.min(8 - this.headLen, data.length - at);
        data.copy(this.head, this.headLen, at, at + n);
        this.headLen += n;
        at += n;
        if (this.headLen < 8) return;
        const len = this.head.readUInt32BE(0);
        this.group = this.head.readUInt16BE(4);
        const listLen = this.head.readUInt16BE(6);
        // A record carries a whole frame: at least its header.
        if (len < 4 + listLen + FRAME_HEADER || len > MAX_RECORD) return this.bad(`record of ${len} bytes`);
        this.list = Buffer.alloc(listLen);
        this.listLen = 0;
        this.frameLen = len - 4 - listLen;
        this.frame = null;
        this.frameAt = 0;
        this.hop = null;
      }
      if (this.listLen < this.list!.length) {
        const n = Math.min(this.list!.length - this.listLen, data.length - at);
        data.copy(this.list!, this.listLen, at, at + n);
        this.listLen += n;
        at += n;
        if (this.listLen < this.list!.length) return;
        const hop = hopOf(this.list!);
        if (hop === null) return this.bad("unreadable chain and forward list");
        this.hop = hop;
        this.frame = this.frameLen <= MESSAGE_BLOCK ? takeBlock() : Buffer.allocUnsafe(this.frameLen);
      }
      const n = Math.min(this.frameLen - this.frameAt, data.length - at);
      data.copy(this.frame!, this.frameAt, at, at + n);
      this.frameAt += n;
      at += n;
      if (this.frameAt < this.frameLen) return;
      const block = this.frame!;
      this.headLen = 0;
      this.frame = null;
      let given = false;
      this.onRecord(this.group, this.hop!, block.subarray(0, this.frameLen), () => {
        if (given) return;
        given = true;
        giveBlock(block);
      });
    }
  }

  /** The connection went away: a frame half received goes back. */
  drop(): void {
    if (this.frame) giveBlock(this.frame);
    this.frame = null;
  }

  private bad(why: string): void {
    this.failed = true;
    this.drop();
    this.onBad(why);
  }
}

interface Outgoing {
  socket: Socket;
  fail: (reason: string) => void;
  /** What went through it lately: reported as broken if the connection fails. */
  recent: Map<string, { group: number; txn: number; item: number; at: number }>;
}

export class PeerLink {
  private readonly server: Server;
  private readonly out = new Map<string, Outgoing>();
  private readonly onFrame: PeerFrameHandler;
  private readonly onBroken: BrokenHandler;
  /** The address other targets dial, once listening. */
  address = "";

  private constructor(onFrame: PeerFrameHandler, onBroken: BrokenHandler) {
    this.onFrame = onFrame;
    this.onBroken = onBroken;
    this.server = createServer((s) => {
      s.setNoDelay(true);
      let pending = 0;
      const done = () => {
        pending--;
        if (pending < MAX_PENDING / 2 && s.isPaused()) s.resume();
      };
      const reader = new RecordReader(
        (g, hop, frame, given) => {
          pending++;
          if (pending >= MAX_PENDING) s.pause();
          void this.onFrame(g, frame, hop)
            .catch(() => {})
            .finally(() => {
              given();
              done();
            });
        },
        (why) => {
          log("warn", "bad record from a peer: closing", { peer: `${s.remoteAddress}:${s.remotePort}`, why });
          s.destroy();
        },
      );
      s.on("data", (d: Buffer) => reader.push(d));
      s.on("close", () => reader.drop());
      s.on("error", () => s.destroy());
    });
  }

  /** Listen on `listen` ("host:port", port 0 for any); advertise `advertise` if given, else what it bound. */
  static async start(listen: string, advertise: string | undefined, onFrame: PeerFrameHandler, onBroken: BrokenHandler): Promise<PeerLink> {
    const link = new PeerLink(onFrame, onBroken);
    const at = listen.lastIndexOf(":");
    const host = listen.slice(0, at);
    const port = Number(listen.slice(at + 1));
    if (at < 0 || !Number.isInteger(port)) throw new Error(`--peer-listen must be host:port, got "${listen}"`);
    await new Promise<void>((resolve, reject) => {
      link.server.once("error", reject);
      link.server.listen(port, host, () => resolve());
    });
    const bound = link.server.address() as { address: string; port: number };
    link.address = advertise ?? `${host}:${bound.port}`;
    log("info", "peer link listening", { address: link.address });
    return link;
  }

  /** Pass a frame on to `to` (the chain's id and the addresses after `to` in `hop`). The frame's header names what it carries. */
  forward(to: string, hop: Hop, group: number, frame: Uint8Array, txn: number, item: number): Promise<void> {
    const o = this.connection(to);
    const now = Date.now();
    o.recent.set(`${group}/${txn}/${item}`, { group, txn, item, at: now });
    for (const [k, v] of o.recent) {
      if (now - v.at < RECENT_MS) break;
      o.recent.delete(k);
    }
    return new Promise((resolve) => {
      // A peer that takes nothing (a frozen host keeps its socket open) must not hold up what
      // this target heads for others: past the limit the link counts as broken, and the group
      // sends its items directly.
      const timer = setTimeout(() => {
        o.fail(`took no frame for ${FORWARD_WAIT_MS} ms`);
        resolve();
      }, FORWARD_WAIT_MS);
      // Head and frame in one vectored write; the frame is not copied, so the caller keeps it
      // until this resolves (written to the kernel, or the link failed and its queue was dropped).
      o.socket.cork();
      o.socket.write(recordHead(group, hop, frame.length));
      o.socket.write(frame, () => {
        clearTimeout(timer);
        resolve();
      });
      o.socket.uncork();
    });
  }

  private connection(to: string): Outgoing {
    const have = this.out.get(to);
    if (have && !have.socket.destroyed) return have;
    const at = to.lastIndexOf(":");
    const socket = createConnection({ host: to.slice(0, at), port: Number(to.slice(at + 1)) });
    socket.setNoDelay(true);
    const o: Outgoing = {
      socket,
      recent: new Map(),
      fail: (reason) => {
        if (this.out.get(to) === o) this.out.delete(to);
        socket.destroy();
        for (const r of o.recent.values()) this.onBroken(r.group, r.txn, r.item, to, reason);
        o.recent.clear();
      },
    };
    socket.on("error", (e) => o.fail(String(e)));
    socket.on("close", () => o.fail("connection closed"));
    // Nothing comes back on an outgoing connection; drain it anyway.
    socket.on("data", () => {});
    this.out.set(to, o);
    return o;
  }

  close(): void {
    for (const o of this.out.values()) {
      o.recent.clear();
      o.socket.destroy();
    }
    this.out.clear();
    this.server.close();
  }
}
