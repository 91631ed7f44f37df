/**
 * Image variants made with sharp (libvips) from the stored bytes, with
 * SeaweedFS's semantics (docs/format.md §8): never enlarge; `fit` keeps the aspect
 * inside the box; `fill` fills the box and crops from the centre; no mode
 * with a square box on a non-square image is a centre-cropped thumbnail,
 * otherwise an exact resize. EXIF orientation is applied first. Jobs run a
 * few at a time behind a bounded queue, each with a time limit.
 */
import type { FitEnum, FormatEnum } from 'sharp';
import {
  BadRequestError,
  KelpError,
  TooManyRequestsError,
  UnavailableError,
  UnprocessableError,
} from '../../shared/errors.ts';
import { negotiateFormat, type OutputFormat, type ResizeParams } from '../../shared/resize.ts';

export interface ResizeConfig {
  /** Largest source accepted, in pixels (decompression bombs are refused before decoding). */
  maxSourcePixels: number;
  /** Jobs running at once; the rest wait in the queue. */
  concurrency: number;
  /** Jobs allowed to wait; beyond it, 429 with Retry-After. */
  maxQueue: number;
  timeoutSeconds: number;
  /** Largest stored blob read into memory to resize. */
  maxSourceBytes: number;
  /** Colour transparent pixels become in formats without alpha (JPEG), e.g. "#ffffff". */
  background: string;
}

export const MAX_SOURCE_PIXELS = 50_000_000;
/**
 * What transparency becomes in a JPEG: white, as a page behind it usually is.
 * (libvips would drop the alpha channel and leave the colour under it, which
 * for most PNGs is black.)
 */
export const FLATTEN_BACKGROUND = '#ffffff';
export const RESIZE_DEFAULTS: ResizeConfig = {
  maxSourcePixels: MAX_SOURCE_PIXELS,
  concurrency: 2,
  maxQueue: 64,
  timeoutSeconds: 10,
  maxSourceBytes: 32 * 1024 * 1024,
  background: FLATTEN_BACKGROUND,
};

/** Sources Kelp resizes (SeaweedFS's list: png, jpg, jpeg, gif, webp; plus avif). */
const RESIZABLE: Record<string, Exclude<OutputFormat, 'auto'> | 'gif'> = {
  'image/jpeg': 'jpeg',
  'image/png': 'png',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'image/avif': 'avif',
};

const OUTPUT_MIME: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  avif: 'image/avif',
  gif: 'image/gif',
};

/** SeaweedFS's JPEG quality; other formats use sharp's defaults unless asked. */
const DEFAULT_JPEG_QUALITY = 75;

export interface ResizeOutput {
  data: Buffer;
  mime: string;
  /** The response varies by Accept (format=auto). */
  variesByAccept: boolean;
}

/** How a resize job ended, with the seconds it waited for a slot and then ran (metrics). */
export type ResizeObserver = (
  outcome: 'ok' | 'failed' | 'timeout' | 'rejected',
  waitSeconds: number,
  runSeconds: number,
) => void;

class JobQueue {
  running = 0;
  readonly waiting: Array<() => void> = [];
  private readonly config: ResizeConfig;
  observe: ResizeObserver | undefined;

  constructor(config: ResizeConfig) {
    this.config = config;
  }

  /**
   * Runs `job` when a slot is free. Past the time limit the caller gets a 503,
   * but the slot stays taken until the job really ends: sharp's own timeout
   * does not stop every encoder (AVIF's is one uninterruptible libvips call,
   * lovell/sharp#4257), and freeing the slot early would let such jobs pile
   * up past `concurrency` on the CPU.
   */
  async run<T>(job: () => Promise<T>): Promise<T> {
    const queued = performance.now();
    if (this.running >= this.config.concurrency) {
      if (this.waiting.length >= this.config.maxQueue) {
        this.observe?.('rejected', 0, 0);
        throw new TooManyRequestsError('too many resize jobs waiting; retry shortly', 1);
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    const started = performance.now();
    const end = (outcome: 'ok' | 'failed' | 'timeout') =>
      this.observe?.(outcome, (started - queued) / 1000, (performance.now() - started) / 1000);
    let work: Promise<T>;
    try {
      work = job();
    } catch (err) {
      this.release();
      end('failed');
      throw err;
    }
    const done = work.finally(() => this.release());
    done.catch(() => {}); // a job that fails after its deadline has no one left to tell
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new UnavailableError('resize took too long', 1)),
        this.config.timeoutSeconds * 1000,
      );
    });
    try {
      const out = await Promise.race([done, deadline]);
      end('ok');
      return out;
    } catch (err) {
      end(err instanceof UnavailableError ? 'timeout' : 'failed');
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

/**
 * sharp, loaded on the first resize: libvips adds about 20 MiB to a volume
 * server's RSS, and most servers never resize (issue 15: RAM per needle).
 */
let sharpModule: Promise<typeof import('sharp')> | undefined;
function loadSharp(): Promise<typeof import('sharp')> {
  sharpModule ??= import('sharp');
  return sharpModule;
}

export class Resizer {
  readonly config: ResizeConfig;
  private readonly queue: JobQueue;

  constructor(config: Partial<ResizeConfig> = {}) {
    this.config = { ...RESIZE_DEFAULTS, ...config };
    this.queue = new JobQueue(this.config);
  }

  /** Jobs waiting for a slot, and running. */
  get queueDepth(): number {
    return this.queue.waiting.length;
  }

  get running(): number {
    return this.queue.running;
  }

  /** Told how each job ended (the volume server's metrics). */
  set observer(observe: ResizeObserver | undefined) {
    this.queue.observe = observe;
  }

  /**
   * The variant of `source` (plain bytes of type `mime`), or null when the
   * source is not an image Kelp resizes and no format was demanded (the
   * caller then serves the original). A demanded format (not `auto`) on a non-image is a 400.
   */
  async resize(
    source: Uint8Array,
    mime: string,
    params: ResizeParams,
    accept?: string,
  ): Promise<ResizeOutput | null> {
    const kind = RESIZABLE[mime.split(';')[0]!.trim().toLowerCase()];
    if (!kind) {
      // `auto` is not a demand: pages put it on every image URL, SVGs included, which are served as they are.
      if (params.format && params.format !== 'auto')
        throw new BadRequestError(`cannot convert ${mime || 'this blob'} to ${params.format}`);
      return null;
    }
    if (source.length > this.config.maxSourceBytes) {
      throw new UnprocessableError(
        `image of ${source.length} bytes is over the ${this.config.maxSourceBytes}-byte resize limit`,
      );
    }
    const format = params.format === 'auto' ? negotiateFormat(accept, kind) : (params.format ?? kind);
    return this.queue.run(() => this.render(source, kind, format, params, params.format === 'auto'));
  }

  private async render(
    source: Uint8Array,
    kind: string,
    format: string,
    params: ResizeParams,
    variesByAccept: boolean,
  ): Promise<ResizeOutput> {
    try {
      const sharp = (await loadSharp()).default;
      const image = sharp(source, { limitInputPixels: this.config.maxSourcePixels, failOn: 'error' })
        .timeout({ seconds: this.config.timeoutSeconds })
        .rotate();
      const { width, height } = params;
      if (width !== undefined || height !== undefined) {
        // The header of the same input, read once more by libvips (no pixels decoded).
        const meta = await image.metadata();
        // EXIF orientations 5-8 turn the image a quarter: the box is compared with the turned size.
        const turned = (meta.orientation ?? 1) >= 5;
        image.resize({
          width,
          height,
          fit: fitFor(params, turned ? meta.height : meta.width, turned ? meta.width : meta.height),
          position: 'centre',
          withoutEnlargement: true,
        });
      }
      if (format === 'jpeg') image.flatten({ background: this.config.background });
      const quality = params.quality ?? (format === 'jpeg' ? DEFAULT_JPEG_QUALITY : undefined);
      // AVIF at sharp's default effort (4) takes seconds per megapixel; 2 keeps format=auto interactive.
      const options = { ...(quality ? { quality } : {}), ...(format === 'avif' ? { effort: 2 } : {}) };
      const data = await image.toFormat(format as keyof FormatEnum, options).toBuffer();
      return { data, mime: OUTPUT_MIME[format] ?? `image/${kind}`, variesByAccept };
    } catch (err) {
      throw mapSharpError(err);
    }
  }
}

/** SeaweedFS's rule for the box, in sharp's vocabulary. */
function fitFor(params: ResizeParams, srcW: number | undefined, srcH: number | undefined): keyof FitEnum {
  if (params.mode === 'fit') return 'inside';
  if (params.mode === 'fill') return 'cover';
  if (params.width === undefined || params.height === undefined) return 'inside';
  const squareBox = params.width === params.height;
  const squareSource = srcW !== undefined && srcW === srcH;
  return squareBox && !squareSource ? 'cover' : 'fill';
}

// sharp reports failures only as messages (no codes), so this boundary is the one place that reads them.
function mapSharpError(err: unknown): KelpError {
  if (err instanceof KelpError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(message))
    return new UnprocessableError('image is over the pixel limit for resizing');
  if (/timeout/i.test(message)) return new UnavailableError('resize took too long', 1);
  return new UnprocessableError(`image could not be decoded: ${message.split('\n')[0]}`);
}
