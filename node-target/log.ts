// Structured logs: one JSON object per line on stdout, so an operator can grep and jq them.

export type Level = "debug" | "info" | "warn" | "error";

let fields: Record<string, unknown> = {};
const quiet = process.env.TARGET_LOG_LEVEL === "warn";

export function setLogFields(f: Record<string, unknown>): void {
  fields = { ...fields, ...f };
}

export function log(level: Level, msg: string, extra: Record<string, unknown> = {}): void {
  if (level === "debug" && process.env.TARGET_LOG_LEVEL !== "debug") return;
  if (quiet && (level === "info" || level === "debug")) return;
  process.stdout.write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields, ...extra }) + "\n");
}

// Node's own warnings become log lines too, instead of free text on stderr. node:sqlite (the
// manifest log) announces itself as experimental on every start; that one is expected.
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (w.name === "ExperimentalWarning" && /SQLite/i.test(w.message)) return;
  log("warn", "runtime warning", { name: w.name, message: w.message });
});
