// The chunk-aware editing session (seed 003), as it crosses the WebSocket between a client and
// the gateway: JSON text frames for commands and answers, binary frames for payload. Declared
// once; the gateway (workers/gateway/session/) and the client (client/session.ts) both use it.
//
// A session holds pending versions, each named by the client's `txn`. A pending version starts
// from a base (the current version, a version id, or nothing), is invisible to everyone else,
// and becomes a version atomically at `commit`. Closing the socket aborts every pending version.

export const SESSION_PATH = "/_session";

/** Payload frames are at most this long; a write's payload follows it in order, in as many frames as needed. */
export const SESSION_FRAME_MAX = 1024 * 1024;

/**
 * replace: the pending version starts empty (the base's metadata is kept); append: writes go
 * at the end only; random: writes anywhere, over kept content.
 */
export type EditMode = "replace" | "append" | "random";

export type ClientCommand =
  | {
      op: "new";
      txn: string;
      bucket: string;
      key: string;
      /** "current" (default), a version id, or null for none (an empty object). */
      base?: string | null;
      mode: EditMode;
      /** Commit only if the key has no current object then. */
      ifAbsent?: boolean;
      /** Commit only if this is still the key's current version then. */
      ifVersion?: string;
      /** Copies of what this version stores anew (1..GROUP_MEMBERS); absent: the cluster's R. */
      replicas?: number;
      /** Add this pending version to an open fork: it then commits only with the fork's merge. */
      fork?: string;
    }
  /**
   * Fork a set of objects: a pending version of each key (base: its current version, or none),
   * named `${fork}/${key}` as a txn, edited like any other. `merge` commits them all at once —
   * one shared stamp, so a read as of any time and any snapshot holds all of them or none — if
   * none of the keys changed since the fork; `abandon` drops them all.
   */
  | { op: "fork"; fork: string; bucket: string; keys: string[]; mode?: EditMode }
  | { op: "merge"; fork: string }
  | { op: "abandon"; fork: string }
  /**
   * Payload for [offset, offset+length) follows in binary frames. Pre-compressed: `enc` names
   * the format and `stored` the compressed length (what the frames carry); the payload is then
   * one chunk, stored as sent (at most CHUNK_MAX logical bytes).
   */
  | { op: "write"; txn: string; offset: number; length: number; enc?: "gzip" | "deflate-raw"; stored?: number }
  /**
   * Before sending a payload: its SHA-256 (hex). If this tenant already stores exactly that
   * content, it is written by reference and nothing is sent ("stored"); otherwise "send".
   */
  | { op: "probe"; txn: string; offset: number; length: number; sha256: string }
  | { op: "truncate"; txn: string; size: number }
  /** Set or delete content-type, x-amz-meta-* and the stored standard headers (cache-control, ...). */
  | { op: "meta"; txn: string; set?: Record<string, string>; delete?: string[] }
  | { op: "commit"; txn: string }
  | { op: "abort"; txn: string };

export type ServerAnswer =
  /** First, on open: how the gateway chunks (a client that chunks alike can probe its chunks). */
  | { op: "hello"; chunking: { min: number; avg: number; max: number }; frameMax: number }
  | { op: "ready"; txn: string; size: number; baseVersionId: string | null }
  | { op: "written"; txn: string; size: number }
  | { op: "probed"; txn: string; stored: boolean; size: number }
  | { op: "truncated"; txn: string; size: number }
  | { op: "meta-set"; txn: string }
  | {
      op: "committed";
      txn: string;
      versionId: string | null;
      etag: string;
      size: number;
      /** Names this version exactly (metadata included) without exposing any chunk id. */
      manifestToken: string;
      /** The same for the payload alone: unchanged by metadata edits. */
      payloadToken: string;
    }
  | { op: "aborted"; txn: string }
  | { op: "forked"; fork: string; versions: { key: string; txn: string; size: number; baseVersionId: string | null }[] }
  | {
      op: "merged";
      fork: string;
      versions: { key: string; txn: string; versionId: string | null; etag: string; size: number; manifestToken: string; payloadToken: string }[];
    }
  | { op: "abandoned"; fork: string }
  /** A command failed: S3's error code. The pending version is unchanged (or gone, if the code says so). */
  | { op: "error"; txn: string | null; code: string; message: string };
