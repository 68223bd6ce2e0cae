// The CRC checksums S3 clients send (x-amz-checksum-crc32 / -crc32c / -crc64nvme), as plain
// web-standard code usable in workerd and Node. All are the reflected variants; every function is
// incremental: pass the value returned for the previous bytes to continue over the next ones.
//
// CRC32 and CRC32C use slicing-by-8 tables: objects are hashed on the request path, so the
// byte-at-a-time loop (roughly 8x slower) would show up in PUT throughput.

function sliceBy8Tables(poly: number): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i]!;
    for (let s = 1; s < 8; s++) {
      c = (c >>> 8) ^ t[c & 0xff]!;
      t[s * 256 + i] = c >>> 0;
    }
  }
  return t;
}

const CRC32_TABLE = sliceBy8Tables(0xedb88320);
const CRC32C_TABLE = sliceBy8Tables(0x82f63b78);

function crc32With(t: Uint32Array, data: Uint8Array, previous: number): number {
  let crc = ~previous;
  let i = 0;
  const n = data.length;
  const end8 = n - (n % 8);
  while (i < end8) {
    const a = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) ^ crc;
    const b = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
    crc =
      t[0x700 + (a & 0xff)]! ^
      t[0x600 + ((a >>> 8) & 0xff)]! ^
      t[0x500 + ((a >>> 16) & 0xff)]! ^
      t[0x400 + (a >>> 24)]! ^
      t[0x300 + (b & 0xff)]! ^
      t[0x200 + ((b >>> 8) & 0xff)]! ^
      t[0x100 + ((b >>> 16) & 0xff)]! ^
      t[b >>> 24]!;
    i += 8;
  }
  while (i < n) crc = t[(crc ^ data[i++]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** CRC-32 (ISO-HDLC, zlib's). `crc32(b, crc32(a))` equals `crc32(a ++ b)`. */
export function crc32(data: Uint8Array, previous = 0): number {
  return crc32With(CRC32_TABLE, data, previous);
}

/** CRC-32C (Castagnoli). `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`. */
export function crc32c(data: Uint8Array, previous = 0): number {
  return crc32With(CRC32C_TABLE, data, previous);
}

// CRC-64/NVME (poly 0xAD93D23594C93659, reflected) kept as two 32-bit halves: BigInt arithmetic
// per byte would be two orders of magnitude slower.
const CRC64_HI = new Uint32Array(256);
const CRC64_LO = new Uint32Array(256);
{
  const polyHi = 0x9a6c9329;
  const polyLo = 0xac4bc9b5;
  for (let i = 0; i < 256; i++) {
    let hi = 0;
    let lo = i;
    for (let k = 0; k < 8; k++) {
      const lsb = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (lsb) {
        hi = (hi ^ polyHi) >>> 0;
        lo = (lo ^ polyLo) >>> 0;
      }
    }
    CRC64_HI[i] = hi;
    CRC64_LO[i] = lo;
  }
}

/** CRC-64/NVME. `crc64nvme(b, crc64nvme(a))` equals `crc64nvme(a ++ b)`. */
export function crc64nvme(data: Uint8Array, previous = 0n): bigint {
  let hi = ~Number((previous >> 32n) & 0xffffffffn) >>> 0;
  let lo = ~Number(previous & 0xffffffffn) >>> 0;
  for (let i = 0; i < data.length; i++) {
    const idx = (lo ^ data[i]!) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ CRC64_LO[idx]!) >>> 0;
    hi = ((hi >>> 8) ^ CRC64_HI[idx]!) >>> 0;
  }
  return (BigInt(~hi >>> 0) << 32n) | BigInt(~lo >>> 0);
}

export function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Base64 of the big-endian 4 bytes, as S3 transmits a CRC32/CRC32C. */
export function u32ToBase64(value: number): string {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, false);
  return bytesToBase64(b);
}

/** Base64 of the big-endian 8 bytes, as S3 transmits a CRC64NVME. */
export function u64ToBase64(value: bigint): string {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, value), false);
  return bytesToBase64(b);
}

// ---- Combining CRCs (zlib's crc32_combine method, generalised to any width) ----------------
// crc(A ++ B) = crc(A) · x^(8·|B|) mod P  xor  crc(B), in the reflected bit order the CRCs use.
// A multipart upload's full-object CRC is built from its parts' CRCs and sizes this way, so
// completing it reads no data.

interface Gf2 {
  /** The reflected polynomial. */
  poly: bigint;
  /** x^0 in reflected form: the top bit. */
  one: bigint;
  /** x^(2^k) mod P, k = 0..63. */
  x2n: bigint[];
}

function gf2(poly: bigint, width: number): Gf2 {
  const one = 1n << BigInt(width - 1);
  const g: Gf2 = { poly, one, x2n: [] };
  let p = one >> 1n; // x^1
  for (let k = 0; k < 64; k++) {
    g.x2n.push(p);
    p = multModP(g, p, p);
  }
  return g;
}

/** a·b mod P, reflected. */
function multModP(g: Gf2, a: bigint, b: bigint): bigint {
  let m = g.one;
  let p = 0n;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1n)) === 0n) break;
    }
    m >>= 1n;
    b = b & 1n ? (b >> 1n) ^ g.poly : b >> 1n;
  }
  return p;
}

/** x^(n·2^k) mod P. */
function x2nModP(g: Gf2, n: bigint, k: number): bigint {
  let p = g.one;
  while (n) {
    if (n & 1n) p = multModP(g, g.x2n[k & 63]!, p);
    n >>= 1n;
    k++;
  }
  return p;
}

const GF_CRC32 = gf2(0xedb88320n, 32);
const GF_CRC32C = gf2(0x82f63b78n, 32);
const GF_CRC64NVME = gf2(0x9a6c9329ac4bc9b5n, 64);

function combine(g: Gf2, crcA: bigint, crcB: bigint, lengthB: number): bigint {
  return multModP(g, x2nModP(g, BigInt(lengthB), 3), crcA) ^ crcB;
}

/** CRC-32 of A ++ B from CRC-32(A), CRC-32(B) and |B|. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return Number(combine(GF_CRC32, BigInt(crcA >>> 0), BigInt(crcB >>> 0), lengthB));
}

export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  return Number(combine(GF_CRC32C, BigInt(crcA >>> 0), BigInt(crcB >>> 0), lengthB));
}

export function crc64nvmeCombine(crcA: bigint, crcB: bigint, lengthB: number): bigint {
  return combine(GF_CRC64NVME, crcA, crcB, lengthB);
}

export function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
