// CORS in a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core) on
// a page served from another origin (another port on loopback) uploads through a presigned PUT
// and reads the object back with fetch, as a browser app does; the bucket's rules, set and read
// with the real SDK, decide what the browser lets through. A machine without Chromium skips the
// browser part and says so; the rules' API is checked either way.

import { DeleteBucketCorsCommand, GetBucketCorsCommand, GetObjectCommand, PutBucketCorsCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clusterForSuite, s3Error } from "./helpers.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const B = "cors";
let cluster: LocalCluster;
let s3: S3Client;
clusterForSuite({ bucket: B }, (c) => ({ cluster, s3 } = c));

describe("a bucket's CORS rules", () => {
  it("are set, read back and deleted as S3 does, and refused when S3 refuses them", async () => {
    expect(await s3Error(s3.send(new GetBucketCorsCommand({ Bucket: B })))).toEqual({ name: "NoSuchCORSConfiguration", status: 404 });
    const rules = [{ ID: "app", AllowedOrigins: ["http://app.example"], AllowedMethods: ["GET", "PUT"], AllowedHeaders: ["content-type"], ExposeHeaders: ["ETag"], MaxAgeSeconds: 600 }];
    await s3.send(new PutBucketCorsCommand({ Bucket: B, CORSConfiguration: { CORSRules: rules } }));
    expect((await s3.send(new GetBucketCorsCommand({ Bucket: B }))).CORSRules).toEqual(rules);
    expect(await s3Error(s3.send(new PutBucketCorsCommand({ Bucket: B, CORSConfiguration: { CORSRules: [{ AllowedOrigins: ["*"], AllowedMethods: ["PATCH"] }] } })))).toEqual({ name: "InvalidRequest", status: 400 });
    await s3.send(new DeleteBucketCorsCommand({ Bucket: B }));
    expect(await s3Error(s3.send(new GetBucketCorsCommand({ Bucket: B })))).toEqual({ name: "NoSuchCORSConfiguration", status: 404 });
  });

  it("answer a preflight from the rules: a matching one gets its headers, anything else 403, and no rules at all 403", async () => {
    const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "pre" }), { expiresIn: 300 });
    const ask = (origin: string, method: string, headers = "") =>
      fetch(url, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, ...(headers ? { "access-control-request-headers": headers } : {}) } });
    expect((await ask("http://app.example", "PUT")).status).toBe(403);
    await s3.send(new PutBucketCorsCommand({ Bucket: B, CORSConfiguration: { CORSRules: [{ AllowedOrigins: ["http://*.example"], AllowedMethods: ["PUT", "GET"], AllowedHeaders: ["Content-*"], MaxAgeSeconds: 60 }] } }));
    const ok = await ask("http://app.example", "PUT", "content-type");
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe("http://app.example");
    expect(ok.headers.get("access-control-allow-methods")).toBe("PUT, GET");
    expect(ok.headers.get("access-control-allow-headers")).toBe("content-type");
    expect(ok.headers.get("access-control-max-age")).toBe("60");
    expect((await ask("http://evil.test", "PUT")).status).toBe(403);
    expect((await ask("http://app.example", "DELETE")).status).toBe(403);
    expect((await ask("http://app.example", "PUT", "x-custom")).status).toBe(403);
    // A preflight for a request signed in a header names no tenant, and is refused.
    const bare = await fetch(`${cluster.endpoint}/${B}/pre`, { method: "OPTIONS", headers: { origin: "http://app.example", "access-control-request-method": "PUT" } });
    expect(bare.status).toBe(403);
    expect(await bare.text()).toContain("<Code>AccessForbidden</Code>");
  });
});

const browserSuite = existsSync(CHROMIUM) ? describe : describe.skip;
if (!existsSync(CHROMIUM)) console.log(`cors: browser part not run, no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

browserSuite("a page on another origin, in headless Chromium", () => {
  let browser: Browser | null = null;
  let site: Server;
  let origin: string;

  beforeAll(async () => {
    site = createServer((_, res) => res.end("<!doctype html><title>app</title><p>app"));
    await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
    origin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => site.close(r));
  });

  /** In the page: PUT `body` to one presigned URL, then GET another; what the browser let through. */
  const inPage = async (putUrl: string, getUrl: string, body: string) => {
    const page = await browser!.newPage();
    await page.goto(origin);
    return page.evaluate(
      async ([putUrl, getUrl, body]) => {
        try {
          const put = await fetch(putUrl!, { method: "PUT", body, headers: { "content-type": "text/plain" } });
          const got = await fetch(getUrl!);
          return { put: put.status, etag: put.headers.get("etag"), get: got.status, text: await got.text() };
        } catch (e) {
          return { error: String(e) };
        }
      },
      [putUrl, getUrl, body],
    );
  };

  it("uploads through a presigned PUT and reads the object back with fetch, as the rules allow", async () => {
    await s3.send(new PutBucketCorsCommand({ Bucket: B, CORSConfiguration: { CORSRules: [{ AllowedOrigins: [origin], AllowedMethods: ["PUT", "GET"], AllowedHeaders: ["content-type"], ExposeHeaders: ["ETag"] }] } }));
    const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "from-browser.txt" }), { expiresIn: 300 });
    const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: "from-browser.txt" }), { expiresIn: 300 });
    const r = await inPage(putUrl, getUrl, "written by a page");
    expect(r).toMatchObject({ put: 200, get: 200, text: "written by a page" });
    expect((r as { etag: string }).etag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(new TextDecoder().decode(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "from-browser.txt" }))).Body))).toBe("written by a page");
  });

  it("is stopped by the browser when no rule allows its origin, and nothing is stored", async () => {
    await s3.send(new PutBucketCorsCommand({ Bucket: B, CORSConfiguration: { CORSRules: [{ AllowedOrigins: ["http://other.example"], AllowedMethods: ["PUT", "GET"], AllowedHeaders: ["*"] }] } }));
    const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "blocked.txt" }), { expiresIn: 300 });
    const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: "blocked.txt" }), { expiresIn: 300 });
    const r = await inPage(putUrl, getUrl, "never stored");
    expect(r).toHaveProperty("error");
    expect(await s3Error(s3.send(new GetObjectCommand({ Bucket: B, Key: "blocked.txt" })))).toMatchObject({ status: 404 });
  });
});
