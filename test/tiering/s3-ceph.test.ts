import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChecksumMismatchError, UpstreamError } from '../../shared/errors.ts';
import type { S3BackendConfig } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import type { S3Backend } from '../../tiering/backends/s3.ts';
import { type CephRgw, startCephRgw } from './ceph-rgw.ts';
import { describeBackend, TEST_PART_SIZE } from './conformance.ts';

// Ceph's RADOS Gateway from Debian (ceph-rgw.ts): the S3 that production clusters run. One cluster per file
// (about 15 s to start); a missing install fails here with the apt command to run.
let rgw: CephRgw;
const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const BUCKET = 'kelp-tier-test';

const config = (endpoint: string, extra: Partial<S3BackendConfig> = {}): S3BackendConfig => ({
  type: 's3',
  id: 'default',
  endpoint,
  region: 'us-east-1',
  bucket: BUCKET,
  accessKeyId: rgw.accessKeyId,
  secretAccessKey: rgw.secretAccessKey,
  forcePathStyle: true,
  // Ceph's default placement defines only STANDARD; sending it exercises the storage-class path.
  storageClass: 'STANDARD',
  partSize: TEST_PART_SIZE,
  ...extra,
});

beforeAll(async () => {
  rgw = await startCephRgw();
  const admin = (await createBackend(config(rgw.endpoint))) as S3Backend;
  await admin.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await admin.close();
}, 120_000);

afterAll(async () => {
  await rgw?.stop();
});

describeBackend(
  'S3 on Ceph RGW',
  {
    type: 's3',
    verifiedBy: 'sha256-payload',
    checksum: 'sha256',
    server: () => ({
      host: rgw.host,
      port: rgw.port,
      connect: (endpoint, { retry, uploadAttempts }) =>
        createBackend(config(endpoint, { retry, uploadAttempts })),
    }),
  },
  async () => ({
    backend: await createBackend(config(rgw.endpoint)),
    secrets: [rgw.secretAccessKey],
    stop: async () => {},
  }),
);

describe('S3 on Ceph RGW: store specifics', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kelp-ceph-specifics-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('signs each part with its SHA-256, which Ceph checks: the object gets the "-N" ETag of its parts', async () => {
    const backend = (await createBackend(config(rgw.endpoint))) as S3Backend;
    const signed: string[] = [];
    backend.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand') {
          signed.push((args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256']!);
        }
        return next(args);
      },
      { step: 'finalizeRequest', name: 'seeSignedHashes' },
    );
    const path = join(dir, 'three-parts.dat');
    const data = randomBytes(2 * TEST_PART_SIZE + 1);
    await writeFile(path, data);
    const r = await backend.upload(path, `kelp-test/${randomUUID()}.dat`);
    expect(r.verifiedBy).toBe('sha256-payload');
    expect(r.etag).toMatch(/^[0-9a-f]{32}-3$/);
    const parts = [0, 1, 2].map((i) => data.subarray(i * TEST_PART_SIZE, (i + 1) * TEST_PART_SIZE));
    expect(signed.sort()).toEqual(parts.map((p) => sha256Hex(p)).sort());
    await backend.close();
  });

  it('a part whose bytes are not the ones it was signed for is refused by Ceph: the upload fails and leaves nothing', async () => {
    const backend = (await createBackend(config(rgw.endpoint))) as S3Backend;
    // The fault a real network does not make on demand: the second part's bytes are swapped for others of
    // the same length after it was signed. Ceph's refusal (XAmzContentSHA256Mismatch) is real.
    backend.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { PartNumber?: number };
        if (context.commandName === 'UploadPartCommand' && input.PartNumber === 2) {
          const request = args.request as { body: unknown; headers: Record<string, string> };
          (request.body as { destroy?(): void }).destroy?.();
          request.body = randomBytes(Number(request.headers['content-length']));
        }
        return next(args);
      },
      { step: 'finalizeRequest', name: 'damagePart' },
    );
    const path = join(dir, 'bad-part.dat');
    await writeFile(path, randomBytes(2 * TEST_PART_SIZE + 1));
    const key = `kelp-test/${randomUUID()}.dat`;
    const err = await backend.upload(path, key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain('XAmzContentSHA256Mismatch');
    expect(await backend.stat(key)).toBeUndefined();
    const pending = await backend.client.send(
      new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: key }),
    );
    expect(pending.Uploads ?? [], 'the multipart upload was aborted').toEqual([]);
    await backend.close();
  });

  it('when the payload check cannot be told (the probe fails), an upload checks MD5 ETags and the next asks again', async () => {
    const backend = (await createBackend(config(rgw.endpoint))) as S3Backend;
    // A probe that dies on the way (a fault Ceph does not make on demand), once.
    let failProbe = true;
    backend.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: string };
        if (
          context.commandName === 'PutObjectCommand' &&
          input.Key?.endsWith('.payload-check') &&
          failProbe
        ) {
          failProbe = false;
          throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        }
        return next(args);
      },
      { step: 'initialize', name: 'failProbe' },
    );
    const path = join(dir, 'probe.dat');
    await writeFile(path, randomBytes(2 * TEST_PART_SIZE + 1));
    const first = await backend.upload(path, `kelp-test/${randomUUID()}.dat`);
    expect(first.verifiedBy).toBe('md5-etag');
    const second = await backend.upload(path, `kelp-test/${randomUUID()}.dat`);
    expect(second.verifiedBy).toBe('sha256-payload');
    const left = await backend.client.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'kelp-test/' }),
    );
    expect((left.Contents ?? []).filter((o) => o.Key?.endsWith('.payload-check'))).toEqual([]);
    await backend.close();
  });

  it("reads signed with a clock far off are corrected from the store's Date and retried once", async () => {
    const backend = (await createBackend(config(rgw.endpoint))) as S3Backend;
    const path = join(dir, 'skew.dat');
    const data = randomBytes(4000);
    await writeFile(path, data);
    const key = `kelp-test/${randomUUID()}.dat`;
    await backend.upload(path, key);
    // Two hours behind: far beyond the 15 minutes S3 (and Ceph) accept.
    backend.client.config.systemClockOffset = -2 * 3600 * 1000;
    const requests = backend.stats.requests;
    const got = await backend.openFile(key, data.length).readAt(1000, 100);
    expect(Buffer.from(got).equals(data.subarray(1000, 1100))).toBe(true);
    expect(backend.stats.requests - requests, 'one refused, one accepted').toBe(2);
    expect(Math.abs(backend.client.config.systemClockOffset)).toBeLessThan(60_000);
    await backend.delete(key);
    await backend.close();
  });

  it('a read with a wrong secret is an upstream error (403), answered at once without retries', async () => {
    const backend = await createBackend(config(rgw.endpoint, { secretAccessKey: 'not-the-secret' }));
    const requests = backend.stats.requests;
    const err = await backend
      .openFile('kelp-test/any.dat', 100)
      .readAt(0, 10)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as Error).message).toContain('SignatureDoesNotMatch');
    expect(backend.stats.requests - requests).toBe(1);
    await backend.close();
  });

  it('a storage class the store does not define fails the upload as an upstream error and leaves no object', async () => {
    const backend = await createBackend(config(rgw.endpoint, { storageClass: 'STANDARD_IA' }));
    const path = join(dir, 'small.dat');
    await writeFile(path, randomBytes(1000));
    const key = `kelp-test/${randomUUID()}.dat`;
    await expect(backend.upload(path, key)).rejects.toBeInstanceOf(UpstreamError);
    expect(await backend.stat(key)).toBeUndefined();
    await backend.close();
  });

  it('a bucket that does not exist is an upstream (configuration) error, not a missing object', async () => {
    const backend = await createBackend(config(rgw.endpoint, { bucket: 'kelp-no-such-bucket' }));
    const path = join(dir, 'nobucket.dat');
    await writeFile(path, randomBytes(1000));
    await expect(backend.upload(path, 'k')).rejects.toBeInstanceOf(UpstreamError);
    await backend.close();
  });
});
