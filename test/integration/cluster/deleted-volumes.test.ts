/**
 * The master remembers the volumes it deleted (origin/master/deleted-volumes.ts):
 * after a collection delete its lookup of them answers 410 volume_deleted, not
 * the 404 of a volume with no live holder (which a cache in front must read as
 * a possible outage), and still does after a restart on the same `--mdir`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MasterClient } from '../../../shared/client/master-client.ts';
import { NotFoundError, VolumeDeletedError } from '../../../shared/errors.ts';
import {
  assignOk,
  lookupOk,
  master,
  stopAll,
  tempDir,
  uploadOk,
  volume,
  volumeIdOf,
  waitFor,
  waitForNodes,
} from './harness.ts';

afterAll(stopAll);

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

async function lookupAnswer(base: string, volumeId: number): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${base}/dir/lookup?volumeId=${volumeId}`);
  const body = (await res.json()) as { code?: string };
  return { status: res.status, ...(body.code ? { code: body.code } : {}) };
}

describe('deleted volumes', () => {
  it('a collection delete makes its volumes answer 410 volume_deleted, across a master restart', async () => {
    const mdir = tempDir('kelp-mdir-');
    let m = await master({ mdir });
    const port = portOf(m.address);
    const vs = await volume(m.address, { max: 20 });
    await waitForNodes(m, 1);

    const gone = await assignOk(m.base, 'collection=gone');
    await uploadOk(gone.url, gone.fid, randomBytes(100));
    const kept = await assignOk(m.base, 'collection=kept');
    await uploadOk(kept.url, kept.fid, randomBytes(100));
    // Every volume the delete takes (growth makes several per collection).
    const goneIds = m.topology
      .aliveNodes()
      .flatMap((n) => [...n.volumes.values()])
      .filter((v) => v.collection === 'gone')
      .map((v) => v.id);
    expect(goneIds).toContain(volumeIdOf(gone.fid));

    expect((await fetch(`${m.base}/col/delete?collection=gone`, { method: 'POST' })).status).toBe(204);
    for (const id of goneIds)
      expect(await lookupAnswer(m.base, id)).toEqual({ status: 410, code: 'volume_deleted' });
    // The file id form too; and the shared client reads it back as the typed error, a NotFoundError.
    const byFid = await fetch(`${m.base}/dir/lookup?fileId=${gone.fid}`);
    expect(byFid.status).toBe(410);
    await byFid.body?.cancel();
    const err = await new MasterClient(m.base).lookupVolume(volumeIdOf(gone.fid)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VolumeDeletedError);
    expect(err).toBeInstanceOf(NotFoundError);
    // Asked of several masters, "deleted" outranks another master's "not found" (one that has not
    // heard the news: here a master of no cluster at all, asked first).
    const unaware = await master();
    const both = await new MasterClient([unaware.base, m.base])
      .lookupVolume(volumeIdOf(gone.fid))
      .catch((e: unknown) => e);
    expect(both).toBeInstanceOf(VolumeDeletedError);
    await unaware.close();
    // A volume never deleted that nobody holds is the plain 404, and a live one answers.
    expect(await lookupAnswer(m.base, 99_999)).toEqual({ status: 404, code: 'not_found' });
    expect((await lookupOk(m.base, kept.fid)).locations.length).toBe(1);
    // Kept in the state file, as ranges.
    const saved = JSON.parse(readFileSync(join(mdir, 'master-state.json'), 'utf8')) as {
      deletedVolumes: Array<[number, number]>;
    };
    for (const id of goneIds)
      expect(saved.deletedVolumes.some(([first, last]) => first <= id && id <= last)).toBe(true);

    // A restarted master has never seen the volumes: it knows they were deleted from its state alone.
    await m.close();
    m = await master({ mdir, port });
    await waitForNodes(m, 1);
    for (const id of goneIds)
      expect(await lookupAnswer(m.base, id)).toEqual({ status: 410, code: 'volume_deleted' });
    expect(await lookupAnswer(m.base, 99_999)).toEqual({ status: 404, code: 'not_found' });
    expect((await lookupOk(m.base, kept.fid)).locations.length).toBe(1);
    await vs.stop();
  });

  it('a volume with no live holder stays the 404 of an outage; a recorded one that a server still holds is looked up as usual', async () => {
    const m = await master();
    const dir = tempDir('kelp-vol-');
    let vs = await volume(m.address, { max: 20, dir });
    await waitForNodes(m, 1);
    const a = await assignOk(m.base, 'collection=down');
    await uploadOk(a.url, a.fid, randomBytes(100));
    const id = volumeIdOf(a.fid);
    await vs.stop();
    // Its holder dead (3 missed pulses): "not found", not "deleted".
    await waitFor('the master to count the server dead', () => m.topology.aliveNodes().length === 0, 10_000);
    expect(await lookupAnswer(m.base, id)).toEqual({ status: 404, code: 'not_found' });

    // Deleted while its holder is down: recorded (the master knows the copy), nothing to order.
    expect((await fetch(`${m.base}/col/delete?collection=down`, { method: 'POST' })).status).toBe(204);
    expect(await lookupAnswer(m.base, id)).toEqual({ status: 410, code: 'volume_deleted' });
    // The server comes back with it: a live holder is answered, "deleted" is only for a volume nobody holds.
    vs = await volume(m.address, { max: 20, dir });
    await waitForNodes(m, 1);
    await waitFor('the volume back in lookups', async () => (await lookupAnswer(m.base, id)).status === 200);
    expect((await lookupOk(m.base, a.fid)).locations.map((l) => l.url)).toEqual([vs.url]);
  });
});
