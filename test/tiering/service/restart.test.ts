/**
 * The tiering service's safety at any stop or restart, against a scripted
 * cluster (a fake master and fake volume servers on 127.0.0.1 speaking the
 * real endpoints' JSON), where a transfer can be made to run long, fail, or
 * be found half done: a running transfer is waited on and never started
 * twice, a move interrupted between replicas is finished on the replica left,
 * a failure backs off, a silent server's volumes are left alone, and an abort
 * stops the loop at once.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { readCluster, TierClient, type TierJob } from '../../../tiering/service/client.ts';
import { parseRules } from '../../../tiering/service/policy.ts';
import { planCluster, TierService } from '../../../tiering/service/service.ts';
import { captureLogs } from '../../helpers/log-capture.ts';

const RULES = parseRules([{ backend: 's3.cold', minFullPercent: 50, quietFor: '1h' }]);
const OLD = Math.floor(Date.now() / 1000) - 86_400;

interface FakeVolume {
  id: number;
  collection: string;
  size: number;
  readOnly: boolean;
  remote?: string;
  readsPerDay: number;
  modifiedAt: number;
}

/** A volume server: its volumes, jobs that end after `pollsToFinish` status polls, and a log of POSTs. */
class FakeVolumeServer {
  server!: Server;
  address = '';
  volumes = new Map<number, FakeVolume>();
  jobs = new Map<number, TierJob>();
  posts: string[] = [];
  pollsToFinish = 2;
  /** How a started job ends. */
  outcome: 'done' | 'failed' | 'never' = 'done';
  /** Answer the next start with 409 and a job of someone else's. */
  conflictOnce = false;
  private polls = new Map<number, number>();

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const id = Number(url.searchParams.get('volume'));
      if (url.pathname === '/status') return send(200, { Volumes: [...this.volumes.values()] });
      if (url.pathname === '/admin/tier/status' && !url.searchParams.has('volume'))
        return send(200, { backends: ['local.default', 's3.cold'], jobs: [...this.jobs.values()] });
      if (url.pathname === '/admin/tier/status') {
        this.advance(id);
        const v = this.volumes.get(id)!;
        return send(200, {
          volume: id,
          remote: v.remote ? { backend: v.remote, key: 'k' } : null,
          job: this.jobs.get(id) ?? null,
        });
      }
      if (req.method === 'POST' && url.pathname.startsWith('/admin/tier/')) {
        const action = url.pathname.endsWith('upload') ? 'upload' : 'download';
        this.posts.push(`${action} ${id}`);
        if (this.conflictOnce) {
          this.conflictOnce = false;
          this.run(id, action, url.searchParams.get('backend') ?? 's3.cold');
          return send(409, { error: `volume ${id} already has a tier transfer running`, code: 'conflict' });
        }
        return send(
          202,
          this.run(id, action, url.searchParams.get('backend') ?? this.volumes.get(id)!.remote!),
        );
      }
      send(404, { error: 'not found' });
    });
    this.server.listen(0, '127.0.0.1');
    await new Promise((r) => this.server.once('listening', r));
    this.address = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  run(volumeId: number, action: 'upload' | 'download', backend: string): TierJob {
    const job: TierJob = {
      volumeId,
      action,
      backend,
      state: 'running',
      bytes: 0,
      total: 1000,
      startedAt: Date.now(),
    };
    this.jobs.set(volumeId, job);
    this.polls.set(volumeId, 0);
    return job;
  }

  private advance(id: number): void {
    const job = this.jobs.get(id);
    if (job?.state !== 'running' || this.outcome === 'never') return;
    const n = (this.polls.get(id) ?? 0) + 1;
    this.polls.set(id, n);
    job.bytes = Math.min(job.total, n * 400);
    if (n < this.pollsToFinish) return;
    if (this.outcome === 'failed') {
      job.state = 'failed';
      job.error = 'injected: the backend said no';
      return;
    }
    job.state = 'done';
    const v = this.volumes.get(id)!;
    if (job.action === 'upload') v.remote = job.backend;
    else delete v.remote;
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }
}

/** A master whose /vol/status lists the fake servers' volumes (and a server that is down, if told). */
async function fakeMaster(servers: FakeVolumeServer[], down: string[] = []): Promise<Server> {
  const server = createServer((_req, res) => {
    const byId = new Map<number, Record<string, unknown> & { locations: string[] }>();
    for (const s of servers) {
      for (const v of s.volumes.values()) {
        const e = byId.get(v.id) ?? {
          ...v,
          replicaPlacement: '000',
          ttl: '',
          fileCount: 1,
          deleteCount: 0,
          deletedByteCount: 0,
          compactRevision: 0,
          locations: [],
        };
        e.locations.push(s.address);
        byId.set(v.id, e);
      }
    }
    for (const e of byId.values()) e.locations.push(...down);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ VolumeSizeLimit: 1000, Volumes: [...byId.values()] }));
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return server;
}

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

async function cluster(n: number, down: string[] = []) {
  const servers = await Promise.all(Array.from({ length: n }, () => new FakeVolumeServer().start()));
  const master = await fakeMaster(servers, down);
  open.push(...servers, { close: () => new Promise((r) => master.close(r)) });
  const client = new TierClient(`127.0.0.1:${(master.address() as AddressInfo).port}`);
  const logs: string[] = [];
  const service = new TierService({
    client,
    rules: RULES,
    intervalMs: 60_000,
    pollMs: 5,
    logger: captureLogs(logs).logger,
  });
  return { servers, client, service, logs };
}

const vol = (id: number, over: Partial<FakeVolume> = {}): FakeVolume => ({
  id,
  collection: '',
  size: 900,
  readOnly: true,
  readsPerDay: 0,
  modifiedAt: OLD,
  ...over,
});

describe('the tiering service across stops and restarts', () => {
  it('waits for a transfer it finds running, and never starts it again', async () => {
    const { servers, service, logs } = await cluster(1);
    const [a] = servers as [FakeVolumeServer];
    a.volumes.set(1, vol(1));
    a.pollsToFinish = 4;
    a.run(1, 'upload', 's3.cold'); // started before a restart, or by `kelp tier upload`
    const outcome = await service.round();
    expect(outcome).toMatchObject({ kind: 'waited', job: { volumeId: 1, state: 'done' } });
    expect(a.posts).toEqual([]);
    expect(logs[0]).toMatch(/waiting for the running upload of volume 1 on 127\.0\.0\.1:\d+ \(s3\.cold\)/);
    expect(await service.round()).toEqual({ kind: 'idle' });
    expect(a.posts).toEqual([]);
  });

  it('finishes a move interrupted between replicas on the replica left, one at a time', async () => {
    const { servers, service, logs } = await cluster(2);
    const [a, b] = servers as [FakeVolumeServer, FakeVolumeServer];
    a.volumes.set(2, vol(2, { remote: 's3.cold' }));
    b.volumes.set(2, vol(2));
    expect(await service.round()).toMatchObject({
      kind: 'moved',
      decision: { action: 'upload', backend: 's3.cold' },
    });
    expect(a.posts).toEqual([]);
    expect(b.posts).toEqual(['upload 2']);
    expect(logs.join('\n')).toContain('tiered on some replicas only: finishing the move to s3.cold');
  });

  it('moves every replica of a fresh candidate in turn', async () => {
    const { servers, service } = await cluster(2);
    const [a, b] = servers as [FakeVolumeServer, FakeVolumeServer];
    a.volumes.set(3, vol(3));
    b.volumes.set(3, vol(3));
    expect((await service.round()).kind).toBe('moved');
    expect([a.posts, b.posts]).toEqual([['upload 3'], ['upload 3']]);
    expect(a.volumes.get(3)!.remote).toBe('s3.cold');
    expect(await service.round()).toEqual({ kind: 'idle' });
  });

  it('backs off from a failed transfer instead of retrying it every round', async () => {
    const { servers, service, logs } = await cluster(1);
    const [a] = servers as [FakeVolumeServer];
    a.volumes.set(4, vol(4));
    a.outcome = 'failed';
    expect(await service.round()).toMatchObject({
      kind: 'failed',
      error: expect.stringContaining('injected'),
    });
    expect(logs.at(-1)).toMatch(
      /volume 4: upload failed \(.*injected: the backend said no\); trying again in 60 s/,
    );
    expect(await service.round()).toEqual({ kind: 'idle' });
    expect(a.posts).toEqual(['upload 4']);
  });

  it('waits for a transfer someone started between its look and its start (409)', async () => {
    const { servers, service, logs } = await cluster(1);
    const [a] = servers as [FakeVolumeServer];
    a.volumes.set(5, vol(5));
    a.conflictOnce = true;
    expect((await service.round()).kind).toBe('moved');
    expect(logs.join('\n')).toContain('its upload is already running; waiting');
    expect(a.volumes.get(5)!.remote).toBe('s3.cold');
  });

  it('leaves alone a volume with a server that does not answer', async () => {
    const { servers, client, service } = await cluster(1, ['127.0.0.1:9']);
    const [a] = servers as [FakeVolumeServer];
    a.volumes.set(6, vol(6));
    const snapshot = await readCluster(client);
    expect(snapshot.unreachable.has('127.0.0.1:9')).toBe(true);
    const [d] = planCluster(snapshot, RULES, Date.now());
    expect(d).toMatchObject({ action: 'none' });
    expect(d!.reason).toMatch(/^would upload \(sealed; .*\), but 127\.0\.0\.1:9 did not answer$/);
    expect(await service.round()).toEqual({ kind: 'idle' });
    expect(a.posts).toEqual([]);
  });

  it('stops at once when aborted mid-transfer, leaving the transfer to its server', async () => {
    const { servers, service } = await cluster(1);
    const [a] = servers as [FakeVolumeServer];
    a.volumes.set(7, vol(7));
    a.outcome = 'never';
    const abort = new AbortController();
    const running = service.run(abort.signal);
    while (a.posts.length === 0) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    abort.abort();
    await running;
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(a.jobs.get(7)!.state).toBe('running');
  });
});
