/** The Worker's one place where a thrown value becomes a response (statuses come from shared/errors.ts). */
import {
  errorBody,
  httpStatusOf,
  KelpError,
  RangeNotSatisfiableError,
  UnauthorizedError,
} from '../shared/errors.ts';

export function errorResponse(err: unknown, cacheState: 'MISS' | 'HIT' | 'BYPASS' = 'MISS'): Response {
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
