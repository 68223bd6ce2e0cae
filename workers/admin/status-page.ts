// The live status page, GET /_admin/status: one HTML document with its style sheet and script
// (no build step, no third-party code) that fetches /_admin/status.json every two seconds and
// draws it. The page and its assets hold no data and are served to anyone; the page asks for
// the admin token, keeps it in the tab's session storage and sends it as a bearer header. A
// strict Content-Security-Policy lets the page run only its own script and talk only to its
// own origin, and it may not be framed.

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgestore status</title>
<link rel="stylesheet" href="status.css">
</head>
<body>
<header>
  <h1>edgestore</h1>
  <span class="meta" id="summary">loading…</span>
  <span class="meta" id="updated"></span>
  <span id="error"></span>
</header>
<form id="login" hidden>
  <label>Admin token <input type="password" id="token" autocomplete="current-password" required></label>
  <button type="submit">Show status</button>
</form>
<main>
  <section><h2>Traffic (last 10 minutes, 10 s buckets)</h2><div class="charts" id="charts"></div></section>
  <section><h2>Targets</h2>
    <table data-testid="targets"><thead><tr><th>location</th><th>state</th><th>capacity</th><th>free</th><th>stored</th><th>chunks</th><th>groups</th><th>last heartbeat</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Groups</h2><div class="groups" data-testid="groups"></div></section>
  <section><h2>Manifest shards</h2>
    <table data-testid="shards"><thead><tr><th>shard</th><th>versions</th><th>bytes</th><th>storage (of budget)</th><th>snapshot develops in</th><th>lagging groups</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script src="status.js"></script>
</body>
</html>
`;

const STYLE = `  :root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #fff; }
  header { display: flex; align-items: baseline; gap: 16px; padding: 12px 20px; border-bottom: 1px solid var(--line); background: var(--bg); }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: var(--muted); }
  main { padding: 16px 20px; display: grid; gap: 20px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
  .live, .healthy { background: var(--ok); }
  .down, .unknown { background: var(--bad); }
  .under-replicated, .repairing { background: var(--warn); }
  .bar { display: inline-block; width: 80px; height: 8px; background: var(--line); border-radius: 4px; vertical-align: middle; margin-right: 6px; }
  .bar > span { display: block; height: 100%; border-radius: 4px; background: var(--ok); }
  .groups { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 10px; }
  .group { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .group .title { display: flex; justify-content: space-between; margin-bottom: 4px; font-weight: 600; }
  .dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 4px; }
  .dot.up { background: var(--ok); } .dot.off { background: var(--bad); }
  .member { font-size: 12px; color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .note { font-size: 12px; color: var(--muted); margin-top: 4px; }
  .warn { color: #cf222e; font-weight: 600; }
  .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
  .chart { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .chart .label { display: flex; justify-content: space-between; color: var(--muted); font-size: 12px; }
  svg { width: 100%; height: 60px; display: block; }
  #error { color: var(--bad); }
  #login { padding: 16px 20px; display: flex; gap: 8px; align-items: center; }
  #login input { font: inherit; padding: 2px 6px; }
`;

const SCRIPT = `const $ = (s) => document.querySelector(s);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]; let i = 0; let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return i === 0 ? n + " B" : v.toFixed(v < 10 ? 2 : 1) + " " + u[i];
}
function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
}
function spark(values, color) {
  const max = Math.max(1, ...values); const w = 300; const h = 60; const step = values.length > 1 ? w / (values.length - 1) : w;
  const pts = values.map((v, i) => (i * step).toFixed(1) + "," + (h - 2 - (v / max) * (h - 6)).toFixed(1)).join(" ");
  return '<svg viewBox="0 0 ' + w + " " + h + '" preserveAspectRatio="none"><polyline fill="none" stroke="' + color + '" stroke-width="1.5" points="' + pts + '"/></svg>';
}
function chart(title, values, color, rate, total) {
  const last = values.length ? values[values.length - 1] : 0;
  const sum = values.reduce((a, b) => a + b, 0);
  return '<div class="chart" data-testid="chart"><div class="label"><span>' + esc(title) + "</span><span>" + esc(rate(last)) + " now · " + esc(total(sum)) + " in 10 min</span></div>" + spark(values, color) + "</div>";
}
function render(s) {
  const live = s.targets.filter((t) => t.state === "live").length;
  const under = s.groups.filter((g) => g.state !== "healthy").length;
  $("#summary").textContent = live + " of " + s.targets.length + " targets live · " + s.config.groups + " groups (" + under + " not healthy) · R = " + s.config.replicas + " · " + s.copysets + " copysets" + (s.warnings.length ? " · " + s.warnings.length + " placement warnings" : "");
  $("#updated").textContent = "updated " + new Date(s.at).toLocaleTimeString();
  const b = s.traffic.buckets.slice(0, -1);
  const secs = s.traffic.bucketMs / 1000;
  const perS = (x) => (x / secs).toFixed(1) + "/s";
  const bytesPerS = (x) => bytes(Math.round(x / secs)) + "/s";
  const count = (x) => String(x);
  $("#charts").innerHTML =
    chart("requests", b.map((x) => x.requests), "#0969da", perS, count) +
    chart("errors (4xx + 5xx)", b.map((x) => x.errors4xx + x.errors5xx), "#cf222e", perS, count) +
    chart("bytes in", b.map((x) => x.bytesIn), "#1a7f37", bytesPerS, bytes) +
    chart("bytes out", b.map((x) => x.bytesOut), "#8250df", bytesPerS, bytes);
  $("[data-testid=targets] tbody").innerHTML = s.targets.map((t) => {
    const used = t.capacity > 0 ? Math.min(1, 1 - t.free / t.capacity) : 0;
    return '<tr data-testid="target" data-state="' + t.state + '" data-location="' + esc(t.location) + '"><td>' + esc(t.location) + '</td><td><span class="badge ' + t.state + '">' + t.state + "</span></td>" +
      '<td class="num">' + bytes(t.capacity) + '</td><td class="num"><span class="bar"><span style="width:' + ((1 - used) * 100).toFixed(0) + '%"></span></span>' + bytes(t.free) + "</td>" +
      '<td class="num">' + bytes(t.bytes) + '</td><td class="num">' + t.chunks + "</td><td>" + t.groups.join(", ") + "</td><td>" + ago(s.at - t.lastSeen) + "</td></tr>";
  }).join("");
  const loc = new Map(s.targets.map((t) => [t.id, t.location]));
  $("[data-testid=groups]").innerHTML = s.groups.map((g) => {
    if (g.state === "unknown") return '<div class="group" data-testid="group" data-state="unknown"><div class="title">group ' + g.group + '<span class="badge unknown">unknown</span></div><div class="member">' + esc(g.error) + "</div></div>";
    const members = g.members.map((m) => '<div class="member"><span class="dot ' + (m.live ? "up" : "off") + '"></span>' + esc(loc.get(m.id) || m.location) + "</div>").join("");
    const repair = g.repair ? '<div class="note">repairing: ' + g.repair.done + " of " + g.repair.short + ' items <span class="bar"><span style="width:' + (g.repair.short ? (100 * g.repair.done) / g.repair.short : 0).toFixed(0) + '%"></span></span></div>' : "";
    const pending = g.pending.length ? '<div class="note">' + g.pending.length + " member(s) down: copies below R until re-replication (down " + ago(s.at - Math.min(...g.pending.map((p) => p.since))) + ")</div>" : "";
    const storage = g.storage ? '<div class="note' + (g.storage.bytes >= 0.8 * g.storage.budget ? ' warn" data-testid="storage-warning' : "") + '">metadata ' + bytes(g.storage.bytes) + " of " + bytes(g.storage.budget) + "</div>" : "";
    const last = g.lastSweep ? '<div class="note">last sweep ' + ago(s.at - g.lastSweep.at) + ": " + g.lastSweep.short + " short, " + g.lastSweep.repaired + " copies made" + (g.lastSweep.lost ? ", " + g.lastSweep.lost + " lost" : "") + "</div>" : "";
    return '<div class="group" data-testid="group" data-group="' + g.group + '" data-state="' + g.state + '"><div class="title">group ' + g.group + '<span class="badge ' + g.state + '">' + g.state + "</span></div>" + members + (g.readers ? '<div class="note">+ ' + g.readers + " former member(s) serving</div>" : "") + pending + repair + last + storage + "</div>";
  }).join("");
  $("[data-testid=shards] tbody").innerHTML = s.shards.map((x) =>
    "error" in x ? "<tr><td>" + x.shard + '</td><td colspan="5">' + esc(x.error) + "</td></tr>" :
    '<tr data-testid="shard"><td>' + x.shard + '</td><td class="num">' + x.versions + '</td><td class="num">' + bytes(x.bytes) + '</td><td class="num' + (x.storage.bytes >= 0.8 * x.storage.budget ? ' warn" data-testid="storage-warning' : "") + '">' + bytes(x.storage.bytes) + " (" + ((100 * x.storage.bytes) / x.storage.budget).toFixed(0) + ' %)</td><td class="num">' + (x.developMs === null ? "still developing" : x.developMs + " ms") + "</td><td>" + (x.lagging.join(", ") || "none") + "</td></tr>").join("");
}
// The token lives in this tab's session storage and goes out only as a bearer header the page
// adds itself: nothing a browser would send on its own to another page's requests.
const TOKEN_KEY = "edgestore-admin-token";
let polling = null;
function askToken(why) {
  if (polling) clearTimeout(polling);
  polling = null;
  $("#login").hidden = false;
  $("#error").textContent = why;
}
$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token").value);
  $("#login").hidden = true;
  $("#error").textContent = "";
  poll();
});
async function poll() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return askToken("");
  try {
    const res = await fetch("status.json", { cache: "no-store", credentials: "omit", headers: { authorization: "Bearer " + token } });
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      return askToken("the admin token was not accepted");
    }
    if (!res.ok) throw new Error((await res.json().catch(() => ({ message: res.statusText }))).message);
    render(await res.json());
    $("#error").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (e) {
    $("#error").textContent = "cannot load status: " + e.message;
  }
  polling = setTimeout(poll, 2000);
}
poll();
`;

const POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // The free-space bars are sized by a style attribute the script writes.
  "style-src-attr 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

function asset(body: string, type: string): () => Response {
  return () =>
    new Response(body, {
      headers: {
        "content-type": type,
        "cache-control": "no-store",
        "content-security-policy": POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
      },
    });
}

/** The page and what it loads, by path: served without the token (they hold no data). */
export const STATUS_ASSETS: ReadonlyMap<string, () => Response> = new Map([
  ["/_admin/status", asset(PAGE, "text/html; charset=utf-8")],
  ["/_admin/status.css", asset(STYLE, "text/css; charset=utf-8")],
  ["/_admin/status.js", asset(SCRIPT, "text/javascript; charset=utf-8")],
]);
