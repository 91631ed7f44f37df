/**
 * The request id the Worker sends to origin on every fetch it makes for a
 * request (origin logs it as `reqId` and echoes it): the caller's
 * X-Request-Id if it is sane, else Cloudflare's `cf-ray`, else a new one.
 * Origin applies the same rule (origin/observability/request-id.ts).
 */
import type { EdgeConfig } from './env.ts';

export const REQUEST_ID_HEADER = 'x-request-id';
const SANE = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function requestIdOf(request: Request): string {
  for (const name of [REQUEST_ID_HEADER, 'cf-ray']) {
    const v = request.headers.get(name);
    if (v !== null && SANE.test(v)) return v;
  }
  return crypto.randomUUID();
}

/** The config of one request: the shared one plus that request's id. */
export function forRequest(config: EdgeConfig, request: Request): EdgeConfig {
  return { ...config, requestId: requestIdOf(request) };
}
