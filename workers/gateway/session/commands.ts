// What a session does with each command (common/session-protocol.ts), whatever carries it: the
// WebSocket form (socket.ts) and the HTTP form (host.ts) run the same code over the same
// pending versions.

import type { ClientCommand, ServerAnswer } from "../../../common/session-protocol.ts";
import { S3Error } from "../s3/errors.ts";
import { PendingVersion, type SessionScope } from "./pending.ts";

export class SessionCommands {
  private readonly ctx: SessionScope;
  /** Holds the leases: one id per session. */
  readonly holder: string;
  readonly pending = new Map<string, PendingVersion>();

  constructor(ctx: SessionScope, holder: string) {
    this.ctx = ctx;
    this.holder = holder;
  }

  /** Runs one command; a failure is thrown as an S3Error and leaves the pending version as it was. */
  async execute(cmd: ClientCommand, payload: ReadableStream<Uint8Array> | null): Promise<ServerAnswer> {
    if (cmd.op === "new") {
      if (this.pending.has(cmd.txn)) throw new S3Error("InvalidRequest", `txn ${cmd.txn} is already open in this session`);
      const p = await PendingVersion.open(this.ctx, cmd, this.holder);
      this.pending.set(cmd.txn, p);
      return { op: "ready", txn: cmd.txn, size: p.size, baseVersionId: p.baseVersionId };
    }
    const txn = "txn" in cmd ? String(cmd.txn) : "";
    const p = this.pending.get(txn);
    if (!p) throw new S3Error("InvalidRequest", `no pending version ${txn} in this session`);
    switch (cmd.op) {
      case "write":
        if (!payload) throw new S3Error("InvalidRequest", "a write needs its payload");
        if (cmd.enc !== undefined) await p.writeEncoded(cmd.offset, cmd.length, cmd.enc, cmd.stored ?? -1, payload);
        else await p.write(cmd.offset, cmd.length, payload);
        return { op: "written", txn, size: p.size };
      case "probe":
        return { op: "probed", txn, stored: await p.writeKnown(cmd.offset, cmd.length, String(cmd.sha256).toLowerCase()), size: p.size };
      case "truncate":
        await p.truncate(cmd.size);
        return { op: "truncated", txn, size: p.size };
      case "meta":
        p.setMeta(cmd.set ?? {}, cmd.delete ?? []);
        return { op: "meta-set", txn };
      case "commit":
        this.pending.delete(txn);
        try {
          return { op: "committed", txn, ...(await p.commit()) };
        } catch (e) {
          await p.abort().catch(() => {});
          throw e;
        }
      case "abort":
        this.pending.delete(txn);
        await p.abort();
        return { op: "aborted", txn };
      default:
        throw new S3Error("InvalidRequest", `unknown command ${String((cmd as { op: unknown }).op)}`);
    }
  }

  /** Keep every lease while the session lives. */
  async renew(): Promise<void> {
    await Promise.allSettled([...this.pending.values()].map((p) => p.renew()));
  }

  /** The session is over: every pending version is aborted and its lease released. */
  async abortAll(): Promise<void> {
    const all = [...this.pending.values()];
    this.pending.clear();
    await Promise.allSettled(all.map((p) => p.abort()));
  }
}
