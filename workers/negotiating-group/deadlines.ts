// Timeouts for a group's transactions without a runtime timer each. Every put and get needs a
// deadline (a hung target must not hold a write), nearly all of them are cancelled within
// milliseconds, and in workerd each setTimeout/clearTimeout pair cost a group ~0.1 ms of its
// thread (measured: clearTimeout alone was a tenth of a 1 MiB PUT's group work). Here one timer
// is armed for the earliest live deadline; cancelling only marks an entry, and deadlines added
// later than the armed one (almost all: they are "now + a constant") arm nothing.

interface Entry {
  at: number;
  fire: () => void;
  live: boolean;
}

export class Deadlines {
  /** A binary min-heap by `at`; cancelled entries stay until they reach the top. */
  private readonly heap: Entry[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private armedAt = Number.POSITIVE_INFINITY;

  /** Call `fire` in `ms` unless the returned function is called first. */
  after(ms: number, fire: () => void): () => void {
    const e: Entry = { at: Date.now() + ms, fire, live: true };
    this.push(e);
    if (e.at < this.armedAt) this.arm(e.at);
    return () => {
      e.live = false;
    };
  }

  /** Settle like `p`, or reject with a timeout error after `ms`. */
  within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let cancel: () => void = () => {};
    const timedOut = new Promise<never>((_, reject) => {
      cancel = this.after(ms, () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)));
    });
    return Promise.race([p, timedOut]).finally(cancel);
  }

  private arm(at: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setTimeout(() => this.run(), Math.max(0, at - Date.now()));
  }

  private run(): void {
    this.timer = null;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    while (this.heap.length > 0 && (this.heap[0]!.at <= now || !this.heap[0]!.live)) {
      const e = this.pop();
      if (!e.live) continue;
      e.live = false;
      e.fire();
    }
    if (this.heap.length > 0) this.arm(this.heap[0]!.at);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}
