// The coordinator of a fork's merge (negotiating-group/merges.ts has the groups' half): prepare
// every version in its name's group, take one stamp above all the groups' held ones, and have
// each group write its versions under it. If any group refuses in the first phase, every
// group drops what it prepared and nothing of the fork becomes visible; once the stamp is
// decided, each group finishes on its own even if this coordinator goes away.

import type { Nhid, Uvid } from "../../../common/ids.ts";
import { parseUvid } from "../../../common/ids.ts";
import type { MergeItem } from "../../negotiating-group/merges.ts";
import { groupStub } from "../../shared/env.ts";
import { isRefusal, type Refusal } from "../../shared/refusal.ts";
import { refused } from "../s3/refused.ts";
import { requireRoom, settleRoom } from "../s3/quota.ts";
import type { Committed, PendingVersion, SessionScope } from "./pending.ts";

export async function mergeFork(ctx: SessionScope, merge: string, members: readonly [string, PendingVersion][]): Promise<(Committed & { txn: string; key: string })[]> {
  const byGroup = new Map<number, { txn: string; p: PendingVersion; item: MergeItem }[]>();
  for (const [txn, p] of members) {
    const { group, item } = await p.mergeItem();
    byGroup.set(group, [...(byGroup.get(group) ?? []), { txn, p, item }]);
  }
  const groups = [...byGroup.keys()];
  const room = { ...ctx, reservations: [] };
  await requireRoom(room, [...byGroup.values()].flat().reduce((n, x) => n + x.item.body.size, 0));
  try {
    const out = await mergeGroups(ctx, merge, byGroup);
    settleRoom(room, true);
    return out;
  } catch (e) {
    settleRoom(room, false);
    throw e;
  }
}

async function mergeGroups(ctx: SessionScope, merge: string, byGroup: Map<number, { txn: string; p: PendingVersion; item: MergeItem }[]>): Promise<(Committed & { txn: string; key: string })[]> {
  const groups = [...byGroup.keys()];
  const prepared = await Promise.all(
    groups.map(async (g) => groupStub(ctx.env, g).prepareMerge(merge, byGroup.get(g)!.map((x) => x.item)).catch((e: unknown) => e as Error)),
  );
  const failure = prepared.find((r): r is Refusal | Error => r instanceof Error || isRefusal(r));
  if (failure) {
    await Promise.allSettled(groups.map((g) => groupStub(ctx.env, g).abortMerge(merge)));
    if (failure instanceof Error) throw failure;
    refused(failure);
  }
  const holds = prepared as { hold: Uvid }[];
  // Above every held stamp: no group's cutoff has passed it, nor will until its versions are queued.
  const atLeast = Math.max(...holds.map((h) => parseUvid(h.hold).ms)) + 1;
  const stamp = await groupStub(ctx.env, groups[0]!).mergeStamp(atLeast);
  const written = await Promise.all(groups.map(async (g) => ({ g, rows: await commitWithRetry(ctx, g, { merge, stamp, nhids: byGroup.get(g)!.map((x) => x.item.nhid) }) })));
  const out: (Committed & { txn: string; key: string })[] = [];
  for (const { g, rows } of written) {
    for (const x of byGroup.get(g)!) {
      const row = rows.find((r) => r.nhid === x.item.nhid)!;
      out.push({ txn: x.txn, key: x.item.body.key, ...(await x.p.committed(x.item.body, row.versionId, row.vmChid)) });
    }
  }
  return out;
}

/** The decision is made: a group that fails to hear it is asked again (a few times; its alarm finishes it otherwise). */
async function commitWithRetry(ctx: SessionScope, g: number, commit: { merge: string; stamp: Uvid; nhids: Nhid[] }) {
  const { merge, stamp, nhids } = commit;
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      return await groupStub(ctx.env, g).commitMerge(merge, stamp, nhids);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}
