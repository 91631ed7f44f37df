/**
 * The edge heat snapshot (origin/master/edge-heat.ts, edge-heat-store.ts) on
 * the single master's file store: what a restart starts from, and why taking
 * a snapshot in twice counts nothing twice. Several masters on etcd:
 * test/integration/masters/edge-heat.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { EdgeHeat, MAX_SNAPSHOT_VOLUMES } from '../../../../origin/master/edge-heat.ts';
import { EdgeHeatStore } from '../../../../origin/master/edge-heat-store.ts';
import { SoloLeadership } from '../../../../origin/master/election.ts';
import { FileStateStore } from '../../../../origin/master/state-store.ts';
import { silentLogger } from '../../../../origin/observability/log.ts';
import { removeTempDirs, tempDir } from '../../../support/temp-dirs.ts';

const HOUR = 3_600_000;

afterAll(removeTempDirs);

describe('edge heat snapshots', () => {
  it('a restarted single master starts from the counts it saved in --mdir, hour by hour', async () => {
    let now = 1_000 * HOUR;
    const clock = () => now;
    const dir = tempDir('kelp-heat-');
    const before = new EdgeHeat(['k'], clock);
    const store = new EdgeHeatStore({
      heat: before,
      store: new FileStateStore(dir),
      leadership: new SoloLeadership(),
      intervalMs: 60_000,
      log: silentLogger(),
    });
    before.add(3, 10);
    now += HOUR;
    before.add(3, 5);
    before.add(4, 1);
    expect(before.dirty).toBe(true);
    // A clean stop saves what came in since the last save.
    await store.stop();
    expect(before.dirty).toBe(false);

    const after = new EdgeHeat(['k'], clock);
    const again = new EdgeHeatStore({
      heat: after,
      store: new FileStateStore(dir),
      leadership: new SoloLeadership(),
      intervalMs: 60_000,
      log: silentLogger(),
    });
    again.start();
    await again.stop();
    expect(after.perDay(3)).toBe(15);
    expect(after.perDay(4)).toBe(1);
    // The hours kept their places: 23 hours on, only the newer hour's 5 remain in the day.
    now += 23 * HOUR;
    expect(after.perDay(3)).toBe(5);
  });

  it('taking a snapshot in keeps the larger count per hour: twice, or an older one, adds nothing', () => {
    const now = 2_000 * HOUR;
    const leader = new EdgeHeat([], () => now);
    leader.add(7, 40);
    const snapshot = leader.snapshot();
    const follower = new EdgeHeat([], () => now);
    follower.restore(snapshot);
    follower.restore(snapshot);
    expect(follower.perDay(7)).toBe(40);
    follower.add(7, 2);
    follower.restore(snapshot);
    expect(follower.perDay(7)).toBe(42);
    expect(follower.restore('not json')).toBe(0);
    expect(follower.restore(JSON.stringify({ format: 99, hour: 1, volumes: {} }))).toBe(0);
  });

  it('keeps only the hottest MAX_SNAPSHOT_VOLUMES volumes', () => {
    const heat = new EdgeHeat([], () => 3_000 * HOUR);
    for (let v = 1; v <= MAX_SNAPSHOT_VOLUMES + 10; v++) heat.add(v, v);
    const kept = Object.keys(JSON.parse(heat.snapshot()).volumes as object).map(Number);
    expect(kept).toHaveLength(MAX_SNAPSHOT_VOLUMES);
    expect(Math.min(...kept)).toBe(11);
  });
});
