/**
 * The primary's side of replica batches (replica-batch.ts): per replica, at
 * most one request in flight; small writes that arrive meanwhile wait and go
 * together in the next one. A write that finds its replica idle goes at the
 * end of the current event-loop turn (setImmediate), with the writes that
 * came in during that turn; alone, it goes as the plain per-write request.
 * No timer: batching only gathers what arrives together or would otherwise
 * queue behind the replica's fsync. Under load a replica then sees one
 * request and one group fsync per batch instead of one per write
 * (docs/decisions/0023-replica-batches.md).
 */
import {
  type BatchedResult,
  type BatchedWrite,
  MAX_BATCH_DATA_BYTES,
  MAX_BATCH_WRITES,
} from './replica-batch.ts';

/** One write waiting for its replica: both forms, as it may go alone or in a batch. */
export interface QueuedWrite {
  entry: BatchedWrite;
  data: Uint8Array;
  /** Sends it on its own (the per-write request); resolves to the replica's status. */
  alone(): Promise<number>;
}

/** Requests to one replica at once; writes that arrive meanwhile wait for the next. */
const MAX_IN_FLIGHT = 1;
/** After a replica did not understand a batch, how long its writes go one by one before a batch is tried again. */
export const UNBATCHED_AFTER_REFUSAL_MS = 60_000;

/**
 * A replica did not take a batch as one (it runs code from before batches, in
 * a rolling upgrade): its writes are sent again one by one, not failed.
 */
export class BatchNotUnderstood extends Error {}

interface Waiting extends QueuedWrite {
  resolve(status: number): void;
  reject(err: unknown): void;
}

interface PeerQueue {
  waiting: Waiting[];
  /** Requests to this replica not yet answered. */
  inFlight: number;
  /** A send is queued for the end of this event-loop turn (the replica was idle). */
  scheduled: boolean;
}

/** Sends a batch to a replica; resolves to one result per write, in order. */
export type SendBatch = (
  peer: string,
  writes: BatchedWrite[],
  data: Uint8Array[],
) => Promise<BatchedResult[]>;

export class ReplicaBatches {
  private readonly queues = new Map<string, PeerQueue>();
  private readonly sendBatch: SendBatch;
  private readonly observe: ((writes: number) => void) | undefined;
  private readonly now: () => number;
  /** Replicas that did not understand a batch, and when (their writes go one by one for a while). */
  private readonly refusedAt = new Map<string, number>();

  /** `observe` is told how many writes each request carried (metrics). */
  constructor(sendBatch: SendBatch, observe?: (writes: number) => void, now: () => number = Date.now) {
    this.sendBatch = sendBatch;
    this.observe = observe;
    this.now = now;
  }

  /** Resolves to the status the replica gave this write; rejects when its request failed. */
  add(peer: string, write: QueuedWrite): Promise<number> {
    let q = this.queues.get(peer);
    if (q === undefined) {
      q = { waiting: [], inFlight: 0, scheduled: false };
      this.queues.set(peer, q);
    }
    const queue = q;
    return new Promise((resolve, reject) => {
      // Fields listed rather than spread (a spread is a slow runtime call, once per replicated write).
      queue.waiting.push({ entry: write.entry, data: write.data, alone: write.alone, resolve, reject });
      if (queue.inFlight > 0 || queue.scheduled) return;
      // Idle: send at the end of this turn of the event loop, with every write that came in during it.
      queue.scheduled = true;
      setImmediate(() => {
        queue.scheduled = false;
        this.next(peer, queue);
      });
    });
  }

  /** Each write as its own request, all at once; settles when every one has its answer. */
  private oneByOne(batch: Waiting[]): Promise<unknown> {
    return Promise.all(
      batch.map((w) => {
        this.observe?.(1);
        return w.alone().then(w.resolve, w.reject);
      }),
    );
  }

  /** Sends what waits, unless a request to this replica is still out; runs again when it settles. */
  private next(peer: string, q: PeerQueue): void {
    if (q.inFlight >= MAX_IN_FLIGHT) return;
    if (q.waiting.length === 0) {
      // An idle replica keeps no entry: the map holds only replicas written to now.
      if (q.inFlight === 0) this.queues.delete(peer);
      return;
    }
    const batch = take(q.waiting);
    q.inFlight++;
    const settled = () => {
      q.inFlight--;
      this.next(peer, q);
    };
    const refused = this.refusedAt.get(peer);
    if (refused !== undefined && this.now() - refused >= UNBATCHED_AFTER_REFUSAL_MS)
      this.refusedAt.delete(peer);
    if (batch.length === 1 || this.refusedAt.has(peer)) {
      this.oneByOne(batch).finally(settled);
      return;
    }
    // Counted per request that goes: a batch refused and sent again one by one is 1 + N requests.
    this.observe?.(batch.length);
    this.sendBatch(
      peer,
      batch.map((w) => w.entry),
      batch.map((w) => w.data),
    )
      .then((results) => {
        if (results.length !== batch.length) {
          throw new Error(`replica answered ${results.length} results for ${batch.length} writes`);
        }
        for (const [i, w] of batch.entries()) w.resolve(results[i]!.status);
      })
      .catch((err: unknown) => {
        if (!(err instanceof BatchNotUnderstood)) {
          for (const w of batch) w.reject(err);
          return;
        }
        this.refusedAt.set(peer, this.now());
        return this.oneByOne(batch);
      })
      .finally(settled);
  }
}

/** The oldest waiting writes that fit in one batch (at least one). */
function take(waiting: Waiting[]): Waiting[] {
  let n = 0;
  let bytes = 0;
  while (n < waiting.length && n < MAX_BATCH_WRITES) {
    const size = waiting[n]!.data.length;
    if (n > 0 && bytes + size > MAX_BATCH_DATA_BYTES) break;
    bytes += size;
    n++;
  }
  return waiting.splice(0, n);
}
