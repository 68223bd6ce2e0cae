import { describe, expect, it } from "vitest";
import { boundaryOf, readFormUpload } from "../../workers/gateway/data/form-data.ts";
import { parsePolicy } from "../../workers/gateway/s3/post-policy.ts";
import { caught } from "./s3-errors.ts";

const enc = new TextEncoder();

/** A body delivered in pieces of `piece` bytes, as a network would split it. */
function bodyOf(text: string, piece: number): ReadableStream<Uint8Array> {
  const bytes = enc.encode(text);
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

const form = (b: string, file: string) =>
  `--${b}\r\nContent-Disposition: form-data; name="Key"\r\n\r\nuploads/a b.txt\r\n--${b}\r\nContent-Disposition: form-data; name="policy"\r\n\r\nxyz\r\n--${b}\r\nContent-Disposition: form-data; name="file"; filename="a b.txt"\r\nContent-Type: text/plain\r\n\r\n${file}\r\n--${b}--\r\n`;

describe("a form upload's body", () => {
  it("takes the boundary from the content type, quoted or not", () => {
    expect(boundaryOf("multipart/form-data; boundary=----x1")).toBe("----x1");
    expect(boundaryOf('multipart/form-data; boundary="a b"')).toBe("a b");
    expect(boundaryOf("application/json")).toBeNull();
  });

  it("reads the fields before the file, and streams the file up to its boundary, however the body is split", async () => {
    // A file holding what looks like the start of a boundary, split at every size.
    const file = "line one\r\n--notquite\r\n" + "x".repeat(3000);
    for (const piece of [1, 7, 64, 4096]) {
      const up = await readFormUpload(bodyOf(form("BOUNDARY42", file), piece), "BOUNDARY42", 20_000);
      expect(Object.fromEntries(up.fields)).toEqual({ key: "uploads/a b.txt", policy: "xyz" });
      expect(up.filename).toBe("a b.txt");
      expect(new TextDecoder().decode(new Uint8Array(await new Response(up.file).arrayBuffer()))).toBe(file);
    }
  });

  it("refuses fields past their cap, and a body that ends inside the file", async () => {
    const long = `--B\r\nContent-Disposition: form-data; name="x"\r\n\r\n${"y".repeat(30_000)}\r\n--B--\r\n`;
    await expect(readFormUpload(bodyOf(long, 1000), "B", 20_000)).rejects.toMatchObject({ code: "MaxPostPreDataLengthExceededError" });
    const cut = form("B", "abc").slice(0, -12);
    const up = await readFormUpload(bodyOf(cut, 50), "B", 20_000);
    await expect(new Response(up.file).arrayBuffer()).rejects.toMatchObject({ code: "IncompleteBody" });
  });
});

describe("a form upload's policy", () => {
  const policy = (conditions: unknown[], expiration = "2030-01-01T00:00:00Z") => btoa(JSON.stringify({ expiration, conditions }));
  const fields = (o: Record<string, string>) => new Map(Object.entries(o));

  it("holds when every field is named and every condition is met", () => {
    const p = parsePolicy(policy([{ bucket: "b" }, ["starts-with", "$key", "up/"], ["eq", "$Content-Type", "text/plain"], ["content-length-range", 1, 100]]));
    expect(p.length).toEqual({ min: 1, max: 100 });
    p.check(fields({ key: "up/x", "content-type": "text/plain", "x-amz-signature": "s", policy: "p", "x-ignore-me": "1" }), "b");
  });

  it("names the condition or field that fails", () => {
    const p = parsePolicy(policy([{ bucket: "b" }, ["starts-with", "$key", "up/"]]));
    expect(caught(() => p.check(fields({ key: "down/x" }), "b")).message).toContain("starts-with");
    expect(caught(() => p.check(fields({ key: "up/x" }), "other")).code).toBe("AccessDenied");
    expect(caught(() => p.check(fields({ key: "up/x", "x-amz-meta-a": "1" }), "b")).message).toContain("Extra input fields: x-amz-meta-a");
    expect(caught(() => parsePolicy("not base64 json!")).code).toBe("InvalidPolicyDocument");
    expect(caught(() => parsePolicy(policy([["content-length-range", 5, 1]]))).code).toBe("InvalidPolicyDocument");
    expect(caught(() => parsePolicy(policy([["matches", "$key", ".*"]]))).code).toBe("InvalidPolicyDocument");
  });
});

describe("a form upload read in large pieces", () => {
  it("does not count file bytes that arrive with the fields against the fields' cap", async () => {
    const file = "z".repeat(100_000);
    const up = await readFormUpload(bodyOf(form("B", file), 65_536), "B", 20_000);
    expect((await new Response(up.file).arrayBuffer()).byteLength).toBe(file.length);
  });
});
