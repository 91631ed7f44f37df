/**
 * A replicated write leaves the same record on both copies, byte for byte,
 * whichever way it reached the replica: in a batch (replica-batch.test.ts) or
 * as a request of its own (a lone write, or one too large for a batch).
 * Replicas of a volume must hold equal `.dat` files: they share one tier
 * object (tier-share.ts), read at the offsets of each one's own index.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_BATCHED_WRITE_BYTES } from '../../../origin/volume/replica-batch.ts';
import { formatFid } from '../../../shared/fid.ts';
import { MAX_NAME_BYTES } from '../../../shared/needle.ts';
import {
  assignOk,
  keyOf,
  master,
  replicatedPair,
  send,
  stopAll,
  volume,
  volumeIdOf,
  waitForNodes,
} from './harness.ts';

afterAll(stopAll);

const COOKIE = 0x7ec0_0000;

describe('replicated records', () => {
  it('a write sent on its own is stored with the same record on the replica: no name, a name too long to keep, a large body', async () => {
    const { first, primary, replica } = await replicatedPair();
    const vid = volumeIdOf(first.fid);
    const fid = (n: number) =>
      formatFid({ volumeId: vid, key: keyOf(first.fid) + BigInt(n), cookie: COOKIE });
    const form = (name: string, data: Uint8Array) => {
      const f = new FormData();
      f.append('file', new Blob([data], { type: 'image/png' }), name);
      return f;
    };
    // One at a time, so each finds its replica idle and goes as a request of its own.
    const writes: Array<
      [string, { method: string; headers?: Record<string, string>; body: Uint8Array | FormData }]
    > = [
      [fid(1), { method: 'PUT', body: randomBytes(100) }],
      [fid(2), { method: 'POST', body: form('é'.repeat(MAX_NAME_BYTES), randomBytes(100)) }],
      [fid(3), { method: 'POST', body: form('short.png', randomBytes(MAX_BATCHED_WRITE_BYTES + 1)) }],
      [
        fid(4),
        {
          method: 'PUT',
          headers: { 'Content-Type': 'text/plain' },
          body: randomBytes(MAX_BATCHED_WRITE_BYTES * 2),
        },
      ],
    ];
    for (const [f, init] of writes) {
      const r = await send(`${primary.base}/${f}`, init);
      expect(r.status, f).toBe(201);
    }
    const [p, r] = [primary, replica].map((v) => v.server.store.get(vid)!);
    for (const [f] of writes) expect(r!.map.get(keyOf(f))?.size, f).toBe(p!.map.get(keyOf(f))?.size);
    expect(r!.datSize, 'the same bytes appended on both').toBe(p!.datSize);
  });
  it('noname= is replica traffic and takes only true: anything else is a 400 that stores nothing', async () => {
    const m = await master();
    const v = await volume(m.address);
    await waitForNodes(m, 1);
    const { fid } = await assignOk(m.base);
    for (const query of ['noname=true', 'type=replicate&noname=1', 'type=replicate&noname=']) {
      const r = await send(`${v.base}/${fid}?${query}`, { method: 'PUT', body: randomBytes(10) });
      expect(r.status, query).toBe(400);
    }
    expect(v.server.store.get(volumeIdOf(fid))!.map.get(keyOf(fid))).toBeUndefined();
    const named = await send(`${v.base}/${fid}?type=replicate&noname=true`, {
      method: 'PUT',
      headers: { 'Content-Disposition': 'attachment; filename="kept.txt"' },
      body: randomBytes(10),
    });
    expect(named.status).toBe(201);
    const read = await fetch(`${v.base}/${fid}`);
    expect(read.headers.get('content-disposition'), 'stored without a name').not.toContain('kept.txt');
  });
});
