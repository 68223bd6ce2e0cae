// Chain replication's wire between targets (seed 004: "send data to the first node in the list,
// replicates down the chain"). A group sends a chunk's frames once, to the head of a chain; each
// target on it passes every frame on to the next over a direct connection as it arrives,
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
//
// Links are TLS, and both ends prove who they are: a target takes a link only from a
// certificate one of its groups lists as a member's, dials only addresses its groups list, and
// sends nothing until the peer has shown the certificate listed for that address
// (peer-roster.ts). So the peer port relays nothing for anyone outside the cluster, a revoked
// target's links close when its groups drop it, and what crosses the network is encrypted.

import { connect as tlsConnect, createServer, type Server, type TLSSocket } from "node:tls";
import type { CertFingerprint } from "../common/ids.ts";
import { FRAME_HEADER, frameItem, frameTxn, type PeerEntry } from "../common/protocol.ts";
import { isPeerAddress } from "../common/wire-decode.ts";
import { log } from "./log.ts";
import { giveBlock, MESSAGE_BLOCK, takeBlock } from "./message-blocks.ts";
import { fingerprintOf, type PeerIdentity } from "./peer-identity.ts";
import { PeerRoster } from "./peer-roster.ts";

/** Frames passed on but not yet known to be past a broken link are reported for this long. */
const RECENT_MS = 60_000;
const MAX_RECORD = 2 * 1024 * 1024;
/** A frame the next peer has not taken this long after it was passed on breaks the link. */
const FORWARD_WAIT_MS = 5_000;
/** Frames from one upstream in progress before its socket is paused: backpressure down the chain. */
const MAX_PENDING = 32;
/**
 * A peer that has not completed its TLS handshake this long after the dial is unreachable: a
 * firewall that drops SYNs answers nothing, and the frames waiting on the link would hold this
 * target's own writes past its group's deadline. Several round trips of a slow WAN fit in it.
 */
const CONNECT_WAIT_MS = 1_500;
/** A peer that could not be reached is not dialled again for this long: its chains break at once, and the group sends directly. */
const UNREACHABLE_MS = 30_000;

/** Resolves once the frame is written here and passed on: until then the sender is slowed down. */
export type PeerFrameHandler = (group: number, frame: Buffer, hop: Hop) => Promise<void>;

/** Where a frame is in its chain: the chain's id and the peers it is still to reach. */
export interface Hop {
  chain: string;
  rest: string[];
}
/** An item whose frames went down a chain: what a broken link is reported for. */
export interface PassedItem {
  group: number;
  txn: number;
  item: number;
}
export type BrokenHandler = (passed: PassedItem, to: string, reason: string) => void;

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
  socket: TLSSocket;
  /** Resolves true once the peer has shown the certificate its address is pinned to; false if it did not. */
  ready: Promise<boolean>;
  fail: (reason: string) => void;
  /** What went through it lately: reported as broken if the connection fails. */
  recent: Map<string, PassedItem & { at: number }>;
}

export interface PeerLinkOptions {
  /** "host:port" to listen on (port 0 for any). */
  listen: string;
  /** The address other targets dial, if not the one bound. */
  advertise?: string;
  identity: PeerIdentity;
  onFrame: PeerFrameHandler;
  onBroken: BrokenHandler;
}

/**
 * TLS 1.3 both ways; each end shows its own self-signed certificate and checks the other's
 * fingerprint against the roster, not against any CA (peer-identity.ts). AES-128 first: the
 * cheapest suite on hosts with AES instructions, and the link carries every replica's bytes.
 */
const TLS = { minVersion: "TLSv1.3", ciphersuites: "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384" } as const;

/** The fingerprint of the certificate the other end of `s` showed, or null if none. */
function shownBy(s: TLSSocket): CertFingerprint | null {
  const raw = s.getPeerCertificate()?.raw;
  return raw ? fingerprintOf(raw) : null;
}

export class PeerLink {
  private readonly server: Server;
  private readonly out = new Map<string, Outgoing>();
  /** Peers a dial failed to reach, and until when they are not dialled again. */
  private readonly unreachable = new Map<string, { until: number; why: string }>();
  /** Links peers opened to this one, by the certificate they showed: closed when it leaves the roster. */
  private readonly incoming = new Map<CertFingerprint, Set<TLSSocket>>();
  private readonly roster = new PeerRoster();
  private readonly identity: PeerIdentity;
  private readonly onFrame: PeerFrameHandler;
  private readonly onBroken: BrokenHandler;
  /** The address other targets dial, once listening. */
  address = "";

  private constructor(o: PeerLinkOptions) {
    this.identity = o.identity;
    this.onFrame = o.onFrame;
    this.onBroken = o.onBroken;
    this.server = createServer({ ...TLS, key: o.identity.key, cert: o.identity.cert, requestCert: true, rejectUnauthorized: false }, (s) => this.accepted(s));
    // A handshake that fails (a plain TCP client, a wrong protocol) ends that connection only.
    this.server.on("tlsClientError", (e, s) => {
      log("warn", "peer link handshake failed", { peer: `${s.remoteAddress}:${s.remotePort}`, error: e.message });
      s.destroy();
    });
  }

  /** Listen on `listen`; advertise `advertise` if given, else what it bound. */
  static async start(o: PeerLinkOptions): Promise<PeerLink> {
    const link = new PeerLink(o);
    const at = o.listen.lastIndexOf(":");
    const host = o.listen.slice(0, at);
    const port = Number(o.listen.slice(at + 1));
    if (at < 0 || !Number.isInteger(port)) throw new Error(`--peer-listen must be host:port, got "${o.listen}"`);
    await new Promise<void>((resolve, reject) => {
      link.server.once("error", reject);
      link.server.listen(port, host, () => resolve());
    });
    const bound = link.server.address() as { address: string; port: number };
    link.address = o.advertise ?? `${host}:${bound.port}`;
    log("info", "peer link listening", { address: link.address, cert: o.identity.fingerprint });
    return link;
  }

  /** The certificate fingerprint this target's groups are told, for its peers to pin. */
  get fingerprint(): CertFingerprint {
    return this.identity.fingerprint;
  }

  /** A group's members now (PeersMsg): links with targets no group lists any more are closed. */
  setRoster(group: number, peers: readonly PeerEntry[]): void {
    this.closeLeavers(this.roster.set(group, peers));
  }

  /** A group this target no longer serves. */
  dropRoster(group: number): void {
    this.closeLeavers(this.roster.drop(group));
  }

  /** Whether frames may go to `address`: a member of some group of this target. */
  knows(address: string): boolean {
    return this.roster.pinFor(address) !== null;
  }

  private closeLeavers({ gone, moved }: { gone: Set<CertFingerprint>; moved: Set<string> }): void {
    for (const f of gone) {
      for (const s of this.incoming.get(f) ?? []) s.destroy();
      this.incoming.delete(f);
    }
    for (const a of moved) this.out.get(a)?.fail("the peer left this target's groups, or changed its certificate");
  }

  /** A peer's link, once its handshake is done: taken only from a certificate on the roster. */
  private accepted(s: TLSSocket): void {
    const shown = shownBy(s);
    if (shown === null || !this.roster.admits(shown)) {
      log("warn", "refused a peer link from a certificate no group of this target lists", { peer: `${s.remoteAddress}:${s.remotePort}`, cert: shown });
      s.destroy();
      return;
    }
    const mine = this.incoming.get(shown) ?? new Set();
    mine.add(s);
    this.incoming.set(shown, mine);
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
        // A frame's own failure is the group's to see (no save comes, and it resends); the
        // link carries on with the next record.
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
    s.on("close", () => {
      reader.drop();
      mine.delete(s);
    });
    s.on("error", () => s.destroy());
  }

  /**
   * Pass a frame of `group` on to `to` (the chain's id and the addresses after `to` in `hop`).
   * The frame's header names what it carries; its transaction and item are read from there.
   */
  forward(to: string, hop: Hop, group: number, frame: Uint8Array): Promise<void> {
    const txn = frameTxn(frame);
    const item = frameItem(frame);
    const down = this.unreachable.get(to);
    if (down && down.until > Date.now()) {
      this.onBroken({ group, txn, item }, to, `unreachable lately (${down.why})`);
      return Promise.resolve();
    }
    const o = this.connection(to);
    if (o === null) {
      // Not a member of any group here: never dialled. The group sends that copy directly.
      this.onBroken({ group, txn, item }, to, "not a peer of any group of this target");
      return Promise.resolve();
    }
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
      // Nothing goes out before the peer has proven who it is. Records keep their order: each
      // waits on the same promise, and its callbacks run in the order they were added.
      void o.ready.then((ok) => {
        if (!ok) {
          clearTimeout(timer);
          return resolve();
        }
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
    });
  }

  private connection(to: string): Outgoing | null {
    const have = this.out.get(to);
    if (have && !have.socket.destroyed) return have;
    const pin = this.roster.pinFor(to);
    if (pin === null) return null;
    const at = to.lastIndexOf(":");
    const socket = tlsConnect({ ...TLS, host: to.slice(0, at).replace(/^\[(.*)\]$/, "$1"), port: Number(to.slice(at + 1)), key: this.identity.key, cert: this.identity.cert, rejectUnauthorized: false });
    socket.setNoDelay(true);
    let settle: (ok: boolean) => void = () => {};
    let shook = false;
    const o: Outgoing = {
      socket,
      ready: new Promise((r) => (settle = r)),
      recent: new Map(),
      fail: (reason) => {
        clearTimeout(handshake);
        // Never reached: left alone for a while. A link that worked and broke is dialled again at once.
        if (!shook && this.out.get(to) === o) this.unreachable.set(to, { until: Date.now() + UNREACHABLE_MS, why: reason });
        settle(false);
        if (this.out.get(to) === o) this.out.delete(to);
        socket.destroy();
        for (const r of o.recent.values()) this.onBroken(r, to, reason);
        o.recent.clear();
      },
    };
    const handshake = setTimeout(() => o.fail(`no handshake within ${CONNECT_WAIT_MS} ms`), CONNECT_WAIT_MS);
    socket.once("secureConnect", () => {
      clearTimeout(handshake);
      const shown = shownBy(socket);
      shook = shown === pin;
      if (shown === pin) {
        this.unreachable.delete(to);
        return settle(true);
      }
      log("warn", "a peer showed another certificate than the one its group gave: not sending", { peer: to, cert: shown, expected: pin });
      o.fail("the peer showed another certificate than its group gave");
    });
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
    for (const set of this.incoming.values()) for (const s of set) s.destroy();
    this.incoming.clear();
    this.server.close();
  }
}
