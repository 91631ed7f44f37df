/**
 * /metrics on the master and volume servers: each metric family moves when
 * the thing it counts happens (requests by route and status, bytes, needle
 * maps, volumes by state, disks, fsync batches, replication failures, tier
 * transfers, backend requests and errors, resize jobs), the exposition passes
 * `promtool check metrics`, and a scrape takes the metrics key or the admin
 * credentials. Real servers on 127.0.0.1.
 */
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import type { AssignResponse } from '../../../shared/api.ts';
import { parseExposition, promtool, sample, scrape, total } from '../../helpers/metrics.ts';
import {
  master,
  stopAll,
  type TestMaster,
  type TestVolume,
  volume,
  waitFor,
  waitForNodes,
} from '../cluster/harness.ts';

afterAll(stopAll);

const D = 'kelp_http_request_duration_seconds_count';

async function assign(m: TestMaster, query = ''): Promise<AssignResponse> {
  const res = await fetch(`${m.base}/dir/assign?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as AssignResponse;
}

async function write(base: string, fid: string, body: Uint8Array, type = 'application/octet-stream') {
  return fetch(`${base}/${fid}`, { method: 'PUT', headers: { 'Content-Type': type }, body });
}

describe('volume server metrics', () => {
  let m: TestMaster;
  let v: TestVolume;

  it('count reads and writes by route and status, bytes, needle maps, fsync batches and volumes', async () => {
    m = await master();
    v = await volume(m.address);
    await waitForNodes(m, 1);
    const before = await scrape(v.base);
    const a = await assign(m, 'count=3');
    const fids = [a.fid, `${a.fid}_1`, `${a.fid}_2`];
    const bodies = fids.map((_, i) => new Uint8Array(1000 + i * 100).fill(i + 1));
    for (const [i, fid] of fids.entries()) expect((await write(v.base, fid, bodies[i]!)).status).toBe(201);
    let read = 0;
    for (const fid of fids) {
      for (let n = 0; n < 2; n++) {
        const res = await fetch(`${v.base}/${fid}`);
        expect(res.status).toBe(200);
        read += (await res.arrayBuffer()).byteLength;
      }
    }
    const missing = `${a.fid.split(',')[0]},ffffff0000000001`;
    expect((await fetch(`${v.base}/${missing}`)).status).toBe(404);

    const s = await scrape(v.base);
    expect(sample(s, D, { route: 'read', status: '200' })).toBe(6);
    expect(sample(s, D, { route: 'read', status: '404' })).toBe(1);
    expect(sample(s, D, { route: 'write', status: '201' })).toBe(3);
    expect(
      total(s, 'kelp_http_request_duration_seconds_bucket', { route: 'read', status: '200', le: '+Inf' }),
    ).toBe(6);
    expect(
      sample(s, 'kelp_http_sent_bytes_total')! - sample(before, 'kelp_http_sent_bytes_total')!,
    ).toBeGreaterThan(read);
    expect(sample(s, 'kelp_http_received_bytes_total')!).toBeGreaterThan(3000);
    const collection = { collection: '' };
    expect(sample(s, 'kelp_needle_map_entries', collection)).toBe(3);
    expect(sample(s, 'kelp_volume_needles', collection)).toBe(3);
    expect(sample(s, 'kelp_needle_map_bytes', collection)).toBeGreaterThan(0);
    expect(sample(s, 'kelp_volume_size_bytes', collection)).toBeGreaterThan(3000);
    expect(sample(s, 'kelp_fsync_batch_writes_count')).toBeGreaterThanOrEqual(1);
    expect(sample(s, 'kelp_fsync_batch_writes_sum')).toBe(3);
    expect(sample(s, 'kelp_fsync_duration_seconds_count')).toBe(sample(s, 'kelp_fsync_batch_writes_count'));
    expect(sample(s, 'kelp_volumes', { state: 'writable', backend: '' })).toBeGreaterThanOrEqual(1);
    expect(total(s, 'kelp_disk_free_bytes')).toBeGreaterThan(0);
    expect(sample(s, 'kelp_master_connected')).toBe(1);
    expect(sample(s, 'kelp_volume_open_repairs')).toBe(0);
    expect(sample(s, 'kelp_build_info', { version: '0.1.0', node: process.version })).toBe(1);

    // A sealed volume, then tiered to the local backend: the states follow, the transfer is counted.
    const vid = Number(a.fid.split(',')[0]);
    expect((await fetch(`${v.base}/admin/readonly?volume=${vid}`, { method: 'POST' })).status).toBe(200);
    expect(sample(await scrape(v.base), 'kelp_volumes', { state: 'sealed', backend: '' })).toBe(1);
    const status = (await (await fetch(`${v.base}/status`)).json()) as {
      Volumes: { id: number; size: number }[];
    };
    const size = status.Volumes.find((x) => x.id === vid)!.size;
    const up = await fetch(`${v.base}/admin/tier/upload?volume=${vid}&backend=local.default`, {
      method: 'POST',
    });
    expect(up.status).toBe(202);
    await waitFor('the upload to end', async () => {
      const st = (await (await fetch(`${v.base}/admin/tier/status?volume=${vid}`)).json()) as {
        job: { state: string } | null;
      };
      return st.job?.state === 'done';
    });
    for (const fid of fids) expect((await fetch(`${v.base}/${fid}`)).status).toBe(200);
    const t = await scrape(v.base);
    const transfer = { action: 'upload', backend: 'local.default' };
    expect(sample(t, 'kelp_volumes', { state: 'tiered', backend: 'local.default' })).toBe(1);
    expect(sample(t, 'kelp_volumes', { state: 'sealed', backend: '' })).toBe(0);
    expect(sample(t, 'kelp_tier_transfers_total', { ...transfer, result: 'done' })).toBe(1);
    expect(sample(t, 'kelp_tier_transfer_bytes_total', transfer)).toBe(size);
    expect(sample(t, 'kelp_tier_transfer_duration_seconds_count', transfer)).toBe(1);
    expect(sample(t, 'kelp_backend_requests_total', { backend: 'local.default' })).toBeGreaterThan(0);
    expect(sample(t, 'kelp_backend_read_bytes_total', { backend: 'local.default' })).toBeGreaterThan(3000);
  });

  it('count backend errors and failed transfers', async () => {
    const dead = await volume(m.address, {
      backends: [
        {
          type: 's3',
          id: 'dead',
          endpoint: 'http://127.0.0.1:1',
          region: 'us-east-1',
          bucket: 'nowhere',
          accessKeyId: 'AKIA0000',
          secretAccessKey: 'not-a-secret-0000',
          forcePathStyle: true,
          uploadAttempts: 1,
          retry: { attempts: 1 },
        },
      ],
    });
    await waitForNodes(m, 2);
    const vid = 900;
    expect((await fetch(`${dead.base}/admin/assign_volume?volume=${vid}`, { method: 'POST' })).status).toBe(
      200,
    );
    await fetch(`${dead.base}/admin/readonly?volume=${vid}`, { method: 'POST' });
    await fetch(`${dead.base}/admin/tier/upload?volume=${vid}&backend=s3.dead`, { method: 'POST' });
    await waitFor(
      'the upload to fail',
      async () => {
        const st = (await (await fetch(`${dead.base}/admin/tier/status?volume=${vid}`)).json()) as {
          job: { state: string } | null;
        };
        return st.job?.state === 'failed';
      },
      20_000,
    );
    const s = await scrape(dead.base);
    expect(sample(s, 'kelp_backend_errors_total', { backend: 's3.dead', op: 'upload' })).toBe(1);
    expect(
      sample(s, 'kelp_tier_transfers_total', { action: 'upload', backend: 's3.dead', result: 'failed' }),
    ).toBe(1);
  });

  it('count resize jobs, with their queue wait and run time', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a7' } })
      .png()
      .toBuffer();
    const a = await assign(m);
    const base = `http://${a.url}`;
    expect((await write(base, a.fid, png, 'image/png')).status).toBe(201);
    expect((await fetch(`${base}/${a.fid}?width=16`)).status).toBe(200);
    const s = await scrape(base);
    expect(sample(s, 'kelp_resize_jobs_total', { outcome: 'ok' })).toBe(1);
    expect(sample(s, 'kelp_resize_duration_seconds_count')).toBe(1);
    expect(sample(s, 'kelp_resize_queue_wait_seconds_count')).toBe(1);
    expect(sample(s, 'kelp_resize_queue_depth')).toBe(0);
  });
});

describe('replication metrics', () => {
  it('count replica requests, and the failures when a replica is gone', async () => {
    const m = await master();
    const a = await volume(m.address, { rack: 'r1' });
    const b = await volume(m.address, { rack: 'r1' });
    await waitForNodes(m, 2);
    const first = await assign(m, 'replication=001');
    const primary = first.url === a.url ? a : b;
    const other = primary === a ? b : a;
    expect((await write(primary.base, first.fid, new Uint8Array(100).fill(1))).status).toBe(201);
    let s = await scrape(primary.base);
    expect(sample(s, 'kelp_replication_requests_total', { op: 'write' })).toBe(1);
    expect(sample(s, 'kelp_replication_failures_total', { op: 'write' }) ?? 0).toBe(0);
    const replica = await scrape(other.base);
    expect(sample(replica, D, { route: 'replicate', status: '201' })).toBe(1);

    await other.stop();
    // Another key in the same volume (key + 1000, same cookie): an open cluster takes it without an assign.
    const [vid, rest] = first.fid.split(',') as [string, string];
    const second = `${vid},${(BigInt(`0x${rest.slice(0, -8)}`) + 1000n).toString(16)}${rest.slice(-8)}`;
    const res = await write(primary.base, second, new Uint8Array(100).fill(2));
    expect(res.status).toBeGreaterThanOrEqual(500);
    s = await scrape(primary.base);
    const failed =
      (sample(s, 'kelp_replication_failures_total', { op: 'write' }) ?? 0) +
      (sample(s, 'kelp_replication_failures_total', { op: 'locate' }) ?? 0);
    expect(failed).toBeGreaterThanOrEqual(1);
    expect(sample(s, D, { route: 'write', status: String(res.status) })).toBe(1);
  });
});

describe('master metrics', () => {
  it('count volume servers by state, volumes by state, slots and requests by route', async () => {
    const m = await master();
    const v1 = await volume(m.address);
    await volume(m.address);
    await waitForNodes(m, 2);
    await assign(m);
    const s = await scrape(m.base);
    expect(sample(s, 'kelp_master_volume_servers', { state: 'alive' })).toBe(2);
    expect(sample(s, 'kelp_master_volume_servers', { state: 'dead' })).toBe(0);
    expect(sample(s, 'kelp_master_volumes', { state: 'writable', backend: '' })).toBeGreaterThanOrEqual(1);
    expect(sample(s, 'kelp_master_volume_slots', { kind: 'max' })).toBe(16);
    expect(sample(s, 'kelp_master_is_leader')).toBe(1);
    expect(sample(s, 'kelp_master_volumes_missing_copies')).toBe(0);
    expect(sample(s, D, { route: 'assign', status: '200' })).toBe(1);
    expect(sample(s, D, { route: 'heartbeat', status: '200' })).toBeGreaterThanOrEqual(2);
    expect(sample(s, 'kelp_master_next_file_key')).toBeGreaterThan(1);
    // A server that leaves is gone from the count at once.
    await v1.server.shutdown(0);
    expect(sample(await scrape(m.base), 'kelp_master_volume_servers', { state: 'alive' })).toBe(1);
  });

  it('an unknown path is counted as redirect (GET) or other, never by its path', async () => {
    const m = await master();
    await fetch(`${m.base}/no/such/thing`);
    await fetch(`${m.base}/no/such/thing`, { method: 'POST' });
    const text = await (await fetch(`${m.base}/metrics`)).text();
    expect(text).not.toContain('/no/such');
    const s = parseExposition(text);
    expect(sample(s, D, { route: 'redirect', status: '404' })).toBe(1);
    expect(sample(s, D, { route: 'other', status: '404' })).toBe(1);
  });
});

describe('the exposition', () => {
  it('passes promtool check metrics, on the master and on a volume server', async () => {
    const m = await master();
    const v = await volume(m.address);
    await waitForNodes(m, 1);
    const a = await assign(m);
    await write(v.base, a.fid, new Uint8Array(10));
    await fetch(`${v.base}/${a.fid}`);
    for (const base of [m.base, v.base]) {
      const text = await (await fetch(`${base}/metrics`)).text();
      const check = promtool(['check', 'metrics'], text);
      expect(check, check.output).toMatchObject({ ok: true });
    }
  });
});

describe('who may scrape', () => {
  const ADMIN = 'metrics-test-admin-key-000000000';
  const METRICS = 'metrics-test-metrics-key-111111111';

  it('anyone, in an open cluster; read-only (GET and HEAD)', async () => {
    const m = await master();
    expect((await fetch(`${m.base}/metrics`)).status).toBe(200);
    const head = await fetch(`${m.base}/metrics`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-type')]).toEqual([
      200,
      'text/plain; version=0.0.4; charset=utf-8',
    ]);
    expect((await fetch(`${m.base}/metrics`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${m.base}/metrics`, { method: 'DELETE' })).status).toBe(405);
  });

  it('the admin key only, when there is one and no metrics key', async () => {
    const m = await master({ adminKey: ADMIN });
    expect((await fetch(`${m.base}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${m.base}/metrics`, { headers: { Authorization: `Bearer ${METRICS}` } })).status,
    ).toBe(401);
    expect((await fetch(`${m.base}/metrics`, { headers: { Authorization: `Bearer ${ADMIN}` } })).status).toBe(
      200,
    );
  });

  it('the metrics key or the admin key, when both are set; volume servers alike', async () => {
    const m = await master({ adminKey: ADMIN, metricsKey: METRICS });
    const v = await volume(m.address, { adminKey: ADMIN, metricsKey: METRICS });
    for (const base of [m.base, v.base]) {
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
      expect((await fetch(`${base}/metrics`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(
        401,
      );
      expect(
        (await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${METRICS}` } })).status,
      ).toBe(200);
      expect((await fetch(`${base}/metrics`, { headers: { Authorization: `bearer ${ADMIN}` } })).status).toBe(
        200,
      );
      // Health stays open: load balancers carry no keys.
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    }
  });

  it('the metrics key only, when it is the one key set', async () => {
    const m = await master({ metricsKey: METRICS });
    expect((await fetch(`${m.base}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${m.base}/metrics`, { headers: { Authorization: `Bearer ${METRICS}` } })).status,
    ).toBe(200);
  });

  it('nobody when metrics are off: 404', async () => {
    const m = await master({ metrics: false });
    const res = await fetch(`${m.base}/metrics`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe('not_found');
  });
});
