import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
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
    verifiedBy: 'md5-etag',
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

  it('verifies a multipart upload against the "-N" ETag Ceph computes from the parts', async () => {
    const backend = await createBackend(config(rgw.endpoint));
    const path = join(dir, 'three-parts.dat');
    await writeFile(path, randomBytes(2 * TEST_PART_SIZE + 1));
    const r = await backend.upload(path, `kelp-test/${randomUUID()}.dat`);
    expect(r.verifiedBy).toBe('md5-etag');
    expect(r.etag).toMatch(/^[0-9a-f]{32}-3$/);
    await backend.close();
  });

  it('an upload whose stored ETag does not match what was sent fails and removes the object', async () => {
    const backend = (await createBackend(config(rgw.endpoint))) as S3Backend;
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
    const backend = (await createBackend(config(rgw.endpoint))) as S3Backend;
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
    const pending = await backend.client.send(
      new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: key }),
    );
    expect(pending.Uploads ?? [], 'the multipart upload was aborted').toEqual([]);
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
