// "Not now": a part of the cluster cannot do what was asked at the moment (too few live
// targets, no copy reachable, a shard not answering), and the client may retry: S3's 503
// ServiceUnavailable. Thrown inside Durable Objects, it crosses RPC as an Error, which keeps
// only its message: so the message carries a marker, written here and read back here, once,
// where the gateway turns what it caught into an S3 error (unavailableReason).

const MARK = "ServiceUnavailable: ";

export class Unavailable extends Error {
  constructor(reason: string) {
    super(`${MARK}${reason}`);
    this.name = "Unavailable";
  }
}

/** Why it was unavailable, if `e` (or an error that wrapped its message) is an Unavailable; else null. */
export function unavailableReason(e: unknown): string | null {
  const msg = e instanceof Error ? e.message : String(e);
  const at = msg.indexOf(MARK);
  return at >= 0 ? msg.slice(at + MARK.length) : null;
}
