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
