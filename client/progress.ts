// A one-line progress bar for long transfers, redrawn in place with \r on a stream (stderr),
// so stdout stays clean for what a script reads. Redraws are throttled: a transfer reports
// progress per chunk or per network read, far more often than a terminal needs.

import type { Writable } from "node:stream";

const REDRAW_MS = 100;
const BAR_WIDTH = 24;
/** The rate is over a sliding window, so a stall shows up instead of being averaged away. */
const RATE_WINDOW_MS = 5_000;

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const mmss = `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

export interface ProgressOptions {
  /** Total bytes, when known (a file); null for a stream of unknown length. */
  total: number | null;
  label: string;
  stream?: Writable & { isTTY?: boolean; columns?: number };
  /** auto (default): only when the stream is a terminal; always (--progress); never (--quiet). */
  show?: "auto" | "always" | "never";
  now?: () => number;
}

export class ProgressBar {
  private readonly total: number | null;
  private readonly label: string;
  private readonly out: Writable & { isTTY?: boolean; columns?: number };
  readonly enabled: boolean;
  private readonly now: () => number;
  private readonly started: number;
  private readonly samples: [number, number][] = [];
  private lastDraw = 0;
  private done = 0;
  private extra = "";
  private drawnWidth = 0;

  constructor(o: ProgressOptions) {
    this.total = o.total;
    this.label = o.label;
    this.out = o.stream ?? process.stderr;
    const show = o.show ?? "auto";
    this.enabled = show === "always" || (show === "auto" && this.out.isTTY === true);
    this.now = o.now ?? (() => performance.now());
    this.started = this.now();
    this.samples.push([this.started, 0]);
  }

  /** `done` bytes so far; `extra` is shown after the figures (e.g. what was actually sent). */
  update(done: number, extra = ""): void {
    this.done = done;
    this.extra = extra;
    if (!this.enabled) return;
    const t = this.now();
    this.samples.push([t, done]);
    while (this.samples.length > 2 && t - this.samples[0]![0] > RATE_WINDOW_MS) this.samples.shift();
    if (t - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = t;
    this.draw(t);
  }

  /** Draw the final state and end the line; nothing if the bar was never enabled. */
  finish(): void {
    if (!this.enabled) return;
    this.draw(this.now(), true);
    this.out.write("\n");
  }

  /** Clear the line (before an error message). */
  clear(): void {
    if (!this.enabled || this.drawnWidth === 0) return;
    this.out.write(`\r${" ".repeat(this.drawnWidth)}\r`);
    this.drawnWidth = 0;
  }

  private rate(t: number, final: boolean): number {
    if (final) {
      const s = (t - this.started) / 1000;
      return s > 0 ? this.done / s : 0;
    }
    const [t0, d0] = this.samples[0]!;
    const s = (t - t0) / 1000;
    return s > 0 ? (this.done - d0) / s : 0;
  }

  private draw(t: number, final = false): void {
    const rate = this.rate(t, final);
    const parts = [this.label];
    if (this.total !== null && this.total > 0) {
      const frac = Math.min(1, this.done / this.total);
      const fill = Math.round(frac * BAR_WIDTH);
      parts.push(`[${"#".repeat(fill)}${"-".repeat(BAR_WIDTH - fill)}]`, `${(frac * 100).toFixed(0).padStart(3)}%`, `${formatBytes(this.done)}/${formatBytes(this.total)}`);
    } else {
      parts.push(formatBytes(this.done));
    }
    parts.push(`${formatBytes(rate)}/s`);
    if (final) parts.push(formatDuration((t - this.started) / 1000));
    else if (this.total !== null) parts.push(`ETA ${rate > 0 ? formatDuration((this.total - this.done) / rate) : "--:--"}`);
    if (this.extra) parts.push(this.extra);
    let line = parts.join(" ");
    const columns = this.out.columns;
    if (columns && line.length > columns - 1) line = line.slice(0, columns - 1);
    // Pad over what the previous, longer line left behind.
    const pad = Math.max(0, this.drawnWidth - line.length);
    this.out.write(`\r${line}${" ".repeat(pad)}`);
    this.drawnWidth = line.length;
  }
}
