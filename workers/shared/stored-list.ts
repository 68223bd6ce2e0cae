// A list a Durable Object keeps as JSON in one column (a bucket's CORS or lifecycle rules),
// written only from values checked where they entered: read back without checking again.

/** The stored list; null for none (no value, or anything that is not a list). */
export function listOfJson<T>(text: unknown): T[] | null {
  if (typeof text !== "string") return null;
  try {
    const v: unknown = JSON.parse(text);
    // Written by listToJson from values checked when they were put: the cast only names that.
    return Array.isArray(v) ? (v as T[]) : null;
  } catch {
    return null;
  }
}

/** As stored: JSON, or null for none (an empty list is none). */
export function listToJson<T>(list: readonly T[] | null): string | null {
  return list === null || list.length === 0 ? null : JSON.stringify(list);
}
