/**
 * The volume server's side of a clean shutdown's goodbye (master/leave.ts):
 * one signed POST, bounded in time, best effort: a master that is down
 * learns of it by the missed pulses instead.
 */
import { LEAVE_PATH } from '../http/masters.ts';
import type { Logger } from '../observability/log.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';

/** A master that does not answer a leave in this long is not waited for. */
export const LEAVE_TIMEOUT_MS = 2_000;

/** Tells `master` that the server at `url` is leaving; whether the master took it. */
export async function sendLeave(opts: {
  master: string;
  url: string;
  clusterKey?: string;
  log: Logger;
}): Promise<boolean> {
  const target = `http://${opts.master}${LEAVE_PATH}`;
  const body = JSON.stringify({ url: opts.url });
  try {
    const res = await fetch(target, {
      method: 'POST',
      headers: withClusterAuth(opts.clusterKey, 'POST', target, { 'Content-Type': 'application/json' }, body),
      body,
      signal: AbortSignal.timeout(LEAVE_TIMEOUT_MS),
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`master answered ${res.status}`);
    opts.log.info({ master: opts.master }, `told master ${opts.master} this server is leaving`);
    return true;
  } catch (err) {
    opts.log.warn(
      { master: opts.master, err },
      `could not tell master ${opts.master} this server is leaving; it will notice the missed heartbeats`,
    );
    return false;
  }
}
