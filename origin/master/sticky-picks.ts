/**
 * Which writable volume an assign names, once the weighted pick (assign.ts)
 * has chosen the servers: the volume the same servers were given for this
 * layout within the last STICKY_PICK_MS, while it is still writable and not
 * crowded; otherwise the fresh pick, remembered for the next window.
 *
 * Why: a volume server makes writes durable by group commit per volume
 * (volume/syncer.ts), one fdatasync of the `.dat` and one of the `.idx`
 * covering every write to that volume since the last one. Spread at random
 * over the 7 volumes a layout grows, 16 concurrent writers to one server
 * shared a sync 1.2 at a time: two fdatasyncs and two thread-pool round trips
 * per write. Concurrent writes to one volume share them (1 KiB writes through
 * `kelp server`: 4 writes per sync, a quarter less CPU per write, +15-67 %
 * writes/s, measured in README § Performance).
 *
 * What stays as before: which servers take a write is still the weighted
 * random pick (by room left), so writes spread over servers and racks as
 * before; and each window picks afresh, so over time volumes fill by the same
 * weights. Within a window one volume of each server set takes that layout's
 * writes, as Haystack's few write-enabled volumes per machine do.
 */

/** How long an assign's volume keeps being handed out for the same servers and layout. */
export const STICKY_PICK_MS = 1_000;
/** Remembered picks (layouts x server sets); past this many they are all forgotten at once. */
const MAX_STICKY_PICKS = 10_000;

export class StickyPicks {
  private readonly picks = new Map<string, { volumeId: number; until: number }>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /**
   * The volume to hand out: the one remembered under `key` (layout and
   * servers) if its window is open and it is in `writable` uncrowded, else
   * `picked`, remembered from now on.
   */
  choose(key: string, picked: number, writable: ReadonlyArray<{ id: number; crowded: boolean }>): number {
    const now = this.now();
    const held = this.picks.get(key);
    if (held && now < held.until && writable.some((v) => v.id === held.volumeId && !v.crowded)) {
      return held.volumeId;
    }
    if (this.picks.size >= MAX_STICKY_PICKS) this.picks.clear();
    this.picks.set(key, { volumeId: picked, until: now + STICKY_PICK_MS });
    return picked;
  }
}
