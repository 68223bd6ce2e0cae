// The editing session's WebSocket on the gateway (common/session-protocol.ts). The connection
// owns the session: commands run one at a time in arrival order, a write's payload is the
// binary frames that follow it, and closing the socket aborts every pending version it holds
// (releasing their leases). Frames are not acknowledged one by one, so a client keeps memory
// bounded by waiting for "written" (client/session.ts does); a client that sends more than
// BUFFER_MAX ahead of what has been stored is cut off.

import { SESSION_FRAME_MAX, type ClientCommand, type ServerAnswer } from "../../../common/session-protocol.ts";
import { decodeClientCommand, isCommandError } from "../../../common/session-decode.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { SessionCommands } from "./commands.ts";
import { LEASE_TTL_MS, type SessionScope } from "./pending.ts";

/** Payload received but not yet stored, at most. */
const BUFFER_MAX = 64 * 1024 * 1024;
const RENEW_EVERY_MS = LEASE_TTL_MS / 3;

/** A write's payload as a stream fed by the socket's binary frames. */
class Payload {
  remaining: number;
  private readonly queue: Uint8Array[] = [];
  private wake: (() => void) | null = null;
  private failed: Error | null = null;
  private dropping = false;
  readonly stream: ReadableStream<Uint8Array>;
  buffered = 0;

  constructor(length: number) {
    this.remaining = length;
    let left = length;
    this.stream = new ReadableStream<Uint8Array>({
      pull: async (c) => {
        while (this.queue.length === 0 && this.failed === null && left > 0) await new Promise<void>((r) => (this.wake = r));
        if (this.failed) return c.error(this.failed);
        if (left === 0) return c.close();
        const piece = this.queue.shift()!;
        this.buffered -= piece.length;
        left -= piece.length;
        c.enqueue(piece);
        if (left === 0) c.close();
      },
    });
  }

  push(frame: Uint8Array): void {
    if (this.dropping) {
      this.remaining -= frame.length;
      return;
    }
    this.queue.push(frame);
    this.buffered += frame.length;
    this.remaining -= frame.length;
    this.wake?.();
    this.wake = null;
  }

  /** The write failed: its remaining frames are still the protocol's, but nobody reads them. */
  discard(): void {
    this.dropping = true;
    this.queue.length = 0;
    this.buffered = 0;
  }

  fail(e: Error): void {
    this.failed = e;
    this.wake?.();
    this.wake = null;
  }
}

export class EditSession {
  private readonly ctx: SessionScope;
  private readonly ws: WebSocket;
  private readonly commands: SessionCommands;
  private chain: Promise<void> = Promise.resolve();
  private payload: Payload | null = null;
  private closed = false;
  private readonly renewal: ReturnType<typeof setInterval>;
  readonly done: Promise<void>;

  constructor(ctx: SessionScope, ws: WebSocket) {
    this.ctx = ctx;
    this.ws = ws;
    this.commands = new SessionCommands(ctx, crypto.randomUUID());
    let end!: () => void;
    this.done = new Promise((r) => (end = r));
    ws.addEventListener("message", (ev) => this.onMessage(ev.data));
    const close = () => void this.close().finally(end);
    ws.addEventListener("close", close);
    ws.addEventListener("error", close);
    this.renewal = setInterval(() => void this.commands.renew(), RENEW_EVERY_MS);
    this.send({ op: "hello", chunking: ctx.cfg.chunk, frameMax: SESSION_FRAME_MAX });
  }

  private send(a: ServerAnswer): void {
    if (!this.closed) this.ws.send(JSON.stringify(a));
  }

  private fatal(code: string, message: string): void {
    this.send({ op: "error", txn: null, code, message });
    this.payload?.fail(new Error(message));
    this.ws.close(1008, message.slice(0, 120));
    void this.close();
  }

  private onMessage(data: string | ArrayBuffer): void {
    if (typeof data !== "string") {
      const frame = new Uint8Array(data);
      const p = this.payload;
      if (!p) return this.fatal("InvalidRequest", "a binary frame arrived with no write waiting for payload");
      if (frame.length > p.remaining) return this.fatal("InvalidRequest", `a write's payload ran ${frame.length - p.remaining} bytes past its length`);
      p.push(frame);
      if (p.remaining === 0) this.payload = null;
      if (p.buffered > BUFFER_MAX) this.fatal("InvalidRequest", `more than ${BUFFER_MAX} bytes sent ahead of what is stored: wait for "written"`);
      return;
    }
    const cmd = decodeClientCommand(data);
    if (isCommandError(cmd)) {
      // Without a JSON command, or a write whose length cannot be read, the frames that follow
      // cannot be told apart: the session ends. Any other bad command is answered in its turn.
      if (cmd.code === "MalformedJSON" || cmd.op === "write") return this.fatal(cmd.code, cmd.message);
      this.chain = this.chain.then(() => this.send({ op: "error", txn: cmd.txn, code: cmd.code, message: cmd.message }));
      return;
    }
    if (this.payload) return this.fatal("InvalidRequest", `a command arrived while ${this.payload.remaining} bytes of a write's payload were still due`);
    let payload: Payload | null = null;
    if (cmd.op === "write") {
      const carried = cmd.enc !== undefined ? (cmd.stored ?? 0) : cmd.length;
      payload = new Payload(carried);
      if (carried > 0) this.payload = payload;
    }
    this.chain = this.chain.then(() => this.run(cmd, payload));
  }

  private async run(cmd: ClientCommand, payload: Payload | null): Promise<void> {
    try {
      const answer = await this.commands.execute(cmd, payload?.stream ?? null);
      // A pending version opened while the socket closed has nobody to answer to.
      if (this.closed) return void (await this.commands.abortAll());
      this.send(answer);
    } catch (e) {
      // A write that failed still owns its frames: let them drain into nothing.
      payload?.discard();
      const err = e instanceof S3Error ? e : new S3Error("InternalError", String(e));
      // A fork's commands answer under the fork's name: a null txn would mean the session failed.
      this.send({ op: "error", txn: "txn" in cmd ? String(cmd.txn) : "fork" in cmd ? String(cmd.fork) : null, code: err.code, message: err.message });
    }
  }

  /** The connection is gone: every pending version is aborted and its lease released. */
  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.renewal);
    this.payload?.fail(new Error("the session closed"));
    await this.commands.abortAll();
  }
}
