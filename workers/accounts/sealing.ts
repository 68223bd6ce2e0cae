// Secret access keys at rest. SigV4 is an HMAC keyed by the secret itself, so the gateway must be
// able to recover it: a hash would make every signature unverifiable. Each secret is therefore
// sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the Worker secret
// KEY_SEALING_SECRET, with the access key id as associated data, so that a sealed secret copied
// onto another key's row does not open. Durable Object storage only ever holds the sealed form.

const SALT = new TextEncoder().encode("edgestore access-key sealing v1");
const VERSION = "v1";

const keys = new Map<string, Promise<CryptoKey>>();

function sealingKey(secret: string): Promise<CryptoKey> {
  let k = keys.get(secret);
  if (!k) {
    k = crypto.subtle
      .importKey("raw", new TextEncoder().encode(secret), "HKDF", false, ["deriveKey"])
      .then((ikm) =>
        crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: SALT, info: new Uint8Array() }, ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]),
      );
    keys.set(secret, k);
  }
  return k;
}

function b64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function unb64(s: string): Uint8Array {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

function requireSecret(sealingSecret: string | undefined): string {
  if (!sealingSecret || sealingSecret.length < 16) {
    throw new Error("KEY_SEALING_SECRET is not set (or shorter than 16 characters): access keys cannot be stored or read; set it with `wrangler secret put KEY_SEALING_SECRET`");
  }
  return sealingSecret;
}

/** `v1:<iv>:<ciphertext>` (base64), bound to `accessKeyId`. */
export async function sealSecret(sealingSecret: string | undefined, accessKeyId: string, secret: string): Promise<string> {
  const key = await sealingKey(requireSecret(sealingSecret));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: new TextEncoder().encode(accessKeyId) }, key, new TextEncoder().encode(secret)),
  );
  return `${VERSION}:${b64(iv)}:${b64(ct)}`;
}

/** The secret sealed for `accessKeyId`; throws if it was sealed under another secret or for another key. */
export async function openSecret(sealingSecret: string | undefined, accessKeyId: string, sealed: string): Promise<string> {
  const [version, iv, ct] = sealed.split(":");
  if (version !== VERSION || !iv || !ct) throw new Error(`sealed secret of key ${accessKeyId} has an unknown format`);
  const key = await sealingKey(requireSecret(sealingSecret));
  try {
    const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: unb64(iv), additionalData: new TextEncoder().encode(accessKeyId) }, key, unb64(ct));
    return new TextDecoder().decode(pt);
  } catch {
    throw new Error(`the secret of key ${accessKeyId} does not open with this KEY_SEALING_SECRET (was it changed?)`);
  }
}

/**
 * The secret sealed for `accessKeyId`, under the current sealing secret or, while a rotation
 * is under way (KEY_SEALING_SECRET_PREVIOUS set until every key is re-sealed), the previous one.
 */
export async function openSealed(secrets: { current: string | undefined; previous: string | undefined }, accessKeyId: string, sealed: string): Promise<string> {
  try {
    return await openSecret(secrets.current, accessKeyId, sealed);
  } catch (e) {
    if (!secrets.previous) throw e;
    return openSecret(secrets.previous, accessKeyId, sealed);
  }
}

const KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function randomString(alphabet: string, n: number): string {
  // 32 and 64 divide 256, so taking each byte modulo the alphabet's size is unbiased.
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => alphabet[b % alphabet.length]).join("");
}

/** What every issued access key id looks like. */
export const ISSUED_KEY_ID = /^ES[A-Z2-7]{18}$/;

/** A new key pair shaped like AWS's: a 20-character id ("ES" + 90 random bits) and a 40-character secret (240 bits). */
export function newKeyPair(): { accessKeyId: string; secretAccessKey: string } {
  return { accessKeyId: `ES${randomString(KEY_ALPHABET, 18)}`, secretAccessKey: randomString(SECRET_ALPHABET, 40) };
}
