// AWS's URI encoding and the canonical URI and query string a signature covers, as S3 computes
// them; also the query parsing every S3 request path shares.

import { utf8 } from "./sigv4.ts";

const UNRESERVED = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") UNRESERVED[c.charCodeAt(0)] = 1;
const PCT: string[] = [];
for (let i = 0; i < 256; i++) PCT.push("%" + i.toString(16).toUpperCase().padStart(2, "0"));

/** AWS URI encoding of raw bytes: unreserved kept, everything else %XX (uppercase). */
export function uriEncodeBytes(bytes: Uint8Array, encodeSlash: boolean): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 128 && UNRESERVED[b] === 1) out += String.fromCharCode(b);
    else if (b === 0x2f && !encodeSlash) out += "/";
    else out += PCT[b]!;
  }
  return out;
}

/** AWS URI encoding of a string's UTF-8 bytes. `encodeSlash` is false only for object-key paths. */
export function uriEncode(s: string, encodeSlash: boolean): string {
  // Fast path: most keys and query values are already plain ASCII unreserved characters.
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (UNRESERVED[c] !== 1 && !(c === 0x2f && !encodeSlash))) {
      plain = false;
      break;
    }
  }
  return plain ? s : uriEncodeBytes(utf8(s), encodeSlash);
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Bytes a percent-encoded string stands for. A `%` not followed by two hex digits is taken
 * literally (as S3 does) rather than rejected; `+` stays `+`.
 */
export function percentDecodeBytes(s: string): Uint8Array {
  if (s.indexOf("%") < 0) return utf8(s);
  const out: number[] = [];
  let run = "";
  const flush = () => {
    if (run) {
      for (const b of utf8(run)) out.push(b);
      run = "";
    }
  };
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) === 0x25 && i + 2 < s.length) {
      const h = hexVal(s.charCodeAt(i + 1));
      const l = hexVal(s.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) {
        flush();
        out.push((h << 4) | l);
        i += 2;
        continue;
      }
    }
    run += s[i];
  }
  flush();
  return Uint8Array.from(out);
}

const lenientDecoder = new TextDecoder();

export function percentDecode(s: string): string {
  return s.indexOf("%") < 0 ? s : lenientDecoder.decode(percentDecodeBytes(s));
}

/**
 * Canonical URI of a request path as S3 computes it: each segment's escapes decoded and the
 * bytes re-encoded, so `~` vs `%7E` or a raw `$` verify alike. No `.`/`..` or `//` folding
 * and no double encoding: S3 keys may contain all of those.
 */
export function canonicalUri(path: string): string {
  if (path === "") return "/";
  const segments = path.split("/");
  for (let i = 0; i < segments.length; i++) {
    segments[i] = uriEncodeBytes(percentDecodeBytes(segments[i]!), true);
  }
  return segments.join("/");
}

/** Decoded name/value pairs of a raw query string (`?` optional); a bare name has value "". */
export function parseQuery(search: string): [string, string][] {
  const s = search.startsWith("?") ? search.slice(1) : search;
  const out: [string, string][] = [];
  if (s === "") return out;
  for (const part of s.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq < 0) out.push([percentDecode(part), ""]);
    else out.push([percentDecode(part.slice(0, eq)), percentDecode(part.slice(eq + 1))]);
  }
  return out;
}

/** Canonical query string from decoded pairs: each side URI-encoded, sorted by name then value. */
export function canonicalQueryString(params: [string, string][]): string {
  const encoded = params.map(([k, v]) => [uriEncode(k, true), uriEncode(v, true)] as const);
  encoded.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return encoded.map(([k, v]) => `${k}=${v}`).join("&");
}
