// What a put transaction waits for from its targets once it sent them items: each target's ack
// of each item (`saved`, or `save-failed`), and word that an item's chain broke. Acks are kept
// per target and named by the item's number in the transaction, the number frames, `saved` and
// `save-failed` carry, so a target's departure fails exactly the acks it still owed.

import type { ToGroup } from "../../common/protocol.ts";
import { deferred, type Deferred } from "../../common/deferred.ts";
import type { Member } from "./member.ts";

export class PutAcks {
  private readonly byMember = new Map<Member, Map<number, Deferred<void>>>();
  private readonly brokenFor = new Map<number, Deferred<void>>();

  /** Start waiting for `member`'s ack of `item`: an ack that arrives before this is not seen. */
  expect(member: Member, item: number): void {
    this.entry(member, item);
  }

  /** Settles when `member` saved `item`; rejects if it failed it, left, or the round failed it (failAll). */
  saved(member: Member, item: number): Promise<void> {
    return this.entry(member, item).promise;
  }

  /** Resolves when a target of `item`'s chain says it could not pass the item on; a new chain for the item replaces the old. */
  chainBroken(item: number): Promise<void> {
    const d = deferred<void>();
    this.brokenFor.set(item, d);
    return d.promise;
  }

  /** Route a target's reply; anything but an ack or a broken chain is the caller's. */
  onMessage(from: Member, msg: ToGroup): void {
    if (msg.t === "saved") for (const i of savedItems(msg)) this.byMember.get(from)?.get(i)?.resolve();
    else if (msg.t === "save-failed") this.byMember.get(from)?.get(msg.item)?.reject(new Error(`target ${from.id}: ${msg.reason}`));
    else if (msg.t === "chain-broken") this.brokenFor.get(msg.item)?.resolve();
  }

  onGone(member: Member): void {
    for (const d of this.byMember.get(member)?.values() ?? []) d.reject(new Error(`target ${member.id} disconnected`));
  }

  /** Fail every ack still owed (settled ones stay as they are). */
  failAll(why: (member: Member, item: number) => string): void {
    for (const [m, items] of this.byMember) for (const [i, d] of items) d.reject(new Error(why(m, i)));
  }

  private entry(member: Member, item: number): Deferred<void> {
    let items = this.byMember.get(member);
    if (!items) this.byMember.set(member, (items = new Map()));
    let d = items.get(item);
    if (!d) {
      d = deferred<void>();
      // A failure nobody waits for any more (the round moved on) is not an unhandled rejection.
      d.promise.catch(() => {});
      items.set(item, d);
    }
    return d;
  }
}

/** The items a `saved` names: the batched form, or the single item of a protocol-1 target. */
function savedItems(msg: ToGroup & { t: "saved" }): number[] {
  return msg.items ?? (msg.item === undefined ? [] : [msg.item]);
}
