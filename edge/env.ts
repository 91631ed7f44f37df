import { DEFAULT_RESIZE_PRESETS, type ResizeParams } from '../shared/resize.ts';
import { type OriginPattern, parseOriginAllow } from './allow.ts';
import { type CorsPolicy, parseCorsOrigins } from './cors.ts';
import type { TierReader } from './tier-backends/reader.ts';
import { DEFAULT_TIER_TIMEOUT_MS, parseTierBackends } from './tier-config.ts';

/** Bindings and vars the Worker reads (wrangler.toml [vars] and secrets). */
export interface Env {
  /** Comma-separated master base URLs, e.g. "http://127.0.0.1:9333". */
  MASTER_URL: string;
  /**
   * Comma-separated origins the edge may fetch blobs from, e.g. "http://127.0.0.1:*,https://*.kelp.example:443"
   * (scheme, host glob, port or *). Lookup answers naming anything else are refused. Unset: no origin is
   * allowed, and every miss says so.
   */
  ORIGIN_ALLOW?: string;
  LOOKUP_TTL_SECONDS?: string;
  /**
   * Seconds a cached copy is served without asking the origin: the staleness bound of every change
   * that no purge event reaches. Older copies are revalidated (If-None-Match) before they are served.
   */
  EDGE_FRESH_SECONDS?: string;
  /** How long a copy is kept to serve when every origin is down (stale-if-error). */
  STALE_TTL_SECONDS?: string;
  NEGATIVE_TTL_SECONDS?: string;
  /** Largest object fetched whole to answer a Range miss; larger ones pass the Range through uncached. */
  MAX_CACHEABLE_BYTES?: string;
  /** Largest file accepted by POST /submit (the multipart body may exceed it by its framing). */
  MAX_UPLOAD_BYTES?: string;
  ORIGIN_TIMEOUT_MS?: string;
  MAX_RESIZE_SIDE?: string;
  /** JSON object of named variants, e.g. {"thumb": {"width": 200, "height": 200, "mode": "fill"}}. */
  RESIZE_PRESETS?: string;
  SIGNING_KEY?: string;
  RESIZE_SIGNING_KEY?: string;
  /**
   * Secret: comma-separated keys a public caller presents as `Authorization: Bearer <key>`
   * to use `POST /submit` and `DELETE /<fid>`. More than one so a key can be rotated
   * (add the new one, move clients, drop the old one).
   */
  WRITE_KEYS?: string;
  /**
   * Secret: the key the Worker itself presents to the master (`Authorization: Bearer <key>`,
   * one of the master's client keys) for `/submit` and for delete tokens. Never the caller's.
   */
  MASTER_CLIENT_KEY?: string;
  /** "true" lets anyone write through the edge without a key: local development only ([env.local]). */
  PUBLIC_WRITES?: string;
  /** Bearer secret of POST /_kelp/purge (volume servers' purge events); unset = the endpoint is off. */
  PURGE_KEY?: string;
  /**
   * JSON: the buckets tiered volumes may be read from directly, by backend name
   * (edge/tier-config.ts). Unset: every read goes to the origin.
   */
  TIER_BACKENDS?: string;
  /** Milliseconds a bucket read may take before the read goes to the origin instead. */
  TIER_TIMEOUT_MS?: string;
  /** Largest needle record read from a bucket by the edge; larger ones go through the origin. */
  MAX_TIER_READ_BYTES?: string;
  /**
   * Secret: the bearer key of the master's `POST /edge/heat` (one of its KELP_EDGE_HEAT_KEYS). Set, the
   * edge reports the reads it answered without an origin, for tier policies (edge/heat.ts).
   */
  HEAT_KEY?: string;
  /** Seconds between heat reports of an isolate (default 10). */
  HEAT_FLUSH_SECONDS?: string;
  /**
   * Origins whose scripts may read public blobs cross-origin (CORS, edge/cors.ts): `*`, or a comma-separated
   * list in ORIGIN_ALLOW's form ("https://app.example,https://*.example.com"). Unset: no CORS headers.
   */
  CORS_ALLOW_ORIGINS?: string;
}

/** Default of EDGE_FRESH_SECONDS: the README's staleness bound for the local stack. */
export const DEFAULT_FRESH_SECONDS = 5;
/**
 * Default of MAX_UPLOAD_BYTES: the volume servers' own default limit. The body streams
 * through the Worker (its 128 MB of memory is no bound), but Cloudflare itself refuses
 * request bodies over 100 MB on the Free and Pro plans (500 MB on Enterprise).
 */
export const DEFAULT_MAX_UPLOAD_BYTES = 256 * 1024 * 1024;

export interface EdgeConfig {
  masters: string[];
  lookupTtlMs: number;
  freshMs: number;
  staleTtlSeconds: number;
  negativeTtlSeconds: number;
  maxCacheableBytes: number;
  maxUploadBytes: number;
  originTimeoutMs: number;
  maxResizeSide: number;
  resizePresets: Record<string, ResizeParams>;
  resizeSigningKey?: string;
  /** Keys a caller may write with; empty = no key is configured. */
  writeKeys: string[];
  /** Writes without a key, when no key is configured (PUBLIC_WRITES = "true"). */
  publicWrites: boolean;
  masterClientKey?: string;
  purgeKey?: string;
  /** Parsed ORIGIN_ALLOW; undefined when unset (every origin fetch is then refused). */
  originAllow?: OriginPattern[];
  /** The id origin logs this request under (request-id.ts); set per request, never from env. */
  requestId?: string;
  /** Buckets the edge reads tiered volumes from, by backend name (TIER_BACKENDS). */
  tierReaders: Map<string, TierReader>;
  maxTierReadBytes: number;
  heatKey?: string;
  heatFlushMs: number;
  /** Parsed CORS_ALLOW_ORIGINS; undefined when unset (no CORS headers). */
  cors?: CorsPolicy;
}

/** Default of MAX_TIER_READ_BYTES: a needle is read whole (its CRC checked) before a byte is served. */
export const DEFAULT_MAX_TIER_READ_BYTES = 16 * 1024 * 1024;

function num(raw: string | undefined, fallback: number): number {
  const n = raw === undefined || raw === '' ? Number.NaN : Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

const parsed = new WeakMap<Env, EdgeConfig>();

/** Vars as numbers, with the defaults a laptop needs; parsed once per env object. */
export function edgeConfig(env: Env): EdgeConfig {
  let c = parsed.get(env);
  if (!c) {
    const freshSeconds = num(env.EDGE_FRESH_SECONDS, DEFAULT_FRESH_SECONDS);
    c = {
      masters: (env.MASTER_URL ?? '')
        .split(',')
        .map((m) => m.trim().replace(/\/+$/, ''))
        .filter(Boolean),
      lookupTtlMs: num(env.LOOKUP_TTL_SECONDS, 60) * 1000,
      freshMs: freshSeconds * 1000,
      staleTtlSeconds: num(env.STALE_TTL_SECONDS, 7 * 86_400),
      // A cached 404 is a copy like any other: never trusted for longer than the bound.
      negativeTtlSeconds: Math.min(num(env.NEGATIVE_TTL_SECONDS, 5), freshSeconds),
      maxCacheableBytes: num(env.MAX_CACHEABLE_BYTES, 64 * 1024 * 1024),
      maxUploadBytes: num(env.MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES),
      originTimeoutMs: num(env.ORIGIN_TIMEOUT_MS, 5000),
      maxResizeSide: num(env.MAX_RESIZE_SIDE, 4096),
      resizePresets: env.RESIZE_PRESETS
        ? (JSON.parse(env.RESIZE_PRESETS) as Record<string, ResizeParams>)
        : { ...DEFAULT_RESIZE_PRESETS },
      resizeSigningKey: env.RESIZE_SIGNING_KEY || undefined,
      writeKeys: (env.WRITE_KEYS ?? '')
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
      publicWrites: env.PUBLIC_WRITES?.trim().toLowerCase() === 'true',
      masterClientKey: env.MASTER_CLIENT_KEY?.trim() || undefined,
      purgeKey: env.PURGE_KEY || undefined,
      originAllow: env.ORIGIN_ALLOW ? parseOriginAllow(env.ORIGIN_ALLOW) : undefined,
      tierReaders: parseTierBackends(env, num(env.TIER_TIMEOUT_MS, DEFAULT_TIER_TIMEOUT_MS)),
      maxTierReadBytes: num(env.MAX_TIER_READ_BYTES, DEFAULT_MAX_TIER_READ_BYTES),
      heatKey: env.HEAT_KEY?.trim() || undefined,
      heatFlushMs: num(env.HEAT_FLUSH_SECONDS, 10) * 1000,
      cors: parseCorsOrigins(env.CORS_ALLOW_ORIGINS),
    };
    parsed.set(env, c);
  }
  return c;
}
