// The verify transaction: every live target of the group re-hashes its own copies of some
// items and says, per item, whether its copy is intact, bad (now quarantined) or missing. No
// payload moves; only the verdicts do. The group then knows, per item, which copies are good.

import type { StoredRef, ToGroup } from "../../common/protocol.ts";
import type { Member } from "./member.ts";
import type { TxnHandler, TxnHost } from "./transfer.ts";

/** Re-reading whole items takes time on a busy disk; a target silent this long counts as unanswered. */
const VERIFY_TIMEOUT_MS = 60_000;

export interface ItemCopies {
  good: Member[];
  bad: Member[];
}

export async function verifyTransaction(host: TxnHost, members: readonly Member[], refs: readonly StoredRef[]): Promise<ItemCopies[]> {
  const out: ItemCopies[] = refs.map(() => ({ good: [], bad: [] }));
  if (members.length === 0 || refs.length === 0) return out;
  const waiting = new Set(members);
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const settle = (m: Member) => {
    waiting.delete(m);
    if (waiting.size === 0) done();
  };
  const handler: TxnHandler = {
    onMessage(from: Member, msg: ToGroup) {
      if (msg.t !== "verified" || !waiting.has(from)) return;
      msg.results.forEach((r, i) => {
        if (r === "ok") out[i]?.good.push(from);
        else if (r === "bad") out[i]?.bad.push(from);
      });
      settle(from);
    },
    onFrame() {},
    onGone(member: Member) {
      if (waiting.has(member)) settle(member);
    },
  };
  const txn = host.open(handler);
  try {
    for (const m of members) m.send({ t: "verify", txn, refs: [...refs] });
    let timer: ReturnType<typeof setTimeout> | null = null;
    await Promise.race([finished, new Promise<void>((r) => (timer = setTimeout(r, VERIFY_TIMEOUT_MS)))]);
    if (timer !== null) clearTimeout(timer);
  } finally {
    host.close(txn);
  }
  return out;
}
