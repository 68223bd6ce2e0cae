// S3 lists keys in UTF-8 byte order. JavaScript compares strings by UTF-16 code unit, which
// disagrees for characters above U+FFFF; code point order is UTF-8 byte order, so compare that.

export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    // Only when one side is a surrogate do the two orders differ: use full code points there.
    if ((ca >= 0xd800 && ca <= 0xdfff) || (cb >= 0xd800 && cb <= 0xdfff)) {
      return a.codePointAt(i)! - b.codePointAt(i)!;
    }
    return ca - cb;
  }
  return a.length - b.length;
}

/**
 * The smallest string greater than every string that starts with `prefix`, or null when there
 * is none. Used to skip a whole common prefix in a listing and to bound a prefix scan.
 */
export function prefixSuccessor(prefix: string): string | null {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = cps.pop()!.codePointAt(0)!;
    let next = last + 1;
    if (next === 0xd800) next = 0xe000;
    if (next <= 0x10ffff) return cps.join("") + String.fromCodePoint(next);
  }
  return null;
}

/** The common prefix a key rolls up into under a delimiter, or null. */
export function commonPrefixOf(key: string, prefix: string, delimiter: string): string | null {
  if (!delimiter || !key.startsWith(prefix)) return null;
  const idx = key.indexOf(delimiter, prefix.length);
  return idx < 0 ? null : key.slice(0, idx + delimiter.length);
}
