// Selecting versions across a tenant's buckets from one shard's records: what a snapshot takes
// (the versions current at T that match its masks and qualifiers) and what a namespace query
// finds (versions by name pattern, creation time, creator, size and metadata). Results come in
// (bucket, key, newest version first) order with a cursor, so the gateway merges shards the way
// it merges listings.
//
// Masks are glob patterns over the bucket and the key (`glob.ts`: `*` matches any run of
// characters including `/`, as the aws CLI's --include does, `?` one character, `[...]` a
// class), matched here rather than by SQL; SQL narrows the scan by their literal prefixes.

import { narrowToPart, type NamePart } from "./name-part.ts";
import { asChid, asUvid, type Chid, type Uvid } from "../../common/ids.ts";
import { compareKeys, prefixSuccessor } from "../../common/keys.ts";
import { existsAt } from "./as-of.ts";
import { compileGlob, GlobError, globMatches, type Glob } from "./glob.ts";
import { tagsOfJson } from "../shared/tags.ts";

/** A qualifier on a tag names it `tag:<key>`, the key as it was set (tag keys are case-sensitive). */
export const TAG_QUALIFIER = "tag:";

export interface Mask {
  bucket: string;
  key: string;
}

/** `content-type`, `x-amz-meta-<name>`, or `tag:<key>` (the version's tags now): equals `value`. */
export interface Qualifier {
  name: string;
  value: string;
}

export interface Selection {
  tenant: string;
  /** A version matches if it matches any mask (at least one). */
  masks: Mask[];
  /** ...whose key starts with this (queries by scope). */
  keyPrefix?: string;
  /** ...and every qualifier. */
  qualifiers: Qualifier[];
  /** current: each key's version current at the bound (or now), delete markers left out. versions: every version that existed then, delete markers left out. */
  which: "current" | "versions";
  /** As of the time just before this UVID; absent: now. */
  bound?: Uvid;
  createdFrom?: number;
  createdBefore?: number;
  creator?: string;
  sizeMin?: number;
  sizeMax?: number;
  /**
   * Only names under these (a scoped key's grants): rows outside are never read, so neither an
   * answer nor a cursor can tell anything about them.
   */
  within?: { bucket: string; prefix: string }[];
}

export interface Selected {
  bucket: string;
  key: string;
  uvid: Uvid;
  vmChid: Chid;
  isNull: boolean;
  size: number;
  etag: string;
  lastModified: number;
  contentType: string;
  creator: string;
}

/** Strictly after this (bucket, key, version); `uvid` null: after every version of the key. */
export interface SelectCursor {
  bucket: string;
  key: string;
  uvid: string | null;
}

export interface SelectPage {
  entries: Selected[];
  /** Where to go on; null when this shard has nothing more. */
  next: SelectCursor | null;
}

const BATCH = 500;
/** Rows one call reads at most, so a selective qualifier cannot make one call unbounded. */
const SCAN_BUDGET = 20_000;
/**
 * Glob comparisons one call makes at most (a few milliseconds): one hostile pattern against
 * long keys costs up to key × pattern comparisons a row, so rows alone do not bound a call.
 */
const MATCH_BUDGET = 4_000_000;

interface CompiledMask {
  bucket: Glob;
  key: Glob;
}

/** Masks that do not compile (an unclosed class, stored before masks were checked) match nothing, as in SQLite. */
function compileMasks(masks: Mask[]): CompiledMask[] {
  return masks.flatMap((m) => {
    try {
      return [{ bucket: compileGlob(m.bucket), key: compileGlob(m.key) }];
    } catch (e) {
      if (e instanceof GlobError) return [];
      throw e;
    }
  });
}

function commonPrefix(texts: string[]): string {
  let p = texts[0] ?? "";
  for (const t of texts) while (!t.startsWith(p)) p = p.slice(0, -1);
  return p;
}

/** SQL conditions every row a mask can match meets: the masks' shared literal bucket and key prefixes. */
function narrowing(masks: CompiledMask[]): { conds: string[]; args: string[] } {
  const conds: string[] = [];
  const args: string[] = [];
  const range = (column: string, prefix: string) => {
    if (prefix === "") return;
    conds.push(`${column} >= ?`);
    args.push(prefix);
    const upper = prefixSuccessor(prefix);
    if (upper !== null) conds.push(`${column} < ?`), args.push(upper);
  };
  const buckets = masks.map((m) => m.bucket);
  if (buckets.every((b) => b.literal && b.literalPrefix === buckets[0]!.literalPrefix)) {
    conds.push("v.bucket = ?");
    args.push(buckets[0]!.literalPrefix);
  } else range("v.bucket", commonPrefix(buckets.map((b) => b.literalPrefix)));
  range("v.key", commonPrefix(masks.map((m) => m.key.literalPrefix)));
  return { conds, args };
}

function qualifies(row: Record<string, SqlStorageValue>, qs: Qualifier[]): boolean {
  if (qs.length === 0) return true;
  // Written by the shard from records its groups checked: the cast only names that.
  const meta = row.meta === null ? {} : (JSON.parse(String(row.meta)) as Record<string, string>);
  const tags = qs.some((q) => q.name.startsWith(TAG_QUALIFIER)) ? tagsOfJson(row.tags) : [];
  return qs.every((q) => {
    if (q.name === "content-type") return String(row.content_type) === q.value;
    if (q.name.startsWith(TAG_QUALIFIER)) return tags.some((t) => t.key === q.name.slice(TAG_QUALIFIER.length) && t.value === q.value);
    return meta[q.name.slice("x-amz-meta-".length)] === q.value;
  });
}

type Range = { bucket: string; prefix: string; upper: string | null };

/** Grants as disjoint ranges in (bucket, key) order: one under another's prefix is dropped. */
function rangesOf(within: { bucket: string; prefix: string }[]): Range[] {
  // In SQLite's order (UTF-8 bytes), the order rows come in: a range finished is behind the cursor for good.
  const sorted = [...within].sort((a, b) => compareKeys(a.bucket, b.bucket) || compareKeys(a.prefix, b.prefix));
  const kept: Range[] = [];
  for (const g of sorted) {
    const last = kept.at(-1);
    if (last && last.bucket === g.bucket && g.prefix.startsWith(last.prefix)) continue;
    kept.push({ ...g, upper: prefixSuccessor(g.prefix) });
  }
  return kept;
}

/** Whether a range still holds names after the cursor. */
function endsAfter(r: Range, c: SelectCursor | null): boolean {
  if (c === null || compareKeys(r.bucket, c.bucket) > 0) return true;
  return r.bucket === c.bucket && (r.upper === null || compareKeys(c.key, r.upper) < 0);
}

/** A page of the selection: after the cursor, at most `limit` entries, of `part`'s names only (null: all). */
export interface SelectWindow {
  after: SelectCursor | null;
  limit: number;
  part: NamePart | null;
}

export function selectVersions(sql: SqlStorage, s: Selection, w: SelectWindow): SelectPage {
  const { after, limit, part } = w;
  const entries: Selected[] = [];
  const masks = compileMasks(s.masks);
  if (masks.length === 0) return { entries, next: null };
  // Without `within`, one range: everything.
  const ranges: (Range | null)[] = s.within ? rangesOf(s.within) : [null];
  let ri = s.within ? ranges.findIndex((r) => endsAfter(r!, after)) : 0;
  if (ri < 0) return { entries, next: null };
  const narrow = narrowing(masks);
  const work = { steps: 0 };
  let lastName: { bucket: string; key: string; matched: boolean } | null = null;
  /** Masks depend on the name alone, and a key's versions come together: match each name once. */
  const nameMatches = (bucket: string, key: string): boolean => {
    if (lastName?.bucket !== bucket || lastName.key !== key) {
      const matched = masks.some((m) => globMatches(m.bucket, bucket, work) && globMatches(m.key, key, work));
      lastName = { bucket, key, matched };
    }
    return lastName.matched;
  };
  let cursor = after;
  let scanned = 0;
  for (;;) {
    // As of a bound, a key's current version is the first existing one in uvid DESC order; it is
    // picked here rather than by a correlated MAX per row (several times cheaper), and may be a
    // delete marker, which hides the key.
    const firstPerKey = s.which === "current" && s.bound !== undefined;
    const conds = firstPerKey ? ["v.tenant = ?"] : ["v.tenant = ?", "v.delete_marker = 0"];
    const args: (string | number)[] = [s.tenant];
    conds.push(...narrow.conds);
    args.push(...narrow.args);
    narrowToPart("v", part, { conds, args });
    if (cursor) {
      if (cursor.uvid === null || s.which === "current") {
        conds.push("(v.bucket > ? OR (v.bucket = ? AND v.key > ?))");
        args.push(cursor.bucket, cursor.bucket, cursor.key);
      } else {
        conds.push("(v.bucket > ? OR (v.bucket = ? AND (v.key > ? OR (v.key = ? AND v.uvid < ?))))");
        args.push(cursor.bucket, cursor.bucket, cursor.key, cursor.key, cursor.uvid);
      }
    }
    if (s.bound !== undefined) {
      conds.push(existsAt("v"));
      args.push(s.bound, s.bound);
    } else if (s.which === "current") {
      conds.push("v.removed = 0", "v.uvid = (SELECT c.uvid FROM current c WHERE c.tenant = v.tenant AND c.bucket = v.bucket AND c.key = v.key)");
    } else {
      conds.push("v.removed = 0");
    }
    if (s.keyPrefix) {
      conds.push("v.key >= ?");
      args.push(s.keyPrefix);
      const upper = prefixSuccessor(s.keyPrefix);
      if (upper !== null) conds.push("v.key < ?"), args.push(upper);
    }
    if (s.createdFrom !== undefined) conds.push("v.last_modified >= ?"), args.push(s.createdFrom);
    if (s.createdBefore !== undefined) conds.push("v.last_modified < ?"), args.push(s.createdBefore);
    if (s.creator !== undefined) conds.push("v.creator = ?"), args.push(s.creator);
    if (s.sizeMin !== undefined) conds.push("v.size >= ?"), args.push(s.sizeMin);
    if (s.sizeMax !== undefined) conds.push("v.size <= ?"), args.push(s.sizeMax);
    const range = ranges[ri];
    if (range) {
      conds.push("v.bucket = ?", "v.key >= ?");
      args.push(range.bucket, range.prefix);
      if (range.upper !== null) conds.push("v.key < ?"), args.push(range.upper);
    }
    const rows = sql
      .exec(
        `SELECT v.bucket, v.key, v.uvid, v.vm_chid, v.is_null, v.size, v.etag, v.last_modified, v.content_type, v.creator, v.meta, v.tags, v.delete_marker
         FROM versions v WHERE ${conds.join(" AND ")} ORDER BY v.bucket, v.key, v.uvid DESC LIMIT ?`,
        ...args,
        BATCH,
      )
      .toArray();
    for (const row of rows) {
      scanned++;
      const bucket = String(row.bucket);
      const key = String(row.key);
      if (firstPerKey && cursor && cursor.bucket === bucket && cursor.key === key) continue;
      cursor = { bucket, key, uvid: String(row.uvid) };
      if (firstPerKey && Number(row.delete_marker) === 1) continue;
      if (!nameMatches(bucket, key)) {
        if (work.steps >= MATCH_BUDGET) return { entries, next: cursor };
        continue;
      }
      if (!qualifies(row, s.qualifiers)) continue;
      entries.push({
        bucket,
        key,
        uvid: asUvid(row.uvid),
        vmChid: asChid(row.vm_chid),
        isNull: Number(row.is_null) === 1,
        size: Number(row.size),
        etag: String(row.etag),
        lastModified: Number(row.last_modified),
        contentType: String(row.content_type),
        creator: String(row.creator),
      });
      if (entries.length === limit) return { entries, next: cursor };
    }
    if (rows.length < BATCH) {
      if (++ri >= ranges.length) return { entries, next: null };
      continue;
    }
    if (scanned >= SCAN_BUDGET) return { entries, next: cursor };
  }
}
