// Glob matching for masks and name queries, in JavaScript rather than SQL.
//
// Durable Object SQLite refuses GLOB and LIKE patterns past about 50 bytes ("pattern too
// complex"), and every pattern handed to SQL is a bound parameter (at most 100 a statement).
// So patterns are compiled here once, matched against the rows SQL narrows by literal
// prefixes, and each match reports the work it did, so that a caller can bound a call's CPU
// whatever the patterns (a hostile pattern such as "*a*a*a*…b" costs key × pattern steps).
//
// Semantics are SQLite GLOB's, case-sensitive, over Unicode code points: `*` any run of
// characters (including `/`), `?` exactly one, `[...]` one of a class with `a-z` ranges, `[^...]`
// none of it, and `]` first in a class stands for itself.

type Token = { kind: "char"; cp: number } | { kind: "one" } | { kind: "class"; ranges: number[]; negate: boolean };

export interface Glob {
  /** Tokens between stars: segments[0] is anchored at the start, the last at the end. */
  readonly segments: Token[][];
  /** False when the pattern has no `*`: one segment must match the whole text. */
  readonly starred: boolean;
  /** The characters every match starts with (up to the first wildcard). */
  readonly literalPrefix: string;
  /** The pattern has no wildcard: it matches only itself. */
  readonly literal: boolean;
}

export class GlobError extends Error {}

/** Compile a pattern; a class left open is an error (SQLite would match nothing). */
export function compileGlob(pattern: string): Glob {
  const cps = Array.from(pattern, (c) => c.codePointAt(0)!);
  const segments: Token[][] = [[]];
  let starred = false;
  let literalPrefix = "";
  let wild = false;
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === 0x2a /* * */) {
      wild = true;
      starred = true;
      if (segments[segments.length - 1]!.length > 0 || segments.length === 1) segments.push([]);
      continue;
    }
    let tok: Token;
    if (c === 0x3f /* ? */) tok = { kind: "one" };
    else if (c === 0x5b /* [ */) {
      const [cls, end] = classAt(cps, i + 1);
      tok = cls;
      i = end;
    } else tok = { kind: "char", cp: c };
    if (tok.kind !== "char") wild = true;
    if (!wild && tok.kind === "char") literalPrefix += String.fromCodePoint(tok.cp);
    segments[segments.length - 1]!.push(tok);
  }
  return { segments, starred, literalPrefix, literal: !wild };
}

/** A class starting after its "[": the token and the index of its "]". */
function classAt(cps: number[], start: number): [Token, number] {
  let i = start;
  let negate = false;
  if (cps[i] === 0x5e /* ^ */) {
    negate = true;
    i++;
  }
  const ranges: number[] = [];
  let first = true;
  for (; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === 0x5d /* ] */ && !first) return [{ kind: "class", ranges, negate }, i];
    first = false;
    if (cps[i + 1] === 0x2d /* - */ && i + 2 < cps.length && cps[i + 2] !== 0x5d) {
      const hi = cps[i + 2]!;
      ranges.push(c, hi); // a reversed range (c-a) holds nothing, as in SQLite
      i += 2;
    } else ranges.push(c, c);
  }
  throw new GlobError("a character class ([...]) is not closed");
}

function tokenMatches(t: Token, cp: number): boolean {
  if (t.kind === "char") return t.cp === cp;
  if (t.kind === "one") return true;
  let inside = false;
  for (let r = 0; r < t.ranges.length; r += 2) {
    if (cp >= t.ranges[r]! && cp <= t.ranges[r + 1]!) {
      inside = true;
      break;
    }
  }
  return inside !== t.negate;
}

/** Does `seg` match text[at..at+seg.length)? Adds the comparisons made to `work`. */
function segmentAt(seg: Token[], text: number[], at: number, work: { steps: number }): boolean {
  for (let k = 0; k < seg.length; k++) {
    work.steps++;
    if (!tokenMatches(seg[k]!, text[at + k]!)) return false;
  }
  return true;
}

/**
 * Match `text` against a compiled glob. Leftmost placement of each middle segment is enough
 * (a star absorbs whatever a later placement would have skipped), so this is at most
 * text × pattern comparisons, never exponential. `work.steps` grows by the comparisons made.
 */
export function globMatches(g: Glob, textStr: string, work: { steps: number } = { steps: 0 }): boolean {
  const text = Array.from(textStr, (c) => c.codePointAt(0)!);
  const segs = g.segments;
  if (!g.starred) {
    const only = segs[0]!;
    return only.length === text.length && segmentAt(only, text, 0, work);
  }
  const head = segs[0]!;
  const tail = segs.length > 1 ? segs[segs.length - 1]! : [];
  if (head.length + tail.length > text.length) return false;
  if (!segmentAt(head, text, 0, work)) return false;
  let pos = head.length;
  const end = text.length - tail.length;
  for (let s = 1; s < segs.length - 1; s++) {
    const seg = segs[s]!;
    let found = -1;
    for (let at = pos; at + seg.length <= end; at++) {
      if (segmentAt(seg, text, at, work)) {
        found = at;
        break;
      }
    }
    if (found < 0) return false;
    pos = found + seg.length;
  }
  return segmentAt(tail, text, end, work);
}
