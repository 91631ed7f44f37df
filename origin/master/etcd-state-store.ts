/**
 * The master's durable state in etcd, shared by several masters: one key,
 * `<prefix>/state`, JSON like the file store's. Only the leader changes it,
 * and each change is one transaction that succeeds only if
 *
 *   - the leader key's create revision is still the leader's term (a deposed
 *     leader's write fails: the fence), and
 *   - the state key's mod revision is the one read (nothing changed between).
 *
 * etcd commits a transaction to a majority of its members' disks before it
 * answers, so a reservation that succeeded survives kills of masters and of a
 * minority of etcd members alike.
 */
import type { Etcd3 } from 'etcd3';
import { CorruptDataError, NotLeaderError, UnavailableError } from '../../shared/errors.ts';
import type { EtcdLeadership } from './election.ts';
import {
  decodeState,
  EMPTY_STATE,
  encodeState,
  type MasterState,
  type MasterStateStore,
} from './state-store.ts';

/** Transactions one update tries before it gives up (the leader is the only writer: 1 is the rule). */
const MAX_TXN_ATTEMPTS = 5;
/** Longest one etcd call may take before the update fails (a 503 the client retries). */
export const ETCD_CALL_TIMEOUT_MS = 2_000;

export class EtcdStateStore implements MasterStateStore {
  private readonly client: Etcd3;
  private readonly key: string;
  /** The edge heat snapshot (edge-heat-store.ts), beside the state. */
  private readonly heatKey: string;
  private readonly leadership: EtcdLeadership;
  /** Updates of this process, one after another (each is a read and a transaction). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(client: Etcd3, prefix: string, leadership: EtcdLeadership) {
    this.client = client;
    this.key = `${prefix.replace(/\/+$/, '')}/state`;
    this.heatKey = `${prefix.replace(/\/+$/, '')}/edge-heat`;
    this.leadership = leadership;
  }

  async load(): Promise<MasterState> {
    return (await this.read()).state;
  }

  update(change: (current: MasterState) => MasterState): Promise<MasterState> {
    const run = this.queue.then(() => this.updateNow(change));
    this.queue = run.catch(() => {});
    return run;
  }

  async loadEdgeHeat(): Promise<string | undefined> {
    try {
      return (await this.client.get(this.heatKey).string()) ?? undefined;
    } catch (err) {
      throw new UnavailableError('etcd did not answer; retry shortly', 1, { cause: err });
    }
  }

  /** Fenced by the term like the state: a deposed leader's older counts do not overwrite the new leader's. */
  async saveEdgeHeat(snapshot: string): Promise<void> {
    const term = this.leadership.currentTerm();
    let res: Awaited<ReturnType<ReturnType<Etcd3['if']>['commit']>>;
    try {
      res = await this.client
        .if(term.key, 'Create', '==', term.revision)
        .then(this.client.put(this.heatKey).value(snapshot))
        .commit();
    } catch (err) {
      throw new UnavailableError('etcd did not answer; retry shortly', 1, { cause: err });
    }
    if (!res.succeeded) throw new NotLeaderError('this master is no longer the leader', 1);
  }

  private async read(): Promise<{ state: MasterState; modRevision: string }> {
    let res: Awaited<ReturnType<ReturnType<Etcd3['get']>['exec']>>;
    try {
      res = await this.client.get(this.key).exec();
    } catch (err) {
      throw new UnavailableError('etcd did not answer; retry shortly', 1, { cause: err });
    }
    const kv = res.kvs[0];
    if (!kv) return { state: { ...EMPTY_STATE }, modRevision: '0' };
    try {
      return { state: decodeState(kv.value.toString()), modRevision: kv.mod_revision };
    } catch (err) {
      throw new CorruptDataError(`etcd key ${this.key} is not a valid master state`, { cause: err });
    }
  }

  private async updateNow(change: (current: MasterState) => MasterState): Promise<MasterState> {
    for (let attempt = 0; attempt < MAX_TXN_ATTEMPTS; attempt++) {
      const term = this.leadership.currentTerm();
      const { state, modRevision } = await this.read();
      const next = change(state);
      let res: Awaited<ReturnType<ReturnType<Etcd3['if']>['commit']>>;
      try {
        res = await this.client
          .if(term.key, 'Create', '==', term.revision)
          .and(this.key, 'Mod', '==', modRevision)
          .then(this.client.put(this.key).value(encodeState(next)))
          .else(this.client.get(term.key))
          .commit();
      } catch (err) {
        // Whether it committed is unknown: harmless, the mark only ever moves up and the
        // caller does not use the range it asked for.
        throw new UnavailableError('etcd did not answer; retry shortly', 1, { cause: err });
      }
      if (res.succeeded) return next;
      const leader = res.responses[0]?.response_range?.kvs[0];
      if (leader?.create_revision !== term.revision) {
        this.leadership.deposed('a newer term holds the leader key');
        throw new NotLeaderError('this master is no longer the leader', 1);
      }
      // The state moved under us (it should not: the leader is its only writer): read again.
    }
    throw new UnavailableError('the master state in etcd kept changing; retry shortly', 1);
  }
}
