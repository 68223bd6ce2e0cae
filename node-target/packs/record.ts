// A chunk's record in a pack file: a 64-byte header, then the chunk's bytes. Records of one
// batch lie back to back; every batch starts at a 4 KiB boundary (direct I/O), the gap after
// the last record zero-filled. The index (pack-index.ts) says where each live record is; the
// header makes a pack readable on its own (what it holds, when it was written) and lets a read
// check that the record at an index entry is the one the entry names.
//
//   0  u32 magic "EPK1"     4  u8 kind (1: chunk)   5..7 zero
//   8  u32 payload length  12  u32 zero             16  f64 written (ms since the epoch)
//  24  32 bytes CHID (SHA-256 of the payload)      56  u32 CRC-32 of bytes 0..56   60 zero

import { crc32 } from "node:zlib";
import { asChid, type Chid } from "../../common/ids.ts";

export const RECORD_HEADER = 64;
const MAGIC = 0x45504b31;
const KIND_CHUNK = 1;

export function writeRecordHeader(at: Buffer, chid: Chid, length: number, written: number): void {
  at.fill(0, 0, RECORD_HEADER);
  at.writeUInt32BE(MAGIC, 0);
  at.writeUInt8(KIND_CHUNK, 4);
  at.writeUInt32BE(length, 8);
  at.writeDoubleBE(written, 16);
  at.write(chid, 24, 32, "hex");
  at.writeUInt32BE(crc32(at.subarray(0, 56)), 56);
}

export interface RecordHeader {
  chid: Chid;
  length: number;
  written: number;
}

/** The header at `at`, or null if it is not one (torn, overwritten, not a record). */
export function readRecordHeader(at: Buffer): RecordHeader | null {
  if (at.length < RECORD_HEADER || at.readUInt32BE(0) !== MAGIC || at.readUInt8(4) !== KIND_CHUNK) return null;
  if (at.readUInt32BE(56) !== crc32(at.subarray(0, 56))) return null;
  return { chid: asChid(at.toString("hex", 24, 56)), length: at.readUInt32BE(8), written: at.readDoubleBE(16) };
}

/** Bytes a record takes in its pack, header included (not the padding after a batch). */
export function footprint(length: number): number {
  return RECORD_HEADER + length;
}
