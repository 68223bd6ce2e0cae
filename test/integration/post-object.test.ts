// Browser form uploads (POST Object) against a real local cluster: the form is signed as the
// SDK's docs show (a policy document, its SigV4 signature by the owner's key), sent by Node's
// fetch for every refusal S3 gives, and by a real HTML form in headless Chromium on a page from
// another origin. What is stored is checked with the real SDK.

import { GetObjectCommand, GetObjectTaggingCommand, HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { amzDateOf, deriveSigningKey, signHex } from "../../common/s3/sigv4.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clusterForSuite, s3Error } from "./helpers.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const B = "forms";
let cluster: LocalCluster;
let s3: S3Client;
clusterForSuite({ bucket: B }, (c) => ({ cluster, s3 } = c));

/** The signed fields of a form: a policy with `conditions`, expiring in `ttlMs`, signed by `secret`. */
async function signedFields(conditions: unknown[], o: { ttlMs?: number; secret?: string } = {}): Promise<Record<string, string>> {
  const now = new Date();
  const amzDate = amzDateOf(now);
  const date = amzDate.slice(0, 8);
  const credential = `${cluster.accessKey}/${date}/${cluster.region}/s3/aws4_request`;
  const fixed = { "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential, "x-amz-date": amzDate };
  const policy = btoa(JSON.stringify({ expiration: new Date(now.getTime() + (o.ttlMs ?? 300_000)).toISOString(), conditions: [{ bucket: B }, ...Object.entries(fixed).map(([k, v]) => ({ [k]: v })), ...conditions] }));
  const signature = await signHex(await deriveSigningKey(o.secret ?? cluster.secretKey, date, cluster.region), policy);
  return { ...fixed, policy, "x-amz-signature": signature };
}

/**
 * POST the form (`fields` in order, then the file), as a browser does: each on a connection of
 * its own, since a server may close one it answered with an error.
 */
async function post(fields: Record<string, string>, file: string, filename = "upload.txt"): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append("file", new Blob([file], { type: "text/plain" }), filename);
  const encoded = new Request("http://form.invalid/", { method: "POST", body: form });
  const body = Buffer.from(await encoded.arrayBuffer());
  const url = new URL(`${cluster.endpoint}/${B}`);
  return new Promise((resolve, reject) => {
    const req = request({ method: "POST", host: url.hostname, port: url.port, path: url.pathname, agent: false, headers: { "content-type": encoded.headers.get("content-type")!, "content-length": String(body.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") headers.set(k, v);
        resolve(new Response(res.statusCode === 204 ? null : Buffer.concat(chunks), { status: res.statusCode, headers }));
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const text = async (key: string) => new TextDecoder().decode(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body));
const code = async (res: Response) => /<Code>([^<]+)<\/Code>/.exec(await res.text())?.[1];

describe("POST Object", () => {
  it("stores the file under the form's key, with its content type and metadata, answering as success_action_status asks", async () => {
    const conditions = [["starts-with", "$key", "uploads/"], ["starts-with", "$Content-Type", "text/"], { "x-amz-meta-origin": "form" }, ["content-length-range", 1, 1000]];
    const res = await post({ key: "uploads/${filename}", "Content-Type": "text/plain", "x-amz-meta-origin": "form", ...(await signedFields(conditions)) }, "hello from a form", "note.txt");
    expect(res.status).toBe(204);
    expect(res.headers.get("etag")).toMatch(/^"[0-9a-f]{32}"$/);
    expect(await text("uploads/note.txt")).toBe("hello from a form");
    const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "uploads/note.txt" }));
    expect([head.ContentType, head.Metadata?.origin]).toEqual(["text/plain", "form"]);
    const tagging = "<Tagging><TagSet><Tag><Key>source</Key><Value>form</Value></Tag></TagSet></Tagging>";
    const created = await post({ key: "uploads/201.txt", success_action_status: "201", tagging, ...(await signedFields([["starts-with", "$key", "uploads/"], { success_action_status: "201" }, ["starts-with", "$tagging", ""]])) }, "created");
    expect(created.status).toBe(201);
    const xml = await created.text();
    expect(xml).toContain("<Key>uploads/201.txt</Key>");
    expect(xml).toContain("<Bucket>forms</Bucket>");
    expect((await s3.send(new GetObjectTaggingCommand({ Bucket: B, Key: "uploads/201.txt" }))).TagSet).toEqual([{ Key: "source", Value: "form" }]);
  });

  it("refuses what the policy does not allow, a wrong signature and an expired policy, storing nothing", async () => {
    const uploads = [["starts-with", "$key", "uploads/"], ["content-length-range", 1, 10]];
    const outside = await post({ key: "elsewhere/x.txt", ...(await signedFields(uploads)) }, "small");
    expect([outside.status, await code(outside)]).toEqual([403, "AccessDenied"]);
    const large = await post({ key: "uploads/large.txt", ...(await signedFields(uploads)) }, "far more than ten bytes");
    expect([large.status, await code(large)]).toEqual([400, "EntityTooLarge"]);
    const extra = await post({ key: "uploads/extra.txt", "x-amz-meta-unlisted": "1", ...(await signedFields(uploads)) }, "small");
    expect([extra.status, await code(extra)]).toEqual([403, "AccessDenied"]);
    const forged = await post({ key: "uploads/forged.txt", ...(await signedFields(uploads, { secret: "not-the-secret" })) }, "small");
    expect([forged.status, await code(forged)]).toEqual([403, "SignatureDoesNotMatch"]);
    const expired = await post({ key: "uploads/expired.txt", ...(await signedFields(uploads, { ttlMs: -1_000 })) }, "small");
    expect([expired.status, await code(expired)]).toEqual([403, "AccessDenied"]);
    for (const key of ["elsewhere/x.txt", "uploads/large.txt", "uploads/extra.txt", "uploads/forged.txt", "uploads/expired.txt"]) {
      expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket: B, Key: key })))).toMatchObject({ status: 404 });
    }
  });
});

const browserSuite = existsSync(CHROMIUM) ? describe : describe.skip;
if (!existsSync(CHROMIUM)) console.log(`post-object: browser part not run, no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

browserSuite("an HTML form on another origin, in headless Chromium", () => {
  let site: Server;
  let page = "";

  beforeAll(async () => {
    site = createServer((_, res) => res.writeHead(200, { "content-type": "text/html" }).end(page));
    await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
  });

  afterAll(async () => {
    await new Promise((r) => site.close(r));
  });

  it("uploads the chosen file straight into the bucket", async () => {
    const fields = { key: "browser/${filename}", success_action_status: "201", ...(await signedFields([["starts-with", "$key", "browser/"], { success_action_status: "201" }, ["content-length-range", 1, 1_000_000]])) };
    const hidden = Object.entries(fields)
      .map(([k, v]) => `<input type="hidden" name="${k}" value="${v.replace(/"/g, "&quot;")}">`)
      .join("");
    page = `<!doctype html><form id="f" action="${cluster.endpoint}/${B}" method="post" enctype="multipart/form-data">${hidden}<input type="file" name="file"><button>upload</button></form>`;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
      await tab.setInputFiles("input[type=file]", { name: "photo.txt", mimeType: "text/plain", buffer: Buffer.from("chosen in a browser") });
      const [answer] = await Promise.all([tab.waitForResponse((r) => r.url().startsWith(cluster.endpoint)), tab.click("button")]);
      expect(answer.status()).toBe(201);
    } finally {
      await browser.close();
    }
    expect(await text("browser/photo.txt")).toBe("chosen in a browser");
  });
});
