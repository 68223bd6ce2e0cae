// A target's own key pair for its peer links, and the self-signed certificate that carries the
// public key through a TLS handshake. Trust never rests on the certificate's names or dates:
// each target tells its groups the SHA-256 fingerprint of its certificate over its
// authenticated control connection, the groups pass their members' fingerprints to every
// member, and both ends of a peer link pin the other's fingerprint (peer-link.ts). So the
// certificate is written here in the few lines of DER it takes (a library for it would bring a
// tree of packages and a global polyfill); the key is made by Node's crypto and never leaves
// the target's data directory.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { isCertFingerprint, type CertFingerprint } from "../common/ids.ts";
import { writeFileDurably } from "./durable-file.ts";

export interface PeerIdentity {
  /** PEM, for tls.createServer / tls.connect. */
  key: string;
  cert: string;
  fingerprint: CertFingerprint;
}

const KEY_FILE = "peer-key.pem";
const CERT_FILE = "peer-cert.pem";

/** The fingerprint peers pin: SHA-256 of the certificate's DER, lowercase hex. */
export function fingerprintOf(der: Uint8Array): CertFingerprint {
  const hex = createHash("sha256").update(der).digest("hex");
  if (!isCertFingerprint(hex)) throw new Error("unreachable: a SHA-256 digest is 64 hex digits");
  return hex;
}

/** The key and certificate in `dataDir`, made on first use and kept (so peers' pins survive restarts). */
export async function loadPeerIdentity(dataDir: string, name: string): Promise<PeerIdentity> {
  const keyPath = join(dataDir, KEY_FILE);
  const certPath = join(dataDir, CERT_FILE);
  const kept = await Promise.all([readFile(keyPath, "utf8"), readFile(certPath, "utf8")]).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return null;
    throw e;
  });
  if (kept) {
    const [key, cert] = kept;
    const x = new X509Certificate(cert);
    // A key and certificate that do not belong together would fail every handshake, silently for the operator.
    if (!x.checkPrivateKey(createPrivateKey(key))) throw new Error(`${keyPath} is not the key of ${certPath}: remove both to make a new pair`);
    return { key, cert, fingerprint: fingerprintOf(x.raw) };
  }
  const made = makePeerIdentity(name);
  // The key first: a crash between the two leaves no certificate, and the pair is made again.
  await writeFileDurably(keyPath, made.key);
  await writeFileDurably(certPath, made.cert);
  return made;
}

/** A fresh P-256 key pair and a self-signed certificate for it with `name` as its common name. */
export function makePeerIdentity(name: string): PeerIdentity {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const spki = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and without a leading zero byte
  const subject = seq(set(seq(CN_OID, tlv(0x0c, Buffer.from(name)))));
  const tbs = seq(
    tlv(0x02, serial),
    ECDSA_SHA256,
    subject,
    seq(utcTime(new Date(Date.now() - 3_600_000)), NO_EXPIRY),
    subject,
    spki,
  );
  const signature = sign("sha256", tbs, privateKey);
  const der = seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.concat([Buffer.of(0), signature])));
  return {
    key: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    cert: `-----BEGIN CERTIFICATE-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n")}-----END CERTIFICATE-----\n`,
    fingerprint: fingerprintOf(der),
  };
}

// ---- the DER the certificate needs (X.690): definite lengths, a handful of types ----

function tlv(tag: number, body: Uint8Array): Buffer {
  const n = body.length;
  const len = n < 0x80 ? Buffer.of(n) : n < 0x100 ? Buffer.of(0x81, n) : Buffer.of(0x82, n >> 8, n & 0xff);
  return Buffer.concat([Buffer.of(tag), len, body]);
}
const seq = (...parts: Uint8Array[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Uint8Array[]): Buffer => tlv(0x31, Buffer.concat(parts));
/** AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), no parameters. */
const ECDSA_SHA256 = seq(Buffer.from("06082a8648ce3d040302", "hex"));
/** commonName (2.5.4.3). */
const CN_OID = Buffer.from("0603550403", "hex");
/** RFC 5280's "no well-defined expiration date": the pin, not a date, is what is trusted. */
const NO_EXPIRY = tlv(0x18, Buffer.from("99991231235959Z"));

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280, 4.1.2.5). */
function utcTime(d: Date): Buffer {
  const two = (n: number) => String(n).padStart(2, "0");
  const year = d.getUTCFullYear();
  const rest = `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
  return year < 2050 ? tlv(0x17, Buffer.from(`${two(year % 100)}${rest}`)) : tlv(0x18, Buffer.from(`${year}${rest}`));
}
