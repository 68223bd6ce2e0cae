// A frame's transaction and item read straight from its header (common/protocol.ts frameTxn,
// frameItem) must agree with the full decode: peer-link.ts reports broken chains by them.

import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, FRAME_PUT_DATA, frameItem, frameTxn } from "../../common/protocol.ts";

describe("frameTxn and frameItem", () => {
  it("read what decodeFrame reads, to the ends of their ranges", () => {
    for (const [txn, item] of [
      [0, 0],
      [7, 1],
      [0x7fffffff, 0x7fff],
      [0xffffffff, 0xffff],
    ] as const) {
      const frame = encodeFrame({ kind: FRAME_PUT_DATA, last: true, item, txn, offset: 0, total: 3 }, new Uint8Array(3));
      const { header } = decodeFrame(frame);
      expect([frameTxn(frame), frameItem(frame)]).toEqual([header.txn, header.item]);
      expect([frameTxn(frame), frameItem(frame)]).toEqual([txn, item]);
    }
  });
});
