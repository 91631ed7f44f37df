/**
 * The masters as the Worker asks them: the shared client (shared/client/
 * master-client.ts) with the edge's timeout (ORIGIN_TIMEOUT_MS), the
 * request's id, and, for the calls that need a client of the master, the
 * Worker's own MASTER_CLIENT_KEY (never the caller's credentials).
 */
import { MasterClient } from '../shared/client/master-client.ts';
import { bearer } from './auth.ts';
import type { EdgeConfig } from './env.ts';
import { REQUEST_ID_HEADER } from './request-id.ts';

/** Headers the Worker adds to a request to the master: its request id, and its key when `withKey`. */
export function masterHeaders(config: EdgeConfig, withKey: boolean, h: Headers = new Headers()): Headers {
  if (withKey && config.masterClientKey) h.set('authorization', bearer(config.masterClientKey));
  if (config.requestId) h.set(REQUEST_ID_HEADER, config.requestId);
  return h;
}

/**
 * A client of the configured masters for this request. Lookups of a volume
 * need no key (`withKey` false, as before: the key goes only where the master
 * asks for a client); token lookups do.
 */
export function masterClient(config: EdgeConfig, o: { withKey?: boolean } = {}): MasterClient {
  return new MasterClient(config.masters, {
    timeoutMs: config.originTimeoutMs,
    sign: (_method, _url, headers) => {
      const h = masterHeaders(config, o.withKey === true, new Headers(headers));
      return Object.fromEntries(h);
    },
  });
}
