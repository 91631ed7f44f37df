/**
 * File keys are never issued twice: not after a master restart on the same
 * `--mdir` (the persisted high-water mark), and not by a master that starts
 * from nothing in front of volume servers that already hold keys (heartbeats'
 * maxFileKey).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { formatFid } from '../../../shared/fid.ts';
import {
  assignOk,
  keyOf,
  lookupOk,
  master,
  readBytes,
  stopAll,
  tempDir,
  uploadOk,
  volume,
  volumeIdOf,
  waitForNodes,
} from './harness.ts';

afterAll(stopAll);

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** Runs `n` assigns (some with a count) and returns every key they reserved. */
async function assignMany(base: string, n: number): Promise<bigint[]> {
  const keys: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const count = i % 5 === 0 ? 50 : 1;
    const a = await assignOk(base, `count=${count}`);
    expect(a.count).toBe(count);
    const first = keyOf(a.fid);
    for (let k = 0n; k < BigInt(count); k++) keys.push(first + k);
  }
  return keys;
}

describe('the sequencer', () => {
  it('never reissues a key across master restarts on the same mdir', async () => {
    const mdir = tempDir('kelp-mdir-');
    let m = await master({ mdir });
    const port = portOf(m.address);
    await volume(m.address);
    await waitForNodes(m, 1);

    // Keys are only assigned, never written: the volume server's heartbeat cannot help the
    // restarted master, only its own persisted state can.
    const issued = await assignMany(m.base, 40);
    expect(new Set(issued).size).toBe(issued.length);

    for (let restart = 0; restart < 2; restart++) {
      let highest = 0n;
      for (const k of issued) if (k > highest) highest = k;
      await m.close();
      m = await master({ mdir, port });
      await waitForNodes(m, 1);
      const fresh = await assignMany(m.base, 20);
      for (const k of fresh) expect(k, `key after restart ${restart + 1}`).toBeGreaterThan(highest);
      issued.push(...fresh);
    }
    expect(new Set(issued).size).toBe(issued.length);
  });

  it('a master with a fresh mdir assigns above the keys volume servers already hold', async () => {
    const first = await master();
    const port = portOf(first.address);
    const v = await volume(first.address);
    await waitForNodes(first, 1);
    const a = await assignOk(first.base);
    const vid = volumeIdOf(a.fid);
    await uploadOk(a.url, a.fid, randomBytes(64));
    // A key far above anything this master issued, written straight to the volume server
    // (the cluster is open) as another master or an import could have.
    const high = 7_000_000n;
    const highFid = formatFid({ volumeId: vid, key: high, cookie: 0x0badcafe });
    await uploadOk(v.url, highFid, randomBytes(64));
    await first.close();

    const second = await master({ port, mdir: tempDir('kelp-mdir-') });
    await waitForNodes(second, 1);
    expect((await lookupOk(second.base, String(vid))).locations.map((l) => l.url)).toEqual([v.url]);
    for (let i = 0; i < 20; i++) {
      const next = await assignOk(second.base);
      expect(keyOf(next.fid)).toBeGreaterThan(high);
    }
    // And the blobs stored before the new master came are untouched.
    expect((await readBytes(`${v.url}/${highFid}`)).status).toBe(200);
  });
});
