/**
 * The shared client (shared/client/) against a real secured master and two
 * volume servers: what it sends (the caller's sign hook), how it fails over
 * between masters, its timeout, and how error answers come back as the
 * KelpError their body names.
 *
 * Two stand-ins, because a real master cannot produce these faults on demand:
 * a server that accepts the connection and never answers (a hung master), and
 * one that answers 503 `not_leader` (a master while no leader is elected).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MasterClient } from '../../../shared/client/master-client.ts';
import { VolumeClient } from '../../../shared/client/volume-client.ts';
import {
  InvalidPlacementError,
  type KelpError,
  NoAnswerError,
  NotFoundError,
  NotLeaderError,
  UnauthorizedError,
  UnavailableError,
} from '../../../shared/errors.ts';
import { freePort } from '../../support/ports.ts';
import { randomBlob } from '../../support/random.ts';
import { master, stopAll, type TestMaster, volume, waitForNodes } from './harness.ts';

const SIGNING_KEY = 'api-client-test-signing-key';
const CLIENT_KEY = 'api-client-test-client-key';

let m: TestMaster;
/** A second master no volume server reports to: it knows no location (as one that just started). */
let empty: TestMaster;
let hung: Server;
let hungUrl: string;
let notLeader: Server;
let notLeaderUrl: string;
let notLeaderHits = 0;

/** The caller's credentials, as origin plugs withClusterAuth and the edge its bearer. */
const signed: { method: string; url: string }[] = [];
const asClient = {
  sign: (method: string, url: string, headers: Record<string, string>) => {
    signed.push({ method, url });
    return { ...headers, Authorization: `Bearer ${CLIENT_KEY}` };
  },
};

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  m = await master({ signingKey: SIGNING_KEY, clientKeys: [CLIENT_KEY], defaultReplication: '001' });
  empty = await master();
  await Promise.all([0, 1].map(() => volume(m.address, { signingKey: SIGNING_KEY })));
  await waitForNodes(m, 2);
  // Takes the connection, never answers (closed in afterAll).
  hung = createServer(() => {});
  hungUrl = await listen(hung);
  notLeader = createServer((_req, res) => {
    notLeaderHits++;
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '2' });
    res.end(JSON.stringify({ error: 'no leader is elected yet; retry shortly', code: 'not_leader' }));
  });
  notLeaderUrl = await listen(notLeader);
});

afterAll(async () => {
  hung.closeAllConnections();
  notLeader.closeAllConnections();
  await Promise.all([hung, notLeader].map((s) => new Promise((r) => s.close(r))));
  await stopAll();
});

describe('the shared API client against a real master', () => {
  it('assigns, uploads, reads and deletes, the credentials coming from the sign hook', async () => {
    signed.length = 0;
    const masters = new MasterClient(m.address, asClient);
    const volumes = new VolumeClient();
    const assigned = await masters.assign(new URLSearchParams({ replication: '001' }));
    expect(signed).toEqual([{ method: 'POST', url: `${m.base}/dir/assign?replication=001` }]);
    expect(assigned.auth).toBeTruthy();
    const data = randomBlob(5_000);
    const form = new FormData();
    form.append('file', new Blob([data]), 'blob.bin');
    const stored = await volumes.upload(assigned.url, assigned.fid, form, { token: assigned.auth! });
    expect(stored.size).toBe(5_000);

    const got = await volumes.read(assigned.url, assigned.fid);
    expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);

    // A token comes back only for an authenticated client: the hook is what makes this one.
    const { lookup, token } = await masters.lookupFile(assigned.fid);
    expect(lookup.locations).toHaveLength(2);
    expect(token).toBeTruthy();
    const anonymous = await new MasterClient(m.address).lookupFile(assigned.fid);
    expect(anonymous.token).toBeUndefined();

    expect((await volumes.delete(lookup.locations[0]!.url, assigned.fid, { token: token! })).size).toBe(
      5_000,
    );
    await expect(volumes.read(assigned.url, assigned.fid)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('reads error bodies back as typed KelpErrors, and does not ask another master for them', async () => {
    const anonymous = new MasterClient([m.address, notLeaderUrl]);
    const before = notLeaderHits;
    const refused = await anonymous.assign(new URLSearchParams()).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UnauthorizedError);
    expect((refused as Error).message).toContain(`POST ${m.base}/dir/assign`);
    const badPlacement = await new MasterClient(m.address, asClient)
      .assign(new URLSearchParams({ replication: 'x' }))
      .catch((e: unknown) => e);
    expect(badPlacement).toBeInstanceOf(InvalidPlacementError);
    // The cluster's answer is final: the second master was never asked.
    expect(notLeaderHits).toBe(before);
    await expect(new MasterClient(m.address).lookupVolume(4242)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('passes over a master that is down, and one that knows no location yet', async () => {
    const assigned = await new MasterClient(m.address, asClient).assign(new URLSearchParams());
    const volumeId = Number(assigned.fid.split(',')[0]);
    const dead = `127.0.0.1:${await freePort()}`;
    const found = await new MasterClient([dead, empty.address, m.address]).lookupVolume(volumeId);
    expect(found.locations.map((l) => l.url).sort()).toEqual(
      (await new MasterClient(m.address).lookupVolume(volumeId)).locations.map((l) => l.url).sort(),
    );
    // `enough` the caller's: fewer than it needs, and the best answer is kept while the rest are asked.
    const needThree = await new MasterClient([m.address, empty.address]).lookupVolume(volumeId, {
      enough: (l) => l.locations.length >= 3,
    });
    expect(needThree.locations).toHaveLength(2);
    // Only masters that know nothing: not found, not unavailable.
    await expect(new MasterClient([empty.address]).lookupVolume(volumeId)).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('says no master answered when none did, each failure in the message', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const err = await new MasterClient(dead).lookupVolume(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect((err as Error).cause).toBeInstanceOf(NoAnswerError);
  });

  it('times out a master that never answers, after the timeout it was given, then asks the next', async () => {
    const timeoutMs = 300;
    const started = Date.now();
    const found = await new MasterClient([hungUrl, m.address], { timeoutMs }).volumes();
    const took = Date.now() - started;
    expect(found.volumes.length).toBeGreaterThan(0);
    expect(took).toBeGreaterThanOrEqual(timeoutMs);
    const err = await new MasterClient(hungUrl).json('/vol/status', { timeoutMs }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain('timed out');
  });

  it('asks again for `rounds` rounds while a master says "not now", and not when all are down', async () => {
    const before = notLeaderHits;
    const err = await new MasterClient(notLeaderUrl, { rounds: 3, roundPauseMs: 10 })
      .volumes()
      .catch((e: unknown) => e);
    expect(notLeaderHits - before).toBe(3);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as KelpError).retryAfter).toBe(2);
    expect((err as Error).cause).toBeInstanceOf(NotLeaderError);
    // Not now, then a master that answers: the first round gets through.
    const ok = await new MasterClient([notLeaderUrl, m.address], { rounds: 3, roundPauseMs: 10 }).volumes();
    expect(ok.volumes.length).toBeGreaterThan(0);
    expect(notLeaderHits - before).toBe(4);
    // Every master down: one round only, then the error (no wait for nobody).
    const dead = `127.0.0.1:${await freePort()}`;
    const started = Date.now();
    await expect(
      new MasterClient(dead, { rounds: 50, roundPauseMs: 1_000 }).volumes(),
    ).rejects.toBeInstanceOf(UnavailableError);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
