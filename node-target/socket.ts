// An outbound WebSocket that keeps itself connected: targets never accept inbound connections,
// so every link to the control plane is dialled from here and redialled after any drop, with
// exponential backoff and jitter so that a restarted gateway is not hit by every target at once.

import WebSocket from "ws";
import { log } from "./log.ts";

export interface SocketHandlers {
  onOpen(ws: WebSocket): void;
  onText(ws: WebSocket, msg: unknown): void;
  onBinary(ws: WebSocket, data: Buffer): void;
  onClose(): void;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;

export class ReconnectingSocket {
  private ws: WebSocket | null = null;
  private closed = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly handlers: SocketHandlers;
  readonly name: string;

  constructor(name: string, url: string, headers: Record<string, string>, handlers: SocketHandlers) {
    this.name = name;
    this.url = url;
    this.headers = headers;
    this.handlers = handlers;
    this.dial();
  }

  get socket(): WebSocket | null {
    return this.ws && this.ws.readyState === WebSocket.OPEN ? this.ws : null;
  }

  private dial(): void {
    if (this.closed) return;
    const ws = new WebSocket(this.url, {
      headers: this.headers,
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      // An all-zero masking key makes ws send our buffers as they are instead of copying each
      // frame to mask it. Masking protects proxies from script in a browser choosing the bytes
      // on the wire; this client is not a browser and the bytes are its own.
      generateMask: (mask: Buffer) => void mask.fill(0),
    });
    ws.binaryType = "nodebuffer";
    this.ws = ws;
    ws.on("open", () => {
      this.attempt = 0;
      log("info", "link up", { link: this.name });
      this.handlers.onOpen(ws);
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        this.handlers.onBinary(ws, data as Buffer);
        return;
      }
      let msg: unknown;
      try {
        msg = JSON.parse(String(data));
      } catch {
        log("warn", "unparseable message", { link: this.name });
        return;
      }
      this.handlers.onText(ws, msg);
    });
    ws.on("unexpected-response", (_req, res) => {
      log("warn", "link refused", { link: this.name, status: res.statusCode });
    });
    ws.on("error", (err) => {
      log("debug", "link error", { link: this.name, error: String(err) });
    });
    ws.on("close", () => {
      if (this.ws === ws) this.ws = null;
      this.handlers.onClose();
      if (this.closed) return;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      log("info", "link down, redialling", { link: this.name, delay_ms: Math.round(delay) });
      this.timer = setTimeout(() => this.dial(), delay);
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1001, "target shutting down");
  }
}

/** Send and resolve once the bytes are handed to the kernel, so a sender can pace itself. */
export function sendAsync(ws: WebSocket, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => ws.send(data, (err) => (err ? reject(err) : resolve())));
}
