// Parsing what selects versions: masks ("bucket/key-pattern", tenant-scoped) and metadata
// qualifiers. Patterns are globs: `*` any run of characters including `/`, `?` one character,
// `[...]` a class (manifest-shard/glob.ts, SQLite GLOB's semantics, case-sensitive).

import { compileGlob, GlobError } from "../../manifest-shard/glob.ts";
import { TAG_QUALIFIER, type Mask, type Qualifier } from "../../manifest-shard/select.ts";
import { bad } from "./json.ts";

const BUCKET_PATTERN = /^[a-z0-9.\-*?[\]^!]+$/;
const KEY_PATTERN_MAX = 1024;

/** "photos/2025/*.jpg": bucket "photos", key pattern "2025/*.jpg"; "photos" alone: every key. */
export function parseMask(raw: unknown, field = "masks"): Mask {
  if (typeof raw !== "string" || raw === "") throw bad(field, "a mask is a non-empty string \"bucket/key-pattern\"");
  const slash = raw.indexOf("/");
  const bucket = slash < 0 ? raw : raw.slice(0, slash);
  const key = slash < 0 ? "*" : raw.slice(slash + 1);
  if (!BUCKET_PATTERN.test(bucket)) throw bad(field, `"${bucket}" is not a bucket name or pattern`);
  if (new TextEncoder().encode(key).length > KEY_PATTERN_MAX) throw bad(field, `a key pattern is at most ${KEY_PATTERN_MAX} bytes`);
  const mask = { bucket, key: key === "" ? "*" : key };
  for (const pattern of [mask.bucket, mask.key]) {
    try {
      compileGlob(pattern);
    } catch (e) {
      if (e instanceof GlobError) throw bad(field, `"${raw}": ${e.message}`);
      throw e;
    }
  }
  return mask;
}

export function maskText(m: Mask): string {
  return `${m.bucket}/${m.key}`;
}

/**
 * {"name": "content-type" | "x-amz-meta-<name>" | "tag:<key>", "value": "..."}: header names are
 * case-insensitive, as HTTP's are; a tag's key is kept as given, as S3 compares tag keys.
 */
export function parseQualifier(raw: unknown, field = "qualifiers"): Qualifier {
  if (typeof raw !== "object" || raw === null) throw bad(field, 'a qualifier is {"name": ..., "value": ...}');
  const { name, value } = raw as { name?: unknown; value?: unknown };
  if (typeof name !== "string" || typeof value !== "string") throw bad(field, "a qualifier's name and value are strings");
  if (name.toLowerCase().startsWith(TAG_QUALIFIER)) {
    const key = name.slice(TAG_QUALIFIER.length);
    if (key.length === 0) throw bad(field, `"${name}": a tag qualifier names the tag's key after "tag:"`);
    return { name: TAG_QUALIFIER + key, value };
  }
  const n = name.toLowerCase();
  if (n !== "content-type" && !(n.startsWith("x-amz-meta-") && n.length > "x-amz-meta-".length)) {
    throw bad(field, `"${name}": a qualifier names content-type, an x-amz-meta-* header or a tag ("tag:<key>")`);
  }
  return { name: n, value };
}
