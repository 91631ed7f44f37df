/**
 * `/healthz` and `/readyz`, the same on every Kelp server (master, volume
 * server, `kelp tier serve`), for load balancers, systemd and orchestrators:
 *
 * - `/healthz`: the process answers HTTP. 200 `{"status":"ok"}` while it
 *   runs, draining included (a restart would not help a draining server).
 * - `/readyz`: it can do its job now. Each server registers its checks
 *   (master: topology loaded, leader known; volume server: volumes loaded,
 *   master reachable; tier service: master and backends reachable); 200 when
 *   all pass, 503 otherwise, and 503 as soon as a shutdown starts, so traffic
 *   moves away before the server stops accepting. The body names each check.
 *
 * Both are open (no credential) and say nothing secret: check names and short
 * reasons, never addresses of backends or keys.
 */
import type { ServerResponse } from 'node:http';
import { sendJson } from './respond.ts';

/** A check that does not answer in this long fails (it may wait on the network). */
export const HEALTH_CHECK_TIMEOUT_MS = 2_000;

export interface CheckResult {
  ok: boolean;
  /** Why not, or what was found (`3 volume servers`). */
  detail?: string;
}

export type Check = () => CheckResult | Promise<CheckResult>;

export const HEALTH_PATHS = new Set(['/healthz', '/readyz']);

export class Health {
  private readonly checks = new Map<string, Check>();
  private stopping = false;

  /** Adds (or replaces) a readiness check; other branches of the code add their own (e.g. leader election). */
  add(name: string, check: Check): this {
    this.checks.set(name, check);
    return this;
  }

  /** Readiness fails from now on: the server is shutting down. */
  markStopping(): void {
    this.stopping = true;
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  async ready(): Promise<{ ready: boolean; checks: Record<string, CheckResult> }> {
    const checks: Record<string, CheckResult> = {};
    if (this.stopping) checks.shutdown = { ok: false, detail: 'shutting down' };
    await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        checks[name] = await runCheck(check);
      }),
    );
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  /** Answers `/healthz` or `/readyz` (the caller matched the path). */
  async serve(res: ServerResponse, pathname: string): Promise<void> {
    if (pathname === '/healthz') {
      sendJson(res, 200, { status: 'ok' }, { 'Cache-Control': 'no-store' });
      return;
    }
    const { ready, checks } = await this.ready();
    sendJson(res, ready ? 200 : 503, { ready, checks }, { 'Cache-Control': 'no-store' });
  }
}

async function runCheck(check: Check): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(check),
      new Promise<CheckResult>((resolve) => {
        timer = setTimeout(
          () => resolve({ ok: false, detail: `no answer in ${HEALTH_CHECK_TIMEOUT_MS} ms` }),
          HEALTH_CHECK_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}
