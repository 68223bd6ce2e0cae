// A group's refusal (shared/refusal.ts) as the S3 error of the same code: the group answers with
// a value because an Error crossing a Durable Object call keeps only its message.

import { S3Error } from "../../../common/s3/errors.ts";
import type { Refusal } from "../../shared/refusal.ts";

export function refused(r: Refusal): never {
  throw new S3Error(r.refused, r.message, r.details ?? {});
}
