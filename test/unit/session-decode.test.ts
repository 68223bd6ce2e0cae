import { describe, expect, it } from "vitest";
import { decodeClientCommand, isCommandError, type CommandError } from "../../common/session-decode.ts";

const sha = "ab".repeat(32);
const refused = (v: unknown): CommandError => {
  const r = decodeClientCommand(typeof v === "string" ? v : JSON.stringify(v));
  expect(isCommandError(r)).toBe(true);
  return r as CommandError;
};

describe("an editing session's commands, decoded where they arrive", () => {
  it("takes every command of the protocol in its shape", () => {
    for (const cmd of [
      { op: "new", txn: "t", bucket: "b", key: "k", mode: "random" },
      { op: "new", txn: "t", bucket: "b", key: "k", mode: "append", base: null, ifAbsent: true, replicas: 2, fork: "f" },
      { op: "fork", fork: "f", bucket: "b", keys: ["a", "b"], mode: "replace" },
      { op: "merge", fork: "f" },
      { op: "abandon", fork: "f" },
      { op: "write", txn: "t", offset: 0, length: 10 },
      { op: "write", txn: "t", offset: 5, length: 10, enc: "gzip", stored: 7 },
      { op: "probe", txn: "t", offset: 0, length: 10, sha256: sha },
      { op: "truncate", txn: "t", size: 0 },
      { op: "meta", txn: "t", set: { "content-type": "text/plain" }, delete: ["x-amz-meta-a"] },
      { op: "commit", txn: "t" },
      { op: "abort", txn: "t" },
    ]) {
      expect(decodeClientCommand(JSON.stringify(cmd))).toEqual(cmd);
    }
  });

  it("tells a frame that is not one JSON object apart from a command with a bad field", () => {
    expect(refused("{").code).toBe("MalformedJSON");
    expect(refused("[1]").code).toBe("MalformedJSON");
    expect(refused("null").code).toBe("MalformedJSON");
    expect(refused({ op: "explode", txn: "t" })).toMatchObject({ code: "InvalidArgument", op: "explode", txn: "t" });
  });

  it("refuses each field of the wrong shape, naming the command's txn so the answer can", () => {
    const bad = [
      { op: "new", txn: "t", bucket: "b", key: "k", mode: "sideways" },
      { op: "new", txn: "t", bucket: 3, key: "k", mode: "random" },
      { op: "new", txn: "t", bucket: "b", key: "k", mode: "random", replicas: -1 },
      { op: "new", txn: "t", bucket: "b", key: "k", mode: "random", ifAbsent: "yes" },
      { op: "new", txn: "t", bucket: "b", key: "k".repeat(5000), mode: "random" },
      { op: "write", txn: "t", offset: -1, length: 10 },
      { op: "write", txn: "t", offset: 0, length: 1e300 },
      { op: "write", txn: "t", offset: 0, length: 10, enc: "zstd", stored: 3 },
      { op: "write", txn: "t", offset: 0, length: 10, enc: "gzip" },
      { op: "probe", txn: "t", offset: 0, length: 10, sha256: "xyz" },
      { op: "truncate", txn: "t", size: 1.5 },
      { op: "meta", txn: "t", set: { a: 1 } },
      { op: "meta", txn: "t", delete: "a" },
    ];
    for (const cmd of bad) expect(refused(cmd), JSON.stringify(cmd).slice(0, 80)).toMatchObject({ code: "InvalidArgument", op: cmd.op, txn: "t" });
    expect(refused({ op: "fork", fork: "", bucket: "b", keys: [] })).toMatchObject({ code: "InvalidArgument", txn: null });
    expect(refused({ op: "merge", fork: 7 }).code).toBe("InvalidArgument");
    expect(refused({ op: "commit" }).code).toBe("InvalidArgument");
  });
});
