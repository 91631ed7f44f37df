/**
 * The fence itself, on a real etcd: the master state changes only in a
 * transaction that compares the leader key's create revision with the
 * writer's term, so a leader whose term is gone cannot move the key mark or
 * the volume-id counter, whatever its own clock says. The stale writer here
 * is a stand-in for a leadership object (it reports a term that is no longer
 * current): the gap between a leader's clock check and its transaction is a
 * fault no real process produces on demand.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdLeadership, type Term } from '../../../origin/master/election.ts';
import { etcdClient } from '../../../origin/master/etcd-client.ts';
import { EtcdStateStore } from '../../../origin/master/etcd-state-store.ts';
import { Sequencer } from '../../../origin/master/sequencer.ts';
import { NotLeaderError } from '../../../shared/errors.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { type EtcdCluster, startEtcdCluster } from './etcd.ts';
import { waitFor } from './harness.ts';

let etcd: EtcdCluster;
beforeAll(async () => {
  etcd = await startEtcdCluster(3);
}, 120_000);
afterAll(async () => {
  await etcd?.stop();
});

describe('fencing by the leader term', () => {
  it("a writer holding a past term is refused (NotLeaderError) and changes nothing; the next leader's keys and ids are new", async () => {
    const client = etcdClient(etcd.endpoints);
    const prefix = `fence-${process.pid}`;
    const logs: string[] = [];
    const a = new EtcdLeadership({ client, prefix, log: captureLogs(logs).logger });
    const b = new EtcdLeadership({ client, prefix, log: captureLogs(logs).logger });
    try {
      a.start('127.0.0.1:1');
      await waitFor('a to lead', () => a.isLeader());
      const storeA = new EtcdStateStore(client, prefix, a);
      const seqA = await Sequencer.open(storeA, { guard: () => a.assertLeader(), batch: 100n });
      const keysA = await Promise.all(Array.from({ length: 50 }, () => seqA.take(1)));
      await storeA.update((s) => ({ ...s, maxVolumeId: s.maxVolumeId + 1 }));
      const termA: Term = a.currentTerm();

      // a goes (its lease revoked, as etcd expires it for a leader gone quiet); b takes over.
      b.start('127.0.0.1:2');
      await a.close();
      await waitFor('b to lead', () => b.isLeader());
      expect(b.currentTerm().revision).not.toBe(termA.revision);
      const storeB = new EtcdStateStore(client, prefix, b);
      const seqB = await Sequencer.open(storeB, { guard: () => b.assertLeader(), batch: 100n });
      const keysB = await Promise.all(Array.from({ length: 50 }, () => seqB.take(1)));
      let maxA = 0n;
      for (const k of keysA) if (k > maxA) maxA = k;
      for (const k of keysB) expect(k).toBeGreaterThan(maxA);

      // A writer still holding a's term: refused, and the state is as b left it.
      let deposed = '';
      const stale = {
        currentTerm: () => termA,
        deposed: (why: string) => {
          deposed = why;
        },
      } as unknown as EtcdLeadership;
      const staleStore = new EtcdStateStore(client, prefix, stale);
      const before = await storeB.load();
      await expect(
        staleStore.update((s) => ({ ...s, maxFileKey: s.maxFileKey + 1_000n })),
      ).rejects.toBeInstanceOf(NotLeaderError);
      await expect(
        staleStore.update((s) => ({ ...s, maxVolumeId: s.maxVolumeId + 1 })),
      ).rejects.toBeInstanceOf(NotLeaderError);
      expect(await storeB.load()).toEqual(before);
      expect(deposed).toMatch(/newer term/);
      // And a itself, closed, takes nothing.
      await expect(seqA.take(1)).rejects.toBeInstanceOf(NotLeaderError);
      expect(logs.join('\n')).toMatch(/127\.0\.0\.1:1: no longer the leader/);
    } finally {
      await a.close();
      await b.close();
      client.close();
    }
  }, 60_000);
});
