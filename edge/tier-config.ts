/**
 * TIER_BACKENDS: the buckets the edge may read tiered volumes from, by the
 * name volume servers give the backend (`s3.archive`, `r2.default`), as JSON:
 *
 *   {"r2.default": {"kind": "r2", "binding": "TIER", "bucket": "kelp-tier"},
 *    "s3.archive": {"kind": "s3", "endpoint": "https://s3.us-east-1.amazonaws.com",
 *                   "region": "us-east-1", "bucket": "kelp-archive"},
 *    "gcs.cold":   {"kind": "gcs", "bucket": "kelp-cold"}}
 *
 * S3 and GCS keys are Worker secrets named after the backend:
 * `TIER_<NAME>_ACCESS_KEY_ID` and `TIER_<NAME>_SECRET_ACCESS_KEY`, NAME being
 * the backend name upper-cased with `.` and `-` as `_` (TIER_S3_ARCHIVE_...);
 * read-only keys scoped to the one bucket (docs/security.md). GCS goes through
 * its XML API, which takes SigV4 with HMAC keys (tier-backends/gcs.ts:
 * endpoint `https://storage.googleapis.com`, region `auto` unless given).
 * A backend missing here is read through the origin, as before.
 */
import { InternalError } from '../shared/errors.ts';
import { gcsReader } from './tier-backends/gcs.ts';
import { type R2Binding, R2Reader } from './tier-backends/r2.ts';
import type { TierReader } from './tier-backends/reader.ts';
import { S3Reader } from './tier-backends/s3.ts';

/** A bucket read that takes longer is given up (the read goes to the origin). */
export const DEFAULT_TIER_TIMEOUT_MS = 5_000;

interface RawBackend {
  kind?: unknown;
  binding?: unknown;
  bucket?: unknown;
  endpoint?: unknown;
  region?: unknown;
  pathStyle?: unknown;
}

/** `s3.archive` → `S3_ARCHIVE`: the infix of its secrets' names. */
export function secretInfix(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '')
    throw new InternalError(`TIER_BACKENDS: ${what} must be a non-empty string`);
  return v;
}

/** Parses TIER_BACKENDS against the env (bindings and secrets); a mistake is a configuration error, named. */
/**
 * The part of the Worker's env this reads: TIER_BACKENDS, and the bindings and
 * secrets it names (by their computed names, so typed loosely; env.ts's Env is
 * not imported, which would make the two modules import each other).
 */
export interface TierEnv {
  TIER_BACKENDS?: string;
}

export function parseTierBackends(env: TierEnv, timeoutMs: number): Map<string, TierReader> {
  const out = new Map<string, TierReader>();
  if (!env.TIER_BACKENDS) return out;
  let raw: Record<string, RawBackend>;
  try {
    raw = JSON.parse(env.TIER_BACKENDS) as Record<string, RawBackend>;
  } catch (err) {
    throw new InternalError('TIER_BACKENDS is not JSON', { cause: err });
  }
  const vars = env as unknown as Record<string, unknown>;
  for (const [name, b] of Object.entries(raw)) {
    const bucket = str(b.bucket, `${name}.bucket`);
    if (b.kind === 'r2') {
      const bindingName = str(b.binding, `${name}.binding`);
      const binding = vars[bindingName] as R2Binding | undefined;
      if (!binding || typeof (binding as { get?: unknown }).get !== 'function') {
        throw new InternalError(
          `TIER_BACKENDS: ${name} names the R2 binding ${bindingName}, which this Worker lacks`,
        );
      }
      out.set(name, new R2Reader(binding, bucket));
      continue;
    }
    if (b.kind !== 's3' && b.kind !== 'gcs') {
      throw new InternalError(`TIER_BACKENDS: ${name}.kind must be r2, s3 or gcs`);
    }
    const infix = secretInfix(name);
    const idName = `TIER_${infix}_ACCESS_KEY_ID`;
    const secretName = `TIER_${infix}_SECRET_ACCESS_KEY`;
    const accessKeyId = vars[idName];
    const secretAccessKey = vars[secretName];
    if (typeof accessKeyId !== 'string' || typeof secretAccessKey !== 'string') {
      throw new InternalError(`TIER_BACKENDS: ${name} needs the secrets ${idName} and ${secretName}`);
    }
    if (b.kind === 'gcs') {
      out.set(
        name,
        gcsReader({
          bucket,
          accessKeyId,
          secretAccessKey,
          ...(b.endpoint !== undefined ? { endpoint: str(b.endpoint, `${name}.endpoint`) } : {}),
          ...(typeof b.region === 'string' ? { region: b.region } : {}),
          pathStyle: b.pathStyle !== false,
          timeoutMs,
        }),
      );
      continue;
    }
    out.set(
      name,
      new S3Reader({
        kind: b.kind,
        endpoint: str(b.endpoint, `${name}.endpoint`),
        region: typeof b.region === 'string' ? b.region : 'us-east-1',
        bucket,
        accessKeyId,
        secretAccessKey,
        pathStyle: b.pathStyle !== false,
        timeoutMs,
      }),
    );
  }
  return out;
}
