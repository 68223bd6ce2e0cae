// A client for chunk-aware editing sessions (common/session-protocol.ts, docs/chunk-aware-api.md):
// open a session over a signed WebSocket, start pending versions from a base, edit them, and
// commit. `sync` sends only what changed: it cuts the new content with the gateway's own
// content-defined chunking and, for each chunk, asks first whether the session already knows
// it; only chunks the base does not have cross the network. `syncStream` and `writeStream` do
// the same for content that arrives in pieces, holding a few chunks rather than the whole
// object. Runs in Node (the `ws` package).

import { createHash } from "node:crypto";
import WebSocket from "ws";
import { compress } from "../common/chunk-encoding.ts";
import { Chunker } from "../common/chunker.ts";
import { gearScan } from "./gear-scan.ts";
import { SESSION_PATH, type ClientCommand, type EditMode, type ServerAnswer } from "../common/session-protocol.ts";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
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
  /**
   * The gateway runs commands in the order they were sent and answers them in that order, so
   * several may be in flight at once. Only the WebSocket form can promise that: HTTP requests
   * sent together may reach the session in any order.
   */
  readonly ordered?: boolean;
}

/** How far a streaming sync has got: bytes the gateway has placed, payload bytes sent, chunks. */
export interface SyncProgress {
  done: number;
  sent: number;
  chunks: number;
  reused: number;
}

export interface SyncOptions {
  onProgress?: (p: SyncProgress) => void;
  /**
   * Most probes in flight at once (default 16). 1 never probes ahead of an answer; see
   * PendingEdit.syncStream for what probing ahead costs.
   */
  window?: number;
}

/** Probes in flight never hold more than this many chunk bytes (with `window`, this bounds memory). */
const PROBE_AHEAD_BYTES = 32 * 1024 * 1024;
/** Payload sent but not yet "written", at most: well under the gateway's 64 MiB cut-off. */
const WRITE_AHEAD_BYTES = 16 * 1024 * 1024;
/** writeStream sends whole chunks in writes of about this size. */
const WRITE_BATCH_BYTES = 8 * 1024 * 1024;
const SYNC_WINDOW = 16;

/** A whole buffer as a source, a MiB at a time, so the chunker copies it out chunk by chunk. */
async function* piecesOf(content: Uint8Array): AsyncGenerator<Uint8Array> {
  const step = 1024 * 1024;
  for (let at = 0; at < content.length; at += step) yield content.subarray(at, at + step);
}

function concatBytes(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.length));
  return out;
}

/** An answer nobody may look at before it fails must not be an unhandled rejection. */
function quiet<T>(p: Promise<T>): Promise<T> {
  // The returned promise still rejects for whoever awaits it; this only marks it handled.
  p.catch(() => {});
  return p;
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
  readonly ordered = true;
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
    return new Chunker(this.hello.chunking, gearScan);
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

  /** `send`: the headers to sign and send with it, and a write's payload. */
  private static async request(creds: Credentials, method: string, path: string, send: { headers?: Record<string, string>; body?: Uint8Array } = {}): Promise<Response> {
    const { headers = {}, body } = send;
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
  static async open(creds: Credentials, chunking = { min: 32 * 1024, avg: 128 * 1024, max: 512 * 1024 }): Promise<HttpEditingSession> {
    const res = await HttpEditingSession.request(creds, "POST", "/_sessions");
    const { session } = (await res.json()) as { session: string };
    return new HttpEditingSession(creds, session, chunking);
  }

  async call(cmd: ClientCommand, payload?: Uint8Array): Promise<ServerAnswer> {
    const res = await HttpEditingSession.request(this.creds, "POST", `/_sessions/${this.id}`, { headers: { "x-edgestore-command": JSON.stringify(cmd) }, body: payload });
    return (await res.json()) as ServerAnswer;
  }

  chunker(): Chunker {
    return new Chunker(this.chunking, gearScan);
  }

  begin(o: { bucket: string; key: string; base?: string | null; mode: EditMode; ifAbsent?: boolean; ifVersion?: string; replicas?: number }): Promise<PendingEdit> {
    return beginOn(this, `t${this.nextTxn++}`, o);
  }

  /** End the session: every pending version it holds is aborted. */
  async close(): Promise<void> {
    await HttpEditingSession.request(this.creds, "DELETE", `/_sessions/${this.id}`);
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
  async sync(content: Uint8Array, opts: SyncOptions = {}): Promise<{ sent: number; chunks: number; reused: number }> {
    const { sent, chunks, reused } = await this.syncStream(piecesOf(content), opts);
    return { sent, chunks, reused };
  }

  /**
   * sync, for content that arrives in pieces (a file stream, an HTTP body): it is chunked as it
   * comes, and only the chunks whose probes are in flight and the writes not yet answered are
   * held (at most about PROBE_AHEAD_BYTES + WRITE_AHEAD_BYTES).
   *
   * On a WebSocket, commands run in the order sent, so writes are never waited for one by one,
   * and probes go out ahead of their answers: the window opens (1, 2, 4, … up to `window`)
   * while answers say "stored" and closes to 1 at the first "send". Probing ahead has a price
   * the gateway sets: a probe answered "stored" at an offset past the pending content's end
   * zero-fills the gap first (pending.ts splice). That happens when a chunk k the session
   * does not know is followed, within the window, by one it does; the write of chunk k then
   * lands exactly over the zeros, so the content and its chunk list come out the same, and the
   * only cost is a run of zeros the cluster stored for nothing (once per edited region, at most
   * one chunk long, compressed to almost nothing where the cluster compresses). `window: 1`
   * avoids it, at one round trip per chunk. A `probe` that declined instead of zero-filling
   * would make the window free; the protocol has none yet.
   */
  async syncStream(source: AsyncIterable<Uint8Array>, opts: SyncOptions = {}): Promise<SyncProgress & { size: number }> {
    const ordered = this.s.ordered === true;
    const maxWindow = ordered ? Math.max(1, Math.floor(opts.window ?? SYNC_WINDOW)) : 1;
    const chunker = this.s.chunker();
    const probes: { offset: number; bytes: Uint8Array; answer: Promise<ServerAnswer>; seq: number }[] = [];
    const writes: { length: number; answer: Promise<ServerAnswer>; seq: number }[] = [];
    const r: SyncProgress = { done: 0, sent: 0, chunks: 0, reused: 0 };
    let window = 1;
    let offset = 0;
    let probeBytes = 0;
    let writeBytes = 0;
    const progress = () => opts.onProgress?.({ ...r });
    // Answers are looked at out of order (probes before the writes sent among them), so the
    // size is taken only from an answer to a later command than the one it was last taken from.
    let seq = 0;
    let sizeSeq = -1;
    const adopt = (n: number, size: number) => {
      if (n > sizeSeq) (sizeSeq = n), (this.size = size);
    };

    const settleWrite = async () => {
      const w = writes.shift()!;
      const a = (await w.answer) as Extract<ServerAnswer, { op: "written" }>;
      adopt(w.seq, a.size);
      writeBytes -= w.length;
      r.done += w.length;
      progress();
    };
    const settleProbe = async () => {
      const p = probes.shift()!;
      probeBytes -= p.bytes.length;
      const a = (await p.answer) as Extract<ServerAnswer, { op: "probed" }>;
      adopt(p.seq, a.size);
      if (a.stored) {
        r.reused++;
        r.done += p.bytes.length;
        window = Math.min(window * 2, maxWindow);
        return progress();
      }
      window = 1;
      await send(p.offset, p.bytes);
    };
    const send = async (at: number, bytes: Uint8Array) => {
      while (writes.length > 0 && writeBytes + bytes.length > WRITE_AHEAD_BYTES) await settleWrite();
      const answer = quiet(this.s.call({ op: "write", txn: this.txn, offset: at, length: bytes.length }, bytes));
      writes.push({ length: bytes.length, answer, seq: seq++ });
      writeBytes += bytes.length;
      r.sent += bytes.length;
      if (!ordered) await settleWrite();
    };
    // Without a base version and with nothing pending (a new object) a probe could find only
    // repeats within the stream itself, and each probe answered "send" costs a round trip: the
    // chunks go as writes at once, pipelined, and the cluster still stores a repeat once.
    const probing = this.baseVersionId !== null || this.size > 0;
    const enqueue = async (bytes: Uint8Array) => {
      if (!probing) {
        await send(offset, bytes);
        offset += bytes.length;
        r.chunks++;
        return;
      }
      while (probes.length > 0 && (probes.length >= window || probeBytes + bytes.length > PROBE_AHEAD_BYTES)) await settleProbe();
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      const answer = quiet(this.s.call({ op: "probe", txn: this.txn, offset, length: bytes.length, sha256 }));
      probes.push({ offset, bytes, answer, seq: seq++ });
      probeBytes += bytes.length;
      offset += bytes.length;
      r.chunks++;
    };

    for await (const piece of source) for (const c of chunker.push(piece)) await enqueue(c);
    for (const c of chunker.finish()) await enqueue(c);
    while (probes.length > 0) await settleProbe();
    while (writes.length > 0) await settleWrite();
    if (this.size !== offset) await this.truncate(offset);
    return { ...r, size: offset };
  }

  /**
   * Write content that arrives in pieces at `offset` (append mode: the end), without holding it
   * all: cut with the gateway's chunking and sent as writes of whole chunks, so the cluster
   * chunks it as it would one write. In random mode over kept content, a write boundary inside
   * a kept chunk leaves the rest of that chunk as a slice of it: only the written bytes are stored.
   */
  async writeStream(offset: number, source: AsyncIterable<Uint8Array>, opts: { onProgress?: (p: { done: number; sent: number }) => void } = {}): Promise<{ written: number }> {
    const ordered = this.s.ordered === true;
    const chunker = this.s.chunker();
    const writes: { length: number; answer: Promise<ServerAnswer> }[] = [];
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let at = offset;
    let sent = 0;
    let done = 0;
    let writeBytes = 0;

    const settle = async () => {
      const w = writes.shift()!;
      const a = (await w.answer) as Extract<ServerAnswer, { op: "written" }>;
      this.size = a.size;
      writeBytes -= w.length;
      done += w.length;
      opts.onProgress?.({ done, sent });
    };
    const flush = async () => {
      if (batchBytes === 0) return;
      const bytes = concatBytes(batch, batchBytes);
      batch = [];
      batchBytes = 0;
      while (writes.length > 0 && writeBytes + bytes.length > WRITE_AHEAD_BYTES) await settle();
      writes.push({ length: bytes.length, answer: quiet(this.s.call({ op: "write", txn: this.txn, offset: at, length: bytes.length }, bytes)) });
      at += bytes.length;
      writeBytes += bytes.length;
      sent += bytes.length;
      if (!ordered) await settle();
    };
    const add = async (c: Uint8Array) => {
      if (batchBytes + c.length > WRITE_BATCH_BYTES) await flush();
      batch.push(c);
      batchBytes += c.length;
    };

    for await (const piece of source) for (const c of chunker.push(piece)) await add(c);
    for (const c of chunker.finish()) await add(c);
    await flush();
    while (writes.length > 0) await settle();
    return { written: at - offset };
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
