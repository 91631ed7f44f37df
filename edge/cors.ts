/**
 * Cross-origin reads (CORS) of public blobs, opt-in with CORS_ALLOW_ORIGINS:
 * `*` lets script on any site read them with fetch() (what `<img>` and
 * `<video>` can do without CORS); a list of origins in ORIGIN_ALLOW's form
 * (`https://app.example`, `https://*.example.com`, `http://localhost:*`)
 * lets only those. Unset, no response carries CORS headers, as before.
 *
 * Reads only: GET and HEAD answers (errors included, so a script can tell a
 * 404 from a network failure) and their preflights. Writes are not offered:
 * a page would have to hold a write key to make them.
 */
import { isAllowedOrigin, type OriginPattern, parseOriginAllow } from './allow.ts';

export interface CorsPolicy {
  /** `*`: every origin, one constant answer (no Vary). */
  any: boolean;
  patterns: OriginPattern[];
}

/** Response headers a cross-origin script may read beyond the CORS-safelisted ones. */
const EXPOSED_HEADERS = [
  'Accept-Ranges',
  'Content-Disposition',
  'Content-Length',
  'Content-Range',
  'ETag',
  'X-Kelp-Cache',
  'X-Request-Id',
].join(', ');
/** Request headers a read may carry cross-origin (Range beyond one simple range, conditionals). */
const ALLOWED_HEADERS = 'Range, If-Match, If-None-Match, If-Modified-Since, If-Range';
const ALLOWED_METHODS = 'GET, HEAD';
/** How long a browser may keep a preflight's answer. */
const PREFLIGHT_MAX_AGE_SECONDS = 86_400;

/** CORS_ALLOW_ORIGINS parsed; undefined when unset or empty. A malformed entry is a configuration error. */
export function parseCorsOrigins(raw: string | undefined): CorsPolicy | undefined {
  const text = raw?.trim();
  if (!text) return undefined;
  if (text === '*') return { any: true, patterns: [] };
  return { any: false, patterns: parseOriginAllow(text, 'CORS_ALLOW_ORIGINS') };
}

/** The Access-Control-Allow-Origin value for this request, or undefined when its origin is not allowed. */
function allowOrigin(policy: CorsPolicy, request: Request): string | undefined {
  if (policy.any) return '*';
  const origin = request.headers.get('origin');
  return origin !== null && isAllowedOrigin(policy.patterns, origin) ? origin : undefined;
}

/** Adds `Origin` to the response's Vary (a list's answer depends on who asked). */
function varyOrigin(headers: Headers): void {
  const vary = headers.get('vary');
  if (vary === null) headers.set('vary', 'Origin');
  else if (!/(^|,)\s*origin\s*(,|$)/i.test(vary)) headers.set('vary', `${vary}, Origin`);
}

/** A read's answer with the CORS headers its request earns; changed in place (the read path built it). */
export function withCors(res: Response, request: Request, policy: CorsPolicy): Response {
  const allowed = allowOrigin(policy, request);
  const h = res.headers;
  if (!policy.any) varyOrigin(h);
  if (allowed !== undefined) {
    h.set('access-control-allow-origin', allowed);
    h.set('access-control-expose-headers', EXPOSED_HEADERS);
  }
  return res;
}

/**
 * The answer to an OPTIONS request: a preflight of a read from an allowed
 * origin gets its permission; any other OPTIONS gets 204 with `Allow` and
 * no CORS headers, which a browser takes as a refusal.
 */
export function preflight(request: Request, policy: CorsPolicy): Response {
  const headers = new Headers({ allow: 'GET, HEAD, POST, DELETE, OPTIONS', 'cache-control': 'no-store' });
  if (!policy.any) headers.set('vary', 'Origin');
  const method = request.headers.get('access-control-request-method');
  const allowed = allowOrigin(policy, request);
  if (allowed !== undefined && (method === 'GET' || method === 'HEAD')) {
    headers.set('access-control-allow-origin', allowed);
    headers.set('access-control-allow-methods', ALLOWED_METHODS);
    headers.set('access-control-allow-headers', ALLOWED_HEADERS);
    headers.set('access-control-max-age', String(PREFLIGHT_MAX_AGE_SECONDS));
  }
  return new Response(null, { status: 204, headers });
}
