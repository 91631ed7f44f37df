/**
 * Read heat: reads per hour over the last 24 hours, so heat (not only age) can
 * drive tier policies. Pure (a clock is injected): volume servers count their
 * own reads with it, the master the reads the edge reports.
 */
export class ReadHeat {
  private readonly hours = new Float64Array(24);
  private hour = -1;
  private readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
  }

  private roll(): void {
    const h = Math.floor(this.now() / 3_600_000);
    if (h === this.hour) return;
    const gap = this.hour < 0 ? 24 : Math.min(24, h - this.hour);
    for (let i = 1; i <= gap; i++) this.hours[(this.hour + i + 24 * 24) % 24] = 0;
    this.hour = h;
  }

  hit(): void {
    this.roll();
    this.hours[this.hour % 24]!++;
  }

  /** `count` reads at once (a batch reported by the edge, origin/master/edge-heat.ts). */
  add(count: number): void {
    this.roll();
    this.hours[this.hour % 24]! += count;
  }

  perDay(): number {
    this.roll();
    return this.hours.reduce((a, b) => a + b, 0);
  }

  /** The current hour (hours since the epoch) and the 24 counts, newest first: what a snapshot keeps. */
  recent(): { hour: number; counts: number[] } {
    this.roll();
    const counts = Array.from({ length: 24 }, (_, i) => this.hours[(this.hour - i + 24 * 24) % 24]!);
    return { hour: this.hour, counts };
  }

  /**
   * Takes in counts kept by `recent()` (perhaps by another process), hour by
   * hour, keeping the larger of the two: both saw the same stream of reports,
   * so the larger is the truer, and taking one in twice changes nothing.
   */
  mergeMax(hour: number, counts: readonly number[]): void {
    this.roll();
    for (let i = 0; i < Math.min(24, counts.length); i++) {
      const h = hour - i;
      if (h > this.hour || h <= this.hour - 24) continue;
      const at = (h + 24 * 24) % 24;
      const c = counts[i]!;
      if (Number.isFinite(c) && c > this.hours[at]!) this.hours[at] = c;
    }
  }
}
