/**
 * Deleted volumes with several masters (origin/master/deleted-volumes.ts), on a
 * real etcd and real `kelp master` processes: a collection delete sent to a
 * follower is forwarded to the leader, which records the volume ids in etcd
 * before it orders the deletes; every master then answers the lookup of those
 * volumes 410 volume_deleted, followers from the store, and so do a new leader
 * after a kill -9 and a master started afresh (its own --mdir empty).
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

let etcd: EtcdCluster;

beforeAll(async () => {
  // One member is enough here: failover.test.ts covers etcd's own failures.
  etcd = await startEtcdCluster(1);
  onStop(() => etcd.stop());
}, 120_000);

afterAll(stopAll, 60_000);

async function lookupStatus(address: string, volumeId: number): Promise<string> {
  const res = await fetch(`http://${address}/dir/lookup?volumeId=${volumeId}`, {
    signal: AbortSignal.timeout(2_000),
  });
  const body = (await res.json()) as { code?: string };
  return `${res.status} ${body.code ?? 'ok'}`;
}

describe('deleted volumes across three masters on etcd', () => {
  it('every master answers 410 volume_deleted after a collection delete sent to a follower; so do a new leader after kill -9 and a fresh master', async () => {
    const prefix = `deleted-${process.pid}`;
    const ports = [await freePort(), await freePort(), await freePort()];
    const masters: KelpProcess[] = [];
    for (const port of ports) masters.push(await masterProcess({ port, etcd: etcd.endpoints, prefix }));
    const addresses = masters.map((m) => m.address);
    await volumeProcess({ masters: addresses });
    await waitFor('every master to see the volume server', async () =>
      (await Promise.all(addresses.map(aliveNodes))).every((n) => n === 1),
    );
    const leader = await waitFor('one leader all masters agree on', () => agreedLeader(addresses));
    const assigned = await assignAt(leader, 'collection=gone');
    if (!assigned.ok) throw new Error(`assign: ${assigned.status} ${assigned.error}`);
    const vid = Number(assigned.a.fid.split(',')[0]);
    const [follower] = addresses.filter((a) => a !== leader) as [string];
    await waitFor('every master to know the volume', async () =>
      (await Promise.all(addresses.map((a) => lookupStatus(a, vid)))).every((s) => s === '200 ok'),
    );

    const deleted = await fetch(`http://${follower}/col/delete?collection=gone`, {
      method: 'POST',
      signal: AbortSignal.timeout(10_000),
    });
    expect(deleted.status).toBe(204);
    // Followers drop the volume from their topology with the server's next beat, then read the store.
    await waitFor('every master to say the volume was deleted', async () =>
      (await Promise.all(addresses.map((a) => lookupStatus(a, vid)))).every(
        (s) => s === '410 volume_deleted',
      ),
    );

    const old = masters[addresses.indexOf(leader)]!;
    await old.kill();
    const survivors = addresses.filter((a) => a !== leader);
    const next = await waitFor('a new leader', () => agreedLeader(survivors), 20_000);
    expect(await lookupStatus(next, vid)).toBe('410 volume_deleted');
    // A master that never saw the volume, with an empty --mdir of its own: etcd's state alone.
    const fresh = await masterProcess({
      port: ports[addresses.indexOf(leader)]!,
      etcd: etcd.endpoints,
      prefix,
    });
    await waitFor(
      'the fresh master to see the volume server',
      async () => (await aliveNodes(fresh.address)) === 1,
    );
    expect(await lookupStatus(fresh.address, vid)).toBe('410 volume_deleted');
    // A volume nobody ever deleted or held stays the plain 404.
    expect(await lookupStatus(fresh.address, vid + 1000)).toBe('404 not_found');
  }, 120_000);
});
