// The status page (issue 7, point 2) in a real browser: headless Chromium (Debian's `chromium`,
// driven by playwright-core) against the running local cluster. With every target up it shows
// them live and every group healthy; with one target stopped it shows that target down and
// exactly the groups it was a member of under-replicated, while the rest stay healthy. The
// page is screenshotted into test-results/ (the path is printed). The cluster metrics that the
// admin API serves say the same. .ci/run installs chromium; a machine without it skips this
// file and says so.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { clusterForSuite, eventually, pseudoRandom } from "./helpers.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ROOT = join(import.meta.dirname, "..", "..");
const OUT = join(ROOT, "test-results");

let cluster: LocalCluster;
let s3: S3Client;
const B = "status";

const suite = existsSync(CHROMIUM) ? describe : describe.skip;
if (!existsSync(CHROMIUM)) console.log(`status page: not run, no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

suite("the status page in headless Chromium", () => {
  clusterForSuite({ bucket: B }, (c) => ({ cluster, s3 } = c));
  let browser: Browser | null = null;
  let page: Page;

  afterAll(async () => {
    await browser?.close();
  });

  /** Until the page's row/card attributes say what `want` asks (bounded: the page polls every 2 s). */
  const until = (want: () => Promise<boolean>, ms = 30_000) => eventually(want, { ms, every: 250 });

  const states = (sel: string, attr: string) => page.$$eval(sel, (els, a) => els.map((e) => [e.getAttribute(a) ?? "", e.getAttribute("data-state") ?? ""] as [string, string]), attr);

  it("asks a browser for the admin token, and shows nothing without it", async () => {
    // The page holds no data and is served to anyone, under a policy that runs only its own script.
    const res = await fetch(`${cluster.endpoint}/_admin/status`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(res.headers.get("www-authenticate")).toBeNull();
    const json = await fetch(`${cluster.endpoint}/_admin/status.json`);
    expect(json.status).toBe(401);
    const basic = await fetch(`${cluster.endpoint}/_admin/status.json`, { headers: { authorization: `Basic ${btoa(`admin:${cluster.adminToken}`)}` } });
    expect(basic.status).toBe(401);
  });

  it("shows every target live and every group healthy, with traffic charted", async () => {
    for (let i = 0; i < 8; i++) await s3.send(new PutObjectCommand({ Bucket: B, Key: `k${i}`, Body: pseudoRandom(300_000, 900 + i) }));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    page = await context.newPage();
    const blocked: string[] = [];
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) blocked.push(m.text());
    });
    await page.goto(`${cluster.endpoint}/_admin/status`);
    // A wrong token is refused and asked for again; the right one shows the cluster.
    await page.fill("#token", "not-the-token");
    await page.click("#login button");
    await page.waitForFunction(() => (document.querySelector("#error")?.textContent ?? "").includes("not accepted"), null, { timeout: 30_000 });
    await page.fill("#token", cluster.adminToken);
    await page.click("#login button");
    await page.waitForSelector("body[data-loaded=true]", { timeout: 30_000 });
    expect(blocked).toEqual([]);
    const targets = await states("[data-testid=target]", "data-location");
    expect(targets.map(([loc]) => loc).sort()).toEqual(cluster.targets.map((t) => t.location).sort());
    expect(targets.every(([, s]) => s === "live")).toBe(true);
    expect(await until(async () => (await states("[data-testid=group]", "data-group")).every(([, s]) => s === "healthy"))).toBe(true);
    expect(await page.$$eval("[data-testid=group]", (els) => els.length)).toBe(8);
    // The shards list what was written: 8 versions over the 4 shards, and each settles "now".
    const versions = await page.$$eval("[data-testid=shard] td:nth-child(2)", (tds) => tds.reduce((a, td) => a + Number(td.textContent), 0));
    expect(versions).toBe(8);
    // Traffic reaches the page within a flush (5 s) and a poll (2 s): the 8 PUTs and their bytes.
    const status = async () => (await (await fetch(`${cluster.endpoint}/_admin/status.json`, { headers: { authorization: `Bearer ${cluster.adminToken}` } })).json()) as { traffic: { totals: { requests: number; bytesIn: number } } };
    expect(await until(async () => (await status()).traffic.totals.requests >= 9 && (await status()).traffic.totals.bytesIn >= 8 * 300_000)).toBe(true);
    // The requests chart counts them too.
    const charted = async () => Number(/· (\d+) in 10 min/.exec((await page.textContent("[data-testid=chart]")) ?? "")?.[1] ?? 0);
    expect(await until(async () => (await charted()) >= 9)).toBe(true);
    expect(await page.$$eval("[data-testid=chart] svg polyline", (els) => els.length)).toBe(4);
  });

  it("shows a stopped target down and the groups it was a member of under-replicated", async () => {
    const victim = cluster.targets[2]!;
    const itsGroups = [...victim.assigned].sort((a, b) => a - b);
    expect(itsGroups.length).toBeGreaterThan(0);
    await cluster.stopTarget(victim.index);
    const shows = async () => {
      const t = await states("[data-testid=target]", "data-location");
      const g = await states("[data-testid=group]", "data-group");
      const down = t.filter(([, s]) => s === "down").map(([l]) => l);
      const under = g.filter(([, s]) => s === "under-replicated").map(([n]) => Number(n)).sort((a, b) => a - b);
      const healthy = g.filter(([, s]) => s === "healthy").length;
      return down.length === 1 && down[0] === victim.location && JSON.stringify(under) === JSON.stringify(itsGroups) && healthy === 8 - itsGroups.length;
    };
    expect(await until(shows)).toBe(true);
    mkdirSync(OUT, { recursive: true });
    const shot = join(OUT, "status-page.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`status page screenshot: ${shot}`);
    // The cluster metrics of the admin API say the same.
    const metrics = await (await fetch(`${cluster.endpoint}/_admin/metrics`, { headers: { authorization: `Bearer ${cluster.adminToken}` } })).text();
    expect(metrics).toMatch(/^edgestore_targets\{state="down"\} 1$/m);
    expect(metrics).toMatch(new RegExp(`^edgestore_groups_under_replicated ${itsGroups.length}$`, "m"));
    for (const g of itsGroups) expect(metrics).toContain(`edgestore_group_state{group="${g}",state="under-replicated"} 1`);
    expect(metrics).toMatch(/^edgestore_s3_requests_total\{class="ok"\} [1-9]\d*$/m);
    // And so does the admin CLI.
    const cli = spawnSync(process.execPath, [join(ROOT, "client", "admin.ts"), "cluster", "status"], {
      encoding: "utf8",
      env: { ...process.env, EDGESTORE_ENDPOINT: cluster.endpoint, EDGESTORE_ADMIN_TOKEN: cluster.adminToken },
      timeout: 30_000,
    });
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toContain(`down  ${victim.location}`);
    expect(cli.stdout.match(/ under-replicated /g)?.length).toBe(itsGroups.length);
    cluster.startTarget(victim.index);
    await cluster.waitForTargets();
  });

  it("runs no script of a page a tenant stored, opened from the admin's origin", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "page.html", ContentType: "text/html", Body: "<title>stored</title><script>document.title = 'ran: ' + document.domain</script>" }));
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: "page.html" }), { expiresIn: 300 });
    const tab = await page.context().newPage();
    await tab.goto(url);
    expect(await tab.title()).toBe("stored");
    await tab.close();
  });
});
