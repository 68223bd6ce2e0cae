// An outbound WebSocket that keeps itself connected: targets never accept inbound connections,
// so every link to the control plane is dialled from here and redialled after any drop, with
// exponential backoff and jitter so that a restarted gateway is not hit by every target at once.

import { log } from "./log.ts";
import { WsClient } from "./ws-client.ts";

export interface SocketHandlers {
  /** `headers`: the server's answer to the dial. */
  onOpen(ws: WsClient, headers: Map<string, string>): void;
  /** A text message as it came: each link decodes its own side's messages (common/wire-decode.ts). */
  onText(ws: WsClient, text: string): void;
  /** A binary message, valid until `done` is called. */
  onBinary(ws: WsClient, data: Buffer, done: () => void): void;
  onClose(): void;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;

export class ReconnectingSocket {
  private ws: WsClient | null = null;
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

  get socket(): WsClient | null {
    return this.ws && this.ws.open ? this.ws : null;
  }

  private dial(): void {
    if (this.closed) return;
    const ws = WsClient.connect(this.url, this.headers, {
      onOpen: (headers) => {
        this.attempt = 0;
        log("info", "link up", { link: this.name });
        this.handlers.onOpen(ws, headers);
      },
      onText: (text) => this.handlers.onText(ws, text),
      onBinary: (data, done) => this.handlers.onBinary(ws, data, done),
      onClose: (reason, status) => {
        if (status !== undefined) log("warn", "link refused", { link: this.name, status });
        else log("debug", "link closed", { link: this.name, reason });
        if (this.ws === ws) this.ws = null;
        this.handlers.onClose();
        if (this.closed) return;
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
        log("info", "link down, redialling", { link: this.name, delay_ms: Math.round(delay) });
        this.timer = setTimeout(() => this.dial(), delay);
      },
    });
    this.ws = ws;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1001, "target shutting down");
  }
}
