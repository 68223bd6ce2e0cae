// The multipart rules a name's group applies, and the pieces they use: CRC combination and the
// request-XML reader.

import { describe, expect, it } from "vitest";
import { base64ToBytes, crc32, crc32c, crc32Combine, crc32cCombine, crc64nvme, crc64nvmeCombine, u32ToBase64 } from "../../common/checksums.ts";
import type { Chid } from "../../common/ids.ts";
import { assemble, conditionFails, MIN_PART_SIZE, type ListedPart } from "../../workers/negotiating-group/complete.ts";
import type { PartRow, UploadInfo } from "../../workers/negotiating-group/uploads.ts";
import { parseXml } from "../../workers/gateway/s3/xml-read.ts";

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 7) & 0xff);
const chid = (c: string) => c.repeat(64) as Chid;
const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");

const upload: UploadInfo = { uploadId: "u", tenant: "t", bucket: "b", key: "k", initiated: 1, creator: "AK", contentType: "text/plain", userMeta: { a: "1" }, httpMeta: {}, checksum: null };

async function part(n: number, size: number, chunks: number): Promise<PartRow> {
  const per = Math.ceil(size / chunks);
  const refs = Array.from({ length: chunks }, (_, i) => ({ offset: i * per, length: Math.min(per, size - i * per), chid: chid(String(n % 10)) }));
  return { partNumber: n, etag: hex(await crypto.subtle.digest("MD5", bytes(16, n))), size, chunks: refs, checksum: null, uploaded: 0 };
}

describe("completing a multipart upload", () => {
  it("joins the parts' chunk lists end to end, with S3's multipart ETag and the parts' sizes", async () => {
    const p1 = await part(1, MIN_PART_SIZE, 3);
    const p3 = await part(3, 1000, 1);
    const listed: ListedPart[] = [{ partNumber: 1, etag: `"${p1.etag}"`, checksum: null }, { partNumber: 3, etag: p3.etag, checksum: null }];
    const r = await assemble(upload, listed, new Map([[1, p1], [3, p3]]));
    if ("refused" in r) throw new Error(r.message);
    expect(r.body.size).toBe(MIN_PART_SIZE + 1000);
    expect(r.body.chunks.map((c) => c.offset)).toEqual([...p1.chunks.map((c) => c.offset), MIN_PART_SIZE]);
    expect(r.body.parts).toEqual([MIN_PART_SIZE, 1000]);
    const md5s = new Uint8Array(32);
    md5s.set(new Uint8Array(await crypto.subtle.digest("MD5", bytes(16, 1))), 0);
    md5s.set(new Uint8Array(await crypto.subtle.digest("MD5", bytes(16, 3))), 16);
    expect(r.body.etag).toBe(`${hex(await crypto.subtle.digest("MD5", md5s))}-2`);
    expect(r.body.userMeta).toEqual({ a: "1" });
  });

  it("refuses what S3 refuses, in S3's order", async () => {
    const p1 = await part(1, 1000, 1);
    const p2 = await part(2, 1000, 1);
    const have = new Map([[1, p1], [2, p2]]);
    const l = (n: number, etag: string): ListedPart => ({ partNumber: n, etag, checksum: null });
    expect(await assemble(upload, [], have)).toMatchObject({ refused: "MalformedXML" });
    expect(await assemble(upload, [l(2, p2.etag), l(1, p1.etag)], have)).toMatchObject({ refused: "InvalidPartOrder" });
    expect(await assemble(upload, [l(1, p1.etag), l(1, p1.etag)], have)).toMatchObject({ refused: "InvalidPartOrder" });
    expect(await assemble(upload, [l(1, p1.etag), l(4, p2.etag)], have)).toMatchObject({ refused: "InvalidPart", details: { PartNumber: "4" } });
    expect(await assemble(upload, [l(1, p2.etag)], have)).toMatchObject({ refused: "InvalidPart" });
    expect(await assemble(upload, [l(1, p1.etag), l(2, p2.etag)], have)).toMatchObject({ refused: "EntityTooSmall", details: { PartNumber: "1" } });
    // The last part may be small.
    expect(await assemble(upload, [l(1, p1.etag)], have)).not.toHaveProperty("refused");
  });
});

describe("conditional writes", () => {
  const cur = { uvid: "0".repeat(22) as never, vmChid: chid("a"), deleteMarker: false, etag: "abc" };
  it("If-None-Match: * only creates", () => {
    expect(conditionFails({ ifNoneMatch: true }, null)).toBeNull();
    expect(conditionFails({ ifNoneMatch: true }, { ...cur, deleteMarker: true })).toBeNull();
    expect(conditionFails({ ifNoneMatch: true }, cur)).toMatchObject({ refused: "PreconditionFailed" });
  });
  it("If-Match replaces only the version with that ETag", () => {
    expect(conditionFails({ ifMatch: '"abc"' }, cur)).toBeNull();
    expect(conditionFails({ ifMatch: "abc" }, cur)).toBeNull();
    expect(conditionFails({ ifMatch: '"abd"' }, cur)).toMatchObject({ refused: "PreconditionFailed" });
    expect(conditionFails({ ifMatch: '"abc"' }, null)).toMatchObject({ refused: "PreconditionFailed" });
  });
});

describe("CRC combination", () => {
  it("gives the CRC of A ++ B from those of A and B, for every length split", () => {
    const all = bytes(3000, 5);
    for (const cut of [0, 1, 7, 1500, 2999, 3000]) {
      const a = all.subarray(0, cut);
      const b = all.subarray(cut);
      expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(all));
      expect(crc32cCombine(crc32c(a), crc32c(b), b.length)).toBe(crc32c(all));
      expect(crc64nvmeCombine(crc64nvme(a), crc64nvme(b), b.length)).toBe(crc64nvme(all));
    }
    expect(base64ToBytes(u32ToBase64(0x01020304))).toEqual(new Uint8Array([1, 2, 3, 4]));
  });
});

describe("request XML", () => {
  const bad = () => new Error("malformed");
  it("reads elements, text and entities, ignoring the declaration, namespaces and comments", () => {
    const doc = parseXml(
      `<?xml version="1.0" encoding="UTF-8"?>\n<!-- c --><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key> a&amp;b &lt;&#233;&#x1F600;</Key></Object><Quiet>true</Quiet><Empty/></Delete>`,
      bad,
    );
    expect(doc.name).toBe("Delete");
    expect(doc.children.map((c) => c.name)).toEqual(["Object", "Quiet", "Empty"]);
    expect(doc.children[0]!.children[0]!.text).toBe(" a&b <é😀");
  });
  it("refuses what is not well-formed", () => {
    for (const x of ["", "<a>", "<a></b>", "<a><b></a></b>", "text", "<a></a><b></b>", "<a>x</a>trailing"]) expect(() => parseXml(x, bad)).toThrow("malformed");
  });
  it("refuses character references XML does not allow, and bare ampersands, as malformed rather than failing", () => {
    for (const x of ["<a>&#x110000;</a>", "<a>&#1114112;</a>", "<a>&#0;</a>", "<a>&#xD800;</a>", "<a>&#xFFFE;</a>", "<a>&#99999999999;</a>", "<a>a & b</a>", "<a>&bogus;</a>"]) {
      expect(() => parseXml(x, bad), x).toThrow("malformed");
    }
    expect(parseXml("<a>&#x9;&#xA;&#x10FFFF;</a>", bad).text).toBe("\t\n\u{10FFFF}");
  });
});
