/**
 * Image resize parameters: parsed, validated and bounded in one place, and
 * written back in one canonical form, so `?height=200&width=200` and
 * `?width=200&height=200&mode=` are the same variant: one origin job, one
 * edge cache key. Used by the Worker (before any origin call) and by the
 * volume server alike.
 */
import { InvalidParamError } from './errors.ts';

export type ResizeMode = 'fit' | 'fill';
export type OutputFormat = 'webp' | 'avif' | 'jpeg' | 'png' | 'auto';

export interface ResizeParams {
  width?: number;
  height?: number;
  mode?: ResizeMode;
  format?: OutputFormat;
  quality?: number;
}

export interface ResizeLimits {
  /** Largest width or height a request may ask for. */
  maxSide: number;
  /** Named variants (`?preset=thumb`), configured by the operator. */
  presets?: Readonly<Record<string, ResizeParams>>;
}

/** Default bound on an output side (config overrides it). */
export const MAX_RESIZE_SIDE = 4096;
/** Presets every server knows unless configured otherwise (`?preset=thumb`). */
export const DEFAULT_RESIZE_PRESETS: Readonly<Record<string, ResizeParams>> = {
  thumb: { width: 200, height: 200, mode: 'fill' },
};
export const DEFAULT_RESIZE_LIMITS: ResizeLimits = {
  maxSide: MAX_RESIZE_SIDE,
  presets: DEFAULT_RESIZE_PRESETS,
};

/**
 * The query parameters that select a variant. Everything else in a public
 * URL's query string is not part of the variant (the edge drops it from its
 * cache key; the volume server rejects unknown names).
 */
export const RESIZE_PARAMS: ReadonlySet<string> = new Set([
  'width',
  'height',
  'mode',
  'format',
  'quality',
  'preset',
]);

/**
 * Aliases Cloudflare Images and imgproxy users type, mapped here and nowhere
 * else. `scale-down` is `fit` because Kelp never enlarges (docs/format.md §8).
 */
const MODE_ALIASES: Record<string, ResizeMode> = {
  fit: 'fit',
  contain: 'fit',
  inside: 'fit',
  'scale-down': 'fit',
  fill: 'fill',
  cover: 'fill',
  crop: 'fill',
};

const FORMATS: Record<string, OutputFormat> = {
  webp: 'webp',
  avif: 'avif',
  jpeg: 'jpeg',
  jpg: 'jpeg',
  png: 'png',
  auto: 'auto',
};

function positiveInt(name: string, raw: string, max: number): number {
  if (!/^\d{1,6}$/.test(raw)) throw new InvalidParamError(`${name} must be a whole number of pixels`);
  const n = Number(raw);
  if (n < 1 || n > max) throw new InvalidParamError(`${name} must be 1..${max}`);
  return n;
}

/**
 * The resize request in `query`, or null when it asks for none. Throws
 * InvalidParamError for a malformed or out-of-bounds value. An empty value
 * (`mode=`) counts as absent.
 */
export function parseResizeParams(
  query: URLSearchParams,
  limits: ResizeLimits = DEFAULT_RESIZE_LIMITS,
): ResizeParams | null {
  const preset = query.get('preset');
  if (preset) {
    const named = limits.presets?.[preset];
    if (!named) throw new InvalidParamError(`unknown preset "${preset}"`);
    for (const name of RESIZE_PARAMS) {
      if (name !== 'preset' && query.has(name))
        throw new InvalidParamError(`preset cannot be combined with ${name}`);
    }
    return { ...named };
  }
  const p: ResizeParams = {};
  for (const name of RESIZE_PARAMS) {
    const all = query.getAll(name).filter((v) => v !== '');
    if (all.length === 0) continue;
    if (all.length > 1) throw new InvalidParamError(`${name} given more than once`);
    const raw = all[0]!;
    switch (name) {
      case 'width':
        p.width = positiveInt('width', raw, limits.maxSide);
        break;
      case 'height':
        p.height = positiveInt('height', raw, limits.maxSide);
        break;
      case 'quality':
        p.quality = positiveInt('quality', raw, 100);
        break;
      case 'mode': {
        const mode = MODE_ALIASES[raw.toLowerCase()];
        if (!mode) throw new InvalidParamError(`mode must be one of ${Object.keys(MODE_ALIASES).join(', ')}`);
        p.mode = mode;
        break;
      }
      case 'preset':
        break;
      case 'format': {
        const format = FORMATS[raw.toLowerCase()];
        if (!format) throw new InvalidParamError(`format must be one of ${Object.keys(FORMATS).join(', ')}`);
        p.format = format;
        break;
      }
    }
  }
  if (Object.keys(p).length === 0) return null;
  if (p.mode && p.width === undefined && p.height === undefined) {
    throw new InvalidParamError('mode needs a width or a height');
  }
  return p;
}

/** `height=..&mode=..&width=..` with names sorted and absent values left out; '' for no resize. */
export function canonicalResizeQuery(p: ResizeParams | null): string {
  if (!p) return '';
  const parts: string[] = [];
  if (p.format !== undefined) parts.push(`format=${p.format}`);
  if (p.height !== undefined) parts.push(`height=${p.height}`);
  if (p.mode !== undefined) parts.push(`mode=${p.mode}`);
  if (p.quality !== undefined) parts.push(`quality=${p.quality}`);
  if (p.width !== undefined) parts.push(`width=${p.width}`);
  return parts.join('&');
}

/**
 * The format `auto` means for this client: AVIF, then WebP, if its Accept
 * header allows; else the source's own. The edge and the origin both decide
 * with this, so the edge's cache key names the variant the origin makes.
 */
export function negotiateFormat(accept: string | null | undefined, source: string): string {
  if (accept?.includes('image/avif')) return 'avif';
  if (accept?.includes('image/webp')) return 'webp';
  return source;
}
