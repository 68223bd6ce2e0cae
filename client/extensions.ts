// A small client for what the gateway offers beyond S3 (docs/snapshots.md): snapshots and
// namespace queries. It signs with SigV4 like any S3 request, using the same credentials; any
// runtime with fetch and Web Crypto (Node 18+, browsers, Workers) can use it.

import { signRequest } from "../common/s3/sign-request.ts";
import { sha256Hex } from "../common/s3/sigv4.ts";

export interface Credentials {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface Qualifier {
  name: string;
  value: string;
}

export interface Snapshot {
  id: string;
  state: "pending" | "committed";
  at: string;
  masks: string[];
  qualifiers: Qualifier[];
  created: string;
  committed: string | null;
  token: string | null;
  objects: number | null;
  bytes: number | null;
}

export interface QueriedVersion {
  bucket: string;
  key: string;
  versionId: string;
  size: number;
  etag: string;
  lastModified: string;
  contentType: string;
  creator: string;
}

export interface QueryFilter {
  bucket?: string;
  prefix?: string;
  /** A glob over the whole key: `*` any characters including `/`, `?` one. */
  name?: string;
  createdAfter?: string | number;
  createdBefore?: string | number;
  creator?: string;
  minSize?: number;
  maxSize?: number;
  contentType?: string;
  /** x-amz-meta-* values, by name without the prefix. */
  meta?: Record<string, string>;
  /** Tags the version has now, by key. */
  tags?: Record<string, string>;
  /** "all" (default): every version; "current": each key's current version. */
  versions?: "all" | "current";
  asOf?: string | number;
  maxKeys?: number;
  continuationToken?: string;
}

export interface Validation {
  /** Whether the token given names what is stored now (null: no token given). */
  token: "matches" | "differs" | null;
  tokenKind?: "manifest" | "payload" | "snapshot";
  /** intact: every item has R good copies; repaired: bad or missing copies were found and restored; damaged: some item is below R; lost: some item has no good copy. */
  state: "intact" | "repaired" | "damaged" | "lost";
  items: number;
  copies: { good: number; bad: number };
  repaired: number;
  lost: number;
}

/** An error the gateway answered, with S3's code (e.g. PointInTimeIncomplete, NoSuchSnapshot). */
export class ExtensionError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(`${code} (${status}): ${message}`);
    this.status = status;
    this.code = code;
  }
}

export class EdgestoreExtensions {
  private readonly creds: Credentials;

  constructor(creds: Credentials) {
    this.creds = creds;
  }

  /** A signed request; an error answer is thrown as an ExtensionError with S3's code. */
  private async raw(method: string, path: string, query: Record<string, string> = {}, body?: unknown): Promise<Response> {
    const url = new URL(path, this.creds.endpoint);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const payload = body === undefined ? "" : JSON.stringify(body);
    const headers: Record<string, string> = body === undefined ? {} : { "content-type": "application/json" };
    const auth = await signRequest({ method, url, headers, payloadHash: await sha256Hex(payload), accessKey: this.creds.accessKeyId, secretKey: this.creds.secretAccessKey, region: this.creds.region });
    const res = await fetch(url, { method, headers: { ...headers, ...auth }, ...(body === undefined ? {} : { body: payload }) });
    if (!res.ok) {
      const text = await res.text();
      const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? "Unknown";
      const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? text;
      throw new ExtensionError(res.status, code, message);
    }
    return res;
  }

  private async call<T>(method: string, path: string, body?: unknown, query: Record<string, string> = {}): Promise<T> {
    const res = await this.raw(method, path, query, body);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** A pending snapshot of the versions current at `at` (default now) matching the masks ("bucket/pattern") and qualifiers. */
  createSnapshot(def: { at?: string | number; masks?: string[]; qualifiers?: Qualifier[] } = {}): Promise<Snapshot> {
    return this.call("POST", "/_snapshots", def);
  }

  editSnapshot(id: string, edit: { at?: string | number; addMasks?: string[]; dropMasks?: string[]; addQualifiers?: Qualifier[]; dropQualifiers?: Qualifier[] }): Promise<Snapshot> {
    return this.call("PATCH", `/_snapshots/${encodeURIComponent(id)}`, edit);
  }

  /** Develops and stores the snapshot; waits up to `waitMs` for completeness through its time, else PointInTimeIncomplete. */
  commitSnapshot(id: string, waitMs?: number): Promise<Snapshot> {
    return this.call("POST", `/_snapshots/${encodeURIComponent(id)}/commit`, undefined, waitMs === undefined ? {} : { wait: String(waitMs) });
  }

  abortSnapshot(id: string): Promise<void> {
    return this.call("POST", `/_snapshots/${encodeURIComponent(id)}/abort`);
  }

  deleteSnapshot(id: string): Promise<void> {
    return this.call("DELETE", `/_snapshots/${encodeURIComponent(id)}`);
  }

  getSnapshot(id: string): Promise<Snapshot> {
    return this.call("GET", `/_snapshots/${encodeURIComponent(id)}`);
  }

  async listSnapshots(): Promise<Snapshot[]> {
    return (await this.call<{ snapshots: Snapshot[] }>("GET", "/_snapshots")).snapshots;
  }

  /** New versions in `toBucket` naming the same chunks as the snapshot's (optionally one bucket's, under one prefix, renamed to `toPrefix`). */
  restoreSnapshot(id: string, opts: { bucket?: string; prefix?: string; toBucket?: string; toPrefix?: string }): Promise<{ restored: number; bytes: number }> {
    return this.call("POST", `/_snapshots/${encodeURIComponent(id)}/restore`, opts);
  }

  /**
   * Ask the cluster whether a version (or a whole snapshot) is still what `token` names, and
   * intact: the targets re-hash their copies in place and repair from good ones; only the
   * verdict comes back.
   */
  validate(subject: { bucket: string; key: string; versionId?: string } | { snapshot: string }, token?: string): Promise<Validation> {
    return this.call("POST", "/_validate", { ...subject, ...(token === undefined ? {} : { token }) });
  }

  /** Change a version's replication count (null: back to the cluster's default); its tokens do not change. */
  setReplicas(subject: { bucket: string; key: string; versionId?: string }, replicas: number | null): Promise<{ replicas: number; state: string; items: number; copies: { good: number; bad: number }; added: number }> {
    return this.call("POST", "/_replicas", { ...subject, replicas });
  }

  /** A version's chunk layout: offsets, logical and stored lengths, encodings (never chunk ids). */
  chunkLayout(bucket: string, key: string, versionId?: string): Promise<{ size: number; chunks: { index: number; offset: number; length: number; encoding: "gzip" | "deflate-raw" | null; storedLength: number; skip?: number; whole?: number }[] }> {
    return this.call("GET", `/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`, undefined, { chunks: "", ...(versionId ? { versionId } : {}) });
  }

  /**
   * One chunk's bytes as stored: compressed (encoding says how) or as they are ("identity").
   * For a slice, the whole chunk: the version's bytes are [skip, skip+length) of its logical form.
   */
  async storedChunk(bucket: string, key: string, index: number): Promise<{ encoding: string; offset: number; length: number; skip?: number; whole?: number; bytes: Uint8Array }> {
    const res = await this.raw("GET", `/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`, { chunk: String(index) });
    return {
      encoding: res.headers.get("x-edgestore-chunk-encoding") ?? "identity",
      offset: Number(res.headers.get("x-edgestore-chunk-offset")),
      length: Number(res.headers.get("x-edgestore-chunk-length")),
      ...(res.headers.has("x-edgestore-chunk-whole") ? { skip: Number(res.headers.get("x-edgestore-chunk-skip")), whole: Number(res.headers.get("x-edgestore-chunk-whole")) } : {}),
      bytes: new Uint8Array(await res.arrayBuffer()),
    };
  }

  query(f: QueryFilter): Promise<{ versions: QueriedVersion[]; isTruncated: boolean; nextContinuationToken: string | null }> {
    const q: Record<string, string> = {};
    const set = (k: string, v: string | number | undefined) => v !== undefined && (q[k] = String(v));
    set("bucket", f.bucket);
    set("prefix", f.prefix);
    set("name", f.name);
    set("created-after", f.createdAfter);
    set("created-before", f.createdBefore);
    set("creator", f.creator);
    set("min-size", f.minSize);
    set("max-size", f.maxSize);
    set("content-type", f.contentType);
    for (const [k, v] of Object.entries(f.meta ?? {})) q[`meta-${k}`] = v;
    for (const [k, v] of Object.entries(f.tags ?? {})) q[`tag-${k}`] = v;
    set("versions", f.versions);
    set("as-of", f.asOf);
    set("max-keys", f.maxKeys);
    set("continuation-token", f.continuationToken);
    return this.call("GET", "/_query", undefined, q);
  }

  /** Every page of a query. */
  async queryAll(f: QueryFilter): Promise<QueriedVersion[]> {
    const out: QueriedVersion[] = [];
    let token: string | undefined;
    for (;;) {
      const r = await this.query({ ...f, continuationToken: token });
      out.push(...r.versions);
      if (!r.isTruncated || !r.nextContinuationToken) return out;
      token = r.nextContinuationToken;
    }
  }
}
