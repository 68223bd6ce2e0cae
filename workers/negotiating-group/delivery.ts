// A holder's delivery of a stored item, as both kinds of read take it (get.ts one item, get-many.ts
// a run): how long it may take, its GET_DATA frames put together, and its bytes checked against
// the name they were asked by. The frames come from a target: nothing in them is taken on trust,
// so a frame that does not fit is a bad delivery, never an exception in the group.

import { chidOf } from "../../common/ids.ts";
import type { FrameHeader, StoredRef } from "../../common/protocol.ts";
import type { Member } from "./member.ts";

/** A whole delivery, whatever its size. */
export const GET_TIMEOUT_MS = 30_000;
/**
 * A holder that has sent nothing of an item this long after being asked is taken as hung and
 * the read goes to another copy; it is then skipped by reads for SLOW_MS, or until it speaks.
 * A chunk is at most CHUNK_MAX: its first frame comes in milliseconds from a healthy target,
 * so the bound is generous for a busy one.
 */
export const FIRST_FRAME_TIMEOUT_MS = 2_000;

/** What one frame made of an item: its bytes once the last frame came, why the frames make none, or null while more are to come. */
export type Assembled = { bytes: Uint8Array } | { bad: string } | null;

/** One item's frames, in order, put together within the credit granted for it. */
export class FrameAssembler {
  private readonly maxBytes: number;
  private buf: Uint8Array | null = null;
  private received = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  add(header: FrameHeader, payload: Uint8Array): Assembled {
    if (header.total > this.maxBytes) return { bad: `sent ${header.total} bytes, more than the ${this.maxBytes} granted` };
    // An item in one frame (nearly all: frames carry up to 1 MiB) is its payload as received: no copy.
    if (header.offset === 0 && header.last && this.buf === null) {
      return payload.length === header.total ? { bytes: payload } : { bad: `sent ${payload.length} of ${header.total} bytes in its last frame` };
    }
    // The first frame's total sizes the buffer; a later frame that claims another cannot overrun it.
    this.buf ??= new Uint8Array(header.total);
    if (header.total !== this.buf.length || header.offset !== this.received || this.received + payload.length > this.buf.length) {
      return { bad: "sent a frame out of order" };
    }
    this.buf.set(payload, this.received);
    this.received += payload.length;
    if (!header.last) return null;
    return this.received === this.buf.length ? { bytes: this.buf } : { bad: `sent ${this.received} of ${this.buf.length} bytes before its last frame` };
  }
}

/**
 * Whether `bytes` from `holder` hash to the name `ref` gives them: if not, the holder is told
 * (bad-copy, it checks and quarantines its copy) and the reason is returned. Null when good.
 */
export async function badCopy(holder: Member, ref: StoredRef, bytes: Uint8Array): Promise<string | null> {
  const actual = await chidOf(bytes);
  if (actual === ref.chid) return null;
  holder.send({ t: "bad-copy", ref });
  return `target ${holder.id} returned bytes hashing to ${actual}, not ${ref.chid}`;
}
