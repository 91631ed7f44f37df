/**
 * A master in this process and three volume servers as separate processes
 * (fixtures/volume-process.ts), one-second pulses: the full blob life cycle
 * through the master, then replication "001" and what happens when one of the
 * replicas is killed with SIGKILL.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LookupResponse } from '../../../shared/api.ts';
import { formatFid } from '../../../shared/fid.ts';
import {
  assignOk,
  type ChildVolume,
  childVolume,
  json,
  keyOf,
  lookupOk,
  master,
  readBytes,
  stopAll,
  type TestMaster,
  upload,
  uploadOk,
  volumeIdOf,
  waitFor,
  waitForNodes,
} from './harness.ts';

let m: TestMaster;
let vols: ChildVolume[];

beforeAll(async () => {
  m = await master();
  vols = await Promise.all([0, 1, 2].map(() => childVolume(m.address, { max: 12 })));
  await waitForNodes(m, 3);
});

afterAll(stopAll);

describe('three volume servers as separate processes', () => {
  it('assign → upload → lookup → read → delete through the master', async () => {
    const blobs: Array<{ fid: string; url: string; data: Buffer }> = [];
    for (let i = 0; i < 8; i++) {
      const a = await assignOk(m.base);
      expect(a.count).toBe(1);
      expect(vols.map((v) => v.url)).toContain(a.url);
      const data = randomBytes(1000 + i * 517);
      const up = await uploadOk(a.url, a.fid, data, `blob-${i}.bin`);
      expect(up).toMatchObject({ name: `blob-${i}.bin`, size: data.length });
      blobs.push({ fid: a.fid, url: a.url, data });
    }
    expect(new Set(blobs.map((b) => b.fid)).size).toBe(blobs.length);

    for (const b of blobs) {
      const found = await lookupOk(m.base, b.fid);
      expect(found.volumeOrFileId).toBe(b.fid);
      // "000": exactly the server the assign named.
      expect(found.locations.map((l) => l.url)).toEqual([b.url]);
      const viaLookup = await readBytes(`${found.locations[0]!.publicUrl}/${b.fid}`);
      expect(viaLookup.status).toBe(200);
      expect(viaLookup.body.equals(b.data)).toBe(true);
      // A volume is on one server only: the others answer 404.
      for (const v of vols.filter((x) => x.url !== b.url)) {
        expect((await readBytes(`${v.base}/${b.fid}`)).status).toBe(404);
      }
    }

    const gone = blobs[0]!;
    const del = await fetch(`http://${gone.url}/${gone.fid}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    expect(((await del.json()) as { size: number }).size).toBeGreaterThan(0);
    expect((await readBytes(`${gone.url}/${gone.fid}`)).status).toBe(404);
    // The others are untouched.
    for (const b of blobs.slice(1))
      expect((await readBytes(`${b.url}/${b.fid}`)).body.equals(b.data)).toBe(true);
  });

  it('replication "001": two copies, one survives a SIGKILL of the other, and a dead replica stops writes', async () => {
    const a = await assignOk(m.base, 'replication=001');
    // Compressible, named, typed and with a pair: the replica must end up with the same needle.
    const data = Buffer.from('replicated line of text\n'.repeat(400));
    const form = new FormData();
    form.append('file', new Blob([data], { type: 'text/plain' }), 'replicated.txt');
    const up = await fetch(`http://${a.url}/${a.fid}`, {
      method: 'POST',
      body: form,
      headers: { 'Seaweed-Color': 'blue' },
    });
    expect(up.status, await up.clone().text()).toBe(201);
    const vid = volumeIdOf(a.fid);
    const found = await lookupOk(m.base, String(vid));
    expect(found.locations).toHaveLength(2);
    expect(found.locations.map((l) => l.url)).toContain(a.url);
    const holders = found.locations.map((l) => vols.find((v) => v.url === l.url)!);
    // Both copies are there: read each server directly.
    const seen = [];
    for (const h of holders) {
      const r = await fetch(`${h.base}/${a.fid}`);
      expect(r.status, `copy on ${h.url}`).toBe(200);
      expect(Buffer.from(await r.arrayBuffer()).equals(data)).toBe(true);
      seen.push(
        ['etag', 'content-type', 'content-disposition', 'kelp-color', 'last-modified'].map((k) =>
          r.headers.get(k),
        ),
      );
    }
    expect(seen[0]).toEqual(seen[1]);
    expect(seen[0]![3]).toBe('blue');

    // Deletes replicate too.
    const b = await assignOk(m.base, 'replication=001');
    await uploadOk(b.url, b.fid, randomBytes(100));
    const bHolders = (await lookupOk(m.base, b.fid)).locations.map((l) => l.url);
    expect(bHolders).toHaveLength(2);
    expect((await fetch(`http://${b.url}/${b.fid}`, { method: 'DELETE' })).status).toBe(202);
    for (const u of bHolders) expect((await readBytes(`${u}/${b.fid}`)).status, `delete on ${u}`).toBe(404);

    // One more blob on the same volume, to delete once a copy is gone.
    const cFid = formatFid({ volumeId: vid, key: keyOf(a.fid) + 500_000n, cookie: 0x0c0ffee0 });
    await uploadOk(a.url, cFid, randomBytes(100));

    // Kill the copy the client wrote to; the other still serves the blob.
    const victim = holders.find((h) => h.url === a.url)!;
    const survivor = holders.find((h) => h !== victim)!;
    const killedAt = Date.now();
    await victim.kill();
    const afterKill = await readBytes(`${survivor.base}/${a.fid}`);
    expect(afterKill.status).toBe(200);
    expect(afterKill.body.equals(data)).toBe(true);

    // Before the master notices, writes and deletes on the volume fail: the replica does not answer.
    const orphanKey = keyOf(a.fid) + 1_000_000n;
    const early = await upload(
      survivor.url,
      formatFid({ volumeId: vid, key: orphanKey, cookie: 1 }),
      randomBytes(9),
    );
    expect(early.status, await early.clone().text()).toBeGreaterThanOrEqual(500);
    const earlyDelete = await fetch(`${survivor.base}/${cFid}`, { method: 'DELETE' });
    expect(earlyDelete.status, await earlyDelete.clone().text()).toBeGreaterThanOrEqual(500);

    // Gone from lookups once it has missed three one-second pulses (bounded well below "never").
    await waitFor(
      'the killed server to leave /dir/lookup',
      async () => {
        const res = await fetch(`${m.base}/dir/lookup?volumeId=${vid}`);
        const body = (await res.json()) as LookupResponse;
        return res.status === 200 && !body.locations.some((l) => l.url === victim.url);
      },
      8_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(6_000);
    expect((await lookupOk(m.base, String(vid))).locations.map((l) => l.url)).toEqual([survivor.url]);

    // New "001" assigns never land on a volume with a dead copy: either none can be placed,
    // or every volume handed out has both copies alive.
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${m.base}/dir/assign?replication=001`);
      if (res.status !== 200) {
        expect([406, 503]).toContain(res.status);
        expect(((await res.json()) as { error: string }).error).toBeTruthy();
        continue;
      }
      const next = (await res.json()) as { fid: string; url: string };
      expect(volumeIdOf(next.fid)).not.toBe(vid);
      const locs = (await lookupOk(m.base, next.fid)).locations.map((l) => l.url);
      expect(locs).toHaveLength(2);
      expect(locs).not.toContain(victim.url);
      expect(locs).toContain(next.url);
    }

    const layout001 = { collection: '', replication: '001', ttl: '' };
    expect(m.topology.writable(layout001).map((v) => v.id)).not.toContain(vid);

    // A write to the volume whose other copy is dead fails loudly instead of keeping one copy.
    const orphan = formatFid({ volumeId: vid, key: orphanKey + 1n, cookie: 0x12345678 });
    const res = await upload(survivor.url, orphan, randomBytes(200));
    expect(res.status).toBeGreaterThanOrEqual(500);
    const err = await json<{ error: string }>(res, res.status);
    expect(err.error).toMatch(/cop|replica/i);

    // The killed server comes back on its port and volumes: the placement is whole again.
    const back = await childVolume(m.address, {
      dir: victim.dir,
      port: Number(victim.url.split(':')[1]),
      max: 12,
    });
    vols[vols.indexOf(victim)] = back;
    await waitFor('the restarted server to rejoin the volume', async () => {
      return (await lookupOk(m.base, String(vid))).locations.length === 2;
    });
    expect((await readBytes(`${back.base}/${a.fid}`)).body.equals(data)).toBe(true);
    expect(m.topology.writable(layout001).map((v) => v.id)).toContain(vid);
    const healed = formatFid({ volumeId: vid, key: orphanKey + 2n, cookie: 0x0abcdef0 });
    const healedData = randomBytes(300);
    await uploadOk(survivor.url, healed, healedData);
    for (const v of [survivor, back])
      expect((await readBytes(`${v.base}/${healed}`)).body.equals(healedData)).toBe(true);
  });
});
