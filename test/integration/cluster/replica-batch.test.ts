/**
 * Replica batches (docs/decisions/0023-replica-batches.md): small replicated
 * writes that arrive while the primary's request to a replica is out go to it
 * together in one `POST /replica/batch`. What must not change: every write
 * the client was told succeeded is on every replica, byte for byte with its
 * meta; each write in a batch keeps its own answer, undo and token check; a
 * batch is replica traffic, signed in a secured cluster; a replica killed
 * with writes in flight leaves no acknowledged write missing and no failed
 * write on the primary.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterHeaders, sha256Hex } from '../../../origin/security/cluster-auth.ts';
import { signFileToken } from '../../../origin/security/jwt.ts';
import { type BatchedWrite, encodeBatch, REPLICA_BATCH_URL } from '../../../origin/volume/replica-batch.ts';
import { formatFid } from '../../../shared/fid.ts';
import { sample, scrape, total } from '../../helpers/metrics.ts';
import {
  assignOk,
  type ChildVolume,
  childVolume,
  keyOf,
  lookupOk,
  master,
  readBytes,
  replicatedPair,
  send,
  stopAll,
  volume,
  volumeIdOf,
  waitFor,
  waitForNodes,
} from './harness.ts';

afterAll(stopAll);

const D = 'kelp_http_request_duration_seconds_count';
/** Writes sent at once in a round; rounds until one batch was seen. */
const CONCURRENT_WRITES = 48;
const MAX_ROUNDS = 5;
const COOKIE = 0x5eed0000;

/** The n-th fid after `fid` in its volume (an open cluster takes any key of an assigned volume). */
function nth(fid: string, n: number): string {
  return formatFid({ volumeId: volumeIdOf(fid), key: keyOf(fid) + BigInt(n), cookie: COOKIE });
}

const change = (n: number) => `batch-test-change-${String(n).padStart(8, '0')}`;

describe('replica batches in an open cluster', () => {
  it('concurrent writes reach the replica in batches, each stored with the same bytes, meta and CRC', async () => {
    const { first, primary, replica } = await replicatedPair();
    let batches = 0;
    let n = 1;
    for (let round = 0; round < MAX_ROUNDS && batches === 0; round++) {
      const writes = Array.from({ length: CONCURRENT_WRITES }, () => {
        const i = n++;
        // Text gzips (stored gzipped on both), random bytes do not; names, pairs and MIME types vary.
        const body = i % 2 ? Buffer.from(`line ${i}\n`.repeat(40)) : randomBytes(100 + i);
        return { fid: nth(first.fid, i), body, i };
      });
      const answers = await Promise.all(
        writes.map((w) =>
          send(`${primary.base}/${w.fid}`, {
            method: 'PUT',
            body: w.body,
            headers: {
              'Content-Type': w.i % 2 ? 'text/plain' : 'application/x-blob',
              'Content-Disposition': `attachment; filename="f${w.i}.txt"`,
              'Kelp-Round': String(round),
            },
          }),
        ),
      );
      for (const r of answers) expect(r.status, await r.clone().text()).toBe(201);
      for (const w of writes) {
        const [p, r] = await Promise.all([
          fetch(`${primary.base}/${w.fid}`),
          fetch(`${replica.base}/${w.fid}`),
        ]);
        expect(r.status).toBe(200);
        expect(Buffer.from(await r.arrayBuffer()).equals(w.body), `${w.fid} byte-identical`).toBe(true);
        await p.arrayBuffer();
        for (const h of ['etag', 'content-type', 'content-disposition', 'kelp-round', 'last-modified']) {
          expect(r.headers.get(h), `${w.fid} ${h}`).toBe(p.headers.get(h));
        }
      }
      batches = sample(await scrape(replica.base), D, { route: 'replicate', status: '200' }) ?? 0;
    }
    expect(batches, 'at least one batch reached the replica').toBeGreaterThan(0);
    const s = await scrape(replica.base);
    const written = n - 1;
    const requests = total(s, D, { route: 'replicate' });
    expect(requests, 'fewer replica requests than writes').toBeLessThan(written);
    // The primary counts the same: every write sent once, in fewer requests.
    const p = await scrape(primary.base);
    expect(sample(p, 'kelp_replication_batch_writes_sum')).toBe(written);
    expect(sample(p, 'kelp_replication_batch_writes_count')).toBe(requests);
  });

  it('writes without a name or a type are stored with the same record on both copies', async () => {
    const { first, primary, replica } = await replicatedPair();
    const vid = volumeIdOf(first.fid);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const fids = Array.from({ length: CONCURRENT_WRITES }, (_, i) =>
        nth(first.fid, 1000 + round * 100 + i),
      );
      // A raw PUT: no Content-Disposition, no Content-Type.
      const answers = await Promise.all(
        fids.map((fid) => send(`${primary.base}/${fid}`, { method: 'PUT', body: randomBytes(64) })),
      );
      for (const r of answers) expect(r.status).toBe(201);
      const [p, r] = [primary, replica].map((v) => v.server.store.get(vid));
      for (const fid of fids) {
        expect(r!.map.get(keyOf(fid))?.size, fid).toBe(p!.map.get(keyOf(fid))?.size);
      }
      expect(r!.datSize, 'the same bytes appended on both').toBe(p!.datSize);
    }
    const s = await scrape(replica.base);
    expect(
      sample(s, D, { route: 'replicate', status: '200' }),
      'batches reached the replica',
    ).toBeGreaterThan(0);
  });

  it('each write of a batch gets its own answer: stored, refused as undone (409), refused as a bad fid (400)', async () => {
    const { first, replica } = await replicatedPair();
    // The primary gave up on change 2 before it arrived: the replica must refuse it.
    const undo = await fetch(`${replica.base}/${nth(first.fid, 2)}?type=replicate&undo=${change(2)}`, {
      method: 'DELETE',
    });
    expect(undo.status).toBe(200);
    const writes: BatchedWrite[] = [
      { fid: nth(first.fid, 1), change: change(1), size: 5, mime: 'text/plain', name: 'one.txt' },
      { fid: nth(first.fid, 2), change: change(2), size: 5 },
      { fid: '../etc/passwd', change: change(3), size: 5 },
    ];
    const body = encodeBatch(writes, [Buffer.from('first'), Buffer.from('taken'), Buffer.from('wrong')]);
    const res = await send(`${replica.base}${REPLICA_BATCH_URL}`, { method: 'POST', body });
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as { results: Array<{ status: number }> };
    expect(results.map((r) => r.status)).toEqual([201, 409, 400]);
    const stored = await fetch(`${replica.base}/${nth(first.fid, 1)}`);
    expect(await stored.text()).toBe('first');
    expect(stored.headers.get('content-type')).toBe('text/plain');
    expect((await readBytes(`${replica.base}/${nth(first.fid, 2)}`)).status).toBe(404);
    // Change 1 can be taken back by its id, as a write sent on its own.
    const back = await fetch(`${replica.base}/${nth(first.fid, 1)}?type=replicate&undo=${change(1)}`, {
      method: 'DELETE',
    });
    expect(await back.json()).toEqual({ undone: true });
    expect((await readBytes(`${replica.base}/${nth(first.fid, 1)}`)).status).toBe(404);
    // Only a POST is a batch.
    expect((await send(`${replica.base}${REPLICA_BATCH_URL}`, { method: 'PUT', body })).status).toBe(405);
    // Its query is `type=replicate` and nothing else.
    const unknown = await send(`${replica.base}${REPLICA_BATCH_URL}&fsync=never`, { method: 'POST', body });
    expect(unknown.status).toBe(400);
  });
});

describe('replica batches in a secured cluster', () => {
  const CLUSTER = 'batch-test-cluster-key';
  const SIGNING = 'batch-test-signing-key';
  const CLIENT = 'batch-test-client-key';
  const METRICS = 'batch-test-metrics-key';

  it('an unsigned batch is refused (401) and stores nothing; each write still needs its own token', async () => {
    const keys = { clusterKey: CLUSTER, signingKey: SIGNING };
    const m = await master({ ...keys, clientKeys: [CLIENT] });
    const a = await volume(m.address, keys);
    const b = await volume(m.address, keys);
    await waitForNodes(m, 2);
    const first = await assignOk(m.base, 'replication=001&count=2', { Authorization: `Bearer ${CLIENT}` });
    const replica = first.url === a.url ? b : a;
    const writes: BatchedWrite[] = [
      { fid: first.fid, change: change(1), size: 4, token: first.auth },
      {
        fid: `${first.fid}_1`,
        change: change(2),
        size: 4,
        token: await signFileToken('not-the-key', first.fid),
      },
    ];
    const body = encodeBatch(writes, [Buffer.from('good'), Buffer.from('evil')]);
    const unsigned = await send(`${replica.base}${REPLICA_BATCH_URL}`, { method: 'POST', body });
    expect(unsigned.status).toBe(401);
    expect((await readBytes(`${replica.base}/${first.fid}`)).status).toBe(404);
    const tampered = await send(`${replica.base}${REPLICA_BATCH_URL}`, {
      method: 'POST',
      body: Buffer.concat([body.subarray(0, -1), Buffer.from('!')]),
      headers: clusterHeaders(CLUSTER, 'POST', REPLICA_BATCH_URL, sha256Hex(body)),
    });
    expect(tampered.status).toBe(401);
    const signed = await send(`${replica.base}${REPLICA_BATCH_URL}`, {
      method: 'POST',
      body,
      headers: clusterHeaders(CLUSTER, 'POST', REPLICA_BATCH_URL, sha256Hex(body)),
    });
    expect(signed.status).toBe(200);
    const { results } = (await signed.json()) as { results: Array<{ status: number }> };
    expect(results.map((r) => r.status)).toEqual([201, 401]);
    expect((await readBytes(`${replica.base}/${first.fid}`)).body.toString()).toBe('good');
    expect((await readBytes(`${replica.base}/${first.fid}_1`)).status).toBe(404);
  });

  it('concurrent signed writes fan out in signed batches', async () => {
    const keys = { clusterKey: CLUSTER, signingKey: SIGNING };
    const m = await master({ ...keys, clientKeys: [CLIENT] });
    const a = await volume(m.address, { ...keys, metricsKey: METRICS });
    const b = await volume(m.address, { ...keys, metricsKey: METRICS });
    await waitForNodes(m, 2);
    const count = CONCURRENT_WRITES;
    let batches = 0;
    for (let round = 0; round < MAX_ROUNDS && batches === 0; round++) {
      const first = await assignOk(m.base, `replication=001&count=${count}`, {
        Authorization: `Bearer ${CLIENT}`,
      });
      const primary = first.url === a.url ? a : b;
      const replica = primary === a ? b : a;
      const bodies = Array.from({ length: count }, () => randomBytes(300));
      const answers = await Promise.all(
        bodies.map((body, i) =>
          send(`${primary.base}/${i ? `${first.fid}_${i}` : first.fid}`, {
            method: 'PUT',
            body,
            headers: { Authorization: `Bearer ${first.auth}` },
          }),
        ),
      );
      for (const r of answers) expect(r.status, await r.clone().text()).toBe(201);
      for (const [i, body] of bodies.entries()) {
        const got = await readBytes(`${replica.base}/${i ? `${first.fid}_${i}` : first.fid}`);
        expect(got.body.equals(body)).toBe(true);
      }
      const s = await scrape(replica.base, { Authorization: `Bearer ${METRICS}` });
      batches = sample(s, D, { route: 'replicate', status: '200' }) ?? 0;
    }
    expect(batches).toBeGreaterThan(0);
  });
});

describe('a replica killed with batched writes in flight', () => {
  it('every acknowledged write is on both copies after its restart; every failed one is gone from the primary', async () => {
    const m = await master();
    const vols: ChildVolume[] = await Promise.all([0, 1].map(() => childVolume(m.address)));
    await waitForNodes(m, 2);
    const first = await assignOk(m.base, 'replication=001');
    const vid = volumeIdOf(first.fid);
    const primary = vols.find((v) => v.url === first.url)!;
    const replica = vols.find((v) => v !== primary)!;
    const WRITES = 400;
    const WRITERS = 16;
    const KILL_AFTER_ACKS = 60;
    const outcome = new Map<string, { status: number; body: Buffer }>();
    let acked = 0;
    let next = 1;
    let killed: Promise<void> | undefined;
    const writer = async () => {
      while (next <= WRITES) {
        const fid = nth(first.fid, next++);
        const body = randomBytes(1024);
        const res = await send(`${primary.base}/${fid}`, { method: 'PUT', body });
        await res.arrayBuffer();
        outcome.set(fid, { status: res.status, body });
        if (res.status === 201 && ++acked === KILL_AFTER_ACKS) killed = replica.kill();
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, writer));
    await killed;
    // Writes did go in batches before the kill.
    const p = await scrape(primary.base);
    expect(sample(p, 'kelp_replication_batch_writes_sum')!).toBeGreaterThan(
      sample(p, 'kelp_replication_batch_writes_count')!,
    );
    const failed = [...outcome].filter(([, o]) => o.status !== 201);
    expect(acked).toBeGreaterThanOrEqual(KILL_AFTER_ACKS);
    expect(failed.length, 'writes after the kill fail').toBeGreaterThan(0);
    // 502: the fan-out failed and was taken back; 503: the master already knew a copy was gone.
    for (const [, o] of failed) expect([502, 503]).toContain(o.status);
    const back = await childVolume(m.address, { dir: replica.dir, port: Number(replica.url.split(':')[1]) });
    await waitFor(`volume ${vid} on both servers again`, async () => {
      return (await lookupOk(m.base, String(vid))).locations.length === 2;
    });
    for (const [fid, o] of outcome) {
      if (o.status === 201) {
        for (const s of [primary, back]) {
          const got = await readBytes(`${s.base}/${fid}`);
          expect(got.status, `acknowledged ${fid} on ${s.url}`).toBe(200);
          expect(got.body.equals(o.body), `acknowledged ${fid} on ${s.url}`).toBe(true);
        }
      } else {
        expect((await readBytes(`${primary.base}/${fid}`)).status, `failed ${fid} on the primary`).toBe(404);
      }
    }
  });
});
