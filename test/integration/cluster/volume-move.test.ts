/**
 * volume.move with real processes (docs/decisions/0007-volume-move.md): two
 * volume servers as child processes in a cluster with a cluster key and an
 * admin key, and a kill -9 of the source, the target or the orchestrator
 * before every step. After each, the killed server is restarted on the same
 * data and port, every blob must be readable from somewhere, and running the
 * move again must end with the volume on the target alone, every blob intact,
 * nothing left in staging, and the volume taking writes again.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeServerClient } from '../../../origin/admin/cluster.ts';
import { MOVE_STEPS, type MoveStep, moveVolume } from '../../../origin/admin/move.ts';
import {
  type ChildVolume,
  childVolume,
  json,
  master,
  send,
  stopAll,
  type TestMaster,
  upload,
  waitFor,
  waitForNodes,
} from './harness.ts';

const CLUSTER_KEY = 'move-test-cluster-key-0123456789abcdef';
const ADMIN_KEY = 'move-test-admin-key-0123456789abcdef';
const ADMIN = { Authorization: `Bearer ${ADMIN_KEY}` };
const CLI = fileURLToPath(new URL('../../../origin/cli.ts', import.meta.url));

let m: TestMaster;
const servers: ChildVolume[] = [];
const client = new VolumeServerClient(() => ADMIN);

async function start(dir?: string, port?: number): Promise<ChildVolume> {
  return childVolume(m.address, {
    max: 64,
    clusterKey: CLUSTER_KEY,
    adminKey: ADMIN_KEY,
    ...(dir ? { dir } : {}),
    ...(port ? { port } : {}),
  });
}

/** Kills and restarts a server on the same data and port; returns the new handle. */
async function restart(s: ChildVolume): Promise<ChildVolume> {
  await s.kill();
  const port = Number(s.url.slice(s.url.lastIndexOf(':') + 1));
  const again = await start(s.dir, port);
  servers[servers.indexOf(s)] = again;
  return again;
}

interface Blob {
  fid: string;
  data: Buffer | null;
}

/** A volume of its own (a collection of its own) on one server, with blobs and a deleted one. */
async function volumeWithBlobs(collection: string): Promise<{ id: number; blobs: Blob[] }> {
  const grown = await json<{ volumeIds: number[] }>(
    await send(`${m.base}/vol/grow?collection=${collection}&count=1`, { method: 'POST', headers: ADMIN }),
    200,
  );
  const id = grown.volumeIds[0]!;
  const blobs: Blob[] = [];
  for (let i = 0; i < 6; i++) {
    const a = await json<{ fid: string; url: string }>(
      await fetch(`${m.base}/dir/assign?collection=${collection}`, { headers: ADMIN }),
      200,
    );
    expect(a.fid.startsWith(`${id},`)).toBe(true);
    const data = Buffer.from(`${collection} blob ${i} `.repeat(50 + i * 300));
    expect((await upload(a.url, a.fid, data)).status).toBe(201);
    blobs.push({ fid: a.fid, data });
  }
  const gone = blobs[2]!;
  const a = await fetch(`${m.base}/dir/lookup?fileId=${gone.fid}`);
  const where = (await a.json()) as { locations: { url: string }[] };
  expect((await fetch(`http://${where.locations[0]!.url}/${gone.fid}`, { method: 'DELETE' })).status).toBe(
    202,
  );
  gone.data = null;
  return { id, blobs };
}

async function holderOf(id: number): Promise<{ source: ChildVolume; target: ChildVolume }> {
  const holders = await waitFor(`a holder of volume ${id}`, async () => {
    const hs: ChildVolume[] = [];
    for (const s of servers) if ((await client.volumes(s.url)).some((v) => v.id === id)) hs.push(s);
    return hs.length ? hs : null;
  });
  expect(holders).toHaveLength(1);
  const source = holders[0]!;
  return { source, target: servers.find((s) => s !== source)! };
}

/** Every blob read back through the master's lookup from some server that has it. */
async function allReadable(blobs: Blob[]): Promise<boolean> {
  for (const b of blobs) {
    const res = await fetch(`${m.base}/dir/lookup?volumeId=${b.fid.split(',')[0]}`);
    if (!res.ok) return false;
    const { locations } = (await res.json()) as { locations: { url: string }[] };
    let ok = false;
    for (const l of locations) {
      const r = await fetch(`http://${l.url}/${b.fid}`).catch(() => null);
      if (!r) continue;
      const body = Buffer.from(await r.arrayBuffer());
      if (b.data ? r.status === 200 && body.equals(b.data) : r.status === 404) ok = true;
      if (ok) break;
    }
    if (!ok) return false;
  }
  return true;
}

/** The end state of a finished move: on the target alone, intact, writable, nothing in staging. */
async function assertMoved(
  id: number,
  collection: string,
  blobs: Blob[],
  source: ChildVolume,
  target: ChildVolume,
) {
  expect((await client.volumes(source.url)).some((v) => v.id === id)).toBe(false);
  const onTarget = (await client.volumes(target.url)).find((v) => v.id === id);
  expect(onTarget).toBeDefined();
  expect(onTarget!.moving).toBeUndefined();
  expect(onTarget!.readOnly).toBe(false);
  for (const b of blobs) {
    const r = await fetch(`${target.base}/${b.fid}`);
    if (b.data) {
      expect(r.status).toBe(200);
      expect(Buffer.from(await r.arrayBuffer()).equals(b.data)).toBe(true);
    } else expect(r.status).toBe(404);
  }
  for (const s of [source, target]) {
    expect(readdirSync(s.dir).filter((f) => /\.(mvd|mvx)$/.test(f))).toEqual([]);
  }
  // The master sees it on the target only, and writes to it go there again.
  await waitFor('the master to see the move', async () => {
    const l = (await (await fetch(`${m.base}/dir/lookup?volumeId=${id}`)).json()) as {
      locations?: { url: string }[];
    };
    return l.locations?.length === 1 && l.locations[0]!.url === target.url;
  });
  const a = await waitFor('an assign to the moved volume', async () => {
    const res = await fetch(`${m.base}/dir/assign?collection=${collection}`, { headers: ADMIN });
    if (!res.ok) return null;
    const body = (await res.json()) as { fid: string; url: string };
    return body.fid.startsWith(`${id},`) ? body : null;
  });
  expect(a.url).toBe(target.url);
  expect((await upload(a.url, a.fid, Buffer.from('after the move'))).status).toBe(201);
}

beforeAll(async () => {
  m = await master({ clusterKey: CLUSTER_KEY, adminKey: ADMIN_KEY });
  servers.push(await start(), await start());
  await waitForNodes(m, 2, 20_000);
});

afterAll(stopAll);

describe('volume.move', () => {
  it('copies, verifies, switches and deletes: the volume ends on the target with every blob', async () => {
    const { id, blobs } = await volumeWithBlobs('plain');
    const { source, target } = await holderOf(id);
    const seen: MoveStep[] = [];
    const out = await moveVolume(
      client,
      { volumeId: id, source: source.url, target: target.url, mode: 'move' },
      { onStep: (s) => void seen.push(s) },
    );
    expect(seen).toEqual([...MOVE_STEPS]);
    expect(out.bytes).toBeGreaterThan(0);
    await assertMoved(id, 'plain', blobs, source, target);
  });

  it('refuses writes and deletes while frozen, and a copy whose bytes differ from the source fails verification', async () => {
    const { id, blobs } = await volumeWithBlobs('frozen');
    const { source, target } = await holderOf(id);
    await client.freeze(source.url, id, target.url, 'move');
    const del = await fetch(`${source.base}/${blobs[0]!.fid}`, { method: 'DELETE' });
    expect(del.status).toBe(409);
    expect(((await del.json()) as { error: string }).error).toContain('being moved');
    const status = (await client.volumes(source.url)).find((v) => v.id === id)!;
    expect(status.moving).toMatchObject({ role: 'source', peer: target.url, mode: 'move' });
    // Unfreeze: the move is abandoned and the source takes deletes again.
    await client.unfreeze(source.url, id);
    expect((await fetch(`${source.base}/${blobs[0]!.fid}`, { method: 'DELETE' })).status).toBe(202);
    // A target without a verified copy refuses the switch.
    await expect(client.mount(target.url, id, source.url)).rejects.toThrow(/no verified copy/);
  });

  it('volume server file endpoints need an admin credential', async () => {
    const { id } = await volumeWithBlobs('guarded');
    const { source, target } = await holderOf(id);
    await client.freeze(source.url, id, target.url, 'move');
    expect((await fetch(`${source.base}/admin/volume/file?volume=${id}&ext=dat`)).status).toBe(401);
    expect((await fetch(`${source.base}/admin/volume/snapshot?volume=${id}`)).status).toBe(401);
    expect(
      (await fetch(`${source.base}/admin/volume/file?volume=${id}&ext=dat`, { headers: ADMIN })).status,
    ).toBe(200);
    await client.unfreeze(source.url, id);
  });

  for (const step of MOVE_STEPS) {
    for (const victim of ['source', 'target', 'orchestrator'] as const) {
      it(`survives a kill -9 of the ${victim} before "${step}"`, async () => {
        const collection = `k${MOVE_STEPS.indexOf(step)}${victim[0]}`;
        const { id, blobs } = await volumeWithBlobs(collection);
        let { source, target } = await holderOf(id);
        const req = { volumeId: id, source: source.url, target: target.url, mode: 'move' as const };
        await expect(
          moveVolume(client, req, {
            onStep: async (s) => {
              if (s !== step) return;
              if (victim === 'source') await source.kill();
              if (victim === 'target') await target.kill();
              throw new Error(`${victim} killed before ${s}`);
            },
          }),
        ).rejects.toThrow(/killed/);
        if (victim === 'source') source = await restart(source);
        if (victim === 'target') target = await restart(target);
        await waitForNodes(m, 2, 20_000);
        // Between the crash and the retry, every blob is still readable from somewhere.
        await waitFor('every blob readable after the crash', () => allReadable(blobs), 15_000);
        await moveVolume(client, req);
        await assertMoved(id, collection, blobs, source, target);
      });
    }
  }

  it('kelp admin volume.move killed with SIGKILL mid-move, then run again, finishes the move', async () => {
    const { id, blobs } = await volumeWithBlobs('cli');
    const { source, target } = await holderOf(id);
    const args = [
      CLI,
      'admin',
      'volume.move',
      '--master',
      m.address,
      '--volume',
      String(id),
      '--source',
      source.url,
      '--target',
      target.url,
    ];
    const env = { ...process.env, KELP_ADMIN_KEY: ADMIN_KEY };
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    const killed = new Promise<void>((resolve) => {
      child.stdout.on('data', (s: string) => {
        out += s;
        // The step lines print as each step starts: kill it once the copy has begun.
        if (/\[2\/5\] copy/.test(out) && child.exitCode === null) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await Promise.race([killed, once(child, 'exit')]);
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    expect(out).toContain('[2/5] copy');
    expect(child.signalCode).toBe('SIGKILL');
    await waitFor('every blob readable after the crash', () => allReadable(blobs), 15_000);
    const again = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out2 = '';
    again.stdout.setEncoding('utf8');
    again.stdout.on('data', (s: string) => {
      out2 += s;
    });
    const [code] = (await once(again, 'exit')) as [number];
    expect(code).toBe(0);
    expect(out2).toContain(`volume ${id} is on ${target.url}`);
    // The second run had work left: the kill did interrupt the move.
    expect(out2).not.toContain('none (done before)');
    await assertMoved(id, 'cli', blobs, source, target);
  });
});
