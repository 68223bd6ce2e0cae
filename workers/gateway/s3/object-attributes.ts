// GetObjectAttributes: what HeadObject and ListParts would tell, in one call, for the attributes
// asked for (x-amz-object-attributes). Parts are listed by number and size for an object made by
// a multipart upload; the checksums of single parts are not kept, so a part carries none.

import type { XmlNode } from "../../../common/s3/xml.ts";
import type { AttributesParams } from "../params.ts";
import type { RequestContext } from "./context.ts";
import { existingVersion, versionHeader } from "./object-get.ts";
import { httpTime, xmlResponse } from "./xml.ts";

export async function getObjectAttributes(ctx: RequestContext, at: { bucket: string; key: string }, p: AttributesParams): Promise<Response> {
  const { info, vm, isNull } = await existingVersion(ctx, at.bucket, at.key, p.versionId);
  const want = p.attributes;
  const body: XmlNode = {};
  // S3 sends the ETag here without the quotes of the ETag header.
  if (want.has("ETag")) body.ETag = vm.etag;
  if (want.has("Checksum") && vm.checksum) body.Checksum = { [`Checksum${vm.checksum.algorithm}`]: vm.checksum.value, ChecksumType: vm.checksum.type };
  if (want.has("ObjectParts") && vm.parts) {
    const sizes = vm.parts;
    const from = Math.min(p.partNumberMarker, sizes.length);
    const page = sizes.slice(from, from + p.maxParts).map((size, i) => ({ PartNumber: from + i + 1, Size: size }));
    const truncated = from + page.length < sizes.length;
    body.ObjectParts = {
      PartsCount: sizes.length,
      PartNumberMarker: p.partNumberMarker,
      NextPartNumberMarker: truncated ? from + page.length : null,
      MaxParts: p.maxParts,
      IsTruncated: truncated,
      Part: page,
    };
  }
  if (want.has("StorageClass")) body.StorageClass = "STANDARD";
  if (want.has("ObjectSize")) body.ObjectSize = vm.size;
  return xmlResponse("GetObjectAttributesResponse", body, 200, { "last-modified": httpTime(vm.created), ...versionHeader(info, vm.uvid, isNull) });
}
