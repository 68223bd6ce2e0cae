// What S3's PutObject takes from a request, for the gateway and for the proxy's session PUTs
// alike: the standard headers an object keeps, and how large one PUT may be.

/** Standard headers S3 keeps with an object and returns on GET/HEAD. */
export const STORED_HEADERS = ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/** Largest single PUT (and part) S3 accepts. */
export const PUT_MAX = 5 * 1024 ** 3;

/** A Content-Encoding without aws-chunked, which is transfer framing, not a property of the object; "" if nothing else is left. */
export function storedContentEncoding(value: string): string {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s && s !== "aws-chunked")
    .join(", ");
}
