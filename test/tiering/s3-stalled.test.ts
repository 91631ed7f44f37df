/**
 * A store that accepts connections and then says nothing (a hung gateway; a
 * Ceph cluster that is full blocks every write this way): every S3 request
 * gives up after `requestTimeoutMs` of silence and is retried within its
 * bound, so reads answer 503 and transfers fail instead of hanging. The store
 * is a real TCP server on loopback that reads and never writes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../shared/errors.ts';
import type { TierBackend } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';

const SILENCE_MS = 300;
const ATTEMPTS = 2;
/** Generous: the attempts' silences, backoff, and a loaded machine. */
const BOUND_MS = 5_000;

let server: Server;
const sockets = new Set<Socket>();
let backend: TierBackend;
let dir: string;

beforeAll(async () => {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend = await createBackend({
    type: 's3',
    id: 'stalled',
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: 'us-east-1',
    bucket: 'kelp-stalled',
    accessKeyId: 'KELPSTALLED',
    secretAccessKey: 'kelp-stalled-secret',
    requestTimeoutMs: SILENCE_MS,
    uploadAttempts: ATTEMPTS,
    retry: { attempts: ATTEMPTS, baseDelayMs: 10, maxDelayMs: 20 },
  });
  dir = await mkdtemp(join(tmpdir(), 'kelp-stalled-'));
});

afterAll(async () => {
  await backend?.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

async function failsWithin(what: Promise<unknown>): Promise<unknown> {
  const started = Date.now();
  const err = await what.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  expect(Date.now() - started).toBeLessThan(BOUND_MS);
  return err;
}

describe('S3 against a store that never answers', () => {
  it('a read is UnavailableError after its bounded attempts, each cut off by the silence', async () => {
    const requests = backend.stats.requests;
    const started = Date.now();
    const err = await failsWithin(backend.openFile('k.dat', 1000).readAt(0, 100));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(backend.stats.requests - requests).toBe(ATTEMPTS);
    expect(Date.now() - started).toBeGreaterThanOrEqual(ATTEMPTS * SILENCE_MS - 50);
  });

  it('stat and download fail the same way', async () => {
    expect(await failsWithin(backend.stat('k.dat'))).toBeInstanceOf(UnavailableError);
    expect(await failsWithin(backend.download('k.dat', join(dir, 'out.dat')))).toBeInstanceOf(
      UnavailableError,
    );
  });

  it('an upload fails instead of hanging', async () => {
    const path = join(dir, 'small.dat');
    await writeFile(path, randomBytes(1000));
    expect(await failsWithin(backend.upload(path, 'k.dat'))).toBeInstanceOf(UnavailableError);
  });
});
