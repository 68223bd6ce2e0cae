// `edgestore`: the chunk-aware client from a shell (docs/chunk-aware-api.md). `put` re-uploads
// a changed file sending only the chunks the stored version lacks; `append` and `write` edit a
// stored object in place; `validate` asks the cluster whether a version is intact; `get`
// downloads. Results go to stdout (text, or one JSON object with --json), progress and errors
// to stderr, so a script can read the one and show the other.
//
//   node client/cli.ts put ./book.pdf s3://docs/book.pdf
//
// Exit status: 0 done; 1 the cluster (or the file system) refused, with S3's error code;
// 2 usage; 3 validate ran but the version is not intact, or the token differs.

import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError, type FlagsOf } from "../common/cli-usage.ts";
import { EMPTY_SHA256 } from "../common/s3/sigv4.ts";
import { signRequest } from "../common/s3/sign-request.ts";
import { EdgestoreExtensions, ExtensionError, type Credentials } from "./extensions.ts";
import { formatBytes, ProgressBar } from "./progress.ts";
import { EditingSession, SessionError, type PendingEdit } from "./session.ts";

const USAGE = `usage: edgestore <command> [options]

commands:
  put <file|-> s3://bucket/key       upload, sending only the chunks the current version lacks
        [--content-type T] [--if-absent] [--if-version V] [--replicas N] [--fresh] [--window N]
  append <file|-> s3://bucket/key    append the file's bytes at the end of the current version
  write <file|-> s3://bucket/key --offset N
                                     write the file's bytes at offset N (past the end: zero-filled)
  validate s3://bucket/key [--version V] [--token T]
  validate --snapshot ID [--token T] ask the cluster whether it still stores it intact
  get s3://bucket/key <file|-> [--version V]

connection (flags, else environment):
  --endpoint URL           EDGESTORE_ENDPOINT (default http://127.0.0.1:8787)
  --access-key-id ID       AWS_ACCESS_KEY_ID
  --secret-access-key KEY  AWS_SECRET_ACCESS_KEY
  --region R               AWS_REGION (default us-east-1)

output:
  --json       one JSON object on stdout instead of text
  --progress   draw the progress bar even when stderr is not a terminal
  --quiet      never draw it

exit status: 0 done, 1 refused (S3 error code on stderr), 2 usage, 3 validate: not intact or token differs
`;

const OPTIONS = {
  endpoint: { type: "string" },
  "access-key-id": { type: "string" },
  "secret-access-key": { type: "string" },
  region: { type: "string" },
  json: { type: "boolean" },
  progress: { type: "boolean" },
  quiet: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  "content-type": { type: "string" },
  "if-absent": { type: "boolean" },
  "if-version": { type: "string" },
  replicas: { type: "string" },
  fresh: { type: "boolean" },
  window: { type: "string" },
  offset: { type: "string" },
  version: { type: "string" },
  token: { type: "string" },
  snapshot: { type: "string" },
} satisfies ParseArgsConfig["options"];

type Flags = FlagsOf<typeof OPTIONS>;

/** A failure with S3's code (or the system's, for a file), for the one line on stderr. */
class CliError extends Error {
  readonly code: string;
  readonly detail: string;

  constructor(code: string, detail: string) {
    super(`${code}: ${detail}`);
    this.code = code;
    this.detail = detail;
  }
}

/** Exit status 3: the command ran, and its answer is bad news. */
class VerdictFailure extends Error {}

function credentials(f: Flags): Credentials {
  const accessKeyId = f["access-key-id"] ?? process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = f["secret-access-key"] ?? process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) throw new UsageError("credentials: --access-key-id and --secret-access-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  return {
    endpoint: f.endpoint ?? process.env.EDGESTORE_ENDPOINT ?? "http://127.0.0.1:8787",
    region: f.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
    accessKeyId,
    secretAccessKey,
  };
}

function s3Url(arg: string | undefined): { bucket: string; key: string } {
  const m = arg === undefined ? null : /^s3:\/\/([^/]+)\/(.+)$/.exec(arg);
  if (!m) throw new UsageError(`expected s3://bucket/key, got ${arg ?? "nothing"}`);
  return { bucket: m[1]!, key: m[2]! };
}

function wholeNumber(name: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} is a whole number${min > 0 ? ` from ${min}` : ""}, not ${v}`);
  return n;
}

function objectUrl(creds: Credentials, bucket: string, key: string, versionId?: string): URL {
  const url = new URL(`/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`, creds.endpoint);
  if (versionId !== undefined) url.searchParams.set("versionId", versionId);
  return url;
}

/** A file (or stdin) as a byte source, and its size when it has one. */
function source(path: string): { bytes: AsyncIterable<Uint8Array>; size: number | null } {
  if (path === "-") return { bytes: process.stdin, size: null };
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new CliError("InvalidArgument", `${path} is not a file`);
    return { bytes: createReadStream(path, { highWaterMark: 1024 * 1024 }), size: st.size };
  } catch (e) {
    if (e instanceof CliError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new CliError(err.code ?? "FileError", err.message);
  }
}

function bar(f: Flags, label: string, total: number | null): ProgressBar {
  return new ProgressBar({ label, total, show: f.quiet ? "never" : f.progress ? "always" : "auto" });
}

interface Output {
  text: string[];
  json: Record<string, unknown>;
}

function percent(part: number, whole: number): string {
  return whole === 0 ? "0%" : `${((part / whole) * 100).toFixed(part / whole < 0.1 ? 2 : 1)}%`;
}

function committedText(url: string, c: { versionId: string | null; etag: string; size: number; manifestToken: string; payloadToken: string }, sentLine: string): string[] {
  return [
    `${url} committed`,
    `  version   ${c.versionId ?? "(unversioned)"}`,
    `  etag      ${c.etag}`,
    `  size      ${formatBytes(c.size)} (${c.size} bytes)`,
    `  sent      ${sentLine}`,
    `  manifest  ${c.manifestToken}`,
    `  payload   ${c.payloadToken}`,
  ];
}

/** Open a session, run `edit` on a pending version, commit; the session is closed either way (aborting anything left). */
async function inSession<T>(creds: Credentials, o: Parameters<EditingSession["begin"]>[0], edit: (e: PendingEdit) => Promise<T>): Promise<{ result: T; committed: Awaited<ReturnType<PendingEdit["commit"]>>; baseVersionId: string | null }> {
  const s = await EditingSession.open(creds);
  try {
    const e = await s.begin(o);
    const result = await edit(e);
    const committed = await e.commit();
    return { result, committed, baseVersionId: e.baseVersionId };
  } finally {
    await s.close();
  }
}

async function put(f: Flags, args: string[]): Promise<Output> {
  const [file, target] = args;
  if (file === undefined || args.length !== 2) throw new UsageError("put <file|-> s3://bucket/key");
  const { bucket, key } = s3Url(target);
  const creds = credentials(f);
  const replicas = wholeNumber("replicas", f.replicas, 1);
  const window = wholeNumber("window", f.window, 1);
  const src = source(file);
  const progress = bar(f, `put ${key}`, src.size);
  const { result: r, committed: c, baseVersionId } = await inSession(
    creds,
    {
      bucket,
      key,
      mode: "replace",
      // The current version is the base even though its content is dropped: its chunks are what
      // the probes find, so only the chunks it lacks are sent.
      base: f.fresh ? null : "current",
      ...(f["if-absent"] ? { ifAbsent: true } : {}),
      ...(f["if-version"] !== undefined ? { ifVersion: f["if-version"] } : {}),
      ...(replicas !== undefined ? { replicas } : {}),
    },
    async (e) => {
      if (f["content-type"] !== undefined) await e.meta({ "content-type": f["content-type"] });
      const r = await e.syncStream(src.bytes, { ...(window !== undefined ? { window } : {}), onProgress: (p) => progress.update(p.done, `sent ${formatBytes(p.sent)}`) });
      progress.finish();
      return r;
    },
  ).finally(() => progress.clear());
  const url = `s3://${bucket}/${key}`;
  return {
    text: committedText(url, c, `${formatBytes(r.sent)} (${r.sent} bytes, ${percent(r.sent, r.size)} of size): ${r.chunks - r.reused} of ${r.chunks} chunks sent, ${r.reused} by reference${baseVersionId ? ` from version ${baseVersionId}` : ""}`),
    json: { command: "put", bucket, key, ...c, sent: r.sent, chunks: r.chunks, reused: r.reused, baseVersionId },
  };
}

async function edit(f: Flags, args: string[], mode: "append" | "random"): Promise<Output> {
  const name = mode === "append" ? "append" : "write";
  const [file, target] = args;
  if (file === undefined || args.length !== 2) throw new UsageError(`${name} <file|-> s3://bucket/key${mode === "random" ? " --offset N" : ""}`);
  const { bucket, key } = s3Url(target);
  const offset = wholeNumber("offset", f.offset);
  if (mode === "random" && offset === undefined) throw new UsageError("write needs --offset N");
  if (mode === "append" && offset !== undefined) throw new UsageError("append writes at the end: no --offset");
  const creds = credentials(f);
  const src = source(file);
  const progress = bar(f, `${name} ${key}`, src.size);
  let at = 0;
  const { result: r, committed: c, baseVersionId } = await inSession(creds, { bucket, key, mode, base: "current" }, async (e) => {
    at = mode === "append" ? e.size : offset!;
    const r = await e.writeStream(at, src.bytes, { onProgress: (p) => progress.update(p.done) });
    progress.finish();
    return r;
  }).finally(() => progress.clear());
  const url = `s3://${bucket}/${key}`;
  return {
    text: committedText(url, c, `${formatBytes(r.written)} (${r.written} bytes) at offset ${at}${baseVersionId ? `, over version ${baseVersionId}` : ""}`),
    json: { command: name, bucket, key, ...c, offset: at, sent: r.written, baseVersionId },
  };
}

async function validate(f: Flags, args: string[]): Promise<Output> {
  const creds = credentials(f);
  let subject: Parameters<EdgestoreExtensions["validate"]>[0];
  let label: string;
  if (f.snapshot !== undefined) {
    if (args.length !== 0 || f.version !== undefined) throw new UsageError("validate --snapshot ID takes no s3:// URL and no --version");
    subject = { snapshot: f.snapshot };
    label = `snapshot ${f.snapshot}`;
  } else {
    if (args.length !== 1) throw new UsageError("validate s3://bucket/key [--version V] [--token T]");
    const { bucket, key } = s3Url(args[0]);
    subject = { bucket, key, ...(f.version !== undefined ? { versionId: f.version } : {}) };
    label = `s3://${bucket}/${key}${f.version !== undefined ? ` version ${f.version}` : ""}`;
  }
  const v = await new EdgestoreExtensions(creds).validate(subject, f.token);
  const ok = (v.state === "intact" || v.state === "repaired") && v.token !== "differs";
  const out: Output = {
    text: [
      `${label}: ${v.state}`,
      `  token     ${v.token === null ? "(none given)" : `${v.token}${v.tokenKind ? ` (${v.tokenKind} token)` : ""}`}`,
      `  items     ${v.items}`,
      `  copies    ${v.copies.good} good, ${v.copies.bad} bad`,
      `  repaired  ${v.repaired}`,
      `  lost      ${v.lost}`,
    ],
    json: { command: "validate", ...subject, ...v },
  };
  if (!ok) throw Object.assign(new VerdictFailure(), { output: out });
  return out;
}

async function get(f: Flags, args: string[]): Promise<Output> {
  if (args.length !== 2) throw new UsageError("get s3://bucket/key <file|->");
  const { bucket, key } = s3Url(args[0]);
  const file = args[1]!;
  const creds = credentials(f);
  const url = objectUrl(creds, bucket, key, f.version);
  const auth = await signRequest({ method: "GET", url, headers: {}, payloadHash: EMPTY_SHA256, accessKey: creds.accessKeyId, secretKey: creds.secretAccessKey, region: creds.region });
  const res = await fetch(url, { headers: { ...auth } });
  if (!res.ok) {
    const text = await res.text();
    throw new CliError(/<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? String(res.status), /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? (text || res.statusText));
  }
  const length = res.headers.get("content-length");
  const progress = bar(f, `get ${key}`, length === null ? null : Number(length));
  let done = 0;
  const counted = Readable.fromWeb(res.body! as import("node:stream/web").ReadableStream<Uint8Array>);
  counted.on("data", (d: Buffer) => progress.update((done += d.length)));
  // A partial download never takes the file's name.
  const part = file === "-" ? null : `${file}.edgestore-part`;
  try {
    await pipeline(counted, part === null ? process.stdout : createWriteStream(part));
    if (part !== null) renameSync(part, file);
    progress.finish();
  } catch (e) {
    progress.clear();
    if (part !== null) rmSync(part, { force: true });
    throw e;
  }
  const versionId = res.headers.get("x-amz-version-id");
  return {
    text: file === "-" ? [] : [`s3://${bucket}/${key} -> ${file}`, `  version   ${versionId ?? "(unversioned)"}`, `  etag      ${res.headers.get("etag")}`, `  size      ${formatBytes(done)} (${done} bytes)`],
    json: { command: "get", bucket, key, file, versionId, etag: res.headers.get("etag"), size: done },
  };
}

/** S3's code and message from whatever failed. */
function failureOf(e: unknown): { code: string; message: string } {
  if (e instanceof CliError) return { code: e.code, message: e.detail };
  if (e instanceof SessionError) return { code: e.code, message: e.message.slice(e.code.length + 2) };
  if (e instanceof ExtensionError) return { code: e.code, message: e.message.replace(/^[^:]*\(\d+\): /, "") };
  const err = e as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  // fetch and ws report an unreachable endpoint as a TypeError or an Error with a cause.
  const code = typeof err.cause?.code === "string" ? err.cause.code : typeof err.code === "string" ? err.code : "Error";
  const message = typeof err.cause?.message === "string" ? err.cause.message : String(err.message ?? e);
  return { code, message };
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`edgestore: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const f = parsed.values as Flags;
  const [command, ...args] = parsed.positionals;
  if (f.help || command === undefined || command === "help") {
    (command === undefined && !f.help ? process.stderr : process.stdout).write(USAGE);
    return command === undefined && !f.help ? 2 : 0;
  }
  const emit = (o: Output) => process.stdout.write(f.json ? `${JSON.stringify(o.json)}\n` : o.text.map((l) => `${l}\n`).join(""));
  try {
    const run: Record<string, () => Promise<Output>> = {
      put: () => put(f, args),
      append: () => edit(f, args, "append"),
      write: () => edit(f, args, "random"),
      validate: () => validate(f, args),
      get: () => get(f, args),
    };
    const cmd = run[command];
    if (!cmd) throw new UsageError(`unknown command ${command}`);
    emit(await cmd());
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`edgestore: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof VerdictFailure) {
      emit((e as VerdictFailure & { output: Output }).output);
      return 3;
    }
    const { code, message } = failureOf(e);
    if (f.json) process.stdout.write(`${JSON.stringify({ command, error: { code, message } })}\n`);
    process.stderr.write(`edgestore: ${code}: ${message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
