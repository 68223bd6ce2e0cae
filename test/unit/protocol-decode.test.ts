// A target's messages as a group takes them (common/protocol.ts decodeToGroup): what the group
// computes with or looks up by is checked where the message arrives.

import { describe, expect, it } from "vitest";
import { decodeToGroup } from "../../common/protocol.ts";

const decode = (v: unknown) => decodeToGroup(typeof v === "string" ? v : JSON.stringify(v));

describe("decodeToGroup", () => {
  it("takes well-formed messages as they are", () => {
    for (const m of [
      { t: "saved", txn: 3, items: [0, 2], credit: 4096 },
      { t: "saved", txn: 3, item: 1 },
      { t: "credit", bytes: 0 },
      { t: "save-failed", txn: 1, item: 0, reason: "disk full" },
      { t: "get-failed", txn: 1, reason: "missing" },
      { t: "bid-get", txn: 1, have: true, size: 5, queue: 0 },
      { t: "hello", id: "t1", location: "dc/r" },
    ]) {
      expect(decode(m)).toEqual(m);
    }
  });

  it("refuses amounts that would poison credit or a backlog", () => {
    // JSON has no NaN: a target's NaN arrives as null, an overflow as Infinity.
    for (const credit of [-1, null, "5", "1e999"]) {
      const text = `{"t":"saved","txn":1,"items":[0],"credit":${credit === "1e999" ? credit : JSON.stringify(credit)}}`;
      expect(decode(text)).toEqual({ malformed: '"saved": bad credit' });
    }
    expect(decode({ t: "credit", bytes: -4096 })).toHaveProperty("malformed");
    expect(decode({ t: "bid-get", txn: 1, have: true, size: 5, queue: null })).toHaveProperty("malformed");
  });

  it("refuses item lists and numbers that are not indexes", () => {
    for (const items of ["0", [0, -1], [0.5], { 0: 1 }, null]) expect(decode({ t: "saved", txn: 1, items })).toEqual({ malformed: '"saved": bad items' });
    expect(decode({ t: "save-failed", txn: 1, reason: "x" })).toHaveProperty("malformed");
    expect(decode({ t: "chain-broken", txn: 1, item: "0", to: "p", reason: "x" })).toHaveProperty("malformed");
    expect(decode({ t: "saved", items: [0] })).toEqual({ malformed: '"saved": bad txn' });
  });

  it("refuses what is not a message at all", () => {
    for (const text of ["", "{", "[]", "null", "7", '{"t":"nonsense","txn":1}']) expect(decode(text)).toHaveProperty("malformed");
  });
});
