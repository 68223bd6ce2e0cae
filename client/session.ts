// A client for chunk-aware editing sessions (common/session-protocol.ts, docs/chunk-aware-api.md):
// open a session over a signed WebSocket, start pending versions from a base, edit them, and
// commit. `sync` sends only what changed: it cuts the new content with the gateway's own
// content-defined chunking and, for each chunk, asks first whether the session already knows
// it; only chunks the base does not have cross the network. Runs in Node (the `ws` package).

import { createHash } from "node:crypto";
import WebSocket from "ws";
import { compress } from "../common/chunk-encoding.ts";
import { Chunker } from "../common/chunker.ts";
import { SESSION_PATH, type ClientCommand, type EditMode, type ServerAnswer } from "../common/session-protocol.ts";
import { signRequest, UNSIGNED_PAYLOAD } from "../common/sigv4.ts";
import type { Credentials } from "./extensions.ts";

export class SessionError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

type Hello = Extract<ServerAnswer, { op: "hello" }>;
type Committed = Extract<ServerAnswer, { op: "committed" }>;

interface Waiter {
  resolve: (a: ServerAnswer) => void;
  reject: (e: Error) => void;
}

/** What carries commands: a WebSocket (EditingSession) or one HTTP request each (HttpEditingSession). */
export interface CommandChannel {
  call(cmd: ClientCommand, payload?: Uint8Array): Promise<ServerAnswer>;
  chunker(): Chunker;
}

/** Start a pending version on either kind of session. */
async function beginOn(
  ch: CommandChannel,
  txn: string,
  o: { bucket: string; key: string; base?: string | null; mode: EditMode; ifAbsent?: boolean; ifVersion?: string; replicas?: number },
): Promise<PendingEdit> {
  const a = (await ch.call({ op: "new", txn, ...o })) as Extract<ServerAnswer, { op: "ready" }>;
  return new PendingEdit(ch, txn, a.size, a.baseVersionId);
}

export class EditingSession implements CommandChannel {
  private readonly ws: WebSocket;
  private readonly waiting: Waiter[] = [];
  private failure: Error | null = null;
  private nextTxn = 1;
  hello!: Hello;

  private constructor(ws: WebSocket) {
    this.ws = ws;
  }

  static async open(creds: Credentials): Promise<EditingSession> {
    const url = new URL(SESSION_PATH, creds.endpoint);
    const auth = await signRequest({ method: "GET", url, headers: {}, payloadHash: UNSIGNED_PAYLOAD, accessKey: creds.accessKeyId, secretKey: creds.secretAccessKey, region: creds.region });
    const ws = new WebSocket(url.toString().replace(/^http/, "ws"), { headers: { ...auth } });
    const s = new EditingSession(ws);
    const hello = new Promise<Hello>((resolve, reject) => {
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => reject(new SessionError(/<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? String(res.statusCode), /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? body)));
      });
      ws.once("error", reject);
      ws.once("message", (data) => resolve(JSON.parse(String(data)) as Hello));
    });
    s.hello = await hello;
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const a = JSON.parse(String(data)) as ServerAnswer;
      const w = s.waiting.shift();
      if (a.op === "error" && a.txn === null) return s.fail(new SessionError(a.code, a.message), w);
      if (!w) return;
      if (a.op === "error") w.reject(new SessionError(a.code, a.message));
      else w.resolve(a);
    });
    ws.on("close", () => s.fail(new SessionError("SessionClosed", "the session's connection closed")));
    ws.on("error", (e) => s.fail(e));
    return s;
  }

  private fail(e: Error, first?: Waiter): void {
    this.failure ??= e;
    first?.reject(e);
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  /** Send a command (and its payload frames); resolves with its answer. Answers come in order. */
  call(cmd: ClientCommand, payload?: Uint8Array): Promise<ServerAnswer> {
    if (this.failure) return Promise.reject(this.failure);
    const p = new Promise<ServerAnswer>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.ws.send(JSON.stringify(cmd));
    if (payload) for (let at = 0; at < payload.length; at += this.hello.frameMax) this.ws.send(payload.subarray(at, at + this.hello.frameMax));
    return p;
  }

  /** A pending version of `key`, from `base` ("current", a version id, or null for none). */
  begin(o: { bucket: string; key: string; base?: string | null; mode: EditMode; ifAbsent?: boolean; ifVersion?: string; replicas?: number }): Promise<PendingEdit> {
    return beginOn(this, `t${this.nextTxn++}`, o);
  }

  /** Closing the connection aborts every pending version it holds. */
  close(): Promise<void> {
    return new Promise((r) => {
      if (this.ws.readyState === WebSocket.CLOSED) return r();
      this.ws.once("close", () => r());
      this.ws.close();
    });
  }

  chunker(): Chunker {
    return new Chunker(this.hello.chunking);
  }
}

/**
 * The HTTP form, for clients that cannot hold a WebSocket: POST /_sessions opens it, each
 * command is one POST /_sessions/{id} (the command in x-edgestore-command, a write's payload as
 * the body), DELETE ends it. Unused for 5 minutes, the session expires and aborts what it holds.
 */
export class HttpEditingSession implements CommandChannel {
  private readonly creds: Credentials;
  readonly id: string;
  private readonly chunking: { min: number; avg: number; max: number };
  private nextTxn = 1;

  private constructor(creds: Credentials, id: string, chunking: { min: number; avg: number; max: number }) {
    this.creds = creds;
    this.id = id;
    this.chunking = chunking;
  }

  private static async request(creds: Credentials, method: string, path: string, headers: Record<string, string>, body?: Uint8Array): Promise<Response> {
    const url = new URL(path, creds.endpoint);
    const auth = await signRequest({ method, url, headers, payloadHash: UNSIGNED_PAYLOAD, accessKey: creds.accessKeyId, secretKey: creds.secretAccessKey, region: creds.region });
    const res = await fetch(url, { method, headers: { ...headers, ...auth }, ...(body ? { body: body as Uint8Array<ArrayBuffer> } : {}) });
    if (!res.ok) {
      const text = await res.text();
      throw new SessionError(/<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? String(res.status), /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? text);
    }
    return res;
  }

  /** `chunking` as the gateway's (wrangler.toml CHUNK_*): only sync needs it. */
  static async open(creds: Credentials, chunking = { min: 256 * 1024, avg: 1024 * 1024, max: 4 * 1024 * 1024 }): Promise<HttpEditingSession> {
    const res = await HttpEditingSession.request(creds, "POST", "/_sessions", {});
    const { session } = (await res.json()) as { session: string };
    return new HttpEditingSession(creds, session, chunking);
  }

  async call(cmd: ClientCommand, payload?: Uint8Array): Promise<ServerAnswer> {
    const res = await HttpEditingSession.request(this.creds, "POST", `/_sessions/${this.id}`, { "x-edgestore-command": JSON.stringify(cmd) }, payload);
    return (await res.json()) as ServerAnswer;
  }

  chunker(): Chunker {
    return new Chunker(this.chunking);
  }

  begin(o: { bucket: string; key: string; base?: string | null; mode: EditMode; ifAbsent?: boolean; ifVersion?: string; replicas?: number }): Promise<PendingEdit> {
    return beginOn(this, `t${this.nextTxn++}`, o);
  }

  /** End the session: every pending version it holds is aborted. */
  async close(): Promise<void> {
    await HttpEditingSession.request(this.creds, "DELETE", `/_sessions/${this.id}`, {});
  }
}

export class PendingEdit {
  private readonly s: CommandChannel;
  readonly txn: string;
  size: number;
  readonly baseVersionId: string | null;

  constructor(s: CommandChannel, txn: string, size: number, baseVersionId: string | null) {
    this.s = s;
    this.txn = txn;
    this.size = size;
    this.baseVersionId = baseVersionId;
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    const a = (await this.s.call({ op: "write", txn: this.txn, offset, length: bytes.length }, bytes)) as Extract<ServerAnswer, { op: "written" }>;
    this.size = a.size;
  }

  /**
   * Write one chunk compressed here (gzip or deflate-raw), so only the compressed bytes cross
   * the network; the cluster stores it as sent and GETs return it decompressed.
   */
  async writeCompressed(offset: number, bytes: Uint8Array, enc: "gzip" | "deflate-raw" = "deflate-raw"): Promise<number> {
    const packed = await compress(bytes, enc);
    const a = (await this.s.call({ op: "write", txn: this.txn, offset, length: bytes.length, enc, stored: packed.length }, packed)) as Extract<ServerAnswer, { op: "written" }>;
    this.size = a.size;
    return packed.length;
  }

  /** Writes by reference if the session knows this exact content; true if nothing had to be sent. */
  async probe(offset: number, bytes: Uint8Array): Promise<boolean> {
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const a = (await this.s.call({ op: "probe", txn: this.txn, offset, length: bytes.length, sha256 })) as Extract<ServerAnswer, { op: "probed" }>;
    this.size = a.size;
    return a.stored;
  }

  /**
   * Make the pending content `content`, sending only the chunks the session does not already
   * know: cut with the gateway's chunking, probe each chunk, write the misses, truncate to
   * the new length. Returns how many payload bytes were sent. Meant for an edit begun in
   * "replace" mode: every chunk then lands at the end, and nothing is cut and re-stored.
   */
  async sync(content: Uint8Array): Promise<{ sent: number; chunks: number; reused: number }> {
    const chunker = this.s.chunker();
    let offset = 0;
    let sent = 0;
    let reused = 0;
    const pieces = [...chunker.push(content), ...chunker.finish()];
    for (const piece of pieces) {
      if (await this.probe(offset, piece)) reused++;
      else {
        await this.write(offset, piece);
        sent += piece.length;
      }
      offset += piece.length;
    }
    if (this.size !== content.length) await this.truncate(content.length);
    return { sent, chunks: pieces.length, reused };
  }

  async truncate(size: number): Promise<void> {
    const a = (await this.s.call({ op: "truncate", txn: this.txn, size })) as Extract<ServerAnswer, { op: "truncated" }>;
    this.size = a.size;
  }

  async meta(set: Record<string, string>, del: string[] = []): Promise<void> {
    await this.s.call({ op: "meta", txn: this.txn, set, delete: del });
  }

  async commit(): Promise<Committed> {
    return (await this.s.call({ op: "commit", txn: this.txn })) as Committed;
  }

  async abort(): Promise<void> {
    await this.s.call({ op: "abort", txn: this.txn });
  }
}
