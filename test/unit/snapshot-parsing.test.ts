// The extension API's parsing and the snapshot manifest's encoding, inside workerd.

import { describe, expect, it } from "vitest";
import { asChid, formatUvid, type Chid } from "../../common/ids.ts";
import { maskText, parseMask, parseQualifier } from "../../workers/gateway/ext/selection.ts";
import { parseTime } from "../../workers/gateway/params.ts";
import { decodePage, encodePage, encodeRoot, snapshotToken, type SnapshotEntry } from "../../workers/snapshots/manifest.ts";
import { caught, routeOf } from "./s3-errors.ts";


describe("extension routes", () => {
  it("routes the snapshot and query API on paths no bucket can have", async () => {
    expect(await routeOf("/_snapshots", "POST")).toMatchObject({ op: "CreateSnapshot" });
    expect(await routeOf("/_snapshots")).toMatchObject({ op: "ListSnapshots" });
    expect(await routeOf("/_snapshots/snap-1")).toMatchObject({ op: "GetSnapshot", id: "snap-1" });
    expect(await routeOf("/_snapshots/snap-1", "PATCH")).toMatchObject({ op: "EditSnapshot", id: "snap-1" });
    expect(await routeOf("/_snapshots/snap-1", "DELETE")).toMatchObject({ op: "DeleteSnapshot", id: "snap-1" });
    expect(await routeOf("/_snapshots/snap-1/commit", "POST")).toMatchObject({ op: "CommitSnapshot", id: "snap-1" });
    expect(await routeOf("/_snapshots/snap-1/abort", "POST")).toMatchObject({ op: "AbortSnapshot", id: "snap-1" });
    expect(await routeOf("/_snapshots/snap-1/restore", "POST")).toMatchObject({ op: "RestoreSnapshot", id: "snap-1" });
    expect(await routeOf("/_query")).toMatchObject({ op: "QueryVersions" });
    expect(await routeOf("/_session")).toMatchObject({ op: "OpenSession" });
    expect(await routeOf("/_validate", "POST")).toMatchObject({ op: "Validate" });
    expect(await routeOf("/_replicas", "POST")).toMatchObject({ op: "SetReplicas" });
    expect(await routeOf("/_sessions", "POST")).toMatchObject({ op: "CreateHttpSession" });
    expect(await routeOf("/b/k?chunks")).toMatchObject({ op: "GetChunkLayout", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?chunk=3")).toMatchObject({ op: "GetStoredChunk", bucket: "b", key: "k" });
    expect(await routeOf("/_sessions/abc", "POST")).toMatchObject({ op: "SessionCommand", id: "abc" });
    expect(await routeOf("/_sessions/abc", "DELETE")).toMatchObject({ op: "EndHttpSession", id: "abc" });
    await expect(routeOf("/_validate")).rejects.toMatchObject({ code: "MethodNotAllowed" });
    await expect(routeOf("/_snapshots/snap-1/explode", "POST")).rejects.toMatchObject({ code: "InvalidRequest" });
    await expect(routeOf("/_snapshots", "PUT")).rejects.toMatchObject({ code: "MethodNotAllowed" });
    // A bucket is still a bucket.
    expect(await routeOf("/snapshots")).toMatchObject({ op: "ListObjects", bucket: "snapshots" });
  });
});

describe("masks, qualifiers and times", () => {
  it("splits a mask at the first slash; a bucket alone means every key", () => {
    expect(parseMask("photos/2025/*.jpg")).toEqual({ bucket: "photos", key: "2025/*.jpg" });
    expect(parseMask("photos")).toEqual({ bucket: "photos", key: "*" });
    expect(parseMask("logs-*/**")).toEqual({ bucket: "logs-*", key: "**" });
    expect(maskText(parseMask("photos/a/b"))).toBe("photos/a/b");
    expect(caught(() => parseMask("Photos/x")).code).toBe("InvalidArgument");
    expect(caught(() => parseMask("")).code).toBe("InvalidArgument");
    expect(caught(() => parseMask(`b/${"k".repeat(1025)}`)).code).toBe("InvalidArgument");
  });

  it("accepts content-type and x-amz-meta-* qualifiers, case-insensitively", () => {
    expect(parseQualifier({ name: "Content-Type", value: "image/jpeg" })).toEqual({ name: "content-type", value: "image/jpeg" });
    expect(parseQualifier({ name: "X-Amz-Meta-Camera", value: "X" })).toEqual({ name: "x-amz-meta-camera", value: "X" });
    expect(caught(() => parseQualifier({ name: "x-amz-meta-", value: "X" })).code).toBe("InvalidArgument");
    expect(caught(() => parseQualifier({ name: "etag", value: "X" })).code).toBe("InvalidArgument");
    expect(caught(() => parseQualifier({ name: "content-type", value: 3 })).code).toBe("InvalidArgument");
    // A tag's key keeps its case, as S3 compares tag keys; the prefix does not care.
    expect(parseQualifier({ name: "Tag:Class", value: "hot" })).toEqual({ name: "tag:Class", value: "hot" });
    expect(caught(() => parseQualifier({ name: "tag:", value: "X" })).code).toBe("InvalidArgument");
  });

  it("reads ISO 8601 times and epoch milliseconds", () => {
    expect(parseTime("2025-01-01T00:00:00Z", "at")).toBe(Date.UTC(2025, 0, 1));
    expect(parseTime("1700000000000", "at")).toBe(1_700_000_000_000);
    expect(caught(() => parseTime("soon", "at")).code).toBe("InvalidArgument");
  });
});

describe("the snapshot manifest", () => {
  const entry = (key: string, i: number): SnapshotEntry => ({
    bucket: "b",
    key,
    uvid: formatUvid({ ms: 1000 + i, seq: 0, group: 1 }),
    vmChid: asChid("ab".repeat(32)),
    isNull: i % 2 === 0,
    size: i,
    etag: `e${i}`,
    lastModified: 1000 + i,
    contentType: "text/plain",
  });

  it("round-trips a page", () => {
    const entries = ["a", "b/ü", "c\u0000d"].map(entry);
    expect(decodePage(encodePage(entries))).toEqual(entries);
  });

  it("encodes a root canonically, and its token is keyed: the same manifest, the same token; another key, another", async () => {
    const root = {
      format: 1,
      tenant: "t",
      id: "snap-1",
      at: 5,
      masks: [{ key: "*", bucket: "b" }],
      qualifiers: [],
      objects: 1,
      bytes: 3,
      pages: [{ count: 1, last: ["b", "a"] as [string, string], first: ["b", "a"] as [string, string], blob: { size: 10, chunks: [{ chid: "cd".repeat(32) as Chid, length: 10, offset: 0 }] } }],
    };
    const a = encodeRoot(root);
    const b = encodeRoot({ ...root, masks: [{ bucket: "b", key: "*" }] });
    expect(new TextDecoder().decode(a)).toBe(new TextDecoder().decode(b));
    const sha = "00".repeat(32);
    const t1 = await snapshotToken("k1", sha);
    expect(t1).toBe(await snapshotToken("k1", sha));
    expect(t1).not.toBe(await snapshotToken("k2", sha));
    expect(t1).not.toContain(sha);
  });
});
