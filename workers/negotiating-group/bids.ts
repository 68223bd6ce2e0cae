// Waiting for one reply from each member asked (or its departure), up to a deadline: what a
// bid round needs. A member silent past the deadline is marked slow.

import type { Deadlines } from "./deadlines.ts";
import type { Member } from "./member.ts";
import { deferred, SLOW_MS } from "./txn.ts";

const BID_TIMEOUT_MS = 5_000;

export class BidCollector<B> {
  private readonly replies = new Map<Member, B | null>();
  private readonly done = deferred<void>();
  private readonly members: readonly Member[];
  private readonly deadlines: Deadlines;

  constructor(members: readonly Member[], deadlines: Deadlines) {
    this.members = members;
    this.deadlines = deadlines;
    if (members.length === 0) this.done.resolve();
  }

  record(from: Member, bid: B | null): void {
    if (!this.members.includes(from) || this.replies.has(from)) return;
    this.replies.set(from, bid);
    if (this.replies.size === this.members.length) this.done.resolve();
  }

  async wait(): Promise<Map<Member, B | null>> {
    // Past the deadline the round goes on with the replies it has: a silent member is the
    // answer (it is marked slow below), not a failure of the round.
    await this.deadlines.within(this.done.promise, BID_TIMEOUT_MS, "bids").catch(() => {});
    for (const m of this.members) if (!this.replies.has(m)) m.markSlow(SLOW_MS);
    return this.replies;
  }
}
