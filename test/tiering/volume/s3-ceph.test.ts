/**
 * S3 on Ceph's RADOS Gateway (the S3 production clusters run; ceph-rgw.ts starts one for this file):
 * the shared scenario (suite.ts), then the faults of issue 7: an upload killed midway by a kill -9 of
 * the volume server, an upload cut off by the backend going away, the backend down during reads, and
 * a delete racing an upload.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3BackendConfig } from '../../../tiering/backends/backend.ts';
import { createBackend } from '../../../tiering/backends/create-backend.ts';
import type { S3Backend } from '../../../tiering/backends/s3.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { type CephRgw, startCephRgw } from '../ceph-rgw.ts';
import { FAST_RETRY, TEST_PART_SIZE } from '../conformance.ts';
import { startTcpProxy, type TcpProxy } from '../tcp-proxy.ts';
import { type CountingProxy, startCountingProxy } from './counting-proxy.ts';
import {
  assignVolume,
  type Blob,
  type ChildTierServer,
  datPath,
  expectAllReadBack,
  fillVolume,
  http,
  MiB,
  sealVolume,
  sha256File,
  startChildTierServer,
  startDownload,
  startTierServer,
  startUpload,
  type TierServer,
  tierDownload,
  tierStatus,
  tierUpload,
  vifOf,
  waitForJob,
} from './harness.ts';
import { describeTieredVolume } from './suite.ts';

const BUCKET = 'kelp-tier-volume-test';
let rgw: CephRgw;
let inspector: S3Backend;

const s3 = (extra: Partial<S3BackendConfig> = {}): S3BackendConfig => ({
  type: 's3',
  id: 'default',
  endpoint: rgw.endpoint,
  region: 'us-east-1',
  bucket: BUCKET,
  accessKeyId: rgw.accessKeyId,
  secretAccessKey: rgw.secretAccessKey,
  forcePathStyle: true,
  // 5 MiB parts: the test volumes are multipart uploads, as real ones are.
  partSize: TEST_PART_SIZE,
  ...extra,
});

let counter: CountingProxy;

beforeAll(async () => {
  rgw = await startCephRgw();
  inspector = (await createBackend(s3())) as S3Backend;
  await inspector.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  counter = await startCountingProxy({ host: rgw.host, port: rgw.port });
}, 120_000);

afterAll(async () => {
  await counter?.stop();
  await inspector?.close();
  await rgw?.stop();
});

/**
 * Keys of complete `.dat` objects in the bucket that belong to `volumeId` (`<vid>-<uuid>.dat`); the
 * index and deletion set beside each are checked in test/edge/tier.test.ts.
 */
async function objectsOf(volumeId: number): Promise<string[]> {
  const out = await inspector.client.send(
    new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${volumeId}-` }),
  );
  return (out.Contents ?? []).map((o) => o.Key!).filter((k) => k.endsWith('.dat'));
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// The volume server reaches the gateway through a counting HTTP proxy, so "one GET per read" and "no request
// at startup" are checked on the wire too; the inspector goes direct and is not counted.
describeTieredVolume('S3 on Ceph RGW', () => ({
  backend: 's3.default',
  checksum: 'sha256',
  configs: () => [s3({ endpoint: counter.endpoint })],
  inspector: () => createBackend(s3()),
  serverGets: () => counter.counts.gets,
  serverRequests: () => counter.counts.requests,
}));

describe('S3 on Ceph RGW: faults during tier uploads and reads', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'kelp-tier-faults-'));
    dirs.push(d);
    return d;
  };
  let child: ChildTierServer | undefined;
  let srv: TierServer | undefined;
  let proxy: TcpProxy;
  /** s3.flaky: the same bucket through a TCP proxy the tests pause, with fast, few retries. */
  const flaky = () =>
    s3({ id: 'flaky', endpoint: proxy.endpoint, uploadAttempts: 1, uploadConcurrency: 1, retry: FAST_RETRY });
  /** One part at a time, so an upload of a few parts takes long enough to be interrupted. */
  const slow = () => s3({ uploadConcurrency: 1 });

  beforeAll(async () => {
    proxy = await startTcpProxy({ host: rgw.host, port: rgw.port });
  });

  afterAll(async () => {
    await child?.kill();
    await srv?.stop();
    await proxy?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('kill -9 during an upload: the volume is still local, sealed and readable, no .vif points at a partial object, and a retry completes', async () => {
    const dir = tempDir();
    child = await startChildTierServer(dir, [slow()]);
    await assignVolume(child.base, 2);
    // About 40 MiB: eight 5 MiB parts, sent one at a time.
    const blobs = await fillVolume(child.base, 2, { small: 200, large: Array(32).fill(1.25 * MiB) });
    await sealVolume(child.base, 2);
    const dat = datPath(dir, 2);
    const before = { size: statSync(dat).size, sha: sha256File(dat) };

    await startUpload(child.base, 2, 's3.default');
    let seen = { bytes: 0, total: 0 };
    await waitFor('the upload to be under way', async () => {
      const job = (await tierStatus(child!.base, 2)).job!;
      if (job.state !== 'running')
        throw new Error(`the upload ended before the kill: ${JSON.stringify(job)}`);
      seen = job;
      return job.bytes > 0;
    });
    await child.kill();
    expect(seen.bytes).toBeLessThan(seen.total);

    expect(statSync(dat).size).toBe(before.size);
    expect(sha256File(dat)).toBe(before.sha);
    expect(vifOf(dir, 2)).toEqual({ readOnly: true });
    expect(await objectsOf(2), 'no complete object for the volume').toEqual([]);

    child = await startChildTierServer(dir, [slow()]);
    await expectAllReadBack(child.base, blobs);
    const status = await tierStatus(child.base, 2);
    expect(status).toMatchObject({ remote: null, job: null });
    expect((await http(child.base, '/admin/writable?volume=2', { method: 'POST' })).status).toBe(200);
    await sealVolume(child.base, 2);

    const done = await tierUpload(child.base, 2, 's3.default');
    expect(done.remote).toMatchObject({ backend: 's3.default', size: before.size, sha256: before.sha });
    expect(existsSync(dat)).toBe(false);
    expect(await objectsOf(2)).toEqual([done.remote!.key]);
    await expectAllReadBack(child.base, blobs);
    await child.stop();
    child = undefined;

    // The .vif names the bucket: a server whose s3.default now points at another bucket answers 503, not 404s.
    expect(vifOf(dir, 2)?.remote?.bucket).toBe(BUCKET);
    const moved = await startTierServer(dir, [s3({ bucket: 'kelp-some-other-bucket' })]);
    try {
      const r = await http(moved.base, `/${blobs[0]!.fid}`);
      expect(r.status).toBe(503);
      expect(r.body.toString()).toContain(BUCKET);
      expect(moved.stats('s3.default').requests).toBe(0);
    } finally {
      await moved.stop();
    }
  }, 120_000);

  let flakyBlobs: Blob[];
  let flakyDir: string;

  it('the backend going away mid-upload fails the job: the volume stays local, sealed and readable with no remote; a retry succeeds', async () => {
    const dir = tempDir();
    flakyDir = dir;
    srv = await startTierServer(dir, [slow(), flaky()]);
    await assignVolume(srv.base, 3);
    flakyBlobs = await fillVolume(srv.base, 3, { small: 300, large: Array(12).fill(1.25 * MiB) });
    await sealVolume(srv.base, 3);
    const dat = datPath(dir, 3);
    const sha = sha256File(dat);

    await startUpload(srv.base, 3, 's3.flaky');
    await waitFor('the first part', async () => (await tierStatus(srv!.base, 3)).job!.bytes > 0);
    await proxy.pause();
    const failed = await waitForJob(srv.base, 3);
    expect(failed.job).toMatchObject({ state: 'failed', action: 'upload', backend: 's3.flaky' });
    expect(failed.job!.error).toMatch(/unavailable|ECONNRE|socket|EPIPE/i);
    expect(failed.remote).toBeNull();
    expect(vifOf(dir, 3)).toEqual({ readOnly: true });
    expect(sha256File(dat)).toBe(sha);
    expect(await objectsOf(3)).toEqual([]);
    const reads = srv.stats('s3.flaky').reads;
    await expectAllReadBack(srv.base, flakyBlobs);
    expect(srv.stats('s3.flaky').reads, 'reads stay local').toBe(reads);
    expect((await http(srv.base, `/admin/writable?volume=3`, { method: 'POST' })).status).toBe(200);
    await sealVolume(srv.base, 3);

    await proxy.resume();
    const done = await tierUpload(srv.base, 3, 's3.flaky');
    expect(done.remote).toMatchObject({ backend: 's3.flaky', bucket: BUCKET, sha256: sha });
    expect(existsSync(dat)).toBe(false);
    expect(await objectsOf(3)).toEqual([done.remote!.key]);
  }, 120_000);

  it('the backend down during reads: 503 with Retry-After, never other bytes, and recovery without a restart', async () => {
    const server = srv!;
    const sample = [...flakyBlobs.slice(0, 30), flakyBlobs.at(-1)!];
    await expectAllReadBack(server.base, sample);

    await proxy.pause();
    try {
      const stats = server.stats('s3.flaky');
      const requests = stats.requests;
      const started = Date.now();
      const replies = await Promise.all(sample.map((b) => http(server.base, `/${b.fid}`)));
      for (const r of replies) {
        expect(r.status).toBe(503);
        expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(JSON.parse(r.body.toString())).toMatchObject({ code: 'unavailable' });
      }
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(stats.requests - requests, 'bounded retries').toBe(sample.length * FAST_RETRY.attempts);
      // A delete needs the record (its cookie): it fails the same way and deletes nothing.
      const del = await http(server.base, `/${sample[0]!.fid}`, { method: 'DELETE' });
      expect(del.status).toBe(503);
      const range = await http(server.base, `/${sample[1]!.fid}`, { headers: { Range: 'bytes=0-9' } });
      expect(range.status).toBe(503);
      // A download cannot fetch the object either: it fails and leaves the volume tiered, with no .dat.
      await startDownload(server.base, 3);
      const failed = await waitForJob(server.base, 3);
      expect(failed.job).toMatchObject({ action: 'download', state: 'failed' });
      expect(failed.remote?.backend).toBe('s3.flaky');
      expect(readdirSync(flakyDir).filter((f) => f.includes('.dat'))).toEqual([]);
    } finally {
      await proxy.resume();
    }
    await expectAllReadBack(server.base, sample);
    await expectAllReadBack(server.base, flakyBlobs);
  }, 60_000);

  it('a server closed during an upload aborts it: the volume stays local and the next start uploads it', async () => {
    const dir = tempDir();
    let server = await startTierServer(dir, [slow()]);
    try {
      await assignVolume(server.base, 5);
      const blobs = await fillVolume(server.base, 5, { small: 100, large: Array(16).fill(1.25 * MiB) });
      await sealVolume(server.base, 5);
      await startUpload(server.base, 5, 's3.default');
      await waitFor('the first part', async () => (await tierStatus(server.base, 5)).job!.bytes > 0);
      const started = Date.now();
      await server.stop();
      expect(Date.now() - started, 'close does not wait for the whole upload').toBeLessThan(5_000);
      expect(existsSync(datPath(dir, 5))).toBe(true);
      expect(vifOf(dir, 5)).toEqual({ readOnly: true });
      expect(await objectsOf(5)).toEqual([]);
      server = await startTierServer(dir, [slow()]);
      await expectAllReadBack(server.base, blobs);
      await tierUpload(server.base, 5, 's3.default');
      await expectAllReadBack(server.base, blobs);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('a delete during an upload holds: after the upload, a restart, the download and another restart', async () => {
    const dir = tempDir();
    let server = await startTierServer(dir, [slow()]);
    try {
      await assignVolume(server.base, 4);
      const blobs = await fillVolume(server.base, 4, { small: 300, large: Array(24).fill(1.25 * MiB) });
      await sealVolume(server.base, 4);
      await startUpload(server.base, 4, 's3.default');
      await waitFor('the first part', async () => (await tierStatus(server.base, 4)).job!.bytes > 0);
      const again = await http(server.base, '/admin/tier/upload?volume=4&backend=s3.default', {
        method: 'POST',
      });
      expect(again.status, 'one transfer per volume').toBe(409);
      const victims = blobs.slice(0, 3);
      for (const b of victims)
        expect((await http(server.base, `/${b.fid}`, { method: 'DELETE' })).status).toBe(202);
      expect((await tierStatus(server.base, 4)).job!.state, 'the deletes came before the end').toBe(
        'running',
      );
      const done = await waitForJob(server.base, 4);
      expect(done.job).toMatchObject({ state: 'done' });
      const rest = blobs.slice(3);
      const check = async () => {
        for (const b of victims) expect((await http(server.base, `/${b.fid}`)).status).toBe(404);
        await expectAllReadBack(server.base, rest);
      };
      await check();
      await server.stop();
      server = await startTierServer(dir, [slow()]);
      await check();
      await tierDownload(server.base, 4);
      await check();
      await server.stop();
      server = await startTierServer(dir, [slow()]);
      await check();
    } finally {
      await server.stop();
    }
  }, 120_000);
});

describe('S3 on Ceph RGW: what checked an upload', () => {
  it('the volume server logs that the store checked each part against its signed SHA-256, and no probe object stays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kelp-tier-verified-'));
    const logs = captureLogs([], 'info');
    const server = await startTierServer(dir, [s3()], logs.logger);
    try {
      await assignVolume(server.base, 6);
      const blobs = await fillVolume(server.base, 6, { small: 20, large: [3 * MiB, 3 * MiB] });
      await sealVolume(server.base, 6);
      await tierUpload(server.base, 6, 's3.default');
      const stored = logs.records().find((r) => r.msg === 'tier upload stored');
      expect(stored).toMatchObject({ volume: 6, backend: 's3.default', verifiedBy: 'sha256-payload' });
      const listed = await inspector.client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
      expect((listed.Contents ?? []).filter((o) => o.Key?.endsWith('.payload-check'))).toEqual([]);
      await expectAllReadBack(server.base, blobs);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
