/**
 * The volume server's admin and status endpoints: `/status`,
 * `/admin/assign_volume`, `/admin/vacuum`, `/admin/readonly`, `/admin/writable`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { VolumeServerStatus } from '../../shared/api.ts';
import { parseCollection } from '../../shared/collection.ts';
import { InvalidParamError, MethodNotAllowedError, NotFoundError } from '../../shared/errors.ts';
import { formatPlacement, parsePlacement } from '../../shared/placement.ts';
import { formatTtl, parseTtl } from '../../shared/ttl.ts';
import { assertKnownParams, requireU32 } from '../http/params.ts';
import { sendJson } from '../http/respond.ts';
import { KELP_VERSION_STRING } from '../version.ts';
import type { EdgePurgeEvents } from './edge-purge.ts';
import type { Store } from './store.ts';
import { DEFAULT_GARBAGE_THRESHOLD, vacuumVolume } from './vacuum.ts';

function known(query: URLSearchParams | null, names: string[]): void {
  if (query) assertKnownParams(query, new Set(names));
}

export function handleStatus(res: ServerResponse, store: Store): void {
  const status: VolumeServerStatus = {
    Version: KELP_VERSION_STRING,
    DiskStatuses: store.diskStatuses(),
    Volumes: store.volumeStatuses().map((v) => ({
      ...v,
      replicaPlacement: formatPlacement(v.replicaPlacement),
      ttl: formatTtl(v.ttl),
    })),
  };
  sendJson(res, 200, status);
}

export async function handleAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  store: Store,
  pathname: string,
  query: URLSearchParams | null,
  edgePurge?: EdgePurgeEvents,
): Promise<void> {
  if (req.method !== 'POST') throw new MethodNotAllowedError(`${pathname} takes POST`);
  switch (pathname) {
    case '/admin/assign_volume': {
      known(query, ['volume', 'collection', 'replication', 'ttl', 'preallocate']);
      const id = requireU32(query, 'volume');
      const collection = parseCollection(query?.get('collection'));
      const placement = parsePlacement(query?.get('replication') ?? '');
      const ttl = parseTtl(query?.get('ttl') ?? '');
      store.createVolume(id, collection, placement, ttl);
      sendJson(res, 200, {
        volume: id,
        collection,
        replication: formatPlacement(placement),
        ttl: formatTtl(ttl),
      });
      return;
    }
    case '/admin/vacuum': {
      known(query, ['volume', 'garbageThreshold', 'force']);
      const volume = store.get(requireU32(query, 'volume'));
      const threshold = Number(query?.get('garbageThreshold') ?? DEFAULT_GARBAGE_THRESHOLD);
      if (!(threshold >= 0 && threshold <= 1)) throw new InvalidParamError('garbageThreshold must be 0..1');
      const report = await vacuumVolume(volume, { threshold, force: query?.get('force') === 'true' });
      sendJson(res, 200, report);
      return;
    }
    case '/admin/readonly':
    case '/admin/writable': {
      known(query, ['volume']);
      const volume = store.get(requireU32(query, 'volume'));
      volume.setReadOnly(pathname === '/admin/readonly');
      sendJson(res, 200, { volume: volume.id, readOnly: volume.readOnly });
      return;
    }
    case '/admin/delete_collection': {
      known(query, ['collection']);
      const collection = parseCollection(query?.get('collection'));
      if (!collection) throw new InvalidParamError('collection is required');
      const deletedVolumes = await store.deleteCollection(collection);
      // Their copies at the edge are void: every file of these volumes is gone.
      edgePurge?.volumesRemoved(deletedVolumes);
      sendJson(res, 200, { collection, deletedVolumes });
      return;
    }
    default:
      throw new NotFoundError(`no admin endpoint ${pathname}`);
  }
}
