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
  /** Largest `/submit` body the edge accepts (413 beyond), checked before the master is asked. */
  MAX_UPLOAD_BYTES?: string;
}

/**
 * Default `/submit` limit: Cloudflare refuses request bodies over 100 MB on the
 * Free and Pro plans, and the Worker holds the body in isolate memory (128 MB).
 */
export const DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024;

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
  /** Keys a caller may write with; empty = no key is configured. */
  writeKeys: string[];
  /** Writes without a key, when no key is configured (PUBLIC_WRITES = "true"). */
  publicWrites: boolean;
  masterClientKey?: string;
  maxUploadBytes: number;
  /** The id origin logs this request under (request-id.ts); set per request, never from env. */
  requestId?: string;
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
      writeKeys: (env.WRITE_KEYS ?? '')
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
      publicWrites: env.PUBLIC_WRITES?.trim().toLowerCase() === 'true',
      masterClientKey: env.MASTER_CLIENT_KEY?.trim() || undefined,
      maxUploadBytes: num(env.MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES),
    };
    parsed.set(env, c);
  }
  return c;
}
