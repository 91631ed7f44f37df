/**
 * The primary's replica queue (replica-batches.ts) and the batch wire form
 * (replica-batch.ts). The queue takes its senders as functions, so here they
 * are functions whose answers the test releases: that is how "a request is in
 * flight" is held still long enough to see what waits behind it. The real
 * requests to real replicas are in test/integration/cluster/replica-batch.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  type BatchedResult,
  type BatchedWrite,
  decodeBatch,
  encodeBatch,
  MAX_BATCH_DATA_BYTES,
  MAX_BATCH_WRITES,
} from '../../../../origin/volume/replica-batch.ts';
import {
  BatchNotUnderstood,
  type QueuedWrite,
  ReplicaBatches,
  UNBATCHED_AFTER_REFUSAL_MS,
} from '../../../../origin/volume/replica-batches.ts';
import { BadRequestError } from '../../../../shared/errors.ts';

interface Held<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}
function held<T>(): Held<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}

/** A queue whose every request (alone or batch) is recorded and answered when the test says. */
function harness(now: () => number = Date.now) {
  const sent: Array<{ peer: string; fids: string[]; answer: Held<BatchedResult[]> }> = [];
  const alone: Array<{ fid: string; answer: Held<number> }> = [];
  /** What the metric was told: writes per request, one entry per request. */
  const observed: number[] = [];
  const batches = new ReplicaBatches(
    (peer, writes) => {
      const answer = held<BatchedResult[]>();
      sent.push({ peer, fids: writes.map((w) => w.fid), answer });
      return answer.promise;
    },
    (writes) => observed.push(writes),
    now,
  );
  const write = (n: number, size = 10): QueuedWrite => ({
    entry: { fid: `1,${n}`, change: `change-${String(n).padStart(12, '0')}`, size },
    data: new Uint8Array(size),
    alone: () => {
      const answer = held<number>();
      alone.push({ fid: `1,${n}`, answer });
      return answer.promise;
    },
  });
  return { batches, sent, alone, write, observed };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('ReplicaBatches', () => {
  it('an idle replica gets the writes of this event-loop turn at its end; what arrives while that is out goes as one batch after it', async () => {
    const { batches, sent, alone, write } = harness();
    const first = batches.add('r1:80', write(1));
    // Nothing goes before the end of the turn: a write arriving in it would join.
    expect(alone).toHaveLength(0);
    await tick();
    expect(alone.map((a) => a.fid)).toEqual(['1,1']);
    const rest = [2, 3, 4].map((n) => batches.add('r1:80', write(n)));
    await tick();
    expect(sent).toHaveLength(0);
    alone[0]!.answer.resolve(201);
    expect(await first).toBe(201);
    await tick();
    expect(sent.map((s) => s.fids)).toEqual([['1,2', '1,3', '1,4']]);
    sent[0]!.answer.resolve([{ status: 201 }, { status: 409, error: 'taken back' }, { status: 204 }]);
    expect(await Promise.all(rest)).toEqual([201, 409, 204]);
  });

  it('writes that reach an idle replica in the same turn go together', async () => {
    const { batches, sent, alone, write } = harness();
    const both = [1, 2].map((n) => batches.add('r1:80', write(n)));
    await tick();
    expect(alone).toHaveLength(0);
    expect(sent.map((s) => s.fids)).toEqual([['1,1', '1,2']]);
    sent[0]!.answer.resolve([{ status: 201 }, { status: 201 }]);
    expect(await Promise.all(both)).toEqual([201, 201]);
  });

  it('keeps one request in flight per replica, not across replicas', async () => {
    const { batches, alone, sent, write } = harness();
    void batches.add('r1:80', write(1));
    void batches.add('r2:80', write(2));
    await tick();
    void batches.add('r1:80', write(3));
    await tick();
    expect(alone.map((a) => a.fid)).toEqual(['1,1', '1,2']);
    expect(sent).toHaveLength(0);
  });

  it('a batch that fails fails every write in it, and the next batch still goes', async () => {
    const { batches, sent, alone, write } = harness();
    void batches.add('r1:80', write(1));
    await tick();
    const doomed = [2, 3].map((n) => batches.add('r1:80', write(n)));
    alone[0]!.answer.resolve(201);
    await tick();
    const later = [4, 5].map((n) => batches.add('r1:80', write(n)));
    sent[0]!.answer.reject(new Error('socket hang up'));
    for (const d of doomed) await expect(d).rejects.toThrow('socket hang up');
    await tick();
    expect(sent[1]!.fids).toEqual(['1,4', '1,5']);
    sent[1]!.answer.resolve([{ status: 201 }, { status: 201 }]);
    expect(await Promise.all(later)).toEqual([201, 201]);
  });

  it('a replica that does not understand batches (older code) gets the writes one by one, and a batch again a minute later', async () => {
    let now = 1_000_000;
    const { batches, sent, alone, write, observed } = harness(() => now);
    const pair = [1, 2].map((n) => batches.add('r1:80', write(n)));
    await tick();
    sent[0]!.answer.reject(new BatchNotUnderstood('batch of 2 answered HTTP 400'));
    await tick();
    // Not failed: each sent again as its own request, each with its own answer.
    expect(alone.map((a) => a.fid)).toEqual(['1,1', '1,2']);
    expect(observed, 'the metric counts the refused batch and each request after it').toEqual([2, 1, 1]);
    alone[0]!.answer.resolve(201);
    alone[1]!.answer.resolve(204);
    expect(await Promise.all(pair)).toEqual([201, 204]);
    // Within the minute: one by one from the start.
    const next = [3, 4].map((n) => batches.add('r1:80', write(n)));
    await tick();
    expect(sent).toHaveLength(1);
    expect(alone.map((a) => a.fid)).toEqual(['1,1', '1,2', '1,3', '1,4']);
    expect(observed).toEqual([2, 1, 1, 1, 1]);
    for (const a of alone.slice(2)) a.answer.resolve(201);
    expect(await Promise.all(next)).toEqual([201, 201]);
    // Another replica still gets batches meanwhile; this one again once the minute is over.
    void [5, 6].map((n) => batches.add('r2:80', write(n)));
    now += UNBATCHED_AFTER_REFUSAL_MS;
    void [7, 8].map((n) => batches.add('r1:80', write(n)));
    await tick();
    const later = sent.slice(1).map((x) => [x.peer, x.fids] as const);
    expect(later.sort((a, b) => a[0].localeCompare(b[0]))).toEqual([
      ['r1:80', ['1,7', '1,8']],
      ['r2:80', ['1,5', '1,6']],
    ]);
  });

  it('a batch answered with the wrong number of results fails every write in it', async () => {
    const { batches, sent, write } = harness();
    const pair = [2, 3].map((n) => batches.add('r1:80', write(n)));
    await tick();
    sent[0]!.answer.resolve([{ status: 201 }]);
    for (const p of pair) await expect(p).rejects.toThrow(/1 results for 2 writes/);
  });

  it(`closes a batch at ${MAX_BATCH_WRITES} writes and at ${MAX_BATCH_DATA_BYTES} bytes of data`, async () => {
    const { batches, sent, alone, write } = harness();
    for (let n = 1; n <= MAX_BATCH_WRITES + 1; n++) void batches.add('r1:80', write(n));
    await tick();
    expect(sent[0]!.fids).toHaveLength(MAX_BATCH_WRITES);
    sent[0]!.answer.resolve(sent[0]!.fids.map(() => ({ status: 201 })));
    await tick();
    // The one left over goes alone.
    expect(alone.map((a) => a.fid)).toEqual([`1,${MAX_BATCH_WRITES + 1}`]);

    const big = harness();
    const size = 60 * 1024;
    for (let n = 1; n <= 20; n++) void big.batches.add('r1:80', big.write(n, size));
    await tick();
    expect(big.sent[0]!.fids).toHaveLength(Math.floor(MAX_BATCH_DATA_BYTES / size));
  });
});

describe('replica batch wire form', () => {
  const writes: BatchedWrite[] = [
    {
      fid: '3,01637037d6',
      change: 'a'.repeat(36),
      size: 3,
      gzip: true,
      ts: 1_700_000_000,
      mime: 'text/plain',
    },
    { fid: '3,01637037d7_2', change: 'b'.repeat(36), size: 0, name: 'é.txt', pairs: '{"k":"v"}', token: 't' },
    { fid: '3,01637037d8', change: 'c'.repeat(36), size: 2, ttl: '3m' },
  ];
  const data = [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('xy')];

  it('round-trips writes and their data', () => {
    const decoded = decodeBatch(encodeBatch(writes, data));
    expect(decoded.writes).toEqual(writes);
    expect(decoded.data.map((d) => d.toString())).toEqual(['abc', '', 'xy']);
  });

  it('refuses a body whose sizes do not add up, a bad header length, or wrong field types (400)', () => {
    const body = encodeBatch(writes, data);
    expect(() => decodeBatch(Buffer.concat([body, Buffer.from('!')]))).toThrow(BadRequestError);
    expect(() => decodeBatch(body.subarray(0, body.length - 1))).toThrow(BadRequestError);
    const badLength = Buffer.from(body);
    badLength.writeUInt32BE(body.length, 0);
    expect(() => decodeBatch(badLength)).toThrow(BadRequestError);
    expect(() => decodeBatch(encodeBatch([{ ...writes[0]!, ts: -1 }], [data[0]!]))).toThrow(BadRequestError);
    const notText = { ...writes[0]!, mime: 5 } as unknown as BatchedWrite;
    expect(() => decodeBatch(encodeBatch([notText], [data[0]!]))).toThrow(BadRequestError);
    expect(() => decodeBatch(encodeBatch([], []))).toThrow(BadRequestError);
    expect(() => decodeBatch(Buffer.from([0, 0]))).toThrow(BadRequestError);
  });
});
