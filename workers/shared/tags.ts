// Tags on objects (per version) and buckets, as S3 limits them: at most 10 on an object and 50
// on a bucket, keys of 1 to 128 characters and values of up to 256, each key once, none under
// the reserved `aws:` prefix. Parsed and checked where a request brings them (the x-amz-tagging
// header, a Tagging document); stored by the name's group with the version and by the tenant's
// directory with the bucket, as JSON read back through `tagsOfJson`.

import { S3Error } from "../../common/s3/errors.ts";

export interface Tag {
  key: string;
  value: string;
}

export const OBJECT_TAGS_MAX = 10;
export const BUCKET_TAGS_MAX = 50;
const KEY_MAX = 128;
const VALUE_MAX = 256;

/** Characters, not UTF-16 units: S3 counts Unicode characters. */
const length = (s: string) => [...s].length;

/** A tag set for an object (`max` 10) or a bucket (50), checked as S3 checks it. */
export function checkedTags(tags: readonly Tag[], max: number): Tag[] {
  if (tags.length > max) throw new S3Error("BadRequest", max === OBJECT_TAGS_MAX ? `Object tags cannot be greater than ${max}` : `Bucket tags cannot be greater than ${max}`);
  const seen = new Set<string>();
  for (const { key, value } of tags) {
    if (length(key) < 1 || length(key) > KEY_MAX) throw new S3Error("InvalidTag", `The TagKey you have provided is invalid: a key is 1 to ${KEY_MAX} characters`, { TagKey: key });
    if (length(value) > VALUE_MAX) throw new S3Error("InvalidTag", `The TagValue you have provided is invalid: a value is at most ${VALUE_MAX} characters`, { TagKey: key });
    if (key.toLowerCase().startsWith("aws:")) throw new S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:", { TagKey: key });
    if (seen.has(key)) throw new S3Error("InvalidTag", "Cannot provide multiple Tags with the same key", { TagKey: key });
    seen.add(key);
  }
  return [...tags];
}

/** x-amz-tagging: a URL query string ("k1=v1&k2=v2"); absent or empty, no tags. */
export function tagsOfHeader(raw: string | null): Tag[] {
  if (raw === null || raw.trim() === "") return [];
  const tags: Tag[] = [];
  for (const part of raw.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const [k, v] = eq < 0 ? [part, ""] : [part.slice(0, eq), part.slice(eq + 1)];
    try {
      tags.push({ key: decodeURIComponent(k.replace(/\+/g, " ")), value: decodeURIComponent(v.replace(/\+/g, " ")) });
    } catch {
      throw new S3Error("InvalidArgument", "The x-amz-tagging header is not a valid URL-encoded query string", { ArgumentName: "x-amz-tagging" });
    }
  }
  return checkedTags(tags, OBJECT_TAGS_MAX);
}

/** Stored tags read back (our own JSON): anything not a tag list counts as none. */
export function tagsOfJson(text: unknown): Tag[] {
  if (typeof text !== "string") return [];
  try {
    const v: unknown = JSON.parse(text);
    if (!Array.isArray(v)) return [];
    return v.flatMap((t) => (Array.isArray(t) && typeof t[0] === "string" && typeof t[1] === "string" ? [{ key: t[0], value: t[1] }] : []));
  } catch {
    return [];
  }
}

/** As stored: a list of [key, value] pairs; null for none. */
export function tagsToJson(tags: readonly Tag[]): string | null {
  return tags.length === 0 ? null : JSON.stringify(tags.map((t) => [t.key, t.value]));
}

/** Whether `tags` holds every one of `want` (a lifecycle rule's tag filter). */
export function hasTags(tags: readonly Tag[], want: readonly Tag[]): boolean {
  return want.every((w) => tags.some((t) => t.key === w.key && t.value === w.value));
}
