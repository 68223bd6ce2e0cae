// Timeouts for a group's transactions without a runtime timer each. Every put and get needs a
// deadline (a hung target must not hold a write), nearly all of them are cancelled within
// milliseconds, and in workerd each setTimeout/clearTimeout pair cost a group ~0.1 ms of its
// thread (measured: clearTimeout alone was a tenth of a 1 MiB PUT's group work). Here one timer
// is armed for the earliest live deadline; cancelling only marks an entry, and deadlines added
// later than the armed one (almost all: they are "now + a constant") arm nothing.
//
// A cancelled entry lets go of its callback at once: the callback of a `within` holds the whole
// promise chain, resolved value included (a chunk, a manifest, a run of chunks), and an entry
// waits in the heap until its time, up to tens of seconds. Once no deadline is live the heap is
// emptied and the timer cleared; while some are, cancelled entries are swept out whenever they
// make up most of the heap.

interface Entry {
  at: number;
  /** Null once fired or cancelled. */
  fire: (() => void) | null;
}

/** Below this many entries a heap full of cancelled ones costs less than rebuilding it. */
const COMPACT_MIN = 64;

export class Deadlines {
  /** A binary min-heap by `at`; cancelled entries stay (without their callback) until they reach the top or a sweep. */
  private heap: Entry[] = [];
  private live = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private armedAt = Number.POSITIVE_INFINITY;

  /** Entries the heap holds, live or cancelled. */
  get held(): number {
    return this.heap.length;
  }

  /** Whether a runtime timer is set. */
  get armed(): boolean {
    return this.timer !== null;
  }

  /** Call `fire` in `ms` unless the returned function is called first. */
  after(ms: number, fire: () => void): () => void {
    const e: Entry = { at: Date.now() + ms, fire };
    this.push(e);
    this.live++;
    if (e.at < this.armedAt) this.arm(e.at);
    return () => {
      if (e.fire === null) return;
      e.fire = null;
      this.live--;
      this.shrink();
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
    // A callback that throws must not leave later deadlines without a timer.
    try {
      while (this.heap.length > 0 && (this.heap[0]!.at <= now || this.heap[0]!.fire === null)) {
        const e = this.pop();
        const fire = e.fire;
        if (fire === null) continue;
        // Fired counts as done: a cancel that comes after (a within's finally does) must not count it out again.
        e.fire = null;
        this.live--;
        fire();
      }
    } finally {
      if (this.live === 0) this.heap = [];
      // A callback may have armed a timer for a deadline of its own, later than the next one here.
      if (this.heap.length > 0) this.arm(this.heap[0]!.at);
    }
  }

  /** After a cancel: nothing live, nothing kept; mostly cancelled, only the live kept. */
  private shrink(): void {
    if (this.live === 0) {
      this.heap = [];
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      this.armedAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.heap.length < COMPACT_MIN || this.live * 2 > this.heap.length) return;
    // Sorted by time is a valid heap; the armed timer stays right, as the earliest live entry is kept.
    this.heap = this.heap.filter((e) => e.fire !== null).sort((a, b) => a.at - b.at);
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
