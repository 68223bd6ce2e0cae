// Editing sessions for the proxy's PutObjects. Opening one costs a WebSocket handshake with the
// cluster, so a few idle ones are kept for the next PUT; a session that failed is dropped, not
// reused. PUTs of one key through this proxy take turns: the cluster lets one session at a
// time hold a pending version of a key (KeyLeased), while S3 lets concurrent PUTs race, so
// the proxy queues them rather than refuse the second.

import type { ClientCommand, EditMode, ServerAnswer } from "../../common/session-protocol.ts";
import type { Chunker } from "../../common/chunker.ts";
import type { Credentials } from "../extensions.ts";
import { EditingSession, PendingEdit, type CommandChannel } from "../session.ts";

/** A session's commands, with the bytes they carried each way counted (JSON frames and payload). */
export class CountingChannel implements CommandChannel {
  readonly ordered = true;
  private readonly inner: EditingSession;
  sent = 0;
  received = 0;
  payload = 0;

  constructor(inner: EditingSession) {
    this.inner = inner;
  }

  async call(cmd: ClientCommand, payload?: Uint8Array): Promise<ServerAnswer> {
    this.sent += Buffer.byteLength(JSON.stringify(cmd)) + (payload?.length ?? 0);
    this.payload += payload?.length ?? 0;
    const a = await this.inner.call(cmd, payload);
    this.received += Buffer.byteLength(JSON.stringify(a));
    return a;
  }

  chunker(): Chunker {
    return this.inner.chunker();
  }
}

let nextTxn = 1;

/** A pending version on a counting channel (EditingSession.begin, with its bytes counted). */
export async function beginCounted(ch: CountingChannel, o: { bucket: string; key: string; base?: string | null; mode: EditMode; ifAbsent?: boolean; replicas?: number }): Promise<PendingEdit> {
  const txn = `proxy-${nextTxn++}`;
  const a = (await ch.call({ op: "new", txn, ...o })) as Extract<ServerAnswer, { op: "ready" }>;
  return new PendingEdit(ch, txn, a.size, a.baseVersionId);
}

interface Idle {
  s: EditingSession;
  timer: ReturnType<typeof setTimeout>;
}

export class SessionPool {
  private readonly creds: Credentials;
  private readonly maxIdle: number;
  private readonly idleMs: number;
  private readonly idle: Idle[] = [];
  private readonly turns = new Map<string, Promise<void>>();
  private closed = false;

  constructor(creds: Credentials, o: { maxIdle?: number; idleMs?: number } = {}) {
    this.creds = creds;
    this.maxIdle = o.maxIdle ?? 4;
    this.idleMs = o.idleMs ?? 10_000;
  }

  /** An idle session if there is one (fresh: it may have died while idle), else a new one. */
  async acquire(): Promise<{ s: EditingSession; fresh: boolean }> {
    const i = this.idle.pop();
    if (i) {
      clearTimeout(i.timer);
      return { s: i.s, fresh: false };
    }
    return { s: await EditingSession.open(this.creds), fresh: true };
  }

  fresh(): Promise<EditingSession> {
    return EditingSession.open(this.creds);
  }

  /** Back to the pool if it is still good and there is room; closed otherwise. */
  release(s: EditingSession, reusable: boolean): void {
    // A session that fails to close cleanly is gone either way, and the cluster aborts what it
    // left pending when its socket drops: nothing waits on the close.
    if (!reusable || this.closed || this.idle.length >= this.maxIdle) {
      void s.close().catch(() => {});
      return;
    }
    const entry: Idle = {
      s,
      timer: setTimeout(() => {
        const at = this.idle.indexOf(entry);
        if (at >= 0) this.idle.splice(at, 1);
        // As above: an idle session's failed close leaves nothing behind.
        void s.close().catch(() => {});
      }, this.idleMs),
    };
    entry.timer.unref();
    this.idle.push(entry);
  }

  /** Run `fn` when every earlier PUT of `name` through this proxy has finished. */
  async inTurn<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.turns.get(name) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    const chain = before.then(() => mine);
    this.turns.set(name, chain);
    await before;
    try {
      return await fn();
    } finally {
      done();
      if (this.turns.get(name) === chain) this.turns.delete(name);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = this.idle.splice(0);
    for (const i of all) clearTimeout(i.timer);
    // Shutting down: each session is closed as well as it can be, and none may stop the others.
    await Promise.all(all.map((i) => i.s.close().catch(() => {})));
  }
}
