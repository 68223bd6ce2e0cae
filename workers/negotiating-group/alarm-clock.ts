// The group's one alarm, shared by every part that has work for later: each asks for the alarm
// no later than when it next needs to run, and never postpones an earlier request. The alarm
// handler runs every part's due work and each asks again for what it still needs.

export class AlarmClock {
  /** The alarm as this instance last set or read it (undefined: not known yet). */
  private at: number | null | undefined = undefined;
  private readonly storage: DurableObjectStorage;
  private readonly group: number;

  constructor(storage: DurableObjectStorage, group: number) {
    this.storage = storage;
    this.group = group;
  }

  /** Ask for the alarm no later than `at`. */
  async by(at: number): Promise<void> {
    // Known to be due by then already: most calls (every chunk put) end here, without storage.
    if (typeof this.at === "number" && this.at <= at) return;
    const cur = this.at === undefined ? await this.storage.getAlarm() : this.at;
    if (cur === null || cur > at) {
      await this.storage.setAlarm(at);
      this.at = at;
    } else {
      this.at = cur;
    }
  }

  /** `by` for callers that do not wait on it. */
  soon(at: number): void {
    // A failed storage call leaves the alarm as it was; the work it was for is found again by
    // the next alarm or the next call that asks (every due list lives in storage), so the
    // failure is logged, not thrown into a caller that did not wait for it.
    void this.by(at).catch((e: unknown) => console.log(JSON.stringify({ msg: "could not set the alarm", group: this.group, at, error: String(e) })));
  }

  /** The alarm fired: it is spent, and each part asks again for what it needs. */
  fired(): void {
    this.at = null;
  }
}
