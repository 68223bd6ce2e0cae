// A bucket's lifecycle rules as S3 defines them (PutBucketLifecycleConfiguration), and how one
// is judged against a version: which versions a rule's filter takes (key prefix, tags, size),
// and when each action falls due. S3 counts days from a version's creation (or, for a noncurrent
// version, from when a newer one replaced it) and rounds the moment up to the next midnight UTC;
// a "day" here is `dayMs` long (LIFECYCLE_DAY_SECONDS, one real day unless a test shortens it),
// and the rounding is to the next multiple of it since the epoch, which for a real day is
// midnight UTC.

import { hasTags, type Tag } from "./tags.ts";

export const LIFECYCLE_RULES_MAX = 1000;
export const NEWER_NONCURRENT_MAX = 100;

export interface LifecycleFilter {
  prefix: string;
  /** Every one must be on the version. */
  tags: Tag[];
  /** Strict bounds, as S3's ObjectSizeGreaterThan / ObjectSizeLessThan; null: none. */
  sizeGreaterThan: number | null;
  sizeLessThan: number | null;
}

export interface LifecycleRule {
  id: string;
  enabled: boolean;
  filter: LifecycleFilter;
  /** The current version expires this many days after its creation, or from this date (ms, midnight UTC); null: neither. */
  expiration: { days: number } | { date: number } | null;
  /** A delete marker with no version behind it is removed. */
  expiredObjectDeleteMarker: boolean;
  /** A noncurrent version is removed this many days after it became noncurrent, keeping the `newer` newest noncurrent ones. */
  noncurrentExpiration: { days: number; newer: number } | null;
  /** An upload neither completed nor aborted is aborted this many days after it began. */
  abortUploadDays: number | null;
}

/** What a filter looks at: a version's key, size and tags (a delete marker has size 0 and none). */
export interface Candidate {
  key: string;
  size: number;
  tags: readonly Tag[];
}

export function filterTakes(f: LifecycleFilter, c: Candidate): boolean {
  if (!c.key.startsWith(f.prefix)) return false;
  if (f.sizeGreaterThan !== null && !(c.size > f.sizeGreaterThan)) return false;
  if (f.sizeLessThan !== null && !(c.size < f.sizeLessThan)) return false;
  return hasTags(c.tags, f.tags);
}

/** `days` after `from`, rounded up to the next day boundary (S3's midnight UTC). */
export function dueAt(from: number, days: number, dayMs: number): number {
  return Math.ceil((from + days * dayMs) / dayMs) * dayMs;
}

/** Whether a current version (not a delete marker) created at `created` has expired by `now`. */
export function currentExpired(rule: LifecycleRule, created: number, at: { now: number; dayMs: number }): boolean {
  const e = rule.expiration;
  if (e === null) return false;
  return "date" in e ? at.now >= e.date : at.now >= dueAt(created, e.days, at.dayMs);
}

/**
 * Whether a noncurrent version expires: `since` is when it became noncurrent (its successor's
 * creation), `rank` its place among the key's noncurrent versions, 1 for the newest.
 */
export function noncurrentExpired(rule: LifecycleRule, v: { since: number; rank: number }, at: { now: number; dayMs: number }): boolean {
  const n = rule.noncurrentExpiration;
  if (n === null || v.rank <= n.newer) return false;
  return at.now >= dueAt(v.since, n.days, at.dayMs);
}
