// The WebSocket client a target dials its groups and the cluster with (RFC 6455, client side):
// what `ws` did, minus the garbage. `ws` hands over every message as a fresh Buffer, joined from
// the fresh Buffers of each socket read, and a target receiving 200 MB/s of chunk frames spent
// more of its time collecting them than hashing the data (measured: a full mark-compact every
// ~11 MB received). Here a plain connection reads into one reused buffer (`onread`), and each
// binary message is gathered into a reused 1 MiB block that its handler gives back when done.
// Frames it sends carry an all-zero mask, so payloads go out as they are (masking protects
// proxies from script in a browser; a target is not one), the header and the payload in one
// vectored write. TLS (wss://) reads through the usual events, since TLS sockets cannot read
// into a caller's buffer; messages are still gathered into reused blocks. What the RFC says a
// client must refuse fails the connection: an answer that is no WebSocket upgrade, masked
// frames, reserved bits, text that is not UTF-8, malformed control frames, oversized messages.

import { createHash, randomBytes } from "node:crypto";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { giveBlock, MESSAGE_BLOCK, takeBlock } from "./message-blocks.ts";

const READ_BUFFER = 256 * 1024;
/** Binary messages up to this size are gathered into a reused block; larger ones (none in our protocol) get their own buffer. */
const BLOCK = MESSAGE_BLOCK;
const MAX_MESSAGE = 64 * 1024 * 1024;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const UTF8 = new TextDecoder("utf-8", { fatal: true });

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

export interface WsHandlers {
  /** The handshake is done; `headers`: the server's answer's, names in lower case. */
  onOpen(headers: Map<string, string>): void;
  onText(text: string): void;
  /** A binary message, valid until `done` is called (its block is reused after). */
  onBinary(data: Buffer, done: () => void): void;
  /** The connection ended (closed, failed, or refused with `status`); called once. */
  onClose(reason: string, status?: number): void;
}

type State = "connecting" | "open" | "closed";

export interface TlsOptions {
  /** Certificates to trust for wss:// besides the system's (NODE_EXTRA_CA_CERTS does the same for a whole process). */
  ca?: string | Buffer;
}

/** One message being received (possibly over several frames). */
interface Inbound {
  op: number;
  buf: Buffer;
  len: number;
  /** `buf` is a reused block (binary messages up to BLOCK). */
  block: boolean;
}

export class WsClient {
  private readonly socket: Socket;
  private readonly handlers: WsHandlers;
  private state: State = "connecting";
  private readonly key = randomBytes(16).toString("base64");
  /** The response head while the handshake is under way. */
  private head: Buffer[] = [];
  private headLen = 0;
  // Frame parsing: the header being read, then the payload left of the current frame.
  private readonly hdr = Buffer.alloc(10);
  private hdrLen = 0;
  private frameOp = 0;
  private frameFin = false;
  private remaining = 0;
  private msg: Inbound | null = null;
  private control: { op: number; buf: Buffer; len: number } | null = null;
  private inPayload = false;

  private constructor(url: URL, headers: Record<string, string>, handlers: WsHandlers, tls: TlsOptions) {
    this.handlers = handlers;
    const port = Number(url.port || (url.protocol === "wss:" ? 443 : 80));
    const host = url.hostname;
    if (url.protocol === "wss:") {
      this.socket = tlsConnect({ host, port, servername: host, ALPNProtocols: ["http/1.1"], ...(tls.ca ? { ca: tls.ca } : {}) });
      this.socket.on("data", (d: Buffer) => this.onData(d));
      this.socket.once("secureConnect", () => this.handshake(url, headers));
    } else {
      this.socket = netConnect({
        host,
        port,
        noDelay: true,
        onread: { buffer: Buffer.allocUnsafe(READ_BUFFER), callback: (n, buf) => (this.onData(Buffer.from(buf.buffer, buf.byteOffset, n)), true) },
      });
      this.socket.once("connect", () => this.handshake(url, headers));
    }
    this.socket.setNoDelay(true);
    this.socket.on("error", (e) => this.end(`error: ${e.message}`));
    this.socket.on("close", () => this.end("connection closed"));
  }

  /** Dial `url` (ws:// or wss://) with these extra request headers. */
  static connect(url: string, headers: Record<string, string>, handlers: WsHandlers, tls: TlsOptions = {}): WsClient {
    return new WsClient(new URL(url), headers, handlers, tls);
  }

  get open(): boolean {
    return this.state === "open";
  }

  /** Bytes handed to the socket and not yet written to the kernel. */
  get buffered(): number {
    return this.socket.writableLength;
  }

  /** Send a text (a string) or binary message; `sent` once it is handed to the kernel (or failed). */
  send(data: string | Uint8Array, sent?: (err?: Error) => void): void {
    if (this.state !== "open") {
      sent?.(new Error("WebSocket is not open"));
      return;
    }
    const text = typeof data === "string";
    const payload = text ? Buffer.from(data) : data;
    this.socket.cork();
    this.socket.write(frameHead(text ? OP_TEXT : OP_BINARY, payload.length));
    this.socket.write(payload, sent ? (err) => sent(err ?? undefined) : undefined);
    this.socket.uncork();
  }

  /** Send and resolve once the bytes are handed to the kernel, so a sender can pace itself. */
  sendAsync(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.send(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Say goodbye (a close frame) and end the connection once what is queued is written. */
  close(code = 1000, reason = ""): void {
    this.goodbye(code, reason, "closed by this side");
  }

  private goodbye(code: number, reason: string, why: string): void {
    if (this.state === "open") {
      const body = Buffer.alloc(2 + Buffer.byteLength(reason));
      body.writeUInt16BE(code, 0);
      body.write(reason, 2);
      this.socket.write(Buffer.concat([frameHead(OP_CLOSE, body.length), body]));
    }
    this.socket.end();
    this.end(why, undefined, false);
  }

  private handshake(url: URL, headers: Record<string, string>): void {
    let req = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n`;
    for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
    this.socket.write(`${req}\r\n`);
  }

  private end(reason: string, status?: number, destroy = true): void {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.msg?.block) giveBlock(this.msg.buf);
    this.msg = null;
    if (destroy) this.socket.destroy();
    this.handlers.onClose(reason, status);
  }

  private onData(data: Buffer): void {
    if (this.state === "closed") return;
    let at = 0;
    if (this.state === "connecting") {
      at = this.readHead(data);
      if (at < 0 || !this.open) return;
    }
    while (at < data.length && this.open) {
      if (!this.inPayload) {
        at = this.readHeader(data, at);
        continue;
      }
      const n = Math.min(this.remaining, data.length - at);
      this.payload(data.subarray(at, at + n));
      at += n;
      this.remaining -= n;
      if (this.remaining === 0) this.frameDone();
    }
  }

  /** Consume the handshake response; returns where frames begin in `data`, or -1 (not complete yet, or refused). */
  private readHead(data: Buffer): number {
    // Copied: the read buffer is reused.
    const piece = Buffer.from(data);
    this.head.push(piece);
    this.headLen += piece.length;
    const all = Buffer.concat(this.head, this.headLen);
    const end = all.indexOf("\r\n\r\n");
    if (end < 0) {
      if (this.headLen > 64 * 1024) this.end("handshake response too long");
      return -1;
    }
    this.head = [];
    const lines = all.subarray(0, end).toString("latin1").split("\r\n");
    const status = Number(lines[0]!.split(" ")[1]);
    if (status !== 101) {
      this.end(`refused with ${status}`, status);
      return -1;
    }
    const answer = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const colon = l.indexOf(":");
      if (colon > 0) answer.set(l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim());
    }
    // RFC 6455 4.1: a 101 that is not an upgrade to WebSocket, or that does not prove it read our key, is not one.
    const upgrade = answer.get("upgrade")?.toLowerCase();
    const connection = answer.get("connection")?.toLowerCase().split(",").map((t) => t.trim());
    if (upgrade !== "websocket" || !connection?.includes("upgrade")) {
      this.end("handshake answered without Upgrade: websocket and Connection: Upgrade");
      return -1;
    }
    if (answer.get("sec-websocket-accept") !== createHash("sha1").update(this.key + GUID).digest("base64")) {
      this.end("handshake answered with a wrong Sec-WebSocket-Accept");
      return -1;
    }
    this.state = "open";
    this.handlers.onOpen(answer);
    // Frames that came with the head: parse them from our copy, then go on with the read buffer.
    const rest = all.subarray(end + 4);
    if (rest.length > 0) this.onData(rest);
    return data.length;
  }

  /** Read as much of a frame header as `data` has from `at`; returns the new position. */
  private readHeader(data: Buffer, at: number): number {
    while (at < data.length && this.hdrLen < 2) this.hdr[this.hdrLen++] = data[at++]!;
    if (this.hdrLen < 2) return at;
    // RFC 6455 5.1 and 5.2: a server never masks, and no extension (none is negotiated) sets RSV bits.
    const wrong = (this.hdr[1]! & 0x80) !== 0 ? "masked frame from the server" : (this.hdr[0]! & 0x70) !== 0 ? "reserved bits set" : null;
    if (wrong !== null) {
      this.fail(wrong);
      return data.length;
    }
    const len7 = this.hdr[1]! & 0x7f;
    const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0);
    while (at < data.length && this.hdrLen < need) this.hdr[this.hdrLen++] = data[at++]!;
    if (this.hdrLen < need) return at;
    let len = len7;
    if (len7 === 126) len = this.hdr.readUInt16BE(2);
    else if (len7 === 127) len = Number(this.hdr.readBigUInt64BE(2));
    this.hdrLen = 0;
    this.frameFin = (this.hdr[0]! & 0x80) !== 0;
    this.frameOp = this.hdr[0]! & 0x0f;
    this.remaining = len;
    if (!this.beginFrame(len)) return data.length;
    this.inPayload = true;
    if (len === 0) this.frameDone();
    return at;
  }

  /** Set up where a frame's payload goes; false (connection ended) if the frame is not acceptable. */
  private beginFrame(len: number): boolean {
    const op = this.frameOp;
    if (op >= 0x8) {
      if (len > 125 || !this.frameFin) return this.fail("bad control frame");
      this.control = { op, buf: Buffer.alloc(len), len: 0 };
      return true;
    }
    if (op === OP_CONT) {
      if (!this.msg) return this.fail("continuation without a message");
      if (this.msg.len + len > MAX_MESSAGE) return this.fail("message too large");
      this.grow(this.msg.len + len);
      return true;
    }
    if (op !== OP_TEXT && op !== OP_BINARY) return this.fail(`unknown opcode ${op}`);
    if (this.msg) return this.fail("new message before the last one ended");
    if (len > MAX_MESSAGE) return this.fail("message too large");
    const block = op === OP_BINARY && len <= BLOCK;
    this.msg = { op, buf: block ? takeBlock() : Buffer.allocUnsafe(Math.max(len, 256)), len: 0, block };
    return true;
  }

  /** Make room for `need` bytes of the current message (fragmented messages only). */
  private grow(need: number): void {
    const m = this.msg!;
    if (need <= m.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(need, m.buf.length * 2));
    m.buf.copy(bigger, 0, 0, m.len);
    if (m.block) giveBlock(m.buf);
    m.buf = bigger;
    m.block = false;
  }

  private payload(piece: Buffer): void {
    const target = this.frameOp >= 0x8 ? this.control! : this.msg!;
    piece.copy(target.buf, target.len);
    target.len += piece.length;
  }

  private frameDone(): void {
    this.inPayload = false;
    if (this.frameOp >= 0x8) {
      const c = this.control!;
      this.control = null;
      if (c.op === OP_PING && this.state === "open") {
        this.socket.write(Buffer.concat([frameHead(OP_PONG, c.len), c.buf.subarray(0, c.len)]));
      } else if (c.op === OP_CLOSE) {
        if (c.len === 1) {
          this.fail("close frame with a one-byte body");
          return;
        }
        const code = c.len >= 2 ? c.buf.readUInt16BE(0) : 1005;
        const reason = c.len > 2 ? c.buf.toString("utf8", 2, c.len) : "";
        this.goodbye(code === 1005 ? 1000 : code, "", `closed by the server (${code} ${reason})`);
      }
      return;
    }
    if (!this.frameFin) return;
    const m = this.msg!;
    this.msg = null;
    if (m.op === OP_TEXT) {
      let text: string;
      try {
        text = UTF8.decode(m.buf.subarray(0, m.len));
      } catch {
        // RFC 6455 8.1: text that is not UTF-8 fails the connection (replacing bytes would hand on another message).
        this.fail("text message not UTF-8");
        return;
      } finally {
        if (m.block) giveBlock(m.buf);
      }
      this.handlers.onText(text);
      return;
    }
    let given = false;
    this.handlers.onBinary(m.buf.subarray(0, m.len), () => {
      if (given) return;
      given = true;
      if (m.block) giveBlock(m.buf);
    });
  }

  private fail(why: string): false {
    this.end(`protocol error: ${why}`);
    return false;
  }
}

/** A client frame's header, FIN set, masked with an all-zero key. */
function frameHead(op: number, len: number): Buffer {
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const h = Buffer.alloc(2 + ext + 4);
  h[0] = 0x80 | op;
  if (ext === 0) h[1] = 0x80 | len;
  else if (ext === 2) {
    h[1] = 0x80 | 126;
    h.writeUInt16BE(len, 2);
  } else {
    h[1] = 0x80 | 127;
    h.writeBigUInt64BE(BigInt(len), 2);
  }
  return h;
}
