/**
 * Helpers for the cluster tests: temp dirs, an in-process master, volume
 * servers in-process or as child processes (fixtures/volume-process.ts), and
 * small HTTP helpers. Every loop is bounded; every server is stopped by
 * `stopAll()` in afterAll.
 */
import type { ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { type MasterConfig, type MasterServer, startMaster } from '../../../origin/master/server.ts';
import { silentLogger } from '../../../origin/observability/log.ts';
import {
  startVolumeServer,
  type VolumeServer,
  type VolumeServerConfig,
} from '../../../origin/volume/server.ts';
import type { AssignResponse, LookupResponse } from '../../../shared/api.ts';
import { parseFid } from '../../../shared/fid.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { spawnUntilReady } from '../../support/process.ts';
import { removeTempDirs, tempDir as supportTempDir } from '../../support/temp-dirs.ts';
import { waitFor } from '../../support/wait.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/volume-process.ts', import.meta.url));

const stoppers: Array<() => Promise<void>> = [];

export function tempDir(prefix = 'kelp-cluster-'): string {
  return supportTempDir(prefix);
}

/** Stops every server started through this harness (newest first), then removes the temp dirs. */
export async function stopAll(): Promise<void> {
  for (const stop of stoppers.splice(0).reverse()) await stop().catch(() => {});
  removeTempDirs();
}

export interface TestMaster extends MasterServer {
  base: string;
  logs: string[];
}

/** A master on 127.0.0.1 (port 0 unless given), 1-second pulses, log lines kept in `logs`. */
export async function master(options: Partial<MasterConfig> = {}): Promise<TestMaster> {
  const logs: string[] = [];
  const m = await startMaster({
    host: '127.0.0.1',
    port: 0,
    mdir: options.mdir ?? tempDir('kelp-mdir-'),
    pulseSeconds: 1,
    logger: captureLogs(logs).logger,
    ...options,
  });
  const closeServer = m.close;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await closeServer();
  };
  stoppers.push(close);
  return Object.assign(m, { base: `http://${m.address}`, logs, close });
}

export interface TestVolume {
  /** host:port */
  url: string;
  base: string;
  server: VolumeServer;
  stop(): Promise<void>;
}

/** An in-process volume server heartbeating to `masterAddress` every second. */
export async function volume(
  masterAddress: string,
  options: Partial<Omit<VolumeServerConfig, 'locations'>> & { max?: number; dir?: string } = {},
): Promise<TestVolume> {
  const { max = 8, dir = tempDir('kelp-vol-'), ...rest } = options;
  const server = await startVolumeServer({
    host: '127.0.0.1',
    port: 0,
    locations: [{ dir, maxVolumes: max }],
    master: masterAddress,
    pulseSeconds: 1,
    logger: silentLogger(),
    ...rest,
  });
  let closed = false;
  const stop = async () => {
    if (closed) return;
    closed = true;
    await server.close();
  };
  stoppers.push(stop);
  return { url: server.address, base: `http://${server.address}`, server, stop };
}

export interface ChildVolume {
  /** Its data directory (pass it back to restart the server on the same volumes). */
  dir: string;
  /** host:port */
  url: string;
  base: string;
  child: ChildProcess;
  /** SIGKILL, and wait for the process to be gone. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

/** A volume server as a separate process (fixtures/volume-process.ts). */
export async function childVolume(
  masterAddress: string,
  options: {
    max?: number;
    dataCenter?: string;
    rack?: string;
    signingKey?: string;
    clusterKey?: string;
    adminKey?: string;
    dir?: string;
    port?: number;
  } = {},
): Promise<ChildVolume> {
  const dir = options.dir ?? tempDir('kelp-vol-');
  const args = [FIXTURE, '--dir', dir, '--master', masterAddress, '--port', String(options.port ?? 0)];
  args.push('--max', String(options.max ?? 8), '--pulseSeconds', '1');
  if (options.dataCenter) args.push('--dataCenter', options.dataCenter);
  if (options.rack) args.push('--rack', options.rack);
  if (options.signingKey) args.push('--signingKey', options.signingKey);
  if (options.clusterKey) args.push('--clusterKey', options.clusterKey);
  if (options.adminKey) args.push('--adminKey', options.adminKey);
  const p = await spawnUntilReady(args, {
    what: 'volume process',
    ready: /listening (\d+)/,
    timeoutMs: 40_000,
    onSpawn: (kill) => stoppers.push(kill),
  });
  const port = p.match[1]!;
  const url = `127.0.0.1:${port}`;
  return {
    dir,
    url,
    base: `http://${url}`,
    child: p.child,
    kill: p.kill,
    stop: p.stop,
    output: p.output,
  };
}

export { waitFor };

/** Waits until the master counts `n` alive volume servers. */
export function waitForNodes(m: MasterServer, n: number, timeoutMs = 10_000): Promise<boolean> {
  return waitFor(`${n} alive volume servers`, () => m.topology.aliveNodes().length === n, timeoutMs);
}

export async function json<T>(res: Response, expectStatus: number): Promise<T> {
  const text = await res.text();
  if (res.status !== expectStatus) {
    throw new Error(`${res.url}: expected ${expectStatus}, got ${res.status}: ${text}`);
  }
  return JSON.parse(text) as T;
}

export async function assignOk(
  masterBase: string,
  params = '',
  headers: Record<string, string> = {},
): Promise<AssignResponse> {
  return json<AssignResponse>(
    await fetch(`${masterBase}/dir/assign${params ? `?${params}` : ''}`, { headers }),
    200,
  );
}

/**
 * An open master with two volume servers and a first `replication=001`
 * assign: the server it names is the volume's primary for writes sent to it.
 */
export async function replicatedPair(): Promise<{
  m: TestMaster;
  first: AssignResponse;
  primary: TestVolume;
  replica: TestVolume;
}> {
  const m = await master();
  const a = await volume(m.address);
  const b = await volume(m.address);
  await waitForNodes(m, 2);
  const first = await assignOk(m.base, 'replication=001');
  const primary = first.url === a.url ? a : b;
  return { m, first, primary, replica: primary === a ? b : a };
}

export async function lookupOk(masterBase: string, volumeOrFileId: string): Promise<LookupResponse> {
  return json<LookupResponse>(await fetch(`${masterBase}/dir/lookup?volumeId=${volumeOrFileId}`), 200);
}

/**
 * One request with its whole body in a single write, as a Response. A server
 * that refuses a request before reading its body (401) closes the connection
 * (origin/http/respond.ts); fetch, which streams a FormData body in pieces,
 * may then fail with EPIPE instead of showing the status.
 */
export async function send(
  url: string,
  init: { method: string; headers?: Record<string, string>; body?: Uint8Array | string | FormData },
): Promise<Response> {
  const headers: Record<string, string> = { ...init.headers };
  let body: Buffer | undefined;
  if (init.body instanceof FormData) {
    const encoded = new Request('http://127.0.0.1/', { method: 'POST', body: init.body });
    headers['content-type'] = encoded.headers.get('content-type')!;
    body = Buffer.from(await encoded.arrayBuffer());
  } else if (init.body !== undefined) {
    body = Buffer.from(init.body);
  }
  if (body) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: init.method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode!;
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') out.set(k, v);
        const empty = status === 204 || status === 304;
        resolve(new Response(empty ? null : Buffer.concat(chunks), { status, headers: out }));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Multipart upload like `curl -F file=@name`. */
export function upload(
  url: string,
  fid: string,
  data: Uint8Array,
  name = 'blob.bin',
  headers: Record<string, string> = {},
): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(data)], { type: 'application/octet-stream' }), name);
  return send(`http://${url}/${fid}`, { method: 'POST', body: form, headers });
}

export async function uploadOk(url: string, fid: string, data: Uint8Array, name?: string) {
  return json<{ name: string; size: number; eTag: string }>(await upload(url, fid, data, name), 201);
}

export function volumeIdOf(fid: string): number {
  return parseFid(fid).volumeId;
}

export function keyOf(fid: string): bigint {
  return parseFid(fid).key;
}

export async function readBytes(url: string): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(url.includes('://') ? url : `http://${url}`);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}
