// The three command-line S3 clients the CLI scenario drives, each through its own commands and
// output format: the aws CLI v2, rclone and s3cmd (Debian packages, not npm). Every adapter runs
// the real binary with a throwaway configuration that points only at the given endpoint.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync as readBytes, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Endpoint {
  url: string;
  region: string;
  accessKey: string;
  secretKey: string;
}

export interface CliClient {
  readonly name: string;
  readonly version: string;
  makeBucket(bucket: string): Promise<void>;
  put(local: string, bucket: string, key: string): Promise<void>;
  /** Every key under the prefix, as the client lists it. */
  list(bucket: string, prefix: string): Promise<string[]>;
  get(bucket: string, key: string, local: string): Promise<void>;
  /** Reads bytes [start, end) or, for a client that can only resume a download, [start, size): returns the range it read. */
  getRange(bucket: string, key: string, start: number, end: number, local: string): Promise<{ start: number; bytes: Buffer }>;
  /** Server-side copy within the bucket. */
  copy(bucket: string, from: string, to: string): Promise<void>;
  /** Make the remote prefix mirror the local directory, removing what the directory lacks. */
  syncUp(localDir: string, bucket: string, prefix: string): Promise<void>;
  /** Make the local directory mirror the remote prefix, removing what the prefix lacks. */
  syncDown(bucket: string, prefix: string, localDir: string): Promise<void>;
  remove(bucket: string, key: string): Promise<void>;
  removeAll(bucket: string, prefix: string): Promise<void>;
  removeBucket(bucket: string): Promise<void>;
  /** Set a bucket's CORS rules, given as S3's JSON form (`CORSRules`), where the client has a command for it. */
  putBucketCors?(bucket: string, rules: object): Promise<void>;
  /** Set a bucket's policy (JSON text), where the client has a command for it. */
  putBucketPolicy?(bucket: string, policy: string): Promise<void>;
  /** Replace an object's tags, where the client has a command for it. */
  putObjectTagging?(bucket: string, key: string, tags: { Key: string; Value: string }[]): Promise<void>;
  /** Set a bucket's lifecycle rules (the JSON form of LifecycleConfiguration), where the client has a command for it. */
  putBucketLifecycle?(bucket: string, config: object): Promise<void>;
}

/** A client that cannot run here, and why (the scenario reports it instead of running). */
export interface Unavailable {
  readonly name: string;
  readonly missing: string;
}

/**
 * Runs a client to completion. Asynchronously: a synchronous spawn would stall the event loop
 * for the whole command, and the verifying SDK client would then reuse keep-alive sockets the
 * gateway closed meanwhile without having seen them close.
 */
function run(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.once("error", (e) => reject(new Error(`${bin} ${args.join(" ")}: ${e.message}`)));
    child.once("close", (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${bin} ${args.join(" ")} exited ${code ?? signal}: ${Buffer.concat(err).toString().trim().slice(-2000)}`));
    });
  });
}

/**
 * The caller's environment without its AWS_* settings: a CA bundle or profile meant for the
 * real AWS must not reach a client pointed at the local gateway (rclone refuses to start when
 * AWS_CA_BUNDLE is set for a plain-HTTP endpoint).
 */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_")));
}

function firstExisting(paths: string[]): string | null {
  return paths.find((p) => existsSync(p)) ?? null;
}

function versionOf(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: "utf8", timeout: 30_000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] ?? "";
}

function scratchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

// The aws CLI v2. A pyenv or pip shim named `aws` is often v1, so look for Debian's binary by path.
export function awsCli(ep: Endpoint): CliClient | Unavailable {
  const bin = firstExisting(["/usr/bin/aws", "/usr/local/bin/aws"]);
  const version = bin ? versionOf(bin, ["--version"]) : "";
  if (!bin || !version.startsWith("aws-cli/2")) return { name: "aws", missing: "the aws CLI v2 (Debian package awscli) is not installed" };
  const cfg = join(scratchDir("cli-aws-"), "config");
  writeFileSync(cfg, `[default]\nregion = ${ep.region}\ns3 =\n    addressing_style = path\n`);
  const env = {
    ...cleanEnv(),
    AWS_ACCESS_KEY_ID: ep.accessKey,
    AWS_SECRET_ACCESS_KEY: ep.secretKey,
    AWS_CONFIG_FILE: cfg,
    AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    AWS_PAGER: "",
  };
  const aws = (...args: string[]) => run(bin, ["--endpoint-url", ep.url, ...args], env);
  return {
    name: "aws",
    version,
    makeBucket: async (b) => void (await aws("s3", "mb", `s3://${b}`)),
    put: async (local, b, key) => void (await aws("s3", "cp", local, `s3://${b}/${key}`)),
    list: async (b, prefix) =>
      (await aws("s3", "ls", "--recursive", `s3://${b}/${prefix}`))
        .toString()
        .split("\n")
        .filter((l) => l.trim() !== "")
        // "2026-12-01 10:00:00     1234 key with spaces"
        .map((l) => /^\S+\s+\S+\s+\d+ (.*)$/.exec(l)?.[1] ?? `unparsed: ${l}`),
    get: async (b, key, local) => void (await aws("s3", "cp", `s3://${b}/${key}`, local)),
    getRange: async (b, key, start, end, local) => {
      await aws("s3api", "get-object", "--bucket", b, "--key", key, "--range", `bytes=${start}-${end - 1}`, local);
      return { start, bytes: readBytes(local) };
    },
    copy: async (b, from, to) => void (await aws("s3", "cp", `s3://${b}/${from}`, `s3://${b}/${to}`)),
    syncUp: async (dir, b, prefix) => void (await aws("s3", "sync", "--delete", dir, `s3://${b}/${prefix}`)),
    syncDown: async (b, prefix, dir) => void (await aws("s3", "sync", "--delete", `s3://${b}/${prefix}`, dir)),
    remove: async (b, key) => void (await aws("s3", "rm", `s3://${b}/${key}`)),
    removeAll: async (b, prefix) => void (await aws("s3", "rm", "--recursive", `s3://${b}/${prefix}`)),
    removeBucket: async (b) => void (await aws("s3", "rb", `s3://${b}`)),
    putBucketCors: async (b, rules) => void (await aws("s3api", "put-bucket-cors", "--bucket", b, "--cors-configuration", JSON.stringify(rules))),
    putBucketPolicy: async (b, policy) => void (await aws("s3api", "put-bucket-policy", "--bucket", b, "--policy", policy)),
    putObjectTagging: async (b, key, tags) => void (await aws("s3api", "put-object-tagging", "--bucket", b, "--key", key, "--tagging", JSON.stringify({ TagSet: tags }))),
    putBucketLifecycle: async (b, config) => void (await aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", b, "--lifecycle-configuration", JSON.stringify(config))),
  };
}

// rclone, configured entirely through the environment. Its defaults would send a 50 MiB file in
// one PUT and copy it with one CopyObject; lower cut-offs make it use multipart upload and
// UploadPartCopy, as it does for large files.
export function rclone(ep: Endpoint): CliClient | Unavailable {
  const bin = firstExisting(["/usr/bin/rclone", "/usr/local/bin/rclone"]);
  if (!bin) return { name: "rclone", missing: "rclone (Debian package rclone) is not installed" };
  const version = versionOf(bin, ["version"]);
  const cfg = join(scratchDir("cli-rclone-"), "rclone.conf");
  writeFileSync(cfg, "");
  const env = {
    ...cleanEnv(),
    RCLONE_CONFIG: cfg,
    RCLONE_CONFIG_EDGE_TYPE: "s3",
    RCLONE_CONFIG_EDGE_PROVIDER: "Other",
    RCLONE_CONFIG_EDGE_ENV_AUTH: "false",
    RCLONE_CONFIG_EDGE_ACCESS_KEY_ID: ep.accessKey,
    RCLONE_CONFIG_EDGE_SECRET_ACCESS_KEY: ep.secretKey,
    RCLONE_CONFIG_EDGE_ENDPOINT: ep.url,
    RCLONE_CONFIG_EDGE_REGION: ep.region,
    RCLONE_CONFIG_EDGE_FORCE_PATH_STYLE: "true",
    RCLONE_S3_UPLOAD_CUTOFF: "16Mi",
    RCLONE_S3_CHUNK_SIZE: "8Mi",
    RCLONE_S3_COPY_CUTOFF: "16Mi",
  };
  const rc = (...args: string[]) => run(bin, [...args, "--retries", "1", "--low-level-retries", "1"], env);
  return {
    name: "rclone",
    version,
    makeBucket: async (b) => void (await rc("mkdir", `edge:${b}`)),
    put: async (local, b, key) => void (await rc("copyto", local, `edge:${b}/${key}`)),
    list: async (b, prefix) =>
      (await rc("lsf", "-R", "--files-only", `edge:${b}/${prefix}`))
        .toString()
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => `${prefix}${l}`),
    get: async (b, key, local) => void (await rc("copyto", `edge:${b}/${key}`, local)),
    getRange: async (b, key, start, end) => ({ start, bytes: await rc("cat", "--offset", String(start), "--count", String(end - start), `edge:${b}/${key}`) }),
    copy: async (b, from, to) => void (await rc("copyto", `edge:${b}/${from}`, `edge:${b}/${to}`)),
    syncUp: async (dir, b, prefix) => void (await rc("sync", dir, `edge:${b}/${prefix}`)),
    syncDown: async (b, prefix, dir) => void (await rc("sync", `edge:${b}/${prefix}`, dir)),
    remove: async (b, key) => void (await rc("deletefile", `edge:${b}/${key}`)),
    removeAll: async (b, prefix) => void (await rc("delete", `edge:${b}/${prefix}`)),
    removeBucket: async (b) => void (await rc("rmdir", `edge:${b}`)),
  };
}

// s3cmd, with path-style addressing (host_bucket without %(bucket)s). It has no ranged GET of
// its own; `get --continue` resumes a partial download with a Range request, so that is the
// ranged read it is tested with.
export function s3cmd(ep: Endpoint): CliClient | Unavailable {
  const bin = firstExisting(["/usr/bin/s3cmd", "/usr/local/bin/s3cmd"]);
  if (!bin) return { name: "s3cmd", missing: "s3cmd (Debian package s3cmd) is not installed" };
  const version = versionOf(bin, ["--version"]);
  const host = new URL(ep.url).host;
  const cfg = join(scratchDir("cli-s3cmd-"), "s3cfg");
  writeFileSync(
    cfg,
    [
      "[default]",
      `access_key = ${ep.accessKey}`,
      `secret_key = ${ep.secretKey}`,
      `host_base = ${host}`,
      `host_bucket = ${host}`,
      `bucket_location = ${ep.region}`,
      `use_https = ${new URL(ep.url).protocol === "https:" ? "True" : "False"}`,
      "signature_v2 = False",
      "multipart_chunk_size_mb = 8",
      "progress_meter = False",
      "",
    ].join("\n"),
  );
  const s3 = (...args: string[]) => run(bin, ["-c", cfg, "--no-progress", ...args], cleanEnv());
  return {
    name: "s3cmd",
    version,
    makeBucket: async (b) => void (await s3("mb", `s3://${b}`)),
    put: async (local, b, key) => void (await s3("put", local, `s3://${b}/${key}`)),
    list: async (b, prefix) =>
      (await s3("ls", "--recursive", `s3://${b}/${prefix}`))
        .toString()
        .split("\n")
        .filter((l) => l.trim() !== "")
        // "2026-12-01 10:00      1234  s3://bucket/key with spaces"
        .map((l) => l.slice(l.indexOf(`s3://${b}/`) + `s3://${b}/`.length)),
    get: async (b, key, local) => void (await s3("get", "--force", `s3://${b}/${key}`, local)),
    getRange: async (b, key, start, _end, local) => {
      // The first `start` bytes are already "downloaded" (zeros): --continue asks for the rest.
      writeFileSync(local, Buffer.alloc(start));
      await s3("get", "--continue", `s3://${b}/${key}`, local);
      return { start, bytes: readBytes(local).subarray(start) };
    },
    copy: async (b, from, to) => void (await s3("cp", `s3://${b}/${from}`, `s3://${b}/${to}`)),
    syncUp: async (dir, b, prefix) => void (await s3("sync", "--delete-removed", `${dir.replace(/\/?$/, "/")}`, `s3://${b}/${prefix}`)),
    syncDown: async (b, prefix, dir) => void (await s3("sync", "--delete-removed", `s3://${b}/${prefix}`, `${dir.replace(/\/?$/, "/")}`)),
    remove: async (b, key) => void (await s3("del", `s3://${b}/${key}`)),
    removeAll: async (b, prefix) => void (await s3("del", "--recursive", "--force", `s3://${b}/${prefix}`)),
    removeBucket: async (b) => void (await s3("rb", `s3://${b}`)),
  };
}

export const CLI_CLIENTS = [awsCli, rclone, s3cmd];
