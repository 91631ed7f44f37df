/**
 * Helpers for the volume-side tiering tests: volume servers with tier
 * backends (in-process, or as a child process for a kill -9), a volume filled
 * over HTTP, the `/admin/tier/*` endpoints driven to completion, and reads
 * checked byte for byte on a keep-alive agent.
 *
 * Counting backend requests: every backend keeps `stats` (tiering/backends/backend.ts:
 * an SDK middleware for S3 that sees every attempt on the wire, a counter
 * around each ranged request for GCS and local). The volume server's own
 * registry is reachable as `server.store.config.backends`, so a test reads
 * the counters of the very backend object the server reads through, with no
 * hook in the server. Where a store counts on its side (the GCS emulator),
 * the test cross-checks against that too.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, type IncomingHttpHeaders, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Logger, silentLogger } from '../../../origin/observability/log.ts';
import { startVolumeServer, type VolumeServer } from '../../../origin/volume/server.ts';
import type { TierJob } from '../../../origin/volume/tier.ts';
import type { VolumeInfo } from '../../../origin/volume/volume-info.ts';
import { crc32c } from '../../../shared/crc.ts';
import { formatFid } from '../../../shared/fid.ts';
import type {
  BackendConfig,
  BackendStats,
  DownloadOptions,
  ObjectChecksum,
} from '../../../tiering/backends/backend.ts';
import { spawnUntilReady } from '../../support/process.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/volume-server.ts', import.meta.url));

export const KiB = 1024;
export const MiB = 1024 * KiB;

// ---- servers ----

export interface TierServer {
  server: VolumeServer;
  base: string;
  /** The counters of the backend `name` as this server's registry holds it. */
  stats(name: string): BackendStats;
  stop(): Promise<void>;
}

/** A volume server on 127.0.0.1:0 over `dir` (8 volume slots), with `backends` besides `local.default`. */
export async function startTierServer(
  dir: string,
  backends: BackendConfig[] = [],
  logger: Logger = silentLogger(),
): Promise<TierServer> {
  const server = await startVolumeServer({
    host: '127.0.0.1',
    port: 0,
    locations: [{ dir, maxVolumes: 8 }],
    backends,
    logger,
  });
  return {
    server,
    base: `http://${server.address}`,
    stats: (name) => server.store.config.backends!.get(name).stats,
    stop: () => server.close(),
  };
}

export interface ChildTierServer {
  child: ChildProcess;
  base: string;
  /** SIGKILL, and wait for the process to be gone. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

/** The same server as a child process (fixtures/volume-server.ts), for kill -9. */
export async function startChildTierServer(
  dir: string,
  backends: BackendConfig[] = [],
): Promise<ChildTierServer> {
  const p = await spawnUntilReady([FIXTURE], {
    what: 'volume server',
    ready: /listening (\d+)/,
    env: { ...process.env, KELP_TEST_VOLUME_SERVER: JSON.stringify({ dir, backends }) },
  });
  return {
    child: p.child,
    base: `http://127.0.0.1:${Number(p.match[1])}`,
    kill: p.kill,
    stop: p.stop,
    output: p.output,
  };
}

// ---- HTTP ----

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request with exactly these headers (no Accept-Encoding unless given), body undecoded. */
export function http(
  base: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Uint8Array } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      { method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export async function json<T>(reply: Promise<Reply>, status: number): Promise<T> {
  const r = await reply;
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${r.body.toString()}`);
  return JSON.parse(r.body.toString()) as T;
}

export async function assignVolume(base: string, volumeId: number, collection = ''): Promise<void> {
  const q = `volume=${volumeId}${collection ? `&collection=${collection}` : ''}`;
  await json(http(base, `/admin/assign_volume?${q}`, { method: 'POST' }), 200);
}

export async function sealVolume(base: string, volumeId: number): Promise<void> {
  await json(http(base, `/admin/readonly?volume=${volumeId}`, { method: 'POST' }), 200);
}

// ---- filling a volume ----

export interface Blob {
  fid: string;
  bytes: Buffer;
  /** Sent as compressible text, so the volume stores it gzipped. */
  text: boolean;
}

let nextKey = 1n;

export function newFid(volumeId: number): string {
  return formatFid({ volumeId, key: nextKey++, cookie: randomBytes(4).readUInt32BE(0) });
}

/** Compressible text of `size` bytes (the volume server stores it gzipped). */
function textOf(size: number): Buffer {
  const words = ['kelp ', 'haystack ', 'needle ', 'volume ', 'tier ', 'sealed '];
  let s = '';
  while (s.length < size) s += words[(s.length * 7919) % words.length];
  return Buffer.from(s.slice(0, size));
}

export async function putBlob(base: string, blob: Blob): Promise<void> {
  const r = await http(base, `/${blob.fid}`, {
    method: 'PUT',
    headers: { 'Content-Type': blob.text ? 'text/plain' : 'application/octet-stream' },
    body: blob.bytes,
  });
  if (r.status !== 201) throw new Error(`PUT ${blob.fid}: ${r.status} ${r.body.toString()}`);
}

export interface FillOptions {
  /** Small needles, 100 B to 4 KiB each (every tenth compressible text). */
  small: number;
  /** Sizes of incompressible needles added besides (e.g. a couple over 1 MiB). */
  large?: number[];
  concurrency?: number;
}

/** PUTs the needles of `opts` into `volumeId` and returns them by fid. */
export async function fillVolume(base: string, volumeId: number, opts: FillOptions): Promise<Blob[]> {
  const blobs: Blob[] = [];
  for (let i = 0; i < opts.small; i++) {
    const size = 100 + Math.floor(Math.random() * (4 * KiB - 100));
    const text = i % 10 === 3;
    blobs.push({ fid: newFid(volumeId), bytes: text ? textOf(size) : randomBytes(size), text });
  }
  for (const size of opts.large ?? [])
    blobs.push({ fid: newFid(volumeId), bytes: randomBytes(size), text: false });
  await pool(blobs, opts.concurrency ?? 16, (b) => putBlob(base, b));
  return blobs;
}

/** Runs `fn` over `items`, `concurrency` at a time. */
export async function pool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** GETs every blob (no Accept-Encoding: stored gzip is undone) and throws on the first wrong answer. */
export async function expectAllReadBack(base: string, blobs: Blob[], concurrency = 8): Promise<void> {
  await pool(blobs, concurrency, async (b) => {
    const r = await http(base, `/${b.fid}`);
    if (r.status !== 200) throw new Error(`GET ${b.fid}: ${r.status} ${r.body.toString()}`);
    if (!r.body.equals(b.bytes)) throw new Error(`GET ${b.fid}: ${r.body.length} bytes differ from the blob`);
  });
}

// ---- the tier endpoints ----

export interface TierStatus {
  volume: number;
  remote: VolumeInfo['remote'] | null;
  job: TierJob | null;
}

export function tierStatus(base: string, volumeId: number): Promise<TierStatus> {
  return json<TierStatus>(http(base, `/admin/tier/status?volume=${volumeId}`), 200);
}

/** `POST /admin/tier/upload`: 202 and the job as started. */
export function startUpload(
  base: string,
  volumeId: number,
  backend: string,
  keepLocalDat = false,
): Promise<TierJob> {
  const q = `volume=${volumeId}&backend=${encodeURIComponent(backend)}&keepLocalDat=${keepLocalDat}`;
  return json<TierJob>(http(base, `/admin/tier/upload?${q}`, { method: 'POST' }), 202);
}

export function startDownload(base: string, volumeId: number): Promise<TierJob> {
  return json<TierJob>(http(base, `/admin/tier/download?volume=${volumeId}`, { method: 'POST' }), 202);
}

/** Polls status until the volume's job is no longer running (bounded). */
export async function waitForJob(base: string, volumeId: number, timeoutMs = 60_000): Promise<TierStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await tierStatus(base, volumeId);
    if (s.job && s.job.state !== 'running') return s;
    if (Date.now() > deadline)
      throw new Error(`tier job of volume ${volumeId} still running: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Upload and wait; throws unless the job ends `done`. */
export async function tierUpload(
  base: string,
  volumeId: number,
  backend: string,
  keepLocalDat = false,
): Promise<TierStatus> {
  await startUpload(base, volumeId, backend, keepLocalDat);
  const s = await waitForJob(base, volumeId);
  if (s.job?.state !== 'done') throw new Error(`upload of volume ${volumeId} failed: ${s.job?.error}`);
  return s;
}

export async function tierDownload(base: string, volumeId: number): Promise<TierStatus> {
  await startDownload(base, volumeId);
  const s = await waitForJob(base, volumeId);
  if (s.job?.state !== 'done') throw new Error(`download of volume ${volumeId} failed: ${s.job?.error}`);
  return s;
}

// ---- files on disk ----

const stem = (volumeId: number, collection: string) =>
  collection ? `${collection}_${volumeId}` : `${volumeId}`;

export function datPath(dir: string, volumeId: number, collection = ''): string {
  return join(dir, `${stem(volumeId, collection)}.dat`);
}

export function vifOf(dir: string, volumeId: number, collection = ''): VolumeInfo | undefined {
  const p = join(dir, `${stem(volumeId, collection)}.vif`);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as VolumeInfo) : undefined;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** CRC-32C of a file as a `.vif` spells it (8 hex digits), by the pure-JS step: not the code under test. */
export function crc32cFile(path: string): string {
  return crc32c(readFileSync(path)).toString(16).padStart(8, '0');
}

/** Which checksum a backend kind records in the `.vif` (docs/decisions/0018): CRC-32C for `local`. */
export type ChecksumKind = 'sha256' | 'crc32c';

/** The `.vif` checksum of a file as a backend recording `kind` must record it. */
export function checksumFile(path: string, kind: ChecksumKind): ObjectChecksum {
  return kind === 'crc32c' ? { crc32c: crc32cFile(path) } : { sha256: sha256File(path) };
}

/** The download options that check `c`, as the volume server passes a `.vif`'s. */
export function expecting(c: ObjectChecksum): DownloadOptions {
  return {
    ...(c.sha256 !== undefined ? { expectedSha256: c.sha256 } : {}),
    ...(c.crc32c !== undefined ? { expectedCrc32c: c.crc32c } : {}),
  };
}
