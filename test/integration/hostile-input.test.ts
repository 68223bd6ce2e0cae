// What a client, a browser or a careless deployment can send the gateway, against the real
// cluster: each answer is S3's (or the admin API's) 4xx error, never a 5xx or an internal
// message; a presigned URL cannot be widened with unsigned extension headers; objects cannot act
// as the admin's origin in a browser; cross-site admin changes are refused; and a gateway
// deployed with the public development secrets refuses every request.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { DEVELOPMENT_SECRETS } from "../../common/development-secrets.ts";
import { CLUSTER_CONNECT_PATH, JOIN_SECRET_HEADER, TARGET_ID_HEADER, TARGET_LOCATION_HEADER } from "../../common/protocol.ts";
import { signRequest } from "../../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../../common/s3/sigv4.ts";
import { LocalCluster } from "../../scripts/cluster.ts";
import { HttpEditingSession } from "../../client/session.ts";
import { clusterForSuite, freePort, removeDir, sessionFailure } from "./helpers.ts";

const B = "hostile";
let cluster: LocalCluster;
let s3: S3Client;

/** A request signed as the cluster's key, with the body and headers given. */
async function signed(method: string, path: string, opts: { body?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  const url = `${cluster.endpoint}${path}`;
  const headers = opts.headers ?? {};
  const auth = await signRequest({ method, url, headers, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region });
  return fetch(url, { method, headers: { ...headers, ...auth }, body: opts.body });
}

/** The S3 error code of an XML error body, and that it says nothing internal. */
async function s3Code(res: Response): Promise<string> {
  const text = await res.text();
  expect(text).not.toMatch(/\bat [\w.<>]+ \(|SQLITE|\.ts:\d+/);
  return /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `(no code: ${res.status} ${text.slice(0, 200)})`;
}

describe("hostile input at the gateway", () => {
  clusterForSuite({ bucket: B, versioned: true }, (c) => ({ cluster, s3 } = c));

  it("answers a path that is not valid percent-encoding with S3's 4xx, signed or not", async () => {
    const anon = await fetch(`${cluster.endpoint}/%ff`);
    expect(anon.status).toBe(403);
    expect(await s3Code(anon)).toBe("AccessDenied");
    const res = await fetch(`${cluster.endpoint}/${B}/%ff%fe`);
    expect(res.status).toBeLessThan(500);
  });

  it("refuses XML with character references XML does not allow as MalformedXML", async () => {
    for (const status of ["Enabled&#x110000;", "Enabled&#0;", "&#xD800;", "a & b"]) {
      const res = await signed("PUT", `/${B}?versioning`, { body: `<VersioningConfiguration><Status>${status}</Status></VersioningConfiguration>` });
      expect(res.status, status).toBe(400);
      expect(await s3Code(res)).toBe("MalformedXML");
    }
  });

  it("reads CreateBucket's body within S3's cap, and only a CreateBucketConfiguration", async () => {
    const huge = await signed("PUT", "/hostile-huge", { body: `<CreateBucketConfiguration>${"x".repeat(200_000)}</CreateBucketConfiguration>` });
    expect(huge.status).toBe(400);
    expect(await s3Code(huge)).toBe("MaxMessageLengthExceeded");
    const other = await signed("PUT", "/hostile-other", { body: "<Something/>" });
    expect(await s3Code(other)).toBe("MalformedXML");
    const ok = await signed("PUT", "/hostile-ok", { body: `<CreateBucketConfiguration><LocationConstraint></LocationConstraint></CreateBucketConfiguration>` });
    expect(ok.status).toBe(200);
  });

  it("answers name queries with globs longer than SQLite takes, instead of failing", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "music/2025/a-very-long-name-for-a-song.mp3", Body: "x" }));
    const pattern = `music/2025/a-ve${"*".repeat(30)}long*name*for*a*song.mp3`;
    expect(pattern.length).toBeGreaterThan(60);
    const res = await signed("GET", `/_query?bucket=${B}&name=${encodeURIComponent(pattern)}`);
    expect(res.status).toBe(200);
    const found = (await res.json()) as { versions: { key: string }[] };
    expect(found.versions.map((v) => v.key)).toEqual(["music/2025/a-very-long-name-for-a-song.mp3"]);
    const unclosed = await signed("GET", `/_query?bucket=${B}&name=${encodeURIComponent("[abc")}`);
    expect(unclosed.status).toBe(400);
    expect(await s3Code(unclosed)).toBe("InvalidArgument");
  });

  it("refuses an editing session past what one PUT may store, before zero-filling anything", async () => {
    const session = await HttpEditingSession.open({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    try {
      const edit = await session.begin({ bucket: B, key: "edited", base: null, mode: "replace" });
      expect(await sessionFailure(session.call({ op: "truncate", txn: edit.txn, size: 1e15 }))).toBe("EntityTooLarge");
      expect(await sessionFailure(session.call({ op: "write", txn: edit.txn, offset: 2 ** 50, length: 1 }, new Uint8Array(1)))).toBe("EntityTooLarge");
      await edit.abort();
    } finally {
      await session.close();
    }
  });

  it("refuses unsigned x-edgestore-* headers on a presigned URL: it cannot be widened to read the past", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "secret", Body: "old" }));
    const between = new Date().toISOString();
    // The clock must move past `between` before the next write is stamped.
    await new Promise((r) => setTimeout(r, 20));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "secret", Body: "new" }));
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: "secret" }), { expiresIn: 300 });
    expect(await (await fetch(url)).text()).toBe("new");
    const widened = await fetch(url, { headers: { "x-edgestore-as-of": between } });
    expect(widened.status).toBe(403);
    expect(await s3Code(widened)).toBe("AccessDenied");
    const fewer = await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "one-copy" }), { expiresIn: 300 });
    const put = await fetch(fewer, { method: "PUT", body: "x", headers: { "x-edgestore-replicas": "1" } });
    expect(put.status).toBe(403);
  });

  it("sends objects as nosniff and sandboxed, so a stored page cannot script the admin's origin", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "page.html", Body: "<script>fetch('/_admin/tenants')</script>", ContentType: "text/html" }));
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: "page.html" }), { expiresIn: 300 });
    const res = await fetch(url);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-security-policy")).toBe("sandbox");
  });

  it("takes admin changes from its own origin or no browser, as JSON, and by bearer token only", async () => {
    const bearer = { authorization: `Bearer ${cluster.adminToken}` };
    const post = (headers: Record<string, string>, body: string) => fetch(`${cluster.endpoint}/_admin/tenants`, { method: "POST", headers: { ...bearer, ...headers }, body });
    const body = JSON.stringify({ name: "csrf-victim" });
    const crossSite = await post({ origin: "https://evil.example", "content-type": "application/json" }, body);
    expect(crossSite.status).toBe(403);
    expect(((await crossSite.json()) as { error: string }).error).toBe("CrossOriginRefused");
    const form = await post({ "content-type": "application/x-www-form-urlencoded" }, "name=csrf-victim");
    expect(form.status).toBe(415);
    const basic = await fetch(`${cluster.endpoint}/_admin/tenants`, { headers: { authorization: `Basic ${btoa(`admin:${cluster.adminToken}`)}` } });
    expect(basic.status).toBe(401);
    expect(basic.headers.get("www-authenticate") ?? "").not.toMatch(/basic/i);
    const sameOrigin = await post({ origin: cluster.endpoint, "content-type": "application/json" }, body);
    expect(sameOrigin.status).toBe(201);
  });

  it("drops a target's malformed register instead of storing what would break every group's view", async () => {
    // A rogue target is just a WebSocket client holding the join secret.
    const rogue = new WebSocket(`${cluster.endpoint.replace("http", "ws")}${CLUSTER_CONNECT_PATH}`, {
      headers: { [JOIN_SECRET_HEADER]: DEVELOPMENT_SECRETS.JOIN_SECRET, [TARGET_ID_HEADER]: "rogue-target-1", [TARGET_LOCATION_HEADER]: "/rogue/zone/rack/host/disk" },
    });
    await new Promise((resolve, reject) => rogue.once("open", resolve).once("error", reject));
    const answers: string[] = [];
    rogue.on("message", (m) => answers.push(String(m)));
    rogue.send(JSON.stringify({ t: "register", id: "rogue-target-1", location: "/rogue/zone/rack/host/disk", capacity: 1, free: 1, chunks: 0, bytes: 0, held: null }));
    // No answer is an absence: seen by giving one time to come.
    await new Promise((r) => setTimeout(r, 500));
    rogue.close();
    expect(answers).toEqual([]);
    const status = await fetch(`${cluster.endpoint}/_admin/status.json`, { headers: { authorization: `Bearer ${cluster.adminToken}` } });
    expect(status.status).toBe(200);
    const view = (await status.json()) as { targets: { id: string }[] };
    expect(view.targets.map((t) => t.id)).not.toContain("rogue-target-1");
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "after-rogue", Body: "still serving" }));
    expect(await (await s3.send(new GetObjectCommand({ Bucket: B, Key: "after-rogue" }))).Body!.transformToString()).toBe("still serving");
  });

  it("keeps the join secret out of ps, and what a target stores readable by its own user only", async () => {
    for (const t of cluster.targets) {
      expect(readFileSync(`/proc/${t.proc!.pid}/cmdline`, "utf8")).not.toContain(DEVELOPMENT_SECRETS.JOIN_SECRET);
      const open: string[] = [];
      const walk = (dir: string) => {
        for (const e of readdirSync(dir, { withFileTypes: true })) {
          const path = join(dir, e.name);
          if (e.isDirectory()) walk(path);
          if ((statSync(path).mode & 0o077) !== 0) open.push(path);
        }
      };
      walk(t.dataDir);
      expect(open).toEqual([]);
    }
  });
});

describe("a gateway deployed with development secrets", () => {
  let dir = "";
  let deployed: LocalCluster | null = null;
  afterAll(async () => {
    await deployed?.stop();
    if (dir) removeDir(dir);
  });

  it("refuses every request, naming what is wrong but no value", async () => {
    dir = mkdtempSync(join(tmpdir(), "edgestore-undeployable-"));
    // As `wrangler deploy` would run it: without the local cluster's marker.
    deployed = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { EDGESTORE_DEV: "" } });
    await deployed.startGateway();
    for (const path of ["/", `/${B}/k`, "/_admin/tenants", "/_cluster/connect"]) {
      const res = await fetch(`${deployed.endpoint}${path}`);
      expect(res.status, path).toBe(503);
      const text = await res.text();
      expect(text).toMatch(/JOIN_SECRET has the local cluster(&apos;|')s development value/);
      expect(text).not.toContain(deployed.secretKey);
      expect(text).not.toContain(deployed.adminToken);
    }
  });
});
