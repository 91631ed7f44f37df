/**
 * Helpers for the several-masters tests: masters and volume servers as real
 * `kelp` processes (so they can be killed with SIGKILL), a real etcd
 * (etcd.ts), a load of assigns and writes that records every fid, and small
 * HTTP helpers. Every loop is bounded in count and time; `stopAll()` ends
 * every process started here and removes the temp dirs.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AssignResponse } from '../../../shared/api.ts';
import { parseFid } from '../../../shared/fid.ts';
import { spawnUntilReady } from '../../support/process.ts';
import { removeTempDirs, tempDir as supportTempDir } from '../../support/temp-dirs.ts';
import { waitFor as pollUntil } from '../../support/wait.ts';

export const CLI = fileURLToPath(new URL('../../../origin/cli.ts', import.meta.url));
/** How long a process may take to print its listening line. */
const START_TIMEOUT_MS = 20_000;

const stoppers: Array<() => Promise<void>> = [];

export function tempDir(prefix = 'kelp-masters-'): string {
  return supportTempDir(prefix);
}

/** Adds a stop function run by stopAll (newest first). */
export function onStop(stop: () => Promise<void>): void {
  stoppers.push(stop);
}

export async function stopAll(): Promise<void> {
  for (const stop of stoppers.splice(0).reverse()) await stop().catch(() => {});
  removeTempDirs();
}

export interface KelpProcess {
  /** host:port */
  address: string;
  base: string;
  child: ChildProcess;
  output(): string;
  /** SIGKILL, and wait until it is gone. */
  kill(): Promise<void>;
  /** SIGTERM (a clean stop), and wait until it is gone. */
  stop(): Promise<void>;
}

/** The environment minus every KELP_* variable: the caller's shell must not leak in. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KELP_')) env[k] = v;
  return env;
}

/** `kelp ARGS` as a process, once it printed a line matching `ready` (its port in group 1). */
export async function kelpProcess(
  args: string[],
  ready: RegExp,
  env: Record<string, string> = {},
): Promise<KelpProcess> {
  const p = await spawnUntilReady([CLI, ...args], {
    what: `kelp ${args[0]}`,
    ready,
    timeoutMs: START_TIMEOUT_MS,
    env: { ...cleanEnv(), ...env },
    onSpawn: (kill) => stoppers.push(kill),
  });
  const address = `127.0.0.1:${p.match[1]!}`;
  return { address, base: `http://${address}`, child: p.child, output: p.output, kill: p.kill, stop: p.stop };
}

/**
 * `kelp master --etcd ...` on a given port (a restart keeps its address), 1-second pulses; `args` and
 * `env` (KELP_* variables) add to that.
 */
export function masterProcess(opts: {
  port: number;
  etcd: string[];
  prefix: string;
  mdir?: string;
  args?: string[];
  env?: Record<string, string>;
}) {
  return kelpProcess(
    [
      'master',
      '--ip',
      '127.0.0.1',
      '--port',
      String(opts.port),
      '--mdir',
      opts.mdir ?? tempDir('kelp-mdir-'),
      '--etcd',
      opts.etcd.join(','),
      '--etcdPrefix',
      opts.prefix,
      '--pulseSeconds',
      '1',
      ...(opts.args ?? []),
    ],
    /kelp master listening on http:\/\/127\.0\.0\.1:(\d+)/,
    opts.env,
  );
}

/** `kelp volume --master a,b,c`, 1-second pulses; `dir` is its data (pass it back to restart it). */
export async function volumeProcess(opts: {
  masters: string[];
  dir?: string;
  port?: number;
  max?: number;
}): Promise<KelpProcess & { dir: string }> {
  const dir = opts.dir ?? tempDir('kelp-vol-');
  const p = await kelpProcess(
    [
      'volume',
      '--ip',
      '127.0.0.1',
      '--port',
      String(opts.port ?? 0),
      '--dir',
      dir,
      '--max',
      String(opts.max ?? 20),
      '--master',
      opts.masters.join(','),
      '--pulseSeconds',
      '1',
    ],
    /kelp volume server listening on http:\/\/127\.0\.0\.1:(\d+)/,
  );
  return Object.assign(p, { dir });
}

export interface ClusterStatus {
  IsLeader: boolean;
  Leader: string;
  Peers: string[];
  MaxVolumeId: number;
}

export async function clusterStatus(address: string): Promise<ClusterStatus> {
  const res = await fetch(`http://${address}/cluster/status`, { signal: AbortSignal.timeout(2_000) });
  if (!res.ok) throw new Error(`${address}/cluster/status: ${res.status}`);
  return (await res.json()) as ClusterStatus;
}

/** The one master that says it leads, once every master given agrees on it. */
export async function agreedLeader(addresses: string[]): Promise<string | undefined> {
  const all = await Promise.all(addresses.map((a) => clusterStatus(a).catch(() => undefined)));
  if (all.some((s) => !s)) return undefined;
  const leaders = addresses.filter((_, i) => all[i]!.IsLeader);
  if (leaders.length !== 1) return undefined;
  return all.every((s) => s!.Leader === leaders[0]) ? leaders[0] : undefined;
}

/** test/support/wait.ts's waitFor with a longer default: elections take seconds. */
export function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  return pollUntil(what, check, timeoutMs);
}

/** Alive volume servers a master counts (from its /dir/status). */
export async function aliveNodes(address: string): Promise<number> {
  const res = await fetch(`http://${address}/dir/status`, { signal: AbortSignal.timeout(2_000) });
  const body = (await res.json()) as {
    Topology: { DataCenters: Array<{ Racks: Array<{ DataNodes: Array<{ Alive: boolean }> }> }> };
  };
  return body.Topology.DataCenters.flatMap((d) => d.Racks.flatMap((r) => r.DataNodes)).filter((n) => n.Alive)
    .length;
}

/** One assign from `address` (no failover): the answer or the status it failed with. */
export async function assignAt(
  address: string,
  params = '',
): Promise<{ ok: true; a: AssignResponse } | { ok: false; status: number; error?: string }> {
  try {
    const res = await fetch(`http://${address}/dir/assign${params ? `?${params}` : ''}`, {
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { error?: string };
      return { ok: false, status: res.status, ...(body.error ? { error: body.error } : {}) };
    }
    return { ok: true, a: (await res.json()) as AssignResponse };
  } catch {
    return { ok: false, status: 0 };
  }
}

export interface Issued {
  fid: string;
  count: number;
  /** Which master answered. */
  by: string;
  sentAt: number;
  receivedAt: number;
  written: boolean;
}

export interface LoadReport {
  issued: Issued[];
  /** Times (ms since the epoch) of assigns that no master answered with a fid. */
  failures: number[];
  /** Why, for each failure: every master's status and error. */
  reasons: string[];
}

/**
 * A steady load until `signal` aborts or `maxMs` passes: `workers` loops of
 * assign (masters tried in order, as clients do) then a 1 KiB upload to the
 * volume server named. Every fid and every failed assign is recorded.
 */
export async function runLoad(opts: {
  masters: () => string[];
  workers: number;
  signal: AbortSignal;
  maxMs: number;
  maxOps?: number;
  write?: boolean;
}): Promise<LoadReport> {
  const report: LoadReport = { issued: [], failures: [], reasons: [] };
  const deadline = Date.now() + opts.maxMs;
  const maxOps = opts.maxOps ?? 100_000;
  let ops = 0;
  const body = new Uint8Array(1024).fill(7);
  const worker = async () => {
    while (!opts.signal.aborted && Date.now() < deadline && ops++ < maxOps) {
      const sentAt = Date.now();
      let got: { a: AssignResponse; by: string } | undefined;
      const why: string[] = [];
      for (const m of opts.masters()) {
        const r = await assignAt(m);
        if (r.ok) {
          got = { a: r.a, by: m };
          break;
        }
        why.push(`${m}: ${r.status}${r.error ? ` ${r.error}` : ''}`);
      }
      if (!got) {
        report.failures.push(sentAt);
        report.reasons.push(why.join('; '));
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const issued: Issued = {
        fid: got.a.fid,
        count: got.a.count,
        by: got.by,
        sentAt,
        receivedAt: Date.now(),
        written: false,
      };
      report.issued.push(issued);
      if (opts.write === false) continue;
      try {
        const res = await fetch(`http://${got.a.url}/${got.a.fid}`, {
          method: 'PUT',
          body,
          signal: AbortSignal.timeout(5_000),
        });
        await res.body?.cancel();
        issued.written = res.status === 201;
      } catch {
        // a volume server write failing is not what these tests measure
      }
    }
  };
  await Promise.all(Array.from({ length: opts.workers }, worker));
  return report;
}

/** Every key the fids reserved (a fid with count n reserves n consecutive keys). */
export function keysOf(issued: Array<{ fid: string; count: number }>): bigint[] {
  const keys: bigint[] = [];
  for (const i of issued) {
    const k = parseFid(i.fid).key;
    for (let d = 0n; d < BigInt(i.count); d++) keys.push(k + d);
  }
  return keys;
}

/** Keys that occur more than once. */
export function duplicates(keys: bigint[]): bigint[] {
  const seen = new Set<bigint>();
  const dup: bigint[] = [];
  for (const k of keys) {
    if (seen.has(k)) dup.push(k);
    seen.add(k);
  }
  return dup;
}
