// Fork-edit-merge from a client (common/session-protocol.ts "fork"): fork a set of objects as
// pending versions in one session, edit them like any PendingEdit, then merge them (all become
// visible under one stamp) or abandon them. Works over either kind of session channel.

import type { EditMode, ServerAnswer } from "../common/session-protocol.ts";
import { PendingEdit, type CommandChannel } from "./session.ts";

type Merged = Extract<ServerAnswer, { op: "merged" }>;

export class Fork {
  private readonly ch: CommandChannel;
  readonly name: string;
  readonly bucket: string;
  private readonly edits = new Map<string, PendingEdit>();

  private constructor(ch: CommandChannel, name: string, bucket: string) {
    this.ch = ch;
    this.name = name;
    this.bucket = bucket;
  }

  /** Fork `keys` of `bucket`: each starts from its current version (or empty, if it has none). */
  static async open(ch: CommandChannel, o: { fork: string; bucket: string; keys: string[]; mode?: EditMode }): Promise<Fork> {
    const a = (await ch.call({ op: "fork", ...o })) as Extract<ServerAnswer, { op: "forked" }>;
    const f = new Fork(ch, o.fork, o.bucket);
    for (const v of a.versions) f.edits.set(v.key, new PendingEdit(ch, v.txn, v.size, v.baseVersionId));
    return f;
  }

  /** The pending version of a forked key. */
  edit(key: string): PendingEdit {
    const e = this.edits.get(key);
    if (!e) throw new Error(`${key} is not in fork ${this.name}`);
    return e;
  }

  /** Bring one more key into the fork. */
  async add(key: string, mode: EditMode = "random"): Promise<PendingEdit> {
    const txn = `${this.name}/${key}`;
    const a = (await this.ch.call({ op: "new", txn, bucket: this.bucket, key, mode, fork: this.name })) as Extract<ServerAnswer, { op: "ready" }>;
    const e = new PendingEdit(this.ch, txn, a.size, a.baseVersionId);
    this.edits.set(key, e);
    return e;
  }

  /** Commit every version at once; fails, leaving nothing visible, if any key changed since the fork. */
  async merge(): Promise<Merged["versions"]> {
    return ((await this.ch.call({ op: "merge", fork: this.name })) as Merged).versions;
  }

  async abandon(): Promise<void> {
    await this.ch.call({ op: "abandon", fork: this.name });
  }
}
