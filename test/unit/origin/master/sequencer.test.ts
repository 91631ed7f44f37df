/**
 * The sequencer on its own, with an in-memory store that counts updates:
 * keys come from reserved ranges (one store update per batch, the next range
 * reserved before the current one runs out), never twice, never while the
 * guard (leadership) says no, and never below a key a heartbeat reported.
 */
import { describe, expect, it } from 'vitest';
import { KEY_BATCH, Sequencer } from '../../../../origin/master/sequencer.ts';
import { type MasterState, MemoryStateStore } from '../../../../origin/master/state-store.ts';
import { NotLeaderError } from '../../../../shared/errors.ts';

class CountingStore extends MemoryStateStore {
  updates = 0;
  override async update(change: (s: MasterState) => MasterState): Promise<MasterState> {
    this.updates++;
    // A store answers later than at once (etcd, a disk).
    await new Promise((r) => setTimeout(r, 2));
    return super.update(change);
  }
}

async function takeAll(seq: Sequencer, n: number, count = 1): Promise<bigint[]> {
  const firsts = await Promise.all(Array.from({ length: n }, () => seq.take(count)));
  return firsts.flatMap((f) => Array.from({ length: count }, (_, i) => f + BigInt(i)));
}

describe('Sequencer', () => {
  it('hands out unique keys from batched ranges: about one store update per batch', async () => {
    const store = new CountingStore();
    const seq = await Sequencer.open(store, { batch: 1000n });
    const keys: bigint[] = [];
    for (let round = 0; round < 10; round++) keys.push(...(await takeAll(seq, 500, round % 3 === 0 ? 7 : 1)));
    expect(new Set(keys).size).toBe(keys.length);
    expect(Math.min(...keys.map(Number))).toBeGreaterThan(0);
    // 10 rounds, 500 takes each, up to 7 keys per take: about 15,000 keys, 1,000 per update.
    expect(store.updates).toBeLessThan(keys.length / 1000 + 5);
    const mark = (await store.load()).maxFileKey;
    for (const k of keys) expect(k).toBeLessThanOrEqual(mark);
  });

  it('a new sequencer on the same store (a restart, a new leader) starts above every key issued', async () => {
    const store = new MemoryStateStore();
    const first = await Sequencer.open(store);
    const before = await takeAll(first, 100, 3);
    const second = await Sequencer.open(store);
    const after = await takeAll(second, 100, 3);
    let highest = 0n;
    for (const k of before) if (k > highest) highest = k;
    for (const k of after) expect(k).toBeGreaterThan(highest);
  });

  it('takes nothing while the guard refuses (this master does not lead), and reserves afresh after drop()', async () => {
    const store = new CountingStore();
    let leading = true;
    const seq = await Sequencer.open(store, {
      guard: () => {
        if (!leading) throw new NotLeaderError('not the leader', 1);
      },
    });
    const a = await seq.take(1);
    leading = false;
    await expect(seq.take(1)).rejects.toBeInstanceOf(NotLeaderError);
    // Another master led meanwhile and moved the mark on.
    await store.update((s) => ({ ...s, maxFileKey: s.maxFileKey + KEY_BATCH * 3n }));
    const markThen = (await store.load()).maxFileKey;
    seq.drop();
    leading = true;
    const b = await seq.take(1);
    expect(b).toBeGreaterThan(markThen);
    expect(b).toBeGreaterThan(a);
  });

  it('never issues a key at or below one a heartbeat reported, and ignores implausible ones', async () => {
    const seq = await Sequencer.open(new MemoryStateStore(), { batch: 100n });
    await seq.take(1);
    expect(seq.observe(5_000n)).toBe(true);
    expect(await seq.take(1)).toBe(5_001n);
    expect(seq.observe(2n ** 62n)).toBe(false);
    expect(seq.peek()).toBe(5_002n);
  });
});
