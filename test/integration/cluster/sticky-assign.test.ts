/**
 * Concurrent assigns share a volume per server (master/sticky-picks.ts), so
 * a volume server's group commit covers them together; which server takes a
 * write is still the weighted random pick. A real master and two volume
 * servers, 7 volumes grown on the first assign.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STICKY_PICK_MS } from '../../../origin/master/sticky-picks.ts';
import { assignOk, master, stopAll, type TestMaster, volume, volumeIdOf, waitForNodes } from './harness.ts';

let m: TestMaster;
// The master's clock, held still so the 64 assigns below fall in one window however slow the machine is.
let now = Date.now();

beforeAll(async () => {
  m = await master({ now: () => now });
  await Promise.all([0, 1].map(() => volume(m.address)));
  await waitForNodes(m, 2);
  await assignOk(m.base); // grows the layout's volumes
});

afterAll(stopAll);

describe('assigns in one window', () => {
  it('name one volume per server, and both servers still take writes', async () => {
    now += STICKY_PICK_MS; // a window of its own, after the growth's (nodes stay alive: < 3 pulses)
    const assigned = await Promise.all(Array.from({ length: 64 }, () => assignOk(m.base)));
    const volumesByServer = new Map<string, Set<number>>();
    for (const a of assigned) {
      const seen = volumesByServer.get(a.url) ?? new Set<number>();
      seen.add(volumeIdOf(a.fid));
      volumesByServer.set(a.url, seen);
    }
    // Spread over the servers as before (all 64 on one of two: a chance of 2^-63)...
    expect(volumesByServer.size).toBe(2);
    // ...and within each server one volume, where a fresh pick each time would use several.
    const writableVolumes = new Set(
      m.topology.writable({ collection: '', replication: '000', ttl: '' }).map((v) => v.id),
    );
    expect(writableVolumes.size).toBeGreaterThan(2);
    for (const volumes of volumesByServer.values()) expect(volumes.size).toBe(1);
  });
});
