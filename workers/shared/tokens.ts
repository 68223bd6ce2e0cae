// Opaque tokens (seed 003): keyed hashes that name a manifest exactly without exposing any
// chunk id. A client keeps one and later asks whether what is stored still matches it.

import { isNode, type Extent } from "../../common/manifest.ts";

async function mac(key: string, message: string): Promise<string> {
  const k = await crypto.subtle.importKey("raw", new TextEncoder().encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const m = new Uint8Array(await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(message)));
  return btoa(String.fromCharCode(...m)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A snapshot manifest, by its root's SHA-256. */
export async function snapshotToken(key: string, rootSha256: string): Promise<string> {
  return `st1_${await mac(key, `snapshot-manifest:${rootSha256}`)}`;
}

/** A version manifest, by its CHID: changes with any change to content or metadata. */
export async function manifestToken(key: string, vmChid: string): Promise<string> {
  return `mt1_${await mac(key, `version-manifest:${vmChid}`)}`;
}

/** A chunk list as text, one form for everything that hashes a list (tokens, edited ETags). */
export function chunkListText(chunks: readonly Extent[]): string {
  // A slice adds where it lies in its chunk; whole-chunk refs read as they always did, so tokens
  // given before slices existed stay valid. A tree node reads as a chunk does: its CHID names
  // everything under it.
  return chunks.map((c) => `${c.offset}+${c.length}=${c.chid}${!isNode(c) && c.whole !== undefined ? `@${c.skip}/${c.whole}` : ""}`).join(",");
}

/** A version's payload alone: its size and chunk list (or inline body), whatever its metadata. */
export async function payloadToken(key: string, size: number, chunks: readonly Extent[], inline: string | null): Promise<string> {
  const body = inline !== null ? `inline:${inline}` : chunkListText(chunks);
  return `pt1_${await mac(key, `payload:${size}:${body}`)}`;
}
