import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChecksumMismatchError } from '../../shared/errors.ts';
import type { S3BackendConfig } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import type { S3Backend } from '../../tiering/backends/s3.ts';
import { describeBackend, TEST_PART_SIZE } from './conformance.ts';

// s3rver, a fake S3 on the filesystem (0.5 s to start): the quick loop beside Ceph, never instead of it. It gives
// multipart uploads the whole object's MD5 as ETag (no "-N"), which the verification accepts; it answers
// `Range: bytes=0-0` with the whole object, which the backend must refuse rather than serve; and it counts
// requests at the server, so "one GET per read" is checked on the wire here.
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer: Server;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

const BUCKET = 'kelp-tier-test';
let port = 0;
const config = (endpoint: string, extra: Partial<S3BackendConfig> = {}): S3BackendConfig => ({
  type: 's3',
  id: 'quick',
  endpoint,
  region: 'us-east-1',
  bucket: BUCKET,
  accessKeyId: 'S3RVER',
  secretAccessKey: 'S3RVER',
  partSize: TEST_PART_SIZE,
  ...extra,
});

describeBackend(
  'S3 on s3rver',
  {
    type: 's3',
    verifiedBy: 'md5-etag',
    checksum: 'sha256',
    ignoresRangeEndingAtZero: true,
    server: () => ({
      host: '127.0.0.1',
      port,
      connect: (endpoint, { retry, uploadAttempts }) =>
        createBackend(config(endpoint, { retry, uploadAttempts })),
    }),
  },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kelp-s3rver-'));
    const server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: dir,
      configureBuckets: [{ name: BUCKET }],
    });
    port = (await server.run()).port;
    let gets = 0;
    server.httpServer.on('request', (req: IncomingMessage) => {
      if (req.method === 'GET') gets++;
    });
    return {
      backend: await createBackend(config(`http://127.0.0.1:${port}`)),
      serverGets: () => gets,
      stop: async () => {
        server.httpServer.closeAllConnections();
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
);

describe('S3 on s3rver: a store that does not check payload hashes', () => {
  let server: S3rverInstance;
  let dir: string;
  let endpoint: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kelp-s3rver-md5-'));
    server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: dir,
      configureBuckets: [{ name: BUCKET }],
    });
    endpoint = `http://127.0.0.1:${(await server.run()).port}`;
  });
  afterAll(async () => {
    server.httpServer.closeAllConnections();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is found out by the probe, which leaves no object, and its uploads are checked against MD5 ETags', async () => {
    const backend = (await createBackend(config(endpoint))) as S3Backend;
    const path = join(dir, 'probe.dat');
    await writeFile(path, randomBytes(2 * TEST_PART_SIZE + 1));
    const key = `kelp-test/${randomUUID()}.dat`;
    expect((await backend.upload(path, key)).verifiedBy).toBe('md5-etag');
    const listed = await backend.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: key }));
    expect((listed.Contents ?? []).map((o) => o.Key)).toEqual([key]);
    await backend.close();
  });

  it('an upload whose stored ETag does not match what was sent fails and removes the object', async () => {
    const backend = (await createBackend(config(endpoint))) as S3Backend;
    // As if the store had received other bytes: HeadObject reports another ETag.
    backend.client.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if (context.commandName === 'HeadObjectCommand') {
          (result.output as { ETag?: string }).ETag = `"${'0'.repeat(32)}"`;
        }
        return result;
      },
      { step: 'initialize', name: 'corruptEtag' },
    );
    const path = join(dir, 'mismatch.dat');
    await writeFile(path, randomBytes(1000));
    const key = `kelp-test/${randomUUID()}.dat`;
    await expect(backend.upload(path, key)).rejects.toBeInstanceOf(ChecksumMismatchError);
    backend.client.middlewareStack.remove('corruptEtag');
    expect(await backend.stat(key)).toBeUndefined();
    await backend.close();
  });

  it('a part the store received other than sent fails the upload before it is completed, and leaves nothing', async () => {
    const backend = (await createBackend(config(endpoint))) as S3Backend;
    // As if the second part had been damaged on the way: its UploadPart answers another ETag.
    backend.client.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        const input = args.input as { PartNumber?: number };
        if (context.commandName === 'UploadPartCommand' && input.PartNumber === 2) {
          (result.output as { ETag?: string }).ETag = `"${'0'.repeat(32)}"`;
        }
        return result;
      },
      { step: 'initialize', name: 'corruptPartEtag' },
    );
    const path = join(dir, 'bad-part.dat');
    await writeFile(path, randomBytes(2 * TEST_PART_SIZE + 1));
    const key = `kelp-test/${randomUUID()}.dat`;
    const err = await backend.upload(path, key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain('part 2');
    expect(await backend.stat(key)).toBeUndefined();
    await backend.close();
  });
});
