// An editing session's commands (session-protocol.ts) as the gateway takes them from a client,
// over a WebSocket or an HTTP session: decoded once, where they arrive, into the typed command or
// the error the client is told. Shapes are checked here (strings, whole numbers, the closed
// lists of modes and encodings, a digest's hex); what depends on the session (does the txn
// exist, does the write fit the mode, is the chunk small enough) is the session's to check.

import { CHUNK_ENCODINGS } from "./chunk-encoding.ts";
import type { ChunkEncoding } from "./manifest.ts";
import type { ClientCommand, EditMode } from "./session-protocol.ts";

/** Why a command cannot be run: not JSON at all, or a field of the wrong shape. */
export interface CommandError {
  code: "MalformedJSON" | "InvalidArgument";
  message: string;
  /** The command's op and txn (or fork) where they could be read, so the answer names them. */
  op: string | null;
  txn: string | null;
}

type Fields = Record<string, unknown>;

const MODES: readonly EditMode[] = ["replace", "append", "random"];
/** More than any name, version id or metadata value S3 allows: a longer string is not one. */
const STRING_MAX = 4096;

const isObject = (v: unknown): v is Fields => typeof v === "object" && v !== null && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === "string" && v.length <= STRING_MAX;
const isName = (v: unknown): v is string => isText(v) && v !== "";
const isWhole = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const optional = (v: unknown, is: (x: unknown) => boolean): boolean => v === undefined || is(v);
const listOf = (v: unknown, is: (x: unknown) => boolean): boolean => Array.isArray(v) && v.every(is);

/** The first field of `m` that does not have its command's shape, or null. */
function wrongField(m: Fields): string | null {
  switch (m.op) {
    case "new":
      if (!isText(m.txn)) return "txn";
      if (!isText(m.bucket)) return "bucket";
      if (!isText(m.key)) return "key";
      if (!optional(m.base, (b) => b === null || isText(b))) return "base";
      if (!MODES.includes(m.mode as EditMode)) return "mode (replace, append or random)";
      if (!optional(m.ifAbsent, (b) => typeof b === "boolean")) return "ifAbsent";
      if (!optional(m.ifVersion, isText)) return "ifVersion";
      if (!optional(m.replicas, isWhole)) return "replicas";
      return optional(m.fork, isName) ? null : "fork";
    case "fork":
      if (!isName(m.fork)) return "fork";
      if (!isText(m.bucket)) return "bucket";
      if (!listOf(m.keys, isText)) return "keys";
      return optional(m.mode, (x) => MODES.includes(x as EditMode)) ? null : "mode (replace, append or random)";
    case "merge":
    case "abandon":
      return isName(m.fork) ? null : "fork";
    case "write":
      if (!isText(m.txn)) return "txn";
      if (!isWhole(m.offset) || !isWhole(m.length)) return "offset and length (whole numbers)";
      if (m.enc === undefined) return optional(m.stored, isWhole) ? null : "stored (a whole number)";
      if (!CHUNK_ENCODINGS.includes(m.enc as ChunkEncoding)) return `enc (${CHUNK_ENCODINGS.join(" or ")})`;
      return isWhole(m.stored) ? null : "stored (a whole number)";
    case "probe":
      if (!isText(m.txn)) return "txn";
      if (!isWhole(m.offset) || !isWhole(m.length)) return "offset and length (whole numbers)";
      return typeof m.sha256 === "string" && /^[0-9a-f]{64}$/.test(m.sha256) ? null : "sha256 (64 hex digits)";
    case "truncate":
      if (!isText(m.txn)) return "txn";
      return isWhole(m.size) ? null : "size (a whole number)";
    case "meta":
      if (!isText(m.txn)) return "txn";
      if (!optional(m.set, (s) => isObject(s) && Object.values(s).every(isText))) return "set (names to string values)";
      return optional(m.delete, (d) => listOf(d, isText)) ? null : "delete (a list of names)";
    case "commit":
    case "abort":
      return isName(m.txn) ? null : "txn";
    default:
      return "op";
  }
}

export function decodeClientCommand(text: string): ClientCommand | CommandError {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return { code: "MalformedJSON", message: "a command is one JSON object", op: null, txn: null };
  }
  if (!isObject(m)) return { code: "MalformedJSON", message: "a command is one JSON object", op: null, txn: null };
  const wrong = wrongField(m);
  // Checked field by field by wrongField: the cast only names what the checks established.
  if (wrong === null) return m as ClientCommand;
  const op = isText(m.op) ? m.op : null;
  const txn = isText(m.txn) ? m.txn : isName(m.fork) ? m.fork : null;
  return { code: "InvalidArgument", message: `${op === null ? "a command" : `${op}`}: bad ${wrong}`, op, txn };
}

export function isCommandError(v: ClientCommand | CommandError): v is CommandError {
  return "code" in v;
}
