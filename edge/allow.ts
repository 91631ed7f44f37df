/**
 * ORIGIN_ALLOW: the origins the edge may fetch blobs from. A lookup answer is
 * data from the network; without this check a wrong or poisoned answer could
 * point the Worker (and its cache) at any host. Each pattern names a scheme,
 * a host glob (`*` stands for any run of characters within the host, so
 * `*.kelp.example` matches `v1.kelp.example`) and a port (`*` for any; none
 * for the scheme's default): `http://127.0.0.1:*`, `https://*.kelp.example`.
 */
import { InternalError, UpstreamError } from '../shared/errors.ts';

export interface OriginPattern {
  scheme: 'http:' | 'https:';
  host: RegExp;
  /** '' is the scheme's default port, '*' any. */
  port: string;
  /** As written, for error messages. */
  text: string;
}

const PATTERN = /^(https?):\/\/([a-z0-9.*-]+|\[[0-9a-f:]+\])(?::(\d{1,5}|\*))?\/?$/i;
const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

function glob(host: string): RegExp {
  const escaped = host.toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replaceAll('*', '[a-z0-9.-]*')}$`);
}

/**
 * Parses the comma-separated list; a malformed entry is a configuration error,
 * named with the variable it came from (`name`: CORS_ALLOW_ORIGINS uses the same form).
 */
export function parseOriginAllow(raw: string, name = 'ORIGIN_ALLOW'): OriginPattern[] {
  const out: OriginPattern[] = [];
  for (const item of raw.split(',')) {
    const text = item.trim();
    if (!text) continue;
    const m = PATTERN.exec(text);
    if (!m) {
      throw new InternalError(
        `${name} entry "${text}" is not scheme://host[:port] (host may use *, port may be *)`,
      );
    }
    const scheme = `${m[1]!.toLowerCase()}:` as 'http:' | 'https:';
    const port = m[3] ?? '';
    out.push({ scheme, host: glob(m[2]!), port: port === DEFAULT_PORTS[scheme] ? '' : port, text });
  }
  return out;
}

/** Whether `base` (scheme://host:port, no path, no credentials) matches a pattern. */
export function isAllowedOrigin(patterns: readonly OriginPattern[], base: string): boolean {
  let u: URL;
  try {
    u = new URL(base);
  } catch {
    return false;
  }
  if (u.username || u.password || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash)
    return false;
  const host = u.hostname.toLowerCase();
  return patterns.some(
    (p) => p.scheme === u.protocol && (p.port === '*' || p.port === u.port) && p.host.test(host),
  );
}

/**
 * Throws unless `base` may be fetched: InternalError when ORIGIN_ALLOW is not
 * set at all (a deployment error, said plainly), UpstreamError when the lookup
 * named an origin outside it.
 */
export function assertAllowedOrigin(
  patterns: readonly OriginPattern[] | undefined,
  base: string,
  volumeId: number,
): void {
  if (!patterns) {
    throw new InternalError(
      'ORIGIN_ALLOW is not set: the edge fetches from no origin until it lists the volume servers it may reach ' +
        '(e.g. "https://*.kelp.example:443"; wrangler.toml [env.local] allows loopback)',
    );
  }
  if (!isAllowedOrigin(patterns, base)) {
    throw new UpstreamError(
      `the lookup of volume ${volumeId} named ${base}, which ORIGIN_ALLOW (${patterns.map((p) => p.text).join(', ')}) does not allow`,
    );
  }
}
