// A holder's GET_DATA frames put together (negotiating-group/delivery.ts): the frames come from
// a target, so any that do not fit (over the credit granted, out of order, a total that changes
// between frames, a last frame short of the total) make a bad delivery, never an overrun.

import { describe, expect, it } from "vitest";
import { FRAME_GET_DATA, type FrameHeader } from "../../common/protocol.ts";
import { FrameAssembler } from "../../workers/negotiating-group/delivery.ts";

const header = (offset: number, total: number, last: boolean): FrameHeader => ({ kind: FRAME_GET_DATA, txn: 1, item: 0, offset, total, last });
const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe("frame assembly", () => {
  it("takes a one-frame item as its payload, and a run of frames in order as their concatenation", () => {
    const one = bytes(10, 1);
    expect(new FrameAssembler(100).add(header(0, 10, true), one)).toEqual({ bytes: one });
    const a = new FrameAssembler(100);
    expect(a.add(header(0, 7, false), bytes(4, 2))).toBeNull();
    const got = a.add(header(4, 7, true), bytes(3, 3));
    expect(got).toEqual({ bytes: Uint8Array.from([2, 2, 2, 2, 3, 3, 3]) });
  });

  it("refuses a total over the credit granted, a one-frame item of the wrong length, and frames out of order", () => {
    expect(new FrameAssembler(8).add(header(0, 9, true), bytes(9, 0))).toHaveProperty("bad");
    expect(new FrameAssembler(100).add(header(0, 10, true), bytes(9, 0))).toHaveProperty("bad");
    const a = new FrameAssembler(100);
    a.add(header(0, 10, false), bytes(4, 0));
    expect(a.add(header(5, 10, true), bytes(5, 0))).toHaveProperty("bad");
  });

  it("refuses a later frame that claims another total rather than write past the buffer", () => {
    const a = new FrameAssembler(1000);
    expect(a.add(header(0, 8, false), bytes(4, 0))).toBeNull();
    // Within the credit, and its own offset + length fit its own (larger) total: still not this item's.
    expect(a.add(header(4, 900, true), bytes(100, 0))).toHaveProperty("bad");
  });

  it("refuses a last frame that leaves the item short", () => {
    const a = new FrameAssembler(100);
    a.add(header(0, 10, false), bytes(4, 0));
    expect(a.add(header(4, 10, true), bytes(3, 0))).toHaveProperty("bad");
  });
});
