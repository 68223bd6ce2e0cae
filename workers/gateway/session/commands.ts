// What a session does with each command (common/session-protocol.ts), whatever carries it: the
// WebSocket form (socket.ts) and the HTTP form (host.ts) run the same code over the same
// pending versions.

import type { ClientCommand, ServerAnswer } from "../../../common/session-protocol.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { mergeFork } from "./merge.ts";
import { PendingVersion, type SessionScope } from "./pending.ts";

/** Keys in one fork, at most: every one is a lease and a pending version held by the session. */
const FORK_MAX_KEYS = 1000;

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
      if (cmd.fork !== undefined && this.forkMembers(cmd.fork).length === 0) throw new S3Error("InvalidRequest", `no fork ${cmd.fork} in this session`);
      const p = await PendingVersion.open(this.ctx, cmd, this.holder);
      if (cmd.fork !== undefined) p.joinFork(cmd.fork);
      this.pending.set(cmd.txn, p);
      return { op: "ready", txn: cmd.txn, size: p.size, baseVersionId: p.baseVersionId };
    }
    if (cmd.op === "fork") return this.fork(cmd);
    if (cmd.op === "merge" || cmd.op === "abandon") {
      const members = this.forkMembers(cmd.fork);
      if (members.length === 0) throw new S3Error("InvalidRequest", `no fork ${cmd.fork} in this session`);
      for (const [txn] of members) this.pending.delete(txn);
      if (cmd.op === "abandon") {
        await Promise.allSettled(members.map(([, p]) => p.abort()));
        return { op: "abandoned", fork: cmd.fork };
      }
      try {
        const versions = await mergeFork(this.ctx, `${this.holder}/${cmd.fork}`, members);
        return { op: "merged", fork: cmd.fork, versions };
      } catch (e) {
        await Promise.allSettled(members.map(([, p]) => p.abort()));
        throw e;
      }
    }
    const txn = "txn" in cmd ? String(cmd.txn) : "";
    const p = this.pending.get(txn);
    if (!p) throw new S3Error("InvalidRequest", `no pending version ${txn} in this session`);
    switch (cmd.op) {
      case "write":
        if (!payload) throw new S3Error("InvalidRequest", "a write needs its payload");
        if (cmd.enc !== undefined) await p.writeEncoded({ offset: cmd.offset, length: cmd.length, enc: cmd.enc, stored: cmd.stored ?? -1 }, payload);
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
        if (p.fork !== null) throw new S3Error("InvalidRequest", `${txn} is part of fork ${p.fork}: merge or abandon the fork`);
        this.pending.delete(txn);
        try {
          return { op: "committed", txn, ...(await p.commit()) };
        } catch (e) {
          // The commit's failure is the answer; an abort that fails too leaves a lease that expires and chunks that reclamation finds unreferenced.
          await p.abort().catch(() => {});
          throw e;
        }
      case "abort":
        if (p.fork !== null) throw new S3Error("InvalidRequest", `${txn} is part of fork ${p.fork}: abandon the fork`);
        this.pending.delete(txn);
        await p.abort();
        return { op: "aborted", txn };
      default:
        throw new S3Error("InvalidRequest", `unknown command ${String((cmd as { op: unknown }).op)}`);
    }
  }

  private forkMembers(fork: string): [string, PendingVersion][] {
    return [...this.pending].filter(([, p]) => p.fork === fork);
  }

  /** A pending version of each key, all in one fork; if any cannot be had, none is kept. */
  private async fork(cmd: Extract<ClientCommand, { op: "fork" }>): Promise<ServerAnswer> {
    if (this.forkMembers(cmd.fork).length > 0) throw new S3Error("InvalidRequest", "fork needs a name not already open in this session");
    if (cmd.keys.length === 0 || cmd.keys.length > FORK_MAX_KEYS) throw new S3Error("InvalidArgument", `a fork has 1 to ${FORK_MAX_KEYS} keys`);
    if (new Set(cmd.keys).size !== cmd.keys.length) throw new S3Error("InvalidArgument", "a fork names each key once");
    const opened: [string, PendingVersion][] = [];
    try {
      for (const key of cmd.keys) {
        const txn = `${cmd.fork}/${key}`;
        if (this.pending.has(txn)) throw new S3Error("InvalidRequest", `txn ${txn} is already open in this session`);
        const p = await PendingVersion.open(this.ctx, { bucket: cmd.bucket, key, base: "current", mode: cmd.mode ?? "random" }, this.holder);
        p.joinFork(cmd.fork);
        opened.push([txn, p]);
      }
    } catch (e) {
      await Promise.allSettled(opened.map(([, p]) => p.abort()));
      throw e;
    }
    for (const [txn, p] of opened) this.pending.set(txn, p);
    return { op: "forked", fork: cmd.fork, versions: opened.map(([txn, p]) => ({ key: p.key, txn, size: p.size, baseVersionId: p.baseVersionId })) };
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
