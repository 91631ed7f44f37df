/**
 * `POST /_kelp/purge`: purge events from volume servers (origin/volume/edge-purge.ts).
 * Body `{"fids": ["3,01637037d6", ...], "volumes": [7, ...]}`, authorised by
 * `Authorization: Bearer <PURGE_KEY>`. A fid purges every cached variant of
 * the file in this colo; a volume (a deleted collection) voids every copy of
 * its files. Answers `{fids, volumes, keys}` (how many of each, and how many
 * cache entries went), so the sender knows the event was applied.
 */
import {
  BadRequestError,
  ForbiddenError,
  PayloadTooLargeError,
  UnauthorizedError,
} from '../shared/errors.ts';
import { formatFid, parseFid, parseVolumeId } from '../shared/fid.ts';
import { purgeFile, purgeVolume } from './cache.ts';
import { type Env, edgeConfig } from './env.ts';
import { forgetConfirmed } from './freshness.ts';
import { invalidateVolume } from './lookup.ts';

export const PURGE_PATH = '/_kelp/purge';
/**
 * Fids per request. Each costs about four Cache API operations, which count
 * against a Worker invocation's subrequest limit (1,000 on paid plans); senders
 * batch below this.
 */
export const MAX_PURGE_FIDS = 100;
export const MAX_PURGE_VOLUMES = 100;
const MAX_PURGE_BODY_BYTES = 64 * 1024;

interface PurgeRequest {
  fids?: unknown;
  volumes?: unknown;
}

/** Constant-time comparison of the bearer token (no early exit on the first differing byte). */
async function sameSecret(given: string, expected: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest('SHA-256', enc.encode(given)),
    crypto.subtle.digest('SHA-256', enc.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

async function authorize(request: Request, key: string | undefined): Promise<void> {
  if (!key) throw new ForbiddenError('purge events are off here (PURGE_KEY is not set)');
  const auth = request.headers.get('authorization') ?? '';
  const token = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
  if (!token || !(await sameSecret(token, key)))
    throw new UnauthorizedError('purge needs the PURGE_KEY bearer token');
}

async function parseBody(request: Request): Promise<{ fids: string[]; volumes: number[] }> {
  const declared = Number(request.headers.get('content-length') ?? 0);
  if (declared > MAX_PURGE_BODY_BYTES)
    throw new PayloadTooLargeError(`purge bodies are at most ${MAX_PURGE_BODY_BYTES} bytes`);
  const text = await request.text();
  if (text.length > MAX_PURGE_BODY_BYTES)
    throw new PayloadTooLargeError(`purge bodies are at most ${MAX_PURGE_BODY_BYTES} bytes`);
  let body: PurgeRequest;
  try {
    body = JSON.parse(text) as PurgeRequest;
  } catch {
    throw new BadRequestError('purge body must be JSON: {"fids": [...], "volumes": [...]}');
  }
  const fids = body.fids ?? [];
  const volumes = body.volumes ?? [];
  if (!Array.isArray(fids) || !Array.isArray(volumes))
    throw new BadRequestError('fids and volumes must be arrays');
  if (fids.length > MAX_PURGE_FIDS || volumes.length > MAX_PURGE_VOLUMES) {
    throw new BadRequestError(`at most ${MAX_PURGE_FIDS} fids and ${MAX_PURGE_VOLUMES} volumes per purge`);
  }
  // parseFid throws InvalidFidError (400) for anything that is not a file id.
  return {
    fids: [...new Set(fids.map((f) => formatFid(parseFid(String(f)))))],
    volumes: [...new Set(volumes.map((v) => parseVolumeId(String(v))))],
  };
}

export async function handlePurge(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const config = edgeConfig(env);
  await authorize(request, config.purgeKey);
  const { fids, volumes } = await parseBody(request);
  const at = Date.now();
  const ttl = config.staleTtlSeconds;
  const cache = caches.default;
  const deleted = await Promise.all(fids.map((file) => purgeFile(cache, file, at, ttl)));
  for (const keys of deleted) forgetConfirmed(keys);
  await Promise.all(
    volumes.map(async (id) => {
      await purgeVolume(cache, id, at, ttl);
      await invalidateVolume(id, ctx);
    }),
  );
  const keys = deleted.reduce((n, k) => n + k.length, 0);
  return new Response(JSON.stringify({ fids: fids.length, volumes: volumes.length, keys }), {
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-kelp-cache': 'BYPASS' },
  });
}
