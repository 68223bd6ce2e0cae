// The benchmarks' minimal HTTP/1.1 client: one keep-alive TCP connection per concurrent
// request, requests written in one go, responses parsed by Content-Length only, and every read
// into one reused 1 MiB buffer (net's `onread`). The benchmark shares two cores with the server
// it measures, so the client must cost as little CPU per byte as it can: node:http spends
// ~1 ms of CPU per MB received here (64 KiB reads, a Buffer and an event per read), this a
// fraction of that. It handles exactly what the gateway sends: no chunked responses, no
// redirects, no TLS.

import { connect, type Socket } from "node:net";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";

export interface Reply {
  status: number;
  headers: Map<string, string>;
  /** Bytes of body received. */
  length: number;
  /** The body, when the caller asked to keep it (small replies, errors). */
  body: Buffer | null;
}

interface Waiter {
  keep: boolean;
  /** A HEAD reply announces a length but has no body. */
  head: boolean;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

const READ_BUFFER = 1024 * 1024;
const CRLFCRLF = Buffer.from("\r\n\r\n");

class Connection {
  private readonly socket: Socket;
  private waiter: Waiter | null = null;
  private head: Buffer[] = [];
  private headLen = 0;
  private reply: Reply | null = null;
  private remaining = 0;
  private kept: Buffer[] = [];
  readonly ready: Promise<void>;
  closed = false;

  constructor(host: string, port: number) {
    this.socket = connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: Buffer.allocUnsafe(READ_BUFFER), callback: (n, buf) => (this.onData(Buffer.from(buf.buffer, buf.byteOffset, n)), true) },
    });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once("connect", resolve);
      this.socket.once("error", reject);
    });
    this.socket.on("error", (e) => this.fail(e));
    this.socket.on("close", () => {
      this.closed = true;
      this.fail(new Error("connection closed"));
    });
  }

  request(head: string, body: Uint8Array | null, keep: boolean, isHead: boolean): Promise<Reply> {
    if (this.waiter) throw new Error("one request at a time per connection");
    const p = new Promise<Reply>((resolve, reject) => (this.waiter = { keep, head: isHead, resolve, reject }));
    // Two writes, not corked into one: a corked head-plus-1-MiB writev made every 1 MiB PUT
    // wait ~40 ms here (a delayed-ACK stall), 60 ms per PUT instead of 20.
    this.socket.write(head);
    if (body && body.length > 0) this.socket.write(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    return p;
  }

  private fail(e: Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
  }

  private onData(data: Buffer): void {
    let at = 0;
    while (at < data.length && this.waiter) {
      if (!this.reply) {
        // Accumulate the head (copied: the read buffer is reused) until the blank line.
        const piece = Buffer.from(data.subarray(at));
        this.head.push(piece);
        this.headLen += piece.length;
        const all = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head, this.headLen);
        const end = all.indexOf(CRLFCRLF);
        if (end < 0) return;
        this.head = [];
        this.headLen = 0;
        this.reply = parseHead(all.subarray(0, end).toString("latin1"));
        this.remaining = this.waiter.head ? 0 : Number(this.reply.headers.get("content-length") ?? 0);
        // Error replies are small and worth reading.
        if (this.reply.status >= 300) this.waiter.keep = true;
        const rest = all.subarray(end + 4);
        data = rest;
        at = 0;
        if (this.remaining === 0) this.finish();
        continue;
      }
      const n = Math.min(this.remaining, data.length - at);
      if (this.waiter.keep) this.kept.push(Buffer.from(data.subarray(at, at + n)));
      this.reply.length += n;
      this.remaining -= n;
      at += n;
      if (this.remaining === 0) this.finish();
    }
  }

  private finish(): void {
    const r = this.reply!;
    const w = this.waiter!;
    if (w.keep) r.body = Buffer.concat(this.kept);
    this.kept = [];
    this.reply = null;
    this.waiter = null;
    w.resolve(r);
  }

  close(): void {
    this.socket.destroy();
  }
}

function parseHead(text: string): Reply {
  const lines = text.split("\r\n");
  const status = Number(lines[0]!.split(" ")[1]);
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  return { status, headers, length: 0, body: null };
}

/** Keep-alive connections to one origin, one request in flight per connection. */
export class MinimalHttp {
  private readonly host: string;
  private readonly port: number;
  private readonly idle: Connection[] = [];

  constructor(origin: string) {
    const u = new URL(origin);
    this.host = u.hostname;
    this.port = Number(u.port || 80);
  }

  async send(method: string, path: string, headers: Record<string, string>, body: Uint8Array | null = null, keep = false): Promise<Reply> {
    let c = this.idle.pop();
    while (c?.closed) c = this.idle.pop();
    if (!c) {
      c = new Connection(this.host, this.port);
      await c.ready;
    }
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.host}:${this.port}\r\ncontent-length: ${body?.length ?? 0}\r\n`;
    for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() !== "host" && k.toLowerCase() !== "content-length") head += `${k}: ${v}\r\n`;
    const r = await c.request(head + "\r\n", body, keep, method === "HEAD");
    this.idle.push(c);
    return r;
  }

  close(): void {
    for (const c of this.idle) c.close();
    this.idle.length = 0;
  }
}

/** Where a signed request goes, and whose key signs it. */
export interface SigningTarget {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

/**
 * Requests over `http` signed with the target's key (payload unsigned, as a benchmark's
 * client would not hash every body twice); anything but 200 or 204 is thrown with its body.
 * Each resolves to the length of the body received.
 */
export function signedSend(http: MinimalHttp, t: SigningTarget): (method: string, path: string, body?: Uint8Array | null) => Promise<number> {
  return async (method, path, body = null) => {
    const headers = (await signRequest({ method, url: `${t.endpoint}${path}`, payloadHash: UNSIGNED_PAYLOAD, accessKey: t.accessKey, secretKey: t.secretKey, region: t.region })) as unknown as Record<string, string>;
    const r = await http.send(method, path, headers, body);
    if (r.status !== 200 && r.status !== 204) throw new Error(`${method} ${path}: ${r.status} ${r.body?.toString() ?? ""}`);
    return r.length;
  };
}
