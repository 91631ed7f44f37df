import { DEFAULT_RESIZE_PRESETS, type ResizeParams } from '../shared/resize.ts';

/** Bindings and vars the Worker reads (wrangler.toml [vars] and secrets). */
export interface Env {
  /** Comma-separated master base URLs, e.g. "http://127.0.0.1:9333". */
  MASTER_URL: string;
  LOOKUP_TTL_SECONDS?: string;
  /** max-age of cached blobs (a fid + cookie never changes content, so long by default). */
  CACHE_TTL_SECONDS?: string;
  /** How long a copy stays available to serve when every origin is down (stale-if-error). */
  STALE_TTL_SECONDS?: string;
  NEGATIVE_TTL_SECONDS?: string;
  /** Largest object fetched whole to answer a Range miss; larger ones pass the Range through uncached. */
  MAX_CACHEABLE_BYTES?: string;
  ORIGIN_TIMEOUT_MS?: string;
  MAX_RESIZE_SIDE?: string;
  /** JSON object of named variants, e.g. {"thumb": {"width": 200, "height": 200, "mode": "fill"}}. */
  RESIZE_PRESETS?: string;
  SIGNING_KEY?: string;
  RESIZE_SIGNING_KEY?: string;
}

export interface EdgeConfig {
  masters: string[];
  lookupTtlMs: number;
  cacheTtlSeconds: number;
  staleTtlSeconds: number;
  negativeTtlSeconds: number;
  maxCacheableBytes: number;
  originTimeoutMs: number;
  maxResizeSide: number;
  resizePresets: Record<string, ResizeParams>;
  resizeSigningKey?: string;
}

function num(raw: string | undefined, fallback: number): number {
  const n = raw === undefined || raw === '' ? Number.NaN : Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

const parsed = new WeakMap<Env, EdgeConfig>();

/** Vars as numbers, with the defaults a laptop needs; parsed once per env object. */
export function edgeConfig(env: Env): EdgeConfig {
  let c = parsed.get(env);
  if (!c) {
    c = {
      masters: (env.MASTER_URL ?? '')
        .split(',')
        .map((m) => m.trim().replace(/\/+$/, ''))
        .filter(Boolean),
      lookupTtlMs: num(env.LOOKUP_TTL_SECONDS, 60) * 1000,
      cacheTtlSeconds: num(env.CACHE_TTL_SECONDS, 31_536_000),
      staleTtlSeconds: num(env.STALE_TTL_SECONDS, 7 * 86_400),
      negativeTtlSeconds: num(env.NEGATIVE_TTL_SECONDS, 5),
      maxCacheableBytes: num(env.MAX_CACHEABLE_BYTES, 64 * 1024 * 1024),
      originTimeoutMs: num(env.ORIGIN_TIMEOUT_MS, 5000),
      maxResizeSide: num(env.MAX_RESIZE_SIDE, 4096),
      resizePresets: env.RESIZE_PRESETS
        ? (JSON.parse(env.RESIZE_PRESETS) as Record<string, ResizeParams>)
        : { ...DEFAULT_RESIZE_PRESETS },
      resizeSigningKey: env.RESIZE_SIGNING_KEY || undefined,
    };
    parsed.set(env, c);
  }
  return c;
}
