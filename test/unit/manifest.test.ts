import { describe, expect, it } from "vitest";
import { formatUvid, type Chid, type Uvid } from "../../common/ids.ts";
import {
  base64Decode,
  base64Encode,
  chunksInRange,
  decodeManifest,
  encodeManifest,
  manifestChid,
  MANIFEST_FORMAT,
  type ChunkRef,
  type VersionManifest,
} from "../../common/manifest.ts";

const chid = (c: string) => c.repeat(64) as Chid;

function small(): VersionManifest {
  return {
    format: MANIFEST_FORMAT,
    uvid: formatUvid({ ms: 0x18f, seq: 1, group: 2 }),
    created: 399,
    tenant: "t",
    bucket: "b",
    key: "k",
    size: 3,
    etag: "e",
    contentType: "text/plain",
    userMeta: { b: "2", a: "1" },
    httpMeta: {},
    chunks: [{ offset: 0, length: 3, chid: chid("a") }],
    inline: null,
    deleteMarker: false,
    creator: "AK",
  };
}

/** Same values, every object's keys inserted in reverse order. */
function reversedKeys<T extends object>(o: T): T {
  const entries = Object.entries(o).reverse().map(([k, v]) => {
    if (v && typeof v === "object" && !Array.isArray(v)) return [k, reversedKeys(v as object)];
    if (Array.isArray(v)) return [k, v.map((x: unknown) => (x && typeof x === "object" ? reversedKeys(x as object) : x))];
    return [k, v];
  });
  return Object.fromEntries(entries) as T;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("canonical manifest encoding", () => {
  it("is pinned to sorted keys, no whitespace, chunk refs as triples", () => {
    expect(text(encodeManifest(small()))).toBe(
      `{"bucket":"b","chunks":[[0,3,"${chid("a")}"]],"contentType":"text/plain","created":399,"creator":"AK",` +
        `"deleteMarker":false,"etag":"e","format":1,"httpMeta":{},"inline":null,"key":"k","size":3,"tenant":"t",` +
        `"userMeta":{"a":"1","b":"2"},"uvid":"00000000018f0000010002"}`,
    );
  });

  it("does not depend on key insertion order, so the manifest CHID is stable", async () => {
    const a = small();
    const b = reversedKeys(a);
    expect(Object.keys(b)[0]).not.toBe(Object.keys(a)[0]);
    expect(encodeManifest(b)).toEqual(encodeManifest(a));
    expect(await manifestChid(encodeManifest(b))).toBe(await manifestChid(encodeManifest(a)));
  });

  it("round-trips through decode, chunked and inline", () => {
    const chunked: VersionManifest = {
      ...small(),
      key: "dir/é😀 key",
      size: 30,
      chunks: [
        { offset: 0, length: 10, chid: chid("1") },
        { offset: 10, length: 20, chid: chid("2") },
      ],
      userMeta: { "x-y": "v\"q\\" },
      httpMeta: { "cache-control": "no-cache" },
    };
    expect(decodeManifest(encodeManifest(chunked))).toEqual(chunked);
    const inline: VersionManifest = { ...small(), size: 5, chunks: [], inline: base64Encode(new TextEncoder().encode("hello")) };
    expect(decodeManifest(encodeManifest(inline))).toEqual(inline);
    const marker: VersionManifest = { ...small(), size: 0, chunks: [], deleteMarker: true };
    expect(decodeManifest(encodeManifest(marker))).toEqual(marker);
  });
});

describe("manifest validation", () => {
  it("rejects chunk refs with a gap or overlap", () => {
    const gap = { ...small(), size: 8, chunks: [{ offset: 0, length: 3, chid: chid("a") }, { offset: 4, length: 4, chid: chid("b") }] };
    expect(() => encodeManifest(gap)).toThrow(/contiguous/);
    const overlap = { ...small(), size: 6, chunks: [{ offset: 0, length: 3, chid: chid("a") }, { offset: 2, length: 4, chid: chid("b") }] };
    expect(() => encodeManifest(overlap)).toThrow(/contiguous/);
    const late = { ...small(), chunks: [{ offset: 1, length: 3, chid: chid("a") }] };
    expect(() => encodeManifest(late)).toThrow(/contiguous/);
  });

  it("rejects empty chunk refs", () => {
    expect(() => encodeManifest({ ...small(), size: 0, chunks: [{ offset: 0, length: 0, chid: chid("a") }] })).toThrow(/non-empty/);
  });

  it("rejects chunk refs that do not cover the size", () => {
    expect(() => encodeManifest({ ...small(), size: 4 })).toThrow(/size/);
  });

  it("rejects a manifest that is both inline and chunked", () => {
    expect(() => encodeManifest({ ...small(), inline: "YWJj" })).toThrow(/inline or chunked/);
  });

  it("rejects numbers that are not safe integers", () => {
    const inline = { ...small(), chunks: [], inline: "" };
    expect(() => encodeManifest({ ...inline, size: 1.5 })).toThrow(/safe integers/);
    expect(() => encodeManifest({ ...inline, created: Number.NaN })).toThrow(/safe integers/);
    expect(() => encodeManifest({ ...inline, created: 2 ** 53 })).toThrow(/safe integers/);
  });

  it("rejects a bad uvid or unknown format, on encode and on decode", () => {
    expect(() => encodeManifest({ ...small(), uvid: "not-a-uvid" as Uvid })).toThrow(/uvid/);
    expect(() => encodeManifest({ ...small(), uvid: small().uvid.toUpperCase() as Uvid })).toThrow(/uvid/);
    expect(() => encodeManifest({ ...small(), format: 2 })).toThrow(/format/);
    const tampered = text(encodeManifest(small())).replace(small().uvid, "zz");
    expect(() => decodeManifest(new TextEncoder().encode(tampered))).toThrow(/uvid/);
  });

  it("rejects a decoded manifest whose chunk refs are not contiguous", () => {
    const bad = text(encodeManifest(small())).replace("[[0,3,", "[[1,3,");
    expect(() => decodeManifest(new TextEncoder().encode(bad))).toThrow(/contiguous/);
  });
});

describe("chunksInRange", () => {
  const refs: ChunkRef[] = [
    { offset: 0, length: 10, chid: chid("1") },
    { offset: 10, length: 10, chid: chid("2") },
    { offset: 20, length: 10, chid: chid("3") },
  ];
  const ids = (start: number, end: number) => chunksInRange(refs, start, end).map((c) => c.chid[0]);

  it("finds the chunks at the start, middle and end", () => {
    expect(ids(0, 5)).toEqual(["1"]);
    expect(ids(12, 15)).toEqual(["2"]);
    expect(ids(25, 30)).toEqual(["3"]);
    expect(ids(5, 25)).toEqual(["1", "2", "3"]);
    expect(ids(0, 30)).toEqual(["1", "2", "3"]);
  });

  it("treats the end as exclusive at exact chunk boundaries", () => {
    expect(ids(10, 20)).toEqual(["2"]);
    expect(ids(9, 10)).toEqual(["1"]);
    expect(ids(10, 11)).toEqual(["2"]);
    expect(ids(19, 21)).toEqual(["2", "3"]);
    expect(ids(29, 30)).toEqual(["3"]);
  });

  it("returns nothing for an empty range or one past the end", () => {
    expect(ids(5, 5)).toEqual([]);
    expect(ids(10, 10)).toEqual([]);
    expect(ids(30, 30)).toEqual([]);
    expect(ids(30, 40)).toEqual([]);
    expect(chunksInRange([], 0, 10)).toEqual([]);
  });

  it("scales to many refs (binary search lands on the right one)", () => {
    const many: ChunkRef[] = Array.from({ length: 1000 }, (_, i) => ({ offset: i * 7, length: 7, chid: chid("a") }));
    const got = chunksInRange(many, 7 * 500 + 3, 7 * 502 + 1);
    expect(got.map((c) => c.offset)).toEqual([3500, 3507, 3514]);
  });
});

describe("base64", () => {
  it("matches the standard alphabet and padding", () => {
    expect(base64Encode(new TextEncoder().encode("hello"))).toBe("aGVsbG8=");
    expect(base64Encode(new Uint8Array(0))).toBe("");
    expect(base64Decode("")).toEqual(new Uint8Array(0));
  });

  it("round-trips every byte value 0..255", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(base64Decode(base64Encode(all))).toEqual(all);
  });

  it("round-trips input larger than 64 KiB (more than one encode slice)", () => {
    const big = new Uint8Array(200_003);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >>> 8)) & 0xff;
    const enc = base64Encode(big);
    expect(enc.length).toBe(Math.ceil(big.length / 3) * 4);
    expect(base64Decode(enc)).toEqual(big);
  });
});
