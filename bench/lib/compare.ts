import { cpuSeconds } from './cpu.ts';
import type { Started } from './process.ts';
import type { Row } from './table.ts';
import { median } from './table.ts';
import { type LoadOptions, type LoadResult, runWrk } from './wrk.ts';

export interface Contender {
  subject: string;
  start(): Promise<Started>;
  /** Load options for this contender given its port (path, Lua script, env). */
  load(port: number): Omit<LoadOptions, 'connections' | 'durationSec'>;
  /** Drives the load itself instead of wrk (bench/lib/drive.ts), for flows of several requests. */
  drive?(port: number, connections: number, durationSec: number): Promise<LoadResult>;
}

/** Seconds of unmeasured load per contender before the rounds (CompareOptions.warmupSec). */
const DEFAULT_WARMUP_SEC = 1;

export interface CompareOptions {
  bench: string;
  connections: number;
  durationSec: number;
  rounds: number;
  goal?: string;
  /**
   * Seconds of load each contender gets once before the rounds, not counted:
   * a server's first second includes compiling its hot path, and Kelp has
   * more of it to compile than a bare server. Default 1; 0 for none.
   */
  warmupSec?: number;
}

/**
 * Runs baseline and subject alternately for `rounds` rounds in the same
 * process lifetime and reports medians, so drift on a shared machine hits
 * both sides alike (odd rounds in reverse order). The first contender is the
 * baseline. Each row also gets the server's CPU per request where /proc has it.
 */
export async function compare(contenders: Contender[], opts: CompareOptions): Promise<Row[]> {
  const started = await startAll(contenders);
  try {
    const results: LoadResult[][] = contenders.map(() => []);
    // Server CPU per request, summed over the rounds (undefined when /proc cannot say).
    const cpu = contenders.map(() => ({ seconds: 0, requests: 0, known: true }));
    const warmupSec = opts.warmupSec ?? DEFAULT_WARMUP_SEC;
    if (warmupSec > 0) {
      for (const [i, c] of contenders.entries()) {
        const port = started[i]!.port;
        if (c.drive) await c.drive(port, opts.connections, warmupSec);
        else await runWrk({ ...c.load(port), connections: opts.connections, durationSec: warmupSec });
      }
    }
    for (let round = 0; round < opts.rounds; round++) {
      // ABBA: odd rounds run the contenders in reverse, so none always follows the same neighbour.
      const order = contenders.map((_, i) => (round % 2 ? contenders.length - 1 - i : i));
      for (const i of order) {
        const c = contenders[i]!;
        const port = started[i]!.port;
        const pids = started[i]!.pids ?? [started[i]!.child?.pid ?? started[i]!.pid];
        const cpuNow = () => {
          const each = pids.map(cpuSeconds);
          return each.includes(undefined) ? undefined : (each as number[]).reduce((a, b) => a + b, 0);
        };
        const before = cpuNow();
        const r = c.drive
          ? await c.drive(port, opts.connections, opts.durationSec)
          : await runWrk({ ...c.load(port), connections: opts.connections, durationSec: opts.durationSec });
        const after = cpuNow();
        results[i]!.push(r);
        if (before === undefined || after === undefined) cpu[i]!.known = false;
        else {
          cpu[i]!.seconds += after - before;
          cpu[i]!.requests += r.requests;
        }
      }
    }
    const baseRps = median(results[0]!.map((r) => r.reqPerSec));
    return contenders.map((c, i) => {
      const rs = results[i]!;
      const rps = median(rs.map((r) => r.reqPerSec));
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      const used = cpu[i]!;
      const cpuUs = used.known && used.requests > 0 ? (used.seconds / used.requests) * 1e6 : undefined;
      return {
        bench: opts.bench,
        subject: c.subject,
        reqPerSec: rps,
        p50Ms: median(rs.map((r) => r.p50Ms)),
        p99Ms: median(rs.map((r) => r.p99Ms)),
        ratio: i === 0 ? undefined : rps / baseRps,
        goal: i === 0 ? 'baseline' : opts.goal,
        cpuUsPerRequest: cpuUs,
        note:
          [
            errors ? `${errors} errors` : '',
            cpuUs === undefined ? '' : `server CPU ${cpuUs.toFixed(1)} µs/req`,
          ]
            .filter(Boolean)
            .join('; ') || undefined,
      };
    });
  } finally {
    await Promise.all(started.map((s) => s.stop()));
  }
}

/**
 * Starts every contender; if one fails, stops those that started before
 * throwing (a server left running keeps the bench process alive on its pipes).
 */
async function startAll(contenders: Contender[]): Promise<Started[]> {
  const settled = await Promise.allSettled(contenders.map((c) => c.start()));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed === undefined) return settled.map((s) => (s as PromiseFulfilledResult<Started>).value);
  await Promise.allSettled(settled.map((s) => (s.status === 'fulfilled' ? s.value.stop() : undefined)));
  throw failed.reason;
}
