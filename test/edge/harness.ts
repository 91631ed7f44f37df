/**
 * The edge test harness: the Worker (edge/index.ts) bundled with esbuild and
 * run in workerd through Miniflare, in front of a real master and real volume
 * servers started in this process on 127.0.0.1. Every origin is reached
 * through a small counting proxy, so a test can assert how many requests the
 * edge sent (the master sees its proxy as MASTER_URL; each volume server
 * advertises its proxy as publicUrl, which is the address the edge reads),
 * and what it sent (headers included).
 * One Miniflare instance per test file, so Cache API contents never leak
 * from one file into another.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { type MasterConfig, type MasterServer, startMaster } from '../../origin/master/server.ts';
import { silentLogger } from '../../origin/observability/log.ts';
import { startVolumeServer, type VolumeServer, type VolumeServerConfig } from '../../origin/volume/server.ts';
import type { AssignResponse, LookupResponse } from '../../shared/api.ts';
import { randomBlob as supportRandomBlob } from '../support/random.ts';
import { removeTempDirs, tempDir as supportTempDir } from '../support/temp-dirs.ts';
import { waitFor as pollUntil, sleep } from '../support/wait.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const WORKER_ENTRY = join(REPO_ROOT, 'edge/index.ts');
/** The compatibility date the tests and the bench run the Worker at (wrangler.toml's). */
export const COMPATIBILITY_DATE = '2026-11-01';
/** ORIGIN_ALLOW of the tests: every origin they start is on 127.0.0.1 (wrangler.toml [env.local] alike). */
export const LOOPBACK_ORIGINS = 'http://127.0.0.1:*';

export function tempDir(prefix = 'kelp-edge-'): string {
  return supportTempDir(prefix);
}

/**
 * Bundles a Worker entry the way wrangler does (ESM, browser conditions) into
 * a single .mjs in `outDir`, and returns its path.
 */
export async function bundleWorker(entry: string, outDir: string): Promise<string> {
  const outfile = join(outDir, 'worker.mjs');
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['browser', 'module', 'main'],
    target: 'es2022',
    logLevel: 'silent',
  });
  return outfile;
}

/**
 * A Worker script in workerd. Miniflare 5 takes a new option shape; the v4
 * one (modules, scriptPath, bindings) still converts, the way wrangler does
 * it. `port` starts Miniflare's own HTTP server there (0 = any free port);
 * without it requests go through `dispatchFetch` only.
 */
export function startWorker(
  scriptPath: string,
  bindings: Record<string, string>,
  port?: number,
  /** A directory keeping the Cache API's contents across instances (as wrangler dev's --persist-to). */
  cachePersist?: string,
  /** R2 bucket bindings (Miniflare's local R2), by binding name. */
  r2Buckets?: string[],
  /** false: Miniflare's no-op Cache API, which accepts every put and matches nothing (a cache that keeps no copy). */
  cacheApi = true,
): Miniflare {
  return new Miniflare({
    ...convertV4MiniflareOptions({
      modules: true,
      scriptPath,
      // Module names are relative to this root; the bundle sits in a temp dir.
      modulesRoot: dirname(scriptPath),
      compatibilityDate: COMPATIBILITY_DATE,
      bindings,
      cf: false,
      host: '127.0.0.1',
      ...(port === undefined ? {} : { port }),
      ...(cachePersist === undefined ? {} : { resourcePersistencePath: cachePersist }),
      ...(r2Buckets ? { r2Buckets } : {}),
      ...(cacheApi ? {} : { cacheAPI: false }),
    }),
    logRequests: false,
  });
}

/** One request as a counting proxy saw it. */
export interface Seen {
  method: string;
  path: string;
  /** The request's headers as the origin received them (to check what the edge forwards). */
  headers: IncomingHttpHeaders;
}

/**
 * A pass-through HTTP proxy on 127.0.0.1:0 that records every request. When
 * the upstream cannot be reached it drops the client's connection, as a dead
 * host would look to the edge.
 */
export class CountingProxy {
  readonly seen: Seen[] = [];
  private server: Server;
  private sockets = new Set<Socket>();
  port = 0;
  /** host:port requests are passed to. */
  upstream: string;
  /** Milliseconds to hold each request before passing it on (a slow origin). */
  delayMs = 0;
  /** Milliseconds to hold each upstream answer before passing it back (a slow network on the way out). */
  responseDelayMs = 0;

  constructor(upstream: string) {
    this.upstream = upstream;
    this.server = createServer(async (req, res) => {
      this.seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
      // Decided when the request arrives, so a test can slow one request and not the next.
      const hold = this.responseDelayMs;
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      const [host, port] = this.upstream.split(':') as [string, string];
      const out = httpRequest(
        { host, port: Number(port), method: req.method, path: req.url, headers: req.headers },
        (up) => {
          const pass = () => {
            res.writeHead(up.statusCode ?? 502, up.rawHeaders);
            up.pipe(res);
          };
          if (hold > 0) setTimeout(pass, hold);
          else pass();
        },
      );
      out.on('error', () => req.socket.destroy());
      req.pipe(out);
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get count(): number {
    return this.seen.length;
  }

  /** Requests whose path starts with `prefix`. */
  countOf(prefix: string): number {
    return this.seen.filter((s) => s.path.startsWith(prefix)).length;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }
}

export interface EdgeVolume {
  server: VolumeServer;
  proxy: CountingProxy;
  /** The server's own host:port (uploads go here, bypassing the counters). */
  url: string;
  /** Stops the server and its proxy: the address then refuses connections. */
  stop(): Promise<void>;
}

export interface EdgeOptions {
  /** Volume servers to start (default 1). */
  volumes?: number;
  /** Worker vars on top of MASTER_URL (strings, as in wrangler.toml). */
  vars?: Record<string, string>;
  /** Serve the Worker on Miniflare's own HTTP server at this port (0 = any), for load tests. */
  port?: number;
  /** Master options on top of the harness's (e.g. a signing key, client keys). */
  master?: Partial<MasterConfig>;
  /** Volume server options on top of the harness's (e.g. the signing key). */
  volume?: Partial<VolumeServerConfig>;
  /** Client key the harness's own `/dir/assign` calls present to the master (`Authorization: Bearer`). */
  clientKey?: string;
  /**
   * Volume servers send purge events to the Worker (its PURGE_KEY set, its HTTP server on), as
   * `npm start` arranges.
   */
  purgeEvents?: boolean;
  /** Volume slots per server (default 8; every collection and TTL grows volumes of its own). */
  maxVolumes?: number;
}

/** A second Worker in front of the same origins, with other vars. */
export interface ExtraWorker {
  fetch(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export interface EdgeCluster {
  mf: Miniflare;
  master: MasterServer;
  masterProxy: CountingProxy;
  volumes: EdgeVolume[];
  /** The Worker's HTTP address, when it has one (port given, or purge events on). */
  edgeUrl?: string;
  purgeKey?: string;
  /** Starts one more volume server on `dir`, behind a counting proxy it advertises as `advertiseHost:port`. */
  addVolume(dir: string, advertiseHost?: string): Promise<EdgeVolume>;
  /** A request to the Worker; `path` is e.g. "/3,01637037d6.jpg". */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Requests every origin (master and volume proxies) has seen so far. */
  originRequests(): number;
  /** Every request the origins (master and volume proxies) have seen so far. */
  originSeen(): Seen[];
  /** Another Worker (same bundle, own Miniflare and Cache API) pointing at this master, with these vars. */
  worker(vars: Record<string, string>): Promise<ExtraWorker>;
  /** Master lookups seen so far. */
  lookups(): number;
  /** `/dir/assign` then a multipart upload straight to the volume server; returns the fid. */
  upload(data: Uint8Array, opts?: { name?: string; mime?: string; replication?: string }): Promise<string>;
  /**
   * `count` random blobs of `size` bytes in ONE volume: one `/dir/assign?count=N`,
   * then uploads to fid, fid_1, fid_2, ... (the ids that assign reserved).
   */
  uploadBatch(
    count: number,
    size: number,
    opts?: { replication?: string },
  ): Promise<{ fids: string[]; blobs: Uint8Array[] }>;
  /** The master's lookup for a volume, asked directly (not counted). */
  lookup(volumeId: number): Promise<LookupResponse>;
  close(): Promise<void>;
}

/** test/support/wait.ts's waitFor, polling every 50 ms. */
export function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
): Promise<NonNullable<T>> {
  return pollUntil(what, check, timeoutMs, 50);
}

/** The write key edge tests give the Worker (`WRITE_KEYS`) and send with their writes. */
export const TEST_WRITE_KEY = 'edge-test-write-key-0123456789';
/** Headers that carry TEST_WRITE_KEY. */
export const WRITE_AUTH = { authorization: `Bearer ${TEST_WRITE_KEY}` } as const;

export { sleep };

export function randomBlob(size: number): Uint8Array {
  return new Uint8Array(supportRandomBlob(size));
}

/**
 * A master, `volumes` volume servers (all in rack r0 of one data center, so
 * "001" puts a copy on two of them), counting proxies in front of each, and
 * the Worker in Miniflare pointing at the master's proxy.
 */
export async function startEdge(opts: EdgeOptions = {}): Promise<EdgeCluster> {
  const work = tempDir();
  const quiet = silentLogger();
  const master = await startMaster({
    host: '127.0.0.1',
    port: 0,
    mdir: join(work, 'm'),
    pulseSeconds: 1,
    logger: quiet,
    ...opts.master,
  });
  const masterProxy = await new CountingProxy(master.address).listen();

  // The Worker first: with purge events on, the volume servers need its address.
  const purgeKey = opts.purgeEvents ? randomBytes(16).toString('hex') : undefined;
  const scriptPath = await bundleWorker(WORKER_ENTRY, work);
  const mf = startWorker(
    scriptPath,
    {
      MASTER_URL: `http://${masterProxy.address}`,
      ORIGIN_ALLOW: LOOPBACK_ORIGINS,
      ...(purgeKey ? { PURGE_KEY: purgeKey } : {}),
      ...opts.vars,
    },
    opts.port ?? (purgeKey ? 0 : undefined),
  );
  const ready = await mf.ready;
  const edgeUrl = purgeKey || opts.port !== undefined ? ready.origin : undefined;

  const volumes: EdgeVolume[] = [];
  const addVolume = async (dir: string, advertiseHost = '127.0.0.1'): Promise<EdgeVolume> => {
    // The proxy must exist before the server so the server can advertise it; its upstream is set once bound.
    const proxy = await new CountingProxy('127.0.0.1:0').listen();
    const server = await startVolumeServer({
      host: '127.0.0.1',
      port: 0,
      locations: [{ dir, maxVolumes: opts.maxVolumes ?? 8 }],
      master: master.address,
      publicUrl: `${advertiseHost}:${proxy.port}`,
      pulseSeconds: 1,
      rack: 'r0',
      logger: quiet,
      ...opts.volume,
      ...(purgeKey && edgeUrl ? { edgePurge: { urls: [edgeUrl], key: purgeKey } } : {}),
    });
    proxy.upstream = server.address;
    let stopped = false;
    const volume: EdgeVolume = {
      server,
      proxy,
      url: server.address,
      async stop() {
        if (stopped) return;
        stopped = true;
        await server.close();
        await proxy.close();
      },
    };
    volumes.push(volume);
    return volume;
  };
  for (let i = 0; i < (opts.volumes ?? 1); i++) await addVolume(join(work, `v${i}`));
  await waitFor(
    'volume servers to join the master',
    () => master.topology.aliveNodes().length === volumes.length,
  );

  const masterBase = `http://${master.address}`;
  const assign = async (params: URLSearchParams): Promise<AssignResponse> => {
    const res = await fetch(`${masterBase}/dir/assign?${params}`, {
      headers: opts.clientKey ? { authorization: `Bearer ${opts.clientKey}` } : {},
    });
    if (res.status !== 200) throw new Error(`assign: ${res.status} ${await res.text()}`);
    return (await res.json()) as AssignResponse;
  };
  // `auth` is the write token assign returned when the cluster has a signing key.
  const put = async (assigned: AssignResponse, fid: string, data: Uint8Array, name: string, mime: string) => {
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(data)], { type: mime }), name);
    const res = await fetch(`http://${assigned.url}/${fid}`, {
      method: 'POST',
      body: form,
      headers: assigned.auth ? { authorization: `Bearer ${assigned.auth}` } : {},
    });
    if (res.status !== 201) throw new Error(`upload ${fid}: ${res.status} ${await res.text()}`);
  };
  const extras = new Set<Miniflare>();
  const cluster: EdgeCluster = {
    mf,
    master,
    masterProxy,
    volumes,
    edgeUrl,
    purgeKey,
    addVolume: (dir, advertiseHost) => addVolume(dir, advertiseHost),
    async fetch(path, init) {
      const res = await mf.dispatchFetch(`http://edge.test${path}`, init as never);
      return res as unknown as Response;
    },
    originRequests: () => masterProxy.count + volumes.reduce((n, v) => n + v.proxy.count, 0),
    originSeen: () => [...masterProxy.seen, ...volumes.flatMap((v) => v.proxy.seen)],
    async worker(vars) {
      const extra = startWorker(scriptPath, {
        MASTER_URL: `http://${masterProxy.address}`,
        ORIGIN_ALLOW: LOOPBACK_ORIGINS,
        ...vars,
      });
      await extra.ready;
      extras.add(extra);
      return {
        async fetch(path, init) {
          return (await extra.dispatchFetch(`http://edge.test${path}`, init as never)) as unknown as Response;
        },
        async close() {
          extras.delete(extra);
          await extra.dispose();
        },
      };
    },
    lookups: () => masterProxy.countOf('/dir/lookup'),
    async upload(data, { name = 'blob.bin', mime = 'application/octet-stream', replication } = {}) {
      const assigned = await assign(new URLSearchParams(replication ? { replication } : {}));
      await put(assigned, assigned.fid, data, name, mime);
      return assigned.fid;
    },
    async uploadBatch(count, size, { replication } = {}) {
      const params = new URLSearchParams({ count: String(count) });
      if (replication) params.set('replication', replication);
      const assigned = await assign(params);
      const fids = Array.from({ length: count }, (_, i) => (i === 0 ? assigned.fid : `${assigned.fid}_${i}`));
      const blobs = fids.map(() => randomBlob(size));
      await Promise.all(
        fids.map((fid, i) => put(assigned, fid, blobs[i]!, `f${i}.bin`, 'application/octet-stream')),
      );
      return { fids, blobs };
    },
    async lookup(volumeId) {
      const res = await fetch(`${masterBase}/dir/lookup?volumeId=${volumeId}`);
      if (res.status !== 200) throw new Error(`lookup ${volumeId}: ${res.status}`);
      return (await res.json()) as LookupResponse;
    },
    async close() {
      // Volume servers first: their last purge events still find the Worker.
      for (const v of volumes) await v.stop().catch(() => {});
      await mf.dispose().catch(() => {});
      for (const extra of extras) await extra.dispose().catch(() => {});
      await masterProxy.close().catch(() => {});
      await master.close().catch(() => {});
      removeTempDirs();
    },
  };
  return cluster;
}

/**
 * A multipart form as bytes plus its Content-Type: `dispatchFetch` sends a
 * FormData body as the string "[object FormData]", so serialise it first.
 */
export async function multipart(
  data: Uint8Array,
  name: string,
  type = 'application/octet-stream',
): Promise<{ body: ArrayBuffer; headers: Record<string, string> }> {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(data)], { type }), name);
  const req = new Request('http://serialise.invalid/', { method: 'POST', body: form });
  return { body: await req.arrayBuffer(), headers: { 'content-type': req.headers.get('content-type')! } };
}

/** The response body as bytes. */
export async function bytes(res: Response): Promise<Uint8Array> {
  return new Uint8Array(await res.arrayBuffer());
}
