/**
 * Edge heat with several masters (docs/decisions/0010-origin-free-reads.md § 5),
 * on a real etcd and real `kelp master` processes: a report sent to a follower
 * reaches the leader (forwarded with its body, the key checked first), the
 * leader saves its counts in etcd at the persist interval and followers load
 * them, so after a kill -9 of the leader the new one's tier policy still sees
 * the heat, and goes on adding to it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdCluster, freePort, startEtcdCluster } from './etcd.ts';
import {
  agreedLeader,
  aliveNodes,
  assignAt,
  type KelpProcess,
  masterProcess,
  onStop,
  stopAll,
  volumeProcess,
  waitFor,
} from './harness.ts';

const HEAT_KEY = 'masters-edge-heat-test-key';
/** The leader saves, and followers load, once a second here (5 minutes by default). */
const PERSIST = '1s';

let etcd: EtcdCluster;

beforeAll(async () => {
  // One member is enough here: failover.test.ts covers etcd's own failures.
  etcd = await startEtcdCluster(1);
  onStop(() => etcd.stop());
}, 120_000);

afterAll(stopAll, 60_000);

async function report(address: string, reads: Record<string, number>, key = HEAT_KEY) {
  return fetch(`http://${address}/edge/heat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reads }),
    signal: AbortSignal.timeout(5_000),
  });
}

/** The volume's edgeReadsPerDay in the master's /vol/status (what the tiering service reads). */
async function edgeReads(address: string, volumeId: number): Promise<number | undefined> {
  const res = await fetch(`http://${address}/vol/status`, { signal: AbortSignal.timeout(2_000) });
  const body = (await res.json()) as { Volumes: Array<{ id: number; edgeReadsPerDay?: number }> };
  return body.Volumes.find((v) => v.id === volumeId)?.edgeReadsPerDay;
}

describe('edge heat across three masters on etcd', () => {
  it('a follower forwards reports to the leader; followers load the saved counts; a new leader after kill -9 keeps them', async () => {
    const prefix = `heat-${process.pid}`;
    const ports = [await freePort(), await freePort(), await freePort()];
    const masters: KelpProcess[] = [];
    for (const port of ports) {
      masters.push(
        await masterProcess({
          port,
          etcd: etcd.endpoints,
          prefix,
          args: ['--edgeHeatPersistInterval', PERSIST],
          env: { KELP_EDGE_HEAT_KEYS: HEAT_KEY },
        }),
      );
    }
    const addresses = masters.map((m) => m.address);
    await volumeProcess({ masters: addresses });
    await waitFor('every master to see the volume server', async () =>
      (await Promise.all(addresses.map(aliveNodes))).every((n) => n === 1),
    );
    const leader = await waitFor('one leader all masters agree on', () => agreedLeader(addresses));
    const assigned = await assignAt(leader);
    if (!assigned.ok) throw new Error(`assign: ${assigned.status} ${assigned.error}`);
    const vid = Number(assigned.a.fid.split(',')[0]);
    const [follower, other] = addresses.filter((a) => a !== leader) as [string, string];
    await waitFor('every master to know the volume', async () =>
      (await Promise.all(addresses.map((a) => edgeReads(a, vid)))).every((n) => n !== undefined),
    );

    // A wrong key is refused by the follower itself, and nothing reaches the leader.
    expect((await report(follower, { [vid]: 1_000 }, 'not-the-key')).status).toBe(401);
    const sent = await report(follower, { [vid]: 7 });
    expect(sent.status).toBe(200);
    expect(await sent.json()).toEqual({ volumes: 1 });
    // Forwarded at once: the leader's own count, not a copy loaded later.
    expect(await edgeReads(leader, vid)).toBe(7);
    // The other follower loads what the leader saved.
    await waitFor(
      'the other follower to load the saved heat',
      async () => (await edgeReads(other, vid)) === 7,
    );

    const old = masters[addresses.indexOf(leader)]!;
    await old.kill();
    const survivors = addresses.filter((a) => a !== leader);
    const next = await waitFor('a new leader', () => agreedLeader(survivors), 20_000);
    expect(await edgeReads(next, vid), 'the heat survived the leader').toBe(7);
    // Reports go on adding to it, through whichever master the edge reaches.
    expect((await report(survivors.find((a) => a !== next)!, { [vid]: 5 })).status).toBe(200);
    expect((await report(next, { [vid]: 1 })).status).toBe(200);
    expect(await edgeReads(next, vid)).toBe(13);
  }, 90_000);
});
