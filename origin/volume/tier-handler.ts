/**
 * The volume server's tier endpoints, driven by `kelp tier ...` and the
 * tiering service: `POST /admin/tier/upload?volume=&backend=&keepLocalDat=`,
 * `POST /admin/tier/download?volume=` (both start a background job, 202) and
 * `GET /admin/tier/status[?volume=]` (job progress).
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ConflictError,
  InvalidParamError,
  MethodNotAllowedError,
  NotFoundError,
} from '../../shared/errors.ts';
import { assertKnownParams, requireU32 } from '../http/params.ts';
import { sendJson } from '../http/respond.ts';
import type { Logger } from '../observability/log.ts';
import type { Store } from './store.ts';
import { type BackendRegistry, type TierJobs, tierDownload, tierUpload } from './tier.ts';
import type { TierPeers } from './tier-share.ts';

export interface TierContext {
  backends: BackendRegistry;
  jobs: TierJobs;
  /** The volume's other replicas, so they share one object (tier-share.ts). */
  peers?: TierPeers;
  log?: Logger;
}

function parseBool(value: string | null | undefined, name: string): boolean {
  if (value === null || value === undefined || value === '' || value === 'false' || value === '0')
    return false;
  if (value === 'true' || value === '1') return true;
  throw new InvalidParamError(`${name} must be true or false`);
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
      const keepLocalDat = parseBool(query?.get('keepLocalDat'), 'keepLocalDat');
      const tiered = volume.info.remote;
      if (tiered && tiered.backend !== backend.name) {
        throw new ConflictError(
          `volume ${volume.id} is already tiered to ${tiered.backend}: download it first`,
        );
      }
      const job = tier.jobs.start(volume.id, 'upload', backend.name, async (progress, signal) => {
        await tierUpload(volume, backend, {
          keepLocalDat,
          onProgress: progress,
          signal,
          ...(tier.peers ? { peers: tier.peers } : {}),
          ...(tier.log ? { log: tier.log } : {}),
        });
      });
      sendJson(res, 202, job);
      return;
    }
    case '/admin/tier/download': {
      if (query) assertKnownParams(query, new Set(['volume']));
      const volume = store.get(requireU32(query, 'volume'));
      if (!volume.info.remote) throw new NotFoundError(`volume ${volume.id} is not tiered`);
      const job = tier.jobs.start(volume.id, 'download', volume.info.remote.backend, (progress, signal) =>
        tierDownload(volume, tier.backends, progress, signal, tier.peers),
      );
      sendJson(res, 202, job);
      return;
    }
    default:
      throw new NotFoundError(`no tier endpoint ${pathname}`);
  }
}
