/**
 * Requests to volume servers, with replica failover inside one request: a
 * replica that answers 404 or 5xx, or does not answer in time, is skipped
 * and the cached lookup dropped, so the next request asks the master again.
 * Only origins ORIGIN_ALLOW names are fetched, and redirects are not followed,
 * so a bad lookup answer cannot send the edge anywhere else. A replica that
 * no longer holds the volume (it moved) makes the edge ask the master afresh
 * within the same request.
 */
import type { Location } from '../shared/api.ts';
import { NotFoundError, UnavailableError, UpstreamError, VolumeDeletedError } from '../shared/errors.ts';
import { assertAllowedOrigin } from './allow.ts';
import type { EdgeConfig } from './env.ts';
import { invalidateVolume, lookupVolume } from './lookup.ts';
import { REQUEST_ID_HEADER } from './request-id.ts';

/** The `code` a volume server's 404 carries when the volume is not on it (shared/errors.ts VolumeNotFoundError). */
const VOLUME_NOT_FOUND = 'volume_not_found';

export function baseUrl(location: Location): string {
  const u = location.publicUrl || location.url;
  return u.includes('://') ? u.replace(/\/+$/, '') : `http://${u}`;
}

function withRequestId(headers: HeadersInit | undefined, config: EdgeConfig): Headers {
  const h = new Headers(headers);
  if (config.requestId) h.set(REQUEST_ID_HEADER, config.requestId);
  return h;
}

interface Pass {
  ok?: Response;
  notFound?: Response;
  /** Some replica answered that it does not hold the volume. */
  moved: boolean;
  unreachable: boolean;
  refused?: UpstreamError;
}

/** Whether a 404 says the volume is not on that server (rather than the blob missing); the body is kept. */
async function volumeMissing(res: Response): Promise<{ missing: boolean; res: Response }> {
  const text = await res.text();
  let code: unknown;
  try {
    code = (JSON.parse(text) as { code?: unknown }).code;
  } catch {
    // Not a Kelp error body: a plain 404.
  }
  return { missing: code === VOLUME_NOT_FOUND, res: new Response(text, res) };
}

async function tryLocations(
  volumeId: number,
  locations: readonly Location[],
  pathAndQuery: string,
  init: RequestInit,
  config: EdgeConfig,
): Promise<Pass> {
  const pass: Pass = { moved: false, unreachable: false };
  for (const location of locations) {
    const base = baseUrl(location);
    try {
      assertAllowedOrigin(config.originAllow, base, volumeId);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      pass.refused = err;
      continue;
    }
    let res: Response;
    try {
      res = await fetch(`${base}${pathAndQuery}`, {
        ...init,
        headers: withRequestId(init.headers, config),
        redirect: 'manual',
        signal: AbortSignal.timeout(config.originTimeoutMs),
      });
    } catch {
      pass.unreachable = true;
      continue;
    }
    if (res.status === 404) {
      const { missing, res: kept } = await volumeMissing(res);
      if (missing) pass.moved = true;
      pass.notFound = kept;
      continue;
    }
    if (res.status >= 500) {
      pass.unreachable = true;
      await res.body?.cancel();
      continue;
    }
    pass.ok = res;
    return pass;
  }
  return pass;
}

/**
 * The first good answer among the volume's replicas. A 404 from every replica
 * is returned as the 404 it is; if none answered at all, UnavailableError; if
 * the lookup named only origins outside ORIGIN_ALLOW, UpstreamError; if the
 * master says the volume was deleted, VolumeDeletedError (a NotFoundError).
 */
export async function fetchFromReplicas(
  volumeId: number,
  pathAndQuery: string,
  init: RequestInit,
  config: EdgeConfig,
  ctx: ExecutionContext | undefined,
): Promise<Response> {
  const locations = await lookupVolume(volumeId, config, ctx);
  let pass = await tryLocations(volumeId, locations, pathAndQuery, init, config);
  const failed = pass.unreachable || pass.notFound !== undefined || pass.refused !== undefined;
  if (pass.ok) {
    if (failed) await invalidateVolume(volumeId, ctx);
    return pass.ok;
  }
  if (pass.moved || pass.refused) {
    // The volume is not where the cached lookup says: ask the master now, and try once more
    // where it says the volume is (if anywhere else).
    await invalidateVolume(volumeId, undefined);
    let fresh: Location[];
    try {
      fresh = await lookupVolume(volumeId, config, ctx);
    } catch (err) {
      // The master knows no holder either: with a replica's "not here" in hand, the volume is gone.
      // (The master saying it was deleted is passed on: the caller purges the volume.)
      if (err instanceof NotFoundError && !(err instanceof VolumeDeletedError) && pass.notFound)
        return pass.notFound;
      throw err;
    }
    const tried = new Set(locations.map(baseUrl));
    const others = fresh.filter((l) => !tried.has(baseUrl(l)));
    if (others.length > 0) {
      const notFound = pass.notFound;
      pass = await tryLocations(volumeId, others, pathAndQuery, init, config);
      if (pass.ok) return pass.ok;
      pass.notFound ??= notFound;
    }
  } else if (pass.unreachable || !pass.notFound) {
    // Every replica agreeing on 404 is an answer, not a stale lookup: keep the locations.
    await invalidateVolume(volumeId, ctx);
  }
  if (pass.notFound) return pass.notFound;
  if (pass.refused && !pass.unreachable) throw pass.refused;
  throw new UnavailableError(`no replica of volume ${volumeId} answered`, 1);
}
