// What an access key may do: a key without a scope may do anything its tenant may; a scoped key
// is limited to some buckets (each whole, or under a key prefix) and to reading, writing, or
// both. "Read" is what returns a tenant's data or names (GET, HEAD, listings, tags, attributes,
// copy sources); "write" is what changes them (PUT, copy destinations, multipart uploads, deletes,
// tag changes). Bucket settings (create, delete, policy, CORS, lifecycle, versioning, tags, ACLs)
// and the tenant-wide extensions (snapshots, editing sessions) need a key without a scope:
// they reach past any one prefix. Checked once per request in the gateway (gateway/scope.ts).

export type ScopeAccess = "read-write" | "read-only" | "write-only";

export interface ScopeGrant {
  bucket: string;
  /** Keys under this prefix only; "" for the whole bucket. */
  prefix: string;
}

export interface KeyScope {
  access: ScopeAccess;
  /** At least one. */
  grants: ScopeGrant[];
}

export type Wanted = "read" | "write";

const ACCESS: readonly ScopeAccess[] = ["read-write", "read-only", "write-only"];
const GRANTS_MAX = 100;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function permits(access: ScopeAccess, want: Wanted): boolean {
  return access === "read-write" || (want === "read" ? access === "read-only" : access === "write-only");
}

/**
 * Whether a key of this scope (null: none) may read or write the object `key` of `bucket`; for a
 * listing, `key` is its prefix: every name it can show must be within a grant.
 */
export function scopeAllows(scope: KeyScope | null, want: Wanted, bucket: string, key: string): boolean {
  if (scope === null) return true;
  return permits(scope.access, want) && scope.grants.some((g) => g.bucket === bucket && key.startsWith(g.prefix));
}

/** Whether the scope reaches into `bucket` at all (HeadBucket, GetBucketLocation, listing the bucket among one's own). */
export function scopeTouches(scope: KeyScope | null, bucket: string): boolean {
  return scope === null || scope.grants.some((g) => g.bucket === bucket);
}

/** A scope as the admin API takes it (JSON), or why not. */
export function parseScope(raw: unknown): KeyScope | { error: string } {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { error: 'a scope is {"access": ..., "buckets": ["bucket" or "bucket/prefix", ...]}' };
  const { access = "read-write", buckets } = raw as { access?: unknown; buckets?: unknown };
  if (typeof access !== "string" || !ACCESS.includes(access as ScopeAccess)) return { error: `access is one of ${ACCESS.join(", ")}` };
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.length > GRANTS_MAX) return { error: `buckets lists 1 to ${GRANTS_MAX} "bucket" or "bucket/prefix" entries` };
  const grants: ScopeGrant[] = [];
  for (const b of buckets) {
    if (typeof b !== "string") return { error: 'each entry of buckets is a string, "bucket" or "bucket/prefix"' };
    const slash = b.indexOf("/");
    const bucket = slash < 0 ? b : b.slice(0, slash);
    const prefix = slash < 0 ? "" : b.slice(slash + 1);
    if (!BUCKET_NAME.test(bucket)) return { error: `"${bucket}" is not a bucket name` };
    if (new TextEncoder().encode(prefix).length > 1024) return { error: "a prefix is at most 1024 bytes" };
    grants.push({ bucket, prefix });
  }
  return { access: access as ScopeAccess, grants };
}

/** The scope as the admin API shows it (the form parseScope takes). */
export function scopeView(scope: KeyScope): { access: ScopeAccess; buckets: string[] } {
  return { access: scope.access, buckets: scope.grants.map((g) => (g.prefix === "" ? g.bucket : `${g.bucket}/${g.prefix}`)) };
}

/** A stored scope read back (our own JSON, written from a parsed scope); null: none. */
export function scopeOfJson(text: unknown): KeyScope | null {
  if (typeof text !== "string") return null;
  const parsed = parseScope(JSON.parse(text));
  // Stored only after parseScope accepted it; should one ever fail, nothing is allowed rather than everything.
  return "error" in parsed ? { access: "read-only", grants: [] } : parsed;
}

export function scopeToJson(scope: KeyScope | null): string | null {
  return scope === null ? null : JSON.stringify(scopeView(scope));
}
