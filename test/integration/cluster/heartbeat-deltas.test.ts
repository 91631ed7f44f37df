/**
 * Heartbeat deltas (docs/decisions/0014-heartbeat-deltas.md): a volume server
 * sends a master its full list once, then only what changed since the beat
 * that master acknowledged. A real volume server beats a real master through
 * a recording relay (a plain HTTP forwarder on 127.0.0.1, so the test sees
 * each beat's body); the relay can also be pointed at another master, which
 * is what a master restarted at the same address looks like to the server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { FULL_BEAT_EVERY } from '../../../origin/volume/heartbeat.ts';
import type { HeartbeatRequest } from '../../../shared/api.ts';
import { lookupOk, master, stopAll, type TestMaster, volume, waitFor } from './harness.ts';

/** Forwards POST /heartbeat to `target` and keeps each body it forwarded, with the master's reply. */
async function relay(target: () => string) {
  const beats: Array<{ beat: HeartbeatRequest; reply: Record<string, unknown> }> = [];
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', async () => {
      const body = Buffer.concat(parts).toString();
      try {
        const up = await fetch(`http://${target()}${req.url}`, {
          method: req.method,
          headers: { 'Content-Type': 'application/json' },
          body,
        });
        const text = await up.text();
        if (req.url === '/heartbeat' && up.ok) {
          beats.push({ beat: JSON.parse(body) as HeartbeatRequest, reply: JSON.parse(text) });
        }
        res.writeHead(up.status, { 'Content-Type': 'application/json' }).end(text);
      } catch {
        res.writeHead(502).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { address, beats, close: () => new Promise((r) => server.close(r)) };
}

const isDelta = (b: HeartbeatRequest) => b.deltaOf !== undefined;

async function volStatus(m: TestMaster, id: number) {
  const res = await fetch(`${m.base}/vol/status`);
  const body = (await res.json()) as { Volumes: Array<{ id: number; readOnly: boolean }> };
  return body.Volumes.find((v) => v.id === id);
}

afterAll(stopAll);

describe('heartbeat deltas', () => {
  it('sends the full list first, then deltas: a volume added, made read-only and removed shows up at the master', async () => {
    const m = await master();
    const r = await relay(() => m.address);
    try {
      const v = await volume(r.address);
      const post = (path: string) => fetch(`${v.base}${path}`, { method: 'POST' });
      expect((await post('/admin/assign_volume?volume=71')).status).toBe(200);
      await waitFor('a delta beat', () => r.beats.some((b) => isDelta(b.beat)), 10_000);
      // The first beat is a full list; the master's session comes back and the next ones are deltas on it.
      const first = r.beats[0]!;
      expect(isDelta(first.beat)).toBe(false);
      expect(typeof first.reply.session).toBe('string');
      const delta = r.beats.find((b) => isDelta(b.beat))!.beat;
      expect(delta.deltaOf).toBe(first.reply.session);
      expect((await lookupOk(m.base, '71')).locations.map((l) => l.url)).toEqual([v.url]);

      // Added behind the master's back (straight to the volume server): only a delta can tell it.
      const before = r.beats.length;
      expect((await post('/admin/assign_volume?volume=72')).status).toBe(200);
      await waitFor(
        'volume 72 known at the master',
        async () => (await fetch(`${m.base}/dir/lookup?volumeId=72`)).status === 200,
        10_000,
      );
      const told = r.beats.slice(before).find((b) => b.beat.volumes.some((x) => x.id === 72))!.beat;
      expect(isDelta(told)).toBe(true);
      // A delta carries what changed, not the unchanged volume 71.
      expect(told.volumes.map((x) => x.id)).not.toContain(71);

      expect((await post('/admin/readonly?volume=72')).status).toBe(200);
      await waitFor(
        'volume 72 read-only at the master',
        async () => (await volStatus(m, 72))?.readOnly === true,
        10_000,
      );
      expect((await volStatus(m, 71))?.readOnly).toBe(false);

      await v.server.store.deleteVolume(72);
      await waitFor(
        'volume 72 gone from the master',
        async () => (await fetch(`${m.base}/dir/lookup?volumeId=72`)).status === 404,
        10_000,
      );
      const gone = r.beats.find((b) => b.beat.deletedVolumes?.includes(72))!.beat;
      expect(isDelta(gone)).toBe(true);
      expect((await lookupOk(m.base, '71')).locations).toHaveLength(1);

      // A full list again every FULL_BEAT_EVERY beats, even with nothing changing.
      await waitFor('a full list again', () => r.beats.length > FULL_BEAT_EVERY + 1, 30_000);
      const fulls = r.beats.slice(0, FULL_BEAT_EVERY + 2).filter((b) => !isDelta(b.beat));
      expect(fulls.length).toBeGreaterThanOrEqual(2);
    } finally {
      await r.close();
    }
  }, 60_000);

  it('a restarted master (a new session at the same address) asks for the full list and gets it at once', async () => {
    const first = await master();
    let target = first.address;
    const r = await relay(() => target);
    try {
      const v = await volume(r.address);
      const post = (path: string) => fetch(`${v.base}${path}`, { method: 'POST' });
      expect((await post('/admin/assign_volume?volume=81')).status).toBe(200);
      await waitFor('two delta beats', () => r.beats.filter((b) => isDelta(b.beat)).length >= 2, 10_000);
      const oldSession = r.beats[0]!.reply.session;

      await first.close();
      const second = await master();
      target = second.address;
      const from = r.beats.length;
      // The new master knows volume 81 although the server was sending deltas when it came up.
      await waitFor(
        'volume 81 at the new master',
        async () => (await fetch(`${second.base}/dir/lookup?volumeId=81`)).status === 200,
        10_000,
      );
      const after = r.beats.slice(from);
      // What reached the new master: at most a delta it refused (it asked for the full list), then the full list.
      const refused = after.filter((b) => b.reply.fullListWanted === true);
      for (const b of refused) expect(b.beat.deltaOf).toBe(oldSession);
      const full = after.find((b) => !isDelta(b.beat))!;
      expect(full.beat.volumes.map((x) => x.id)).toContain(81);
      expect(full.reply.session).not.toBe(oldSession);
      expect(after.indexOf(full)).toBeLessThanOrEqual(refused.length);
    } finally {
      await r.close();
    }
  }, 60_000);

  it('the master refuses a delta from a server it does not know, and deletedVolumes outside a delta (400)', async () => {
    const m = await master();
    const hb = {
      url: '127.0.0.1:1',
      publicUrl: '',
      dataCenter: 'dc',
      rack: 'r',
      maxVolumeCount: 8,
      maxFileKey: '0',
      volumes: [],
    };
    const post = (body: unknown) =>
      fetch(`${m.base}/heartbeat`, { method: 'POST', body: JSON.stringify(body) });
    const first = (await (await post(hb)).json()) as { session: string };
    const unknown = await post({ ...hb, url: '127.0.0.1:2', deltaOf: first.session });
    expect(unknown.status).toBe(200);
    expect(((await unknown.json()) as { fullListWanted?: boolean }).fullListWanted).toBe(true);
    expect(m.topology.nodes.has('127.0.0.1:2')).toBe(false);
    expect((await post({ ...hb, deletedVolumes: [3] })).status).toBe(400);
    const stale = await post({ ...hb, deltaOf: 'another-session' });
    expect(((await stale.json()) as { fullListWanted?: boolean }).fullListWanted).toBe(true);
  });
});
