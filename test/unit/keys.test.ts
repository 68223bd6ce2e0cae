import { describe, expect, it } from "vitest";
import { commonPrefixOf, compareKeys, prefixSuccessor } from "../../common/keys.ts";

const enc = new TextEncoder();
function compareBytes(a: string, b: string): number {
  const x = enc.encode(a);
  const y = enc.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

const KEYS = ["", "a", "a/b", "a/", "a0", "ab", "A", "é", "e\u0301", "\uFFFF", "\uFFFE", "\uE000", "\uD7FF", "😀", "😀a", "\u{10FFFF}", "\u{10000}", "z", "~", "\u007F", "\u0080", "日本", "a\uFFFF", "a😀"];

describe("compareKeys", () => {
  it("sorts exactly as UTF-8 bytes do", () => {
    const byBytes = [...KEYS].sort(compareBytes);
    expect([...KEYS].sort(compareKeys)).toEqual(byBytes);
    expect([...KEYS].reverse().sort(compareKeys)).toEqual(byBytes);
  });

  it("agrees in sign with byte order on every pair", () => {
    for (const a of KEYS) for (const b of KEYS) expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(compareBytes(a, b)));
  });

  it("puts astral characters after U+FFFF, unlike UTF-16 order", () => {
    expect("😀" < "\uFFFF").toBe(true);
    expect(compareKeys("😀", "\uFFFF")).toBeGreaterThan(0);
    expect(compareKeys("a😀", "a\uE000")).toBeGreaterThan(0);
  });
});

describe("prefixSuccessor", () => {
  it("bumps the last character", () => {
    expect(prefixSuccessor("a/")).toBe("a0");
    expect(prefixSuccessor("abc")).toBe("abd");
    expect(prefixSuccessor("\uFFFF")).toBe("\u{10000}");
    expect(prefixSuccessor("a😀")).toBe("a😁");
  });

  it("has no successor for the empty prefix", () => {
    expect(prefixSuccessor("")).toBeNull();
  });

  it("drops a trailing U+10FFFF and bumps the character before it", () => {
    expect(prefixSuccessor("a\u{10FFFF}")).toBe("b");
    expect(prefixSuccessor("a\u{10FFFF}\u{10FFFF}")).toBe("b");
    expect(prefixSuccessor("\u{10FFFF}")).toBeNull();
  });

  it("skips the surrogate range: U+D7FF is followed by U+E000", () => {
    expect(prefixSuccessor("\uD7FF")).toBe("\uE000");
    expect(prefixSuccessor("x\uD7FF")).toBe("x\uE000");
  });

  it("is greater than every key with the prefix and not greater than the next key without it", () => {
    for (const p of ["a/", "a", "\uFFFF", "😀", "a\u{10FFFF}", "\uD7FF"]) {
      const s = prefixSuccessor(p)!;
      for (const suffix of ["", "\u0000", "zzz", "\uFFFF", "\u{10FFFF}\u{10FFFF}"]) expect(compareKeys(p + suffix, s)).toBeLessThan(0);
      for (const k of KEYS) if (!k.startsWith(p) && compareKeys(k, p) > 0) expect(compareKeys(k, s)).toBeGreaterThanOrEqual(0);
    }
  });
});

describe("commonPrefixOf", () => {
  it("rolls a key up to the first delimiter after the prefix", () => {
    expect(commonPrefixOf("a/b/c", "", "/")).toBe("a/");
    expect(commonPrefixOf("a/b/c", "a/", "/")).toBe("a/b/");
    expect(commonPrefixOf("a/b/c", "a", "/")).toBe("a/");
    expect(commonPrefixOf("a//b", "a/", "/")).toBe("a//");
  });

  it("supports multi-character delimiters", () => {
    expect(commonPrefixOf("x--y--z", "", "--")).toBe("x--");
    expect(commonPrefixOf("x--y--z", "x--", "--")).toBe("x--y--");
  });

  it("is null without a delimiter, past the prefix's end, or outside the prefix", () => {
    expect(commonPrefixOf("a/b", "", "")).toBeNull();
    expect(commonPrefixOf("a/b", "a/", "/")).toBeNull();
    expect(commonPrefixOf("b/c", "a/", "/")).toBeNull();
    // The delimiter inside the prefix itself does not count.
    expect(commonPrefixOf("a/b", "a/b", "/")).toBeNull();
  });
});
