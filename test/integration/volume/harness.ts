/**
 * Shared helpers for the volume server's integration tests: temp dirs, real
 * servers on 127.0.0.1 (in-process or as a `kelp volume` child process),
 * uploads, raw HTTP (fetch adds Accept-Encoding and undoes gzip by itself),
 * and a look at the files on disk.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../../origin/observability/log.ts';
import {
  startVolumeServer,
  type VolumeServer,
  type VolumeServerConfig,
} from '../../../origin/volume/server.ts';
import type { VolumeServerStatus, VolumeStatusJson } from '../../../shared/api.ts';
import { formatFid } from '../../../shared/fid.ts';
import { spawnUntilReady } from '../../support/process.ts';
import { randomBlob } from '../../support/random.ts';
import { removeTempDirs, tempDir as supportTempDir } from '../../support/temp-dirs.ts';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A fresh directory under the OS temp dir; removeTempDirs() deletes them all. */
export function tempDir(prefix = 'kelp-volume-'): string {
  return supportTempDir(prefix);
}

export { randomBlob, removeTempDirs };

export interface Running {
  /** `http://127.0.0.1:PORT` */
  base: string;
  stop(): Promise<void>;
}

/** Config overrides; `locations` replaces the default single `dir`. */
export type InProcessOptions = Partial<VolumeServerConfig>;

/** An in-process volume server over one directory (quiet log unless asked). */
export async function startInProcess(
  dir: string,
  options: InProcessOptions = {},
): Promise<Running & { server: VolumeServer }> {
  const server = await startVolumeServer({
    host: '127.0.0.1',
    port: 0,
    locations: [{ dir, maxVolumes: 8 }],
    logger: silentLogger(),
    ...options,
  });
  return { server, base: `http://${server.address}`, stop: () => server.close() };
}

export interface ChildServer extends Running {
  child: ChildProcess;
  /** SIGKILL, and wait for the process to be gone. */
  kill(): Promise<void>;
  output(): string;
}

/**
 * Where child servers send heartbeats: port 1 on loopback, where nothing
 * listens, so a master a developer runs on the default port is left alone.
 */
const NO_MASTER = '127.0.0.1:1';

/** `kelp volume --port 0 --dir DIR` as a child process (the only way to test kill -9). */
export async function startChild(dir: string, extraArgs: string[] = []): Promise<ChildServer> {
  const p = await spawnUntilReady(
    [
      'origin/cli.ts',
      'volume',
      '--port',
      '0',
      '--dir',
      dir,
      '--max',
      '8',
      '--master',
      NO_MASTER,
      ...extraArgs,
    ],
    { what: 'volume server', ready: /listening on (http:\/\/127\.0\.0\.1:\d+)/, cwd: REPO_ROOT },
  );
  return { child: p.child, base: p.match[1]!, stop: p.stop, kill: p.kill, output: p.output };
}

// ---- HTTP ----

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One HTTP request with exactly the headers given (no Accept-Encoding unless
 * asked, no decoding), on a fresh connection. `body` as an array is sent
 * chunked, one write per element.
 */
export function raw(
  base: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Uint8Array | Uint8Array[] } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${base}${path}`,
      { method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent: false },
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
    if (Array.isArray(opts.body)) {
      for (const chunk of opts.body) req.write(chunk);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

export async function assignVolume(base: string, volumeId: number, params = ''): Promise<void> {
  const res = await fetch(`${base}/admin/assign_volume?volume=${volumeId}${params ? `&${params}` : ''}`, {
    method: 'POST',
  });
  if (res.status !== 200) throw new Error(`assign_volume ${volumeId}: ${res.status} ${await res.text()}`);
}

let nextKey = 1n;

/** A fresh fid in `volumeId` (keys unique within the test process, random cookie). */
export function newFid(volumeId: number): string {
  return formatFid({ volumeId, key: nextKey++, cookie: randomBytes(4).readUInt32BE(0) });
}

/** The same key with another cookie. */
export function withWrongCookie(fid: string): string {
  const last = fid.slice(-8);
  const flipped = ((Number.parseInt(last, 16) ^ 0xffffffff) >>> 0).toString(16).padStart(8, '0');
  return fid.slice(0, -8) + flipped;
}

/** Raw PUT of `body` to `/<fid>`. */
export function put(
  base: string,
  fid: string,
  body: Uint8Array | string,
  headers: Record<string, string> = {},
  query = '',
): Promise<Response> {
  return fetch(`${base}/${fid}${query}`, {
    method: 'PUT',
    headers,
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
}

/** PUT that must answer 201; returns the JSON body. */
export async function putOk(
  base: string,
  fid: string,
  body: Uint8Array | string,
  headers: Record<string, string> = {},
  query = '',
): Promise<{ name: string; size: number; eTag: string; mime: string }> {
  const res = await put(base, fid, body, headers, query);
  if (res.status !== 201) throw new Error(`PUT ${fid}: ${res.status} ${await res.text()}`);
  return (await res.json()) as { name: string; size: number; eTag: string; mime: string };
}

/** GET the plain bytes (no Accept-Encoding), or throw on a non-200. */
export async function getBytes(base: string, path: string): Promise<Buffer> {
  const res = await raw(base, path);
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body.toString()}`);
  return res.body;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Runs `n` async loops at once and waits for all of them. */
export async function concurrently(n: number, loop: (worker: number) => Promise<void>): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => loop(i)));
}

// ---- files on disk ----

export interface IdxEntry {
  key: bigint;
  /** Byte offset of the record in .dat. */
  offset: number;
  /** Needle Size, or -1 for a delete. */
  size: number;
}

/** Every 16-byte entry of an `.idx` file, in file order (a torn tail is ignored). */
export function readIdx(path: string): IdxEntry[] {
  const bytes = readFileSync(path);
  const out: IdxEntry[] = [];
  for (let at = 0; at + 16 <= bytes.length; at += 16) {
    out.push({
      key: bytes.readBigUInt64BE(at),
      offset: bytes.readUInt32BE(at + 8) * 8,
      size: bytes.readInt32BE(at + 12),
    });
  }
  return out;
}

/** The last idx entry for the key of `fid` (volume id and cookie ignored). */
export function idxEntryOf(path: string, fid: string): IdxEntry {
  const comma = fid.indexOf(',');
  const key = BigInt(`0x${fid.slice(comma + 1, -8)}`);
  const entry = readIdx(path)
    .filter((e) => e.key === key)
    .at(-1);
  if (!entry) throw new Error(`no idx entry for ${fid} in ${path}`);
  return entry;
}

/** Byte offset of the first data byte of a needle record (cookie 4, id 8, Size 4, DataSize 4). */
export const NEEDLE_DATA_START = 20;

export async function volumeStatus(base: string, volumeId: number): Promise<VolumeStatusJson> {
  const res = await fetch(`${base}/status`);
  const body = (await res.json()) as VolumeServerStatus;
  const v = body.Volumes.find((x) => x.id === volumeId);
  if (!v) throw new Error(`volume ${volumeId} not in /status`);
  return v;
}
