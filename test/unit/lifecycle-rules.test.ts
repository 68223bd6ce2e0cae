// When lifecycle rules make a version due: S3's rounding to the next midnight UTC, noncurrent
// days counted from the successor's creation, the newest noncurrent versions kept, filters.

import { describe, expect, it } from "vitest";
import { formatUvid } from "../../common/ids.ts";
import { dueOf } from "../../workers/manifest-shard/lifecycle-due.ts";
import { dueAt, type LifecycleRule } from "../../workers/shared/lifecycle-rules.ts";

const DAY = 86_400_000;
const rule = (over: Partial<LifecycleRule>): LifecycleRule => ({ id: "r", enabled: true, filter: { prefix: "", tags: [], sizeGreaterThan: null, sizeLessThan: null }, expiration: null, expiredObjectDeleteMarker: false, noncurrentExpiration: null, abortUploadDays: null, ...over });
const version = (ms: number, over: { deleteMarker?: boolean; size?: number; tags?: [string, string][] } = {}) => ({
  uvid: formatUvid({ ms, seq: 0, group: 0 }),
  deleteMarker: over.deleteMarker ?? false,
  size: over.size ?? 10,
  created: ms,
  tags: over.tags ? JSON.stringify(over.tags) : null,
});

describe("lifecycle due dates", () => {
  it("round up to the next midnight UTC, as S3 does", () => {
    const created = Date.UTC(2026, 0, 1, 15, 30);
    expect(new Date(dueAt(created, 1, DAY)).toISOString()).toBe("2026-01-03T00:00:00.000Z");
    expect(new Date(dueAt(Date.UTC(2026, 0, 1), 1, DAY)).toISOString()).toBe("2026-01-02T00:00:00.000Z");
  });

  it("expire the current version once due, by prefix, size and tags", () => {
    const created = Date.UTC(2026, 0, 1, 12);
    const r = rule({ filter: { prefix: "logs/", tags: [{ key: "t", value: "1" }], sizeGreaterThan: 5, sizeLessThan: null }, expiration: { days: 2 } });
    const v = [version(created, { tags: [["t", "1"], ["u", "2"]] })];
    const at = (iso: string) => ({ now: Date.parse(iso), dayMs: DAY });
    expect(dueOf([r], "logs/a", v, at("2026-01-03T23:59:59Z"))).toEqual([]);
    expect(dueOf([r], "logs/a", v, at("2026-01-04T00:00:00Z"))).toEqual([{ kind: "expire-current", key: "logs/a", uvid: v[0]!.uvid, tags: [{ key: "t", value: "1" }] }]);
    expect(dueOf([r], "other/a", v, at("2026-02-01T00:00:00Z"))).toEqual([]);
    expect(dueOf([r], "logs/a", [version(created, { tags: [["t", "2"]] })], at("2026-02-01T00:00:00Z"))).toEqual([]);
    expect(dueOf([r], "logs/a", [version(created, { size: 5, tags: [["t", "1"]] })], at("2026-02-01T00:00:00Z"))).toEqual([]);
    expect(dueOf([rule({ expiration: { date: Date.UTC(2026, 5, 1) } })], "k", v, at("2026-06-01T00:00:00Z"))).toHaveLength(1);
    expect(dueOf([rule({ expiration: { date: Date.UTC(2026, 5, 1) } })], "k", v, at("2026-05-31T23:00:00Z"))).toHaveLength(0);
  });

  it("count noncurrent days from the successor's creation, keep the newest noncurrent ones, and remove only a delete marker with nothing behind it", () => {
    const d = (n: number) => Date.UTC(2026, 0, n);
    // Newest first: current (day 10), then noncurrent since day 10, 8 and 6.
    const v = [version(d(10)), version(d(8)), version(d(6)), version(d(1))];
    const r = rule({ noncurrentExpiration: { days: 3, newer: 1 } });
    const due = (now: number) => dueOf([r], "k", v, { now, dayMs: DAY }).map((x) => ("uvid" in x ? v.findIndex((y) => y.uvid === x.uvid) : -1));
    // The same key judged a window at a time gives the same answer.
    const windowed = (now: number) => [...dueOf([r], "k", v.slice(0, 2), { now, dayMs: DAY }), ...dueOf([r], "k", v.slice(2), { now, dayMs: DAY }, { rank: 2, since: v[1]!.created })].map((x) => ("uvid" in x ? v.findIndex((y) => y.uvid === x.uvid) : -1));
    expect(windowed(d(11))).toEqual(due(d(11)));
    expect(due(d(9))).toEqual([3]);
    expect(due(d(11))).toEqual([2, 3]);
    // Rank 1 (the newest noncurrent) is kept however old.
    expect(due(d(100))).toEqual([2, 3]);
    const eodm = rule({ expiredObjectDeleteMarker: true });
    const marker = version(d(5), { deleteMarker: true });
    expect(dueOf([eodm], "k", [marker], { now: d(6), dayMs: DAY })).toEqual([{ kind: "remove-marker", key: "k", uvid: marker.uvid }]);
    expect(dueOf([eodm], "k", [marker, version(d(4))], { now: d(6), dayMs: DAY })).toEqual([]);
  });
});
