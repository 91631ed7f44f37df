/**
 * A published SeaweedFS client drives Kelp unchanged: node-seaweedfs 1.4.0
 * (npm, exact-pinned). Its write, read, find, remove, status and vacuum
 * calls against a master and a volume server in the configuration
 * docs/security.md names for such clients: an open cluster on loopback (the
 * client sends no credentials, and vacuums with GET /vol/vacuum).
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KELP_VERSION_STRING } from '../../../origin/version.ts';
import { master, stopAll, type TestMaster, type TestVolume, volume, waitForNodes } from './harness.ts';

interface WeedClient {
  write(
    file: Buffer | Buffer[],
    opts?: Record<string, unknown>,
  ): Promise<{ fid: string; url: string; count: number }>;
  read(fid: string): Promise<Buffer>;
  find(fid: string): Promise<{ volumeId: string; locations: { url: string; publicUrl: string }[] }>;
  remove(fid: string): Promise<{ count: number }>;
  systemStatus(): Promise<{ Version: string; Topology: { layouts: unknown[]; DataCenters: unknown[] } }>;
  clusterStatus(): Promise<{ IsLeader: boolean; Leader: string }>;
  volumeStatus(host: string): Promise<{ Version: string; Volumes: { id: number; size: number }[] }>;
  vacuum(
    opts?: Record<string, unknown>,
  ): Promise<{ volumes: { volumeId: number; report?: { compacted: boolean } }[] }>;
}

const require = createRequire(import.meta.url);
const WeedFSClient = require('node-seaweedfs') as new (opts: { server: string; port: number }) => WeedClient;

let m: TestMaster;
let v: TestVolume;
let weed: WeedClient;

beforeAll(async () => {
  m = await master({ vacuumIntervalMs: 0 });
  v = await volume(m.address);
  await waitForNodes(m, 1);
  const [host, port] = m.address.split(':');
  weed = new WeedFSClient({ server: host!, port: Number(port) });
});

afterAll(stopAll);

describe('node-seaweedfs against Kelp', () => {
  it('writes, reads, finds and removes blobs', async () => {
    const data = Buffer.from('hello from a SeaweedFS client '.repeat(40));
    const info = await weed.write(data);
    expect(info.fid).toMatch(/^\d+,[0-9a-f]+$/);
    expect(info.count).toBe(1);
    expect((await weed.read(info.fid)).equals(data)).toBe(true);
    const volumeId = info.fid.split(',')[0]!;
    const found = await weed.find(volumeId);
    expect(found.volumeId).toBe(volumeId);
    expect(found.locations.map((l) => l.url)).toEqual([v.url]);
    expect(await weed.remove(info.fid)).toEqual({ count: 1 });
    await expect(weed.read(info.fid)).rejects.toThrow(/not found/);
  });

  it('writes several blobs in one assign (fid, fid_1, ...)', async () => {
    const parts = [Buffer.from('first'), Buffer.from('second'), Buffer.from('third')];
    const info = await weed.write(parts);
    expect(info.count).toBe(3);
    expect((await weed.read(info.fid)).toString()).toBe('first');
    expect((await weed.read(`${info.fid}_1`)).toString()).toBe('second');
    expect((await weed.read(`${info.fid}_2`)).toString()).toBe('third');
  });

  it('reads the status of the cluster, the master and a volume server, with one Version string', async () => {
    const sys = await weed.systemStatus();
    expect(sys.Version).toBe(KELP_VERSION_STRING);
    expect(sys.Topology.layouts).toEqual(
      expect.arrayContaining([expect.objectContaining({ collection: '', replication: '000', ttl: '' })]),
    );
    const layout = sys.Topology.layouts[0] as { writables: number[] };
    expect(layout.writables.length).toBeGreaterThan(0);
    const cluster = await weed.clusterStatus();
    expect(cluster.IsLeader).toBe(true);
    expect(cluster.Leader).toBe(m.address);
    const vs = await weed.volumeStatus(v.url);
    expect(vs.Version).toBe(KELP_VERSION_STRING);
    expect(vs.Volumes.length).toBeGreaterThan(0);
  });

  it('vacuums the cluster: the garbage of removed blobs is reclaimed', async () => {
    // One volume for the collection, so every blob lands in it.
    const grown = await fetch(`${m.base}/vol/grow?collection=vac&count=1`, { method: 'POST' });
    const volumeId = ((await grown.json()) as { volumeIds: number[] }).volumeIds[0]!;
    const same = [];
    for (let i = 0; i < 6; i++) same.push(await weed.write(Buffer.alloc(20_000, i), { collection: 'vac' }));
    expect(same.every((b) => Number(b.fid.split(',')[0]) === volumeId)).toBe(true);
    for (const b of same.slice(1)) await weed.remove(b.fid);
    const sizeOf = async () => (await weed.volumeStatus(v.url)).Volumes.find((x) => x.id === volumeId)!.size;
    const before = await sizeOf();
    const out = await weed.vacuum({ garbageThreshold: 0.1 });
    expect(out.volumes.find((r) => r.volumeId === volumeId)?.report?.compacted).toBe(true);
    expect(await sizeOf()).toBeLessThan(before - 5 * 20_000);
    // What was not removed is still there.
    expect((await weed.read(same[0]!.fid)).equals(Buffer.alloc(20_000, 0))).toBe(true);
  });
});
