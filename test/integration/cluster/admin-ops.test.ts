/**
 * The admin operations against real servers: the master's authenticated
 * endpoints, `kelp admin ...` as a child process (with KELP_ADMIN_KEY),
 * volume.balance, volume.fix.replication, volume.mark, collection.delete,
 * volume.list, the master's vacuum schedule, and what assign says when every
 * slot is taken.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { statfsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { VolumeServerClient } from '../../../origin/admin/cluster.ts';
import { moveVolume } from '../../../origin/admin/move.ts';
import { MAX_AUTO_SLOTS } from '../../../origin/volume/store.ts';
import { NO_REPLICATION } from '../../../shared/placement.ts';
import { parseTtl } from '../../../shared/ttl.ts';
import {
  json,
  master,
  send,
  stopAll,
  type TestMaster,
  tempDir,
  upload,
  volume,
  waitFor,
  waitForNodes,
} from './harness.ts';

const ADMIN_KEY = 'admin-ops-test-admin-key-0123456789';
const CLUSTER_KEY = 'admin-ops-test-cluster-key-0123456789';
const ADMIN = { Authorization: `Bearer ${ADMIN_KEY}` };
const CLI = fileURLToPath(new URL('../../../origin/cli.ts', import.meta.url));
const client = new VolumeServerClient(() => ADMIN);
const EMPTY_TTL = parseTtl('');

afterAll(stopAll);

async function kelp(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, KELP_ADMIN_KEY: ADMIN_KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const [code] = (await once(child, 'exit')) as [number];
  return { code, stdout, stderr };
}

/** A secured cluster of `n` in-process volume servers (admin key and cluster key on every member). */
async function cluster(n: number, opts: { max?: number; racks?: string[] } = {}) {
  const m = await master({ adminKey: ADMIN_KEY, clusterKey: CLUSTER_KEY, vacuumIntervalMs: 0 });
  const vols = [];
  for (let i = 0; i < n; i++) {
    vols.push(
      await volume(m.address, {
        max: opts.max ?? 10,
        adminKey: ADMIN_KEY,
        clusterKey: CLUSTER_KEY,
        ...(opts.racks ? { rack: opts.racks[i]! } : {}),
      }),
    );
  }
  await waitForNodes(m, n);
  return { m, vols };
}

async function grow(m: TestMaster, params: string): Promise<number[]> {
  const res = await send(`${m.base}/vol/grow?${params}`, { method: 'POST', headers: ADMIN });
  return (await json<{ volumeIds: number[] }>(res, 200)).volumeIds;
}

async function holders(m: TestMaster, id: number): Promise<string[]> {
  const res = await fetch(`${m.base}/dir/lookup?volumeId=${id}`);
  if (res.status === 404) return [];
  return ((await res.json()) as { locations: { url: string }[] }).locations.map((l) => l.url).sort();
}

describe('admin endpoints on the master', () => {
  it('need the admin key, take POST, and GET /vol/vacuum only in an open cluster', async () => {
    const { m } = await cluster(1);
    expect((await fetch(`${m.base}/vol/vacuum`)).status).toBe(405);
    expect((await send(`${m.base}/vol/vacuum`, { method: 'POST' })).status).toBe(401);
    expect((await send(`${m.base}/vol/balance`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${m.base}/vol/list`)).status).toBe(401);
    expect((await fetch(`${m.base}/vol/balance`, { headers: ADMIN })).status).toBe(405);
    const ok = await send(`${m.base}/vol/vacuum?garbageThreshold=0.5`, { method: 'POST', headers: ADMIN });
    expect((await json<{ garbageThreshold: number }>(ok, 200)).garbageThreshold).toBe(0.5);
    const list = await json<{ nodes: { alive: boolean }[] }>(
      await fetch(`${m.base}/vol/list`, { headers: ADMIN }),
      200,
    );
    expect(list.nodes).toHaveLength(1);
    expect(
      (await send(`${m.base}/vol/vacuum?garbageThreshold=2`, { method: 'POST', headers: ADMIN })).status,
    ).toBe(400);
    // An open cluster (no admin key, no cluster key) takes SeaweedFS clients' GET.
    const open = await master({ vacuumIntervalMs: 0 });
    expect((await fetch(`${open.base}/vol/vacuum`)).status).toBe(200);
    expect((await fetch(`${open.base}/vol/balance`)).status).toBe(405);
  });
});

describe('volume.balance', () => {
  it('spreads volumes piled on one server evenly, and the dry run changes nothing', async () => {
    const { m, vols } = await cluster(3);
    // Six volumes created on the first server only (as an old cluster that grew before the others joined).
    const ids = [101, 102, 103, 104, 105, 106];
    for (const id of ids) vols[0]!.server.store.createVolume(id, 'bal', NO_REPLICATION, EMPTY_TTL);
    await waitFor('the master to see them', async () => (await holders(m, 106)).length === 1);
    for (const id of ids) expect(await holders(m, id)).toEqual([vols[0]!.url]);
    const dry = await kelp(['admin', 'volume.balance', '--master', m.address, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/would do 4:/);
    for (const id of ids) expect(await holders(m, id)).toEqual([vols[0]!.url]);
    const run = await send(`${m.base}/vol/balance`, { method: 'POST', headers: ADMIN });
    const body = await json<{ actions: { ok: boolean }[] }>(run, 200);
    expect(body.actions).toHaveLength(4);
    expect(body.actions.every((a) => a.ok)).toBe(true);
    await waitFor('two volumes on each server', async () => {
      const counts = new Map<string, number>();
      for (const id of ids) for (const h of await holders(m, id)) counts.set(h, (counts.get(h) ?? 0) + 1);
      return vols.every((v) => counts.get(v.url) === 2);
    });
    const again = await kelp(['admin', 'volume.balance', '--master', m.address]);
    expect(again.stdout).toContain('balanced already');
  });
});

describe('volume.fix.replication', () => {
  it('re-creates a missing replica and removes an extra one, blobs intact', async () => {
    const { m, vols } = await cluster(3, { racks: ['r1', 'r1', 'r1'] });
    const [id] = await grow(m, 'collection=rep&replication=001&count=1');
    const data = Buffer.from('replicated blob '.repeat(100));
    const a = await json<{ fid: string; url: string }>(
      await fetch(`${m.base}/dir/assign?collection=rep&replication=001`, { headers: ADMIN }),
      200,
    );
    expect((await upload(a.url, a.fid, data)).status).toBe(201);
    const two = await holders(m, id!);
    expect(two).toHaveLength(2);
    // Lose one copy.
    await client.deleteVolume(two[1]!, id!, { extra: true });
    await waitFor('the master to see one copy', async () => (await holders(m, id!)).length === 1);
    const dry = await kelp(['admin', 'volume.fix.replication', '--master', m.address, '--dry-run']);
    expect(dry.stdout).toMatch(new RegExp(`copy volume ${id} from ${two[0]}`));
    const fix = await kelp(['admin', 'volume.fix.replication', '--master', m.address]);
    expect(fix.code).toBe(0);
    expect(fix.stdout).toMatch(/done: copy volume/);
    const after = await waitFor('two copies again', async () => {
      const h = await holders(m, id!);
      return h.length === 2 ? h : null;
    });
    for (const h of after) {
      const r = await fetch(`http://${h}/${a.fid}`);
      expect(Buffer.from(await r.arrayBuffer()).equals(data)).toBe(true);
      expect((await client.volumes(h)).find((v) => v.id === id)!.moving).toBeUndefined();
    }
    // One copy too many: a third made by hand.
    const third = vols.map((v) => v.url).find((u) => !after.includes(u))!;
    await moveVolume(
      client,
      { volumeId: id!, source: after[0]!, target: third, mode: 'copy' },
      { settleMs: 0 },
    );
    await waitFor('three copies', async () => (await holders(m, id!)).length === 3);
    const trim = await send(`${m.base}/vol/fix_replication`, { method: 'POST', headers: ADMIN });
    const body = await json<{ actions: { action: { kind: string }; ok: boolean }[] }>(trim, 200);
    expect(body.actions.map((x) => [x.action.kind, x.ok])).toEqual([['remove', true]]);
    await waitFor('two copies after the trim', async () => (await holders(m, id!)).length === 2);
    // Writes replicate to both copies again.
    const b = await json<{ fid: string; url: string }>(
      await fetch(`${m.base}/dir/assign?collection=rep&replication=001`, { headers: ADMIN }),
      200,
    );
    expect((await upload(b.url, b.fid, Buffer.from('after the fix'))).status).toBe(201);
    for (const h of await holders(m, id!)) expect((await fetch(`http://${h}/${b.fid}`)).status).toBe(200);
  });
});

describe('volume.mark, volume.list, collection.delete', () => {
  it('marks every replica, lists the cluster, and deletes a collection (dry run first)', async () => {
    const { m, vols } = await cluster(2);
    const [id] = await grow(m, 'collection=tmp&replication=001&count=1');
    const ro = await kelp([
      'admin',
      'volume.mark',
      'readonly',
      '--volume',
      String(id),
      '--master',
      m.address,
    ]);
    expect(ro.code).toBe(0);
    for (const v of vols) expect((await client.volumes(v.url)).find((x) => x.id === id)!.readOnly).toBe(true);
    const list = await kelp(['admin', 'volume.list', '--master', m.address]);
    expect(list.stdout).toContain(vols[0]!.url);
    await waitFor('the master to see it sealed', async () =>
      (await kelp(['admin', 'volume.list', '--master', m.address])).stdout.match(
        new RegExp(`^${id}\\s+tmp\\s+sealed`, 'm'),
      ),
    );
    const rw = await send(`${m.base}/vol/mark?volumeId=${id}&state=writable`, {
      method: 'POST',
      headers: ADMIN,
    });
    expect(rw.status).toBe(200);
    for (const v of vols)
      expect((await client.volumes(v.url)).find((x) => x.id === id)!.readOnly).toBe(false);
    const dry = await kelp([
      'admin',
      'collection.delete',
      '--collection',
      'tmp',
      '--master',
      m.address,
      '--dry-run',
    ]);
    expect(dry.stdout).toContain(`would delete collection tmp: volumes ${id}`);
    expect(await holders(m, id!)).toHaveLength(2);
    const del = await kelp(['admin', 'collection.delete', '--collection', 'tmp', '--master', m.address]);
    expect(del.code).toBe(0);
    // No holder, and the master says why: the volume was deleted (not that its holders are down).
    const gone = await fetch(`${m.base}/dir/lookup?volumeId=${id}`);
    expect([gone.status, ((await gone.json()) as { code: string }).code]).toEqual([410, 'volume_deleted']);
    // Without the key, the CLI is refused and says why.
    const child = spawn(process.execPath, [CLI, 'admin', 'volume.list', '--master', m.address], {
      env: { ...process.env, KELP_ADMIN_KEY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      err += s;
    });
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(1);
    expect(err).toContain('401');
  });
});

describe('vacuum', () => {
  it('the master vacuums on its schedule by itself', async () => {
    const m = await master({ vacuumIntervalMs: 300, garbageThreshold: 0.2 });
    const v = await volume(m.address);
    await waitForNodes(m, 1);
    const [id] = await grow(m, 'collection=sched&count=1');
    const fids = [];
    for (let i = 0; i < 4; i++) {
      const a = await json<{ fid: string }>(await fetch(`${m.base}/dir/assign?collection=sched`), 200);
      expect((await upload(v.url, a.fid, Buffer.alloc(10_000, i))).status).toBe(201);
      fids.push(a.fid);
    }
    const sizeOf = async () => (await client.volumes(v.url)).find((x) => x.id === id)!.size;
    const full = await sizeOf();
    for (const f of fids.slice(1))
      expect((await fetch(`${v.base}/${f}`, { method: 'DELETE' })).status).toBe(202);
    await waitFor('the scheduled vacuum to compact', async () => (await sizeOf()) < full - 25_000, 10_000);
    expect(m.vacuumSchedule.last?.compacted).toBeGreaterThan(0);
    expect((await fetch(`${v.base}/${fids[0]}`)).status).toBe(200);
  });

  it('kelp admin vacuum compacts what is over the threshold, with a dry run first', async () => {
    const { m, vols } = await cluster(1);
    const v = vols[0]!;
    const [id] = await grow(m, 'collection=cli&count=1');
    const fids = [];
    for (let i = 0; i < 4; i++) {
      const a = await json<{ fid: string }>(
        await fetch(`${m.base}/dir/assign?collection=cli`, { headers: ADMIN }),
        200,
      );
      expect((await upload(v.url, a.fid, Buffer.alloc(10_000, i))).status).toBe(201);
      fids.push(a.fid);
    }
    for (const f of fids.slice(1))
      expect((await fetch(`${v.base}/${f}`, { method: 'DELETE' })).status).toBe(202);
    await waitFor('the heartbeat to carry the garbage', async () => {
      const l = await json<{ nodes: { volumes: { id: number; deletedByteCount: number }[] }[] }>(
        await fetch(`${m.base}/vol/list`, { headers: ADMIN }),
        200,
      );
      return l.nodes[0]!.volumes.find((x) => x.id === id)!.deletedByteCount > 0;
    });
    const dry = await kelp(['admin', 'vacuum', '--master', m.address, '--collection', 'cli', '--dry-run']);
    expect(dry.stdout).toMatch(new RegExp(`volume ${id} on ${v.url}: would vacuum`));
    const run = await kelp([
      'admin',
      'vacuum',
      '--master',
      m.address,
      '--collection',
      'cli',
      '--garbageThreshold',
      '0.3',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`volume ${id} on ${v.url}: compacted`));
  });
});

describe('slots', () => {
  it('an assign for a new collection when every slot is used says so plainly', async () => {
    const m = await master({ vacuumIntervalMs: 0 });
    await volume(m.address, { max: 1 });
    await waitForNodes(m, 1);
    expect((await fetch(`${m.base}/dir/assign`)).status).toBe(200);
    const res = await fetch(`${m.base}/dir/assign?collection=another`);
    expect(res.status).toBe(406);
    const { error } = (await res.json()) as { error: string };
    expect(error).toContain('every volume slot is in use (1 volumes on 1 volume servers)');
    expect(error).toContain('collection "another"');
  });

  it('with max 0 the slots follow free disk at the size limit, as SeaweedFS -max=0', async () => {
    const dir = tempDir('kelp-auto-');
    const fs = statfsSync(dir);
    const free = fs.bavail * fs.bsize;
    const limit = Math.max(1024 * 1024, Math.floor(free / 5));
    const m = await master({ vacuumIntervalMs: 0, volumeSizeLimitBytes: limit });
    const v = await volume(m.address, { max: 0, dir, sizeLimitBytes: limit });
    await waitForNodes(m, 1);
    const slots = m.topology.nodes.get(v.url)!.maxVolumeCount;
    expect(Math.abs(slots - Math.min(MAX_AUTO_SLOTS, Math.floor(free / limit)))).toBeLessThanOrEqual(1);
    expect(slots).toBeGreaterThanOrEqual(4);
    // A new writable volume claims the room it may grow into: it takes a slot, the total stays.
    await grow(m, 'count=1');
    await waitFor('the claim to show', async () => m.topology.nodes.get(v.url)!.maxVolumeCount === slots);
  });
});
