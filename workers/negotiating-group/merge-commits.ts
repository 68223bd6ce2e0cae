// This group's side of a fork's merge, a two-phase commit over the groups of the names merged
// (merges.ts keeps the rows): prepare checks every item's condition and lease and holds one
// stamp; the coordinator takes a stamp above all holds; commit records the decision and writes
// every prepared version under it. A decided merge is finished by the alarm should the writes
// fail; an undecided one whose coordinator went silent is dropped.

import { chidOf, parseUvid, type Nhid, type Uvid } from "../../common/ids.ts";
import { encodeManifest, MANIFEST_FORMAT, type VersionManifest } from "../../common/manifest.ts";
import { recordOf, type ShardRecord } from "../manifest-shard/records.ts";
import { configOf, type Env } from "../shared/env.ts";
import { refusal, type Refusal } from "../shared/refusal.ts";
import { versionIdOf } from "../shared/versioning.ts";
import type { AlarmClock } from "./alarm-clock.ts";
import { versionRef } from "./backrefs.ts";
import { conditionFails } from "./complete.ts";
import type { LeaseBook } from "./leases.ts";
import type { MergeBook, MergedVersion, MergeItem } from "./merges.ts";
import type { Membership } from "./membership.ts";
import { OUTBOX_RETRY_MS, type Names } from "./names.ts";
import type { RefOutbox } from "./ref-outbox.ts";
import { putTransaction } from "./transfer.ts";
import type { VersionBook } from "./versions.ts";

/** An undecided merge whose coordinator went silent this long is dropped (a session's lease lasts 60 s). */
const MERGE_UNDECIDED_MS = 60_000;

export interface MergeContext {
  readonly group: number;
  readonly env: Env;
  readonly members: Membership;
  readonly book: VersionBook;
  readonly merges: MergeBook;
  readonly leases: LeaseBook;
  readonly names: Names;
  readonly refOutbox: RefOutbox;
  readonly alarms: AlarmClock;
  refsSoon(): void;
}

export class MergeCommits {
  private readonly c: MergeContext;

  constructor(c: MergeContext) {
    this.c = c;
    // A prepared merge's held stamp lives in memory: hold it again, and let the alarm finish or drop it.
    for (const r of c.merges.all()) c.book.hold(r.hold);
  }

  /** When the alarm must come for merges an earlier life left prepared (null: none). */
  resumeAt(): number | null {
    return this.c.merges.all().length > 0 ? Date.now() + OUTBOX_RETRY_MS : null;
  }

  /**
   * Phase one: every item's condition and lease hold, and none is in another merge; then the
   * names are prepared and one stamp is held for them. Nothing is prepared if anything fails.
   */
  async prepare(merge: string, items: MergeItem[]): Promise<{ hold: Uvid } | Refusal> {
    for (const it of items) {
      const other = this.c.merges.preparedIn(it.nhid);
      if (other !== null) return refusal("OperationAborted", "Another merge is in progress against this key", { Key: it.body.key });
      const failed = conditionFails(it.condition, this.c.book.current(it.nhid));
      if (failed) return { ...failed, details: { ...failed.details, Key: it.body.key } };
      if (!this.c.leases.holds(it.nhid, it.holder)) return refusal("KeyLeased", "This session's lease on the key has run out: start the fork again", { Key: it.body.key });
    }
    const hold = this.c.book.stamp(this.c.group);
    this.c.merges.prepare(merge, hold, items);
    await this.c.alarms.by(Date.now() + MERGE_UNDECIDED_MS + OUTBOX_RETRY_MS);
    return { hold };
  }

  /** A stamp above every held one of a merge (`atLeast` ms): the shared stamp its versions carry. */
  stamp(atLeast: number): Uvid {
    const uvid = this.c.book.stamp(this.c.group, atLeast);
    // Only the prepared groups' held stamps guard the cutoffs: this one names, it does not hold.
    this.c.book.release(uvid);
    return uvid;
  }

  /** Phase two: record the decision, then write every prepared version under the shared stamp. */
  async commit(merge: string, stamp: Uvid, nhids: Nhid[]): Promise<MergedVersion[]> {
    this.c.merges.decide(merge, stamp);
    // Should the writes below fail, the alarm finishes them: the decision is already durable.
    await this.c.alarms.by(Date.now() + 5 * OUTBOX_RETRY_MS);
    const now = await this.finish(merge);
    // A repeated call (the first answer was lost) finds the versions written already.
    return nhids.map((nhid) => {
      const done = now.find((r) => r.nhid === nhid);
      if (done) return done;
      const row = this.c.book.find(nhid, stamp);
      if (!row) throw new Error(`merge ${merge}: no version ${stamp} of ${nhid}`);
      return { nhid, vmChid: row.vmChid, versionId: versionIdOf(stamp, row.isNull) };
    });
  }

  /** Drop an undecided merge (another group refused, or the session went away). */
  abort(merge: string): void {
    const rows = this.c.merges.rows(merge);
    if (this.c.merges.abort(merge)) for (const h of new Set(rows.map((r) => r.hold))) this.c.book.release(h);
  }

  /** The alarm's part: finish decided merges, drop undecided ones whose coordinator is gone. */
  async settle(): Promise<void> {
    const byMerge = new Map<string, { decided: boolean; at: number }>();
    for (const r of this.c.merges.all()) byMerge.set(r.merge, { decided: r.decided !== null, at: r.at });
    for (const [merge, m] of byMerge) {
      if (m.decided) await this.finish(merge);
      else if (Date.now() - m.at > MERGE_UNDECIDED_MS) this.abort(merge);
      else await this.c.alarms.by(m.at + MERGE_UNDECIDED_MS + OUTBOX_RETRY_MS);
    }
  }

  private async finish(merge: string): Promise<MergedVersion[]> {
    const rows = this.c.merges.rows(merge);
    const cfg = configOf(this.c.env);
    const out: MergedVersion[] = [];
    const deliveries: [number, ShardRecord][] = [];
    for (const r of rows) {
      const { nhid, shard, body, versioning, holder, replicas } = r.item;
      const uvid = r.decided!;
      const isNull = versioning !== "Enabled";
      const vm: VersionManifest = { ...body, format: MANIFEST_FORMAT, uvid, created: parseUvid(uvid).ms };
      const bytes = encodeManifest(vm);
      const vmChid = await chidOf(bytes);
      const record = recordOf(vm, vmChid, { isNull });
      const writers = await this.c.members.live("writers");
      await putTransaction(this.c.members, writers, [{ item: { kind: "vm", chid: vmChid, size: bytes.length, nhid, uvid }, bytes }], replicas ?? cfg.replicas, { correlation: cfg.correlation });
      this.c.book.witness(uvid);
      const removed = this.c.book.commit(nhid, { uvid, vmChid, deleteMarker: false, etag: vm.etag, isNull, replicas }, { shard, record, removalOf: this.c.names.removalOf(body) });
      this.c.refOutbox.queue("+", versionRef(nhid, uvid), body.chunks.map((c) => c.chid), replicas);
      this.c.leases.release(nhid, holder);
      this.c.merges.done(nhid);
      this.c.names.forget(nhid);
      deliveries.push([shard, record], ...removed.map((x): [number, ShardRecord] => [shard, x]));
      out.push({ nhid, vmChid, versionId: versionIdOf(uvid, isNull) });
    }
    for (const h of new Set(rows.map((r) => r.hold))) this.c.book.release(h);
    this.c.refsSoon();
    await Promise.all(deliveries.map(([s, rec]) => this.c.names.deliver(s, rec)));
    return out;
  }
}
