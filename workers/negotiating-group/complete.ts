// The rules a name's group applies to writes it is asked to make: conditional writes
// (If-None-Match: *, If-Match), and the completion of a multipart upload, whose parts are
// checked against what was uploaded and joined, by reference, into one version.

import { base64ToBytes, bytesToBase64, crc32, crc32c, crc32Combine, crc32cCombine, crc64nvme, crc64nvmeCombine, u32ToBase64, u64ToBase64 } from "../../common/checksums.ts";
import { toHex } from "../../common/ids.ts";
import type { Extent, ObjectChecksum, VersionBody } from "../../common/manifest.ts";
import { refusal, type Refusal } from "../shared/refusal.ts";
import type { PartRow, UploadInfo } from "./uploads.ts";
import type { NameRow } from "./versions.ts";

/** S3's minimum size of every part but the last. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;

/** If-None-Match: *, If-Match: etag, or (editing sessions) "this version is still current". */
export type WriteCondition = { ifNoneMatch: true } | { ifMatch: string } | { ifVersion: string };

/** Whether a conditional write may go ahead against the name's current version. */
export function conditionFails(c: WriteCondition | null, cur: NameRow | null): Refusal | null {
  if (c === null) return null;
  const live = cur !== null && !cur.deleteMarker ? cur : null;
  if ("ifNoneMatch" in c) {
    return live ? refusal("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", { Condition: "If-None-Match" }) : null;
  }
  if ("ifVersion" in c) {
    return live && live.uvid === c.ifVersion ? null : refusal("PreconditionFailed", "The version the edit was based on is no longer current", { Condition: "if-version" });
  }
  const want = c.ifMatch.replace(/^"|"$/g, "");
  if (!live) return refusal("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", { Condition: "If-Match" });
  return want === "*" || live.etag === want ? null : refusal("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", { Condition: "If-Match" });
}

export interface ListedPart {
  partNumber: number;
  etag: string;
  /** The part checksum the client lists, in the upload's algorithm, if it sends one. */
  checksum: string | null;
}

export function newUploadId(): string {
  const b = crypto.getRandomValues(new Uint8Array(24));
  return bytesToBase64(b).replace(/\+/g, "-").replace(/\//g, "_");
}

export function noSuchUpload(uploadId: string): Refusal {
  return refusal("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.", { UploadId: uploadId });
}

const invalidPart = (p: ListedPart) =>
  refusal("InvalidPart", "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.", {
    PartNumber: String(p.partNumber),
    ETag: p.etag,
  });

/** The object's checksum from its parts': composite (a checksum of checksums) or, for CRCs, full-object (combined). */
async function objectChecksum(spec: NonNullable<UploadInfo["checksum"]>, parts: PartRow[]): Promise<ObjectChecksum> {
  const n = parts.length;
  if (spec.type === "FULL_OBJECT") {
    if (spec.algorithm === "CRC64NVME") {
      let v = crc64nvme(new Uint8Array(0));
      for (const p of parts) v = crc64nvmeCombine(v, new DataView(base64ToBytes(p.checksum!).buffer).getBigUint64(0), p.size);
      return { algorithm: spec.algorithm, value: u64ToBase64(v), type: "FULL_OBJECT" };
    }
    const [init, join] = spec.algorithm === "CRC32" ? [crc32(new Uint8Array(0)), crc32Combine] : [crc32c(new Uint8Array(0)), crc32cCombine];
    let v = init;
    for (const p of parts) v = join(v, new DataView(base64ToBytes(p.checksum!).buffer).getUint32(0), p.size);
    return { algorithm: spec.algorithm, value: u32ToBase64(v), type: "FULL_OBJECT" };
  }
  const all = new Uint8Array(parts.reduce((s, p) => s + base64ToBytes(p.checksum!).length, 0));
  let at = 0;
  for (const p of parts) {
    const b = base64ToBytes(p.checksum!);
    all.set(b, at);
    at += b.length;
  }
  let value: string;
  switch (spec.algorithm) {
    case "SHA1":
    case "SHA256":
      value = bytesToBase64(new Uint8Array(await crypto.subtle.digest(spec.algorithm === "SHA1" ? "SHA-1" : "SHA-256", all)));
      break;
    case "CRC32":
      value = u32ToBase64(crc32(all));
      break;
    case "CRC32C":
      value = u32ToBase64(crc32c(all));
      break;
    case "CRC64NVME":
      value = u64ToBase64(crc64nvme(all));
      break;
  }
  return { algorithm: spec.algorithm, value: `${value}-${n}`, type: "COMPOSITE" };
}

/**
 * CompleteMultipartUpload's checks, in S3's order, and the version they yield: the parts as
 * listed (ascending, each uploaded with that ETag, all but the last at least 5 MiB), their chunk
 * lists end to end, the ETag "<md5 of the parts' MD5s>-N".
 */
export async function assemble(upload: UploadInfo, listed: ListedPart[], uploaded: Map<number, PartRow>): Promise<{ body: VersionBody } | Refusal> {
  if (listed.length === 0) return refusal("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema: you must specify at least one part");
  for (let i = 1; i < listed.length; i++) {
    if (listed[i]!.partNumber <= listed[i - 1]!.partNumber) {
      return refusal("InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number.");
    }
  }
  const parts: PartRow[] = [];
  for (const l of listed) {
    const p = uploaded.get(l.partNumber);
    if (!p || p.etag !== l.etag.replace(/^"|"$/g, "")) return invalidPart(l);
    if (upload.checksum) {
      if (p.checksum === null) return refusal("InvalidRequest", `The upload was created using a ${upload.checksum.algorithm} checksum. Part ${l.partNumber} was uploaded without one.`);
      if (l.checksum !== null && l.checksum !== p.checksum) return invalidPart(l);
    }
    parts.push(p);
  }
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i]!;
    if (p.size < MIN_PART_SIZE) {
      return refusal("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.", {
        ProposedSize: String(p.size),
        MinSizeAllowed: String(MIN_PART_SIZE),
        PartNumber: String(p.partNumber),
        ETag: p.etag,
      });
    }
  }
  const chunks: Extent[] = [];
  const md5s = new Uint8Array(16 * parts.length);
  let offset = 0;
  parts.forEach((p, i) => {
    for (const c of p.chunks) chunks.push({ ...c, offset: offset + c.offset });
    offset += p.size;
    for (let k = 0; k < 16; k++) md5s[i * 16 + k] = parseInt(p.etag.slice(k * 2, k * 2 + 2), 16);
  });
  const etag = `${toHex(new Uint8Array(await crypto.subtle.digest("MD5", md5s)))}-${parts.length}`;
  const body: VersionBody = {
    tenant: upload.tenant,
    bucket: upload.bucket,
    key: upload.key,
    size: offset,
    etag,
    contentType: upload.contentType,
    userMeta: upload.userMeta,
    httpMeta: upload.httpMeta,
    chunks,
    inline: null,
    deleteMarker: false,
    creator: upload.creator,
    parts: parts.map((p) => p.size),
    ...(upload.checksum ? { checksum: await objectChecksum(upload.checksum, parts) } : {}),
  };
  return { body };
}
