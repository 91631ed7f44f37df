/**
 * The volume server's tier endpoints, driven by `kelp tier ...` and the
 * tiering service: `POST /admin/tier/upload?volume=&backend=&keepLocalDat=`,
 * `POST /admin/tier/download?volume=` (both start a background job, 202) and
 * `GET /admin/tier/status[?volume=]` (job progress).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MethodNotAllowedError, NotFoundError } from '../../shared/errors.ts';
import { sendJson } from '../http/respond.ts';
import { assertKnownParams, requireU32 } from './params.ts';
import type { Store } from './store.ts';
import { type BackendRegistry, type TierJobs, tierDownload, tierUpload } from './tier.ts';

export interface TierContext {
  backends: BackendRegistry;
  jobs: TierJobs;
}

export function handleTierStatus(
  res: ServerResponse,
  store: Store,
  tier: TierContext,
  query: URLSearchParams | null,
): void {
  if (query) assertKnownParams(query, new Set(['volume']));
  if (query?.has('volume')) {
    const id = requireU32(query, 'volume');
    const volume = store.get(id);
    sendJson(res, 200, { volume: id, remote: volume.info.remote ?? null, job: tier.jobs.get(id) ?? null });
    return;
  }
  sendJson(res, 200, { backends: tier.backends.names(), jobs: tier.jobs.all() });
}

export function handleTier(
  req: IncomingMessage,
  res: ServerResponse,
  store: Store,
  tier: TierContext,
  pathname: string,
  query: URLSearchParams | null,
): void {
  if (req.method !== 'POST') throw new MethodNotAllowedError(`${pathname} takes POST`);
  switch (pathname) {
    case '/admin/tier/upload': {
      if (query) assertKnownParams(query, new Set(['volume', 'backend', 'keepLocalDat']));
      const volume = store.get(requireU32(query, 'volume'));
      const backend = tier.backends.get(query?.get('backend') || 'local.default');
      const keepLocalDat = query?.get('keepLocalDat') === 'true';
      const job = tier.jobs.start(volume.id, 'upload', backend.name, async (progress) => {
        await tierUpload(volume, backend, { keepLocalDat, onProgress: progress });
      });
      sendJson(res, 202, job);
      return;
    }
    case '/admin/tier/download': {
      if (query) assertKnownParams(query, new Set(['volume']));
      const volume = store.get(requireU32(query, 'volume'));
      if (!volume.info.remote) throw new NotFoundError(`volume ${volume.id} is not tiered`);
      const job = tier.jobs.start(volume.id, 'download', volume.info.remote.backend, (progress) =>
        tierDownload(volume, tier.backends, progress),
      );
      sendJson(res, 202, job);
      return;
    }
    default:
      throw new NotFoundError(`no tier endpoint ${pathname}`);
  }
}
