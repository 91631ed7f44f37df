/**
 * StickyPicks on its own, with an injected clock: within a window the same
 * servers and layout keep their volume; a new window, a volume gone from the
 * writable list or crowded, or another key picks afresh.
 */
import { describe, expect, it } from 'vitest';
import { STICKY_PICK_MS, StickyPicks } from '../../../../origin/master/sticky-picks.ts';

const writable = (...ids: number[]) => ids.map((id) => ({ id, crowded: false }));

describe('StickyPicks', () => {
  it('hands out the first pick for the same key until its window ends, then the next pick', () => {
    let now = 1_000_000;
    const picks = new StickyPicks(() => now);
    expect(picks.choose('k', 3, writable(1, 2, 3))).toBe(3);
    for (const fresh of [1, 2, 1, 2]) {
      now += STICKY_PICK_MS / 10;
      expect(picks.choose('k', fresh, writable(1, 2, 3))).toBe(3);
    }
    now += STICKY_PICK_MS;
    expect(picks.choose('k', 1, writable(1, 2, 3))).toBe(1);
    expect(picks.choose('k', 2, writable(1, 2, 3))).toBe(1);
  });

  it('keys are independent: other servers or another layout get their own pick', () => {
    const picks = new StickyPicks(() => 0);
    expect(picks.choose('layout|a', 1, writable(1, 2))).toBe(1);
    expect(picks.choose('layout|b', 2, writable(1, 2))).toBe(2);
    expect(picks.choose('other|a', 2, writable(1, 2))).toBe(2);
    expect(picks.choose('layout|a', 2, writable(1, 2))).toBe(1);
  });

  it('picks afresh when the held volume is no longer writable, or is crowded', () => {
    const picks = new StickyPicks(() => 0);
    expect(picks.choose('k', 1, writable(1, 2, 3))).toBe(1);
    // Sealed, full or a copy down: not in the writable list.
    expect(picks.choose('k', 2, writable(2, 3))).toBe(2);
    // Crowded (growth is coming): the others take the writes.
    expect(picks.choose('k', 3, [{ id: 2, crowded: true }, ...writable(3)])).toBe(3);
    expect(picks.choose('k', 2, writable(2, 3))).toBe(3);
  });
});
