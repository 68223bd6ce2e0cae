// What every command-line client must be able to do against the gateway (issue 3): make a
// bucket, put a small and a 50 MiB (multipart) object, list, get and compare, ranged get,
// server-side copy, sync a tree of a few hundred files both ways, delete, remove the bucket;
// where a client has the commands (the aws CLI's s3api), tag an object, set CORS rules and open
// a prefix to anonymous reads with a bucket policy.
// The client under test does each step through its own commands; each result is checked
// independently through @aws-sdk/client-s3 and the local files.

import { DeleteObjectCommand, GetBucketCorsCommand, GetBucketLifecycleConfigurationCommand, GetObjectCommand, GetObjectTaggingCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { pseudoRandom } from "../integration/helpers.ts";
import type { CliClient, Endpoint } from "./clients.ts";

export interface Step {
  name: string;
  run(): Promise<void>;
}

const MiB = 1024 * 1024;
const SMALL_KEY = "dir/small file.txt";
const BIG_KEY = "big/fifty.bin";
const COPY_KEY = "copy/fifty.bin";

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Relative path → bytes of every file under `dir`. */
function readTree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

function writeFile(path: string, bytes: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}

/** 300 files in three levels, sizes from 0 to ~9 KB, a few names that need URL encoding. */
function makeTree(dir: string): void {
  let n = 0;
  for (let d = 0; d < 10; d++) {
    for (let s = 0; s < 6; s++) {
      for (let f = 0; f < 5; f++) {
        const name = f === 0 && s === 0 ? `with space ${d}.txt` : f === 1 && s === 0 ? `ünïcödé-${d}.txt` : `f${f}.bin`;
        writeFile(join(dir, `d${d}`, `s${s}`, name), pseudoRandom((n * 613) % 9000, 10_000 + n));
        n++;
      }
    }
  }
}

export function cliScenario(client: CliClient, ep: Endpoint, bucket: string): { steps: Step[]; cleanup(): void } {
  const s3 = new S3Client({ endpoint: ep.url, region: ep.region, forcePathStyle: true, credentials: { accessKeyId: ep.accessKey, secretAccessKey: ep.secretKey }, maxAttempts: 1 });
  const work = mkdtempSync(join(tmpdir(), `cli-${client.name}-`));
  const small = pseudoRandom(1234, 1);
  const big = pseudoRandom(50 * MiB, 2);
  const bigSha = sha256(big);
  const local = (name: string) => join(work, name);

  async function object(key: string): Promise<Uint8Array> {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return r.Body!.transformToByteArray();
  }

  /** key (without the prefix) → ETag and size, through the SDK. */
  async function remoteTree(prefix: string): Promise<Map<string, { etag: string; size: number }>> {
    const out = new Map<string, { etag: string; size: number }>();
    let token: string | undefined;
    for (let page = 0; page < 100; page++) {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const c of r.Contents ?? []) out.set(c.Key!.slice(prefix.length), { etag: c.ETag!.replace(/"/g, ""), size: c.Size! });
      if (!r.IsTruncated) break;
      token = r.NextContinuationToken;
    }
    return out;
  }

  async function assertRemoteMirrors(dir: string, prefix: string): Promise<void> {
    const files = readTree(dir);
    const remote = await remoteTree(prefix);
    assert.deepEqual([...remote.keys()].sort(), [...files.keys()].sort(), "remote keys differ from the local tree");
    for (const [rel, bytes] of files) {
      const r = remote.get(rel)!;
      assert.equal(r.size, bytes.length, `size of ${rel}`);
      assert.equal(r.etag, md5(bytes), `ETag of ${rel}`);
    }
  }

  const steps: Step[] = [
    {
      name: "make a bucket",
      run: async () => {
        await client.makeBucket(bucket);
        await s3.send(new HeadBucketCommand({ Bucket: bucket }));
      },
    },
    {
      name: "put a small object",
      run: async () => {
        writeFileSync(local("small.txt"), small);
        await client.put(local("small.txt"), bucket, SMALL_KEY);
        assert.equal(md5(await object(SMALL_KEY)), md5(small));
      },
    },
    {
      name: "put a 50 MiB object (multipart)",
      run: async () => {
        writeFileSync(local("big.bin"), big);
        await client.put(local("big.bin"), bucket, BIG_KEY);
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: BIG_KEY }));
        assert.equal(head.ContentLength, big.length);
        assert.match(head.ETag!, /^"[0-9a-f]{32}-\d+"$/, "a multipart upload has a multipart ETag");
        assert.equal(sha256(await object(BIG_KEY)), bigSha);
      },
    },
    {
      name: "list",
      run: async () => {
        assert.deepEqual((await client.list(bucket, "")).sort(), [BIG_KEY, SMALL_KEY]);
        assert.deepEqual(await client.list(bucket, "dir/"), [SMALL_KEY]);
      },
    },
    {
      name: "get and compare",
      run: async () => {
        await client.get(bucket, SMALL_KEY, local("small.down"));
        assert.equal(md5(readFileSync(local("small.down"))), md5(small));
        await client.get(bucket, BIG_KEY, local("big.down"));
        assert.equal(sha256(readFileSync(local("big.down"))), bigSha);
      },
    },
    {
      name: "ranged get",
      run: async () => {
        const start = 10 * MiB + 7;
        const end = start + MiB + 3;
        const got = await client.getRange(bucket, BIG_KEY, start, end, local("range.down"));
        assert.equal(got.start, start);
        assert.ok(got.bytes.length === end - start || got.bytes.length === big.length - start, `read ${got.bytes.length} bytes`);
        assert.equal(sha256(got.bytes), sha256(big.subarray(start, start + got.bytes.length)));
      },
    },
    ...(client.putObjectTagging
      ? [
          {
            name: "tag an object (s3api put-object-tagging)",
            run: async () => {
              const tags = [{ Key: "team", Value: "storage" }, { Key: "stage", Value: "cli test" }];
              await client.putObjectTagging!(bucket, SMALL_KEY, tags);
              assert.deepEqual((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: SMALL_KEY }))).TagSet, tags);
            },
          },
        ]
      : []),
    ...(client.putBucketPolicy
      ? [
          {
            name: "open a prefix to anyone (s3api put-bucket-policy)",
            run: async () => {
              const policy = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: `arn:aws:s3:::${bucket}/dir/*` }] });
              await client.putBucketPolicy!(bucket, policy);
              // No credential at all: the small object under dir/ reads, the big one elsewhere does not.
              const open = await fetch(`${ep.url}/${bucket}/${SMALL_KEY.split("/").map(encodeURIComponent).join("/")}`);
              assert.equal(open.status, 200);
              assert.equal(sha256(new Uint8Array(await open.arrayBuffer())), sha256(small));
              assert.equal((await fetch(`${ep.url}/${bucket}/${BIG_KEY}`)).status, 403);
            },
          },
        ]
      : []),
    ...(client.putBucketCors
      ? [
          {
            name: "set the bucket's CORS rules (s3api put-bucket-cors)",
            run: async () => {
              const rules = { CORSRules: [{ AllowedOrigins: ["https://app.example"], AllowedMethods: ["GET", "PUT"], AllowedHeaders: ["*"], ExposeHeaders: ["ETag"], MaxAgeSeconds: 300 }] };
              await client.putBucketCors!(bucket, rules);
              assert.deepEqual((await s3.send(new GetBucketCorsCommand({ Bucket: bucket }))).CORSRules, rules.CORSRules);
            },
          },
        ]
      : []),
    ...(client.putBucketLifecycle
      ? [
          {
            name: "set lifecycle rules (s3api put-bucket-lifecycle-configuration)",
            run: async () => {
              const rules = [
                { ID: "tmp", Status: "Enabled", Filter: { Prefix: "tmp/" }, Expiration: { Days: 7 }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
                { ID: "old-versions", Status: "Enabled", Filter: { Prefix: "" }, NoncurrentVersionExpiration: { NoncurrentDays: 30, NewerNoncurrentVersions: 2 } },
              ];
              await client.putBucketLifecycle!(bucket, { Rules: rules });
              assert.deepEqual((await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))).Rules, rules);
            },
          },
        ]
      : []),
    {
      name: "server-side copy",
      run: async () => {
        await client.copy(bucket, BIG_KEY, COPY_KEY);
        assert.equal(sha256(await object(COPY_KEY)), bigSha);
        assert.equal(sha256(await object(BIG_KEY)), bigSha);
      },
    },
    {
      name: "sync a tree of 300 files up, change it, sync again",
      run: async () => {
        const tree = local("tree");
        makeTree(tree);
        await client.syncUp(tree, bucket, "tree/");
        await assertRemoteMirrors(tree, "tree/");
        // Ten files removed, ten rewritten with another size, five added: the next sync mirrors it.
        const names = [...readTree(tree).keys()].sort();
        for (const rel of names.slice(0, 10)) rmSync(join(tree, rel));
        for (const [i, rel] of names.slice(100, 110).entries()) writeFile(join(tree, rel), pseudoRandom(9100 + i, 20_000 + i));
        for (let i = 0; i < 5; i++) writeFile(join(tree, "added", `new-${i}.bin`), pseudoRandom(100 + i, 30_000 + i));
        await client.syncUp(tree, bucket, "tree/");
        await assertRemoteMirrors(tree, "tree/");
      },
    },
    {
      name: "sync the tree down, change the bucket, sync again",
      run: async () => {
        const down = local("tree-down");
        mkdirSync(down);
        await client.syncDown(bucket, "tree/", down);
        const up = readTree(local("tree"));
        const got = readTree(down);
        assert.deepEqual([...got.keys()].sort(), [...up.keys()].sort());
        for (const [rel, bytes] of up) assert.ok(got.get(rel)!.equals(bytes), `content of ${rel}`);
        // Five objects deleted, five rewritten with another size, three added, all through the SDK.
        const keys = [...(await remoteTree("tree/")).keys()].sort();
        for (const rel of keys.slice(0, 5)) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `tree/${rel}` }));
        for (const [i, rel] of keys.slice(50, 55).entries()) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `tree/${rel}`, Body: pseudoRandom(9300 + i, 40_000 + i) }));
        for (let i = 0; i < 3; i++) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `tree/remote-added/r-${i}.bin`, Body: pseudoRandom(200 + i, 50_000 + i) }));
        await client.syncDown(bucket, "tree/", down);
        // Sync may leave an emptied directory behind; only files matter.
        await assertRemoteMirrors(down, "tree/");
      },
    },
    {
      name: "delete",
      run: async () => {
        await client.remove(bucket, SMALL_KEY);
        await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: SMALL_KEY })), (e: { name: string }) => e.name === "NotFound");
        assert.ok((await remoteTree("")).size > 0);
        await client.removeAll(bucket, "");
        assert.equal((await remoteTree("")).size, 0);
      },
    },
    {
      name: "remove the bucket",
      run: async () => {
        await client.removeBucket(bucket);
        await assert.rejects(s3.send(new HeadBucketCommand({ Bucket: bucket })), (e: { name: string }) => e.name === "NotFound");
      },
    },
  ];
  return {
    steps,
    cleanup: () => {
      s3.destroy();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

