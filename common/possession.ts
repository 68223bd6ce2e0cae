// Proof that a target holds an item, over a nonce the group chose: HMAC-SHA-256 of the item's
// bytes keyed with the nonce. Only something that has the bytes now can answer a fresh nonce
// (a digest kept from earlier does not help, as it would with a hash of bytes and nonce in a
// row), and the group, placing the item, has the bytes to check the answer. A copy that no
// longer reads back right fails the proof too, so it is not counted.

import { fromHex, toHex } from "./ids.ts";

/** A fresh nonce for one proposal: 16 random bytes, hex. */
export function newNonce(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(16)));
}

/** The proof for `bytes` under `nonce`, lowercase hex. */
export async function possessionProof(nonce: string, bytes: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey("raw", fromHex(nonce) as Uint8Array<ArrayBuffer>, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, bytes as Uint8Array<ArrayBuffer>)));
}
