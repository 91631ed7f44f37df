/**
 * The volume server's side of a clean shutdown's goodbye (master/leave.ts):
 * one signed POST to every master it heartbeats (each keeps its own
 * topology), bounded in time, best effort: a master that is down learns of it
 * by the missed pulses instead.
 */
import { MasterClient } from '../../shared/client/master-client.ts';
import { LEAVE_PATH, masterList } from '../http/masters.ts';
import type { Logger } from '../observability/log.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';

/** A master that does not answer a leave in this long is not waited for. */
export const LEAVE_TIMEOUT_MS = 2_000;

/** Tells every master of `master` (`a:9333,b:9333`) that the server at `url` is leaving; whether all took it. */
export async function sendLeave(opts: {
  master: string;
  url: string;
  clusterKey?: string;
  log: Logger;
}): Promise<boolean> {
  const body = JSON.stringify({ url: opts.url });
  const sign = (method: string, url: string, headers: Record<string, string>, signed?: string | Uint8Array) =>
    withClusterAuth(opts.clusterKey, method, url, headers, signed);
  const told = await Promise.all(
    masterList(opts.master).map(async (master) => {
      // One master per client: this is not failover, each of them must hear it.
      const client = new MasterClient([master], { timeoutMs: LEAVE_TIMEOUT_MS, sign });
      try {
        await client.json(LEAVE_PATH, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body,
        });
        opts.log.info({ master }, `told master ${master} this server is leaving`);
        return true;
      } catch (err) {
        opts.log.warn(
          { master, err },
          `could not tell master ${master} this server is leaving; it will notice the missed heartbeats`,
        );
        return false;
      }
    }),
  );
  return told.every(Boolean);
}
