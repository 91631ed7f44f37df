/** The Worker's one place where a thrown value becomes a response (statuses come from shared/errors.ts). */
import {
  errorBody,
  httpStatusOf,
  KelpError,
  NotFoundError,
  RangeNotSatisfiableError,
  UnauthorizedError,
  VolumeDeletedError,
} from '../shared/errors.ts';

export function errorResponse(thrown: unknown, cacheState: 'MISS' | 'HIT' | 'BYPASS' = 'MISS'): Response {
  // The master's "volume deleted" (410) is for the edge to act on: the public sees a deleted volume's
  // blob as the 404 of any missing blob (which never hints why).
  const err = thrown instanceof VolumeDeletedError ? new NotFoundError('not found') : thrown;
  if (!(err instanceof KelpError)) console.error('kelp edge: unexpected error', err);
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'x-kelp-cache': cacheState,
    // Always the same as X-Kelp-Cache: the two never tell a client different stories.
    'cf-cache-status': cacheState,
    'cache-control': 'no-store',
  };
  if (err instanceof KelpError && err.retryAfter !== undefined)
    headers['retry-after'] = String(err.retryAfter);
  if (err instanceof RangeNotSatisfiableError) headers['content-range'] = `bytes */${err.size}`;
  // A 401 names the scheme that would be accepted (RFC 7235 §3.1).
  if (err instanceof UnauthorizedError) headers['www-authenticate'] = 'Bearer';
  return new Response(JSON.stringify(errorBody(err)), { status: httpStatusOf(err), headers });
}
