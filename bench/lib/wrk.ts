import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LoadOptions {
  url: string;
  connections: number;
  durationSec: number;
  /** A wrk Lua script (bench/lua/*.lua) for random paths or request bodies. */
  script?: string;
  /** Values the Lua script reads with os.getenv. */
  env?: Record<string, string>;
}

export interface LoadResult {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Non-2xx/3xx responses plus socket errors: a run with errors is not a fair figure. */
  errors: number;
}

/** Only loopback: load loops must never leave this machine. */
function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '[::1]') {
    throw new Error(`refusing to send load to ${host}: benchmarks target loopback only`);
  }
}

export function wrkAvailable(): boolean {
  return existsSync('/usr/bin/wrk') || existsSync('/usr/local/bin/wrk');
}

/** One bounded wrk run (duration-limited; wrk stops by itself). */
export async function runWrk(opts: LoadOptions): Promise<LoadResult> {
  assertLoopback(opts.url);
  if (!wrkAvailable()) throw new Error('wrk not found: apt-get install -y wrk');
  const args = ['-t', '1', '-c', String(opts.connections), '-d', `${opts.durationSec}s`, '--latency'];
  if (opts.script) args.push('-s', opts.script);
  args.push(opts.url);
  const { stdout } = await run('wrk', args, {
    env: { ...process.env, ...opts.env },
    timeout: (opts.durationSec + 30) * 1000,
  });
  return parseWrk(stdout);
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  if (unit === 'us') return n / 1000;
  if (unit === 's') return n * 1000;
  return n;
}

export function parseWrk(out: string): LoadResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in/.exec(out);
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    return m ? toMs(m[1]!, m[2]!) : Number.NaN;
  };
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  if (!rps || !total) throw new Error(`could not parse wrk output:\n${out}`);
  return {
    reqPerSec: Number(rps[1]),
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    requests: Number(total[1]),
    errors: (non2xx ? Number(non2xx[1]) : 0) + sockErrors,
  };
}
