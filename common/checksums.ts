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
