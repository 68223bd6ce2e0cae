// How fast re-replication may go (issue 6, point 2: "throttled so that client traffic keeps its
// latency"). The group object serves its clients' reads and writes on the same thread as its
// repairs, so it measures what its clients see: the time of each client chunk read and write,
// as a slow-moving baseline while no repair runs and a quick-moving recent figure always. A
// repair proceeds in batches; after each, the pace adapts (additive increase, multiplicative
// decrease): while clients see more than SLOWER_THAN times their baseline, batches halve and
// pauses double; while they do not, or while no client is active, batches grow and pauses
// shrink. So an idle group repairs at full speed, and a busy one gives way.

const SLOWER_THAN = 1.5;
/** No client operation for this long: the group is idle, and repair may take everything. */
const IDLE_MS = 1_000;
const BATCH_MIN = 1;
const BATCH_MAX = 64;
const PAUSE_MIN_MS = 0;
const PAUSE_MAX_MS = 1_000;

export class RepairPacer {
  private baseline: number | null = null;
  private recent: number | null = null;
  private lastClient = -Infinity;
  private repairing = false;
  batch = 16;
  pauseMs = 20;

  /** A client operation took `ms` (at `now`). */
  client(ms: number, now: number): void {
    this.lastClient = now;
    this.recent = this.recent === null ? ms : this.recent * 0.8 + ms * 0.2;
    if (!this.repairing) this.baseline = this.baseline === null ? ms : this.baseline * 0.95 + ms * 0.05;
  }

  /** A repair begins: from the current pace. */
  begin(): void {
    this.repairing = true;
  }

  end(): void {
    this.repairing = false;
  }

  /** After a batch: adapt the pace to what clients see now. */
  adapt(now: number): void {
    const idle = now - this.lastClient > IDLE_MS;
    const hurt = !idle && this.baseline !== null && this.recent !== null && this.recent > SLOWER_THAN * Math.max(this.baseline, 1);
    if (hurt) {
      this.batch = Math.max(BATCH_MIN, Math.floor(this.batch / 2));
      this.pauseMs = Math.min(PAUSE_MAX_MS, Math.max(10, this.pauseMs * 2));
    } else {
      this.batch = Math.min(BATCH_MAX, this.batch + (idle ? 16 : 2));
      this.pauseMs = Math.max(PAUSE_MIN_MS, idle ? 0 : Math.floor(this.pauseMs / 2));
    }
  }
}
