/**
 * Requests to volume servers, with replica failover inside one request: a
 * replica that answers 404 or 5xx, or does not answer in time, is skipped
 * and the cached lookup dropped, so the next request asks the master again.
 */
import type { Location } from '../shared/api.ts';
import { UnavailableError } from '../shared/errors.ts';
import type { EdgeConfig } from './env.ts';
import { invalidateVolume, lookupVolume } from './lookup.ts';
import { REQUEST_ID_HEADER } from './request-id.ts';

export function baseUrl(location: Location): string {
  const u = location.publicUrl || location.url;
  return u.includes('://') ? u.replace(/\/+$/, '') : `http://${u}`;
}

function withRequestId(headers: HeadersInit | undefined, config: EdgeConfig): Headers {
  const h = new Headers(headers);
  if (config.requestId) h.set(REQUEST_ID_HEADER, config.requestId);
  return h;
}

/**
 * The first good answer among the volume's replicas. A 404 from every replica
 * is returned as the 404 it is; if none answered at all, UnavailableError.
 */
export async function fetchFromReplicas(
  volumeId: number,
  pathAndQuery: string,
  init: RequestInit,
  config: EdgeConfig,
  ctx: ExecutionContext | undefined,
): Promise<Response> {
  const locations = await lookupVolume(volumeId, config, ctx);
  let failed = false;
  let unreachable = false;
  let notFound: Response | undefined;
  for (const location of locations) {
    let res: Response;
    try {
      res = await fetch(`${baseUrl(location)}${pathAndQuery}`, {
        ...init,
        headers: withRequestId(init.headers, config),
        signal: AbortSignal.timeout(config.originTimeoutMs),
      });
    } catch {
      failed = true;
      unreachable = true;
      continue;
    }
    if (res.status === 404 || res.status >= 500) {
      failed = true;
      if (res.status === 404) notFound = res;
      else {
        unreachable = true;
        await res.body?.cancel();
      }
      continue;
    }
    if (failed) await invalidateVolume(volumeId, ctx);
    return res;
  }
  // Every replica agreeing on 404 is an answer, not a stale lookup: keep the locations.
  if (unreachable || !notFound) await invalidateVolume(volumeId, ctx);
  if (notFound) return notFound;
  throw new UnavailableError(`no replica of volume ${volumeId} answered`, 1);
}
