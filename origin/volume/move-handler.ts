/**
 * `/admin/volume/*`: the steps of a volume move or replica copy
 * (volume-move.ts) as HTTP. Every one is an admin call (the router checks
 * first, GETs included: the files are the blobs themselves).
 *
 *   POST /admin/volume/freeze?volume=&peer=&mode=move|copy   source: freeze, answer the snapshot
 *   POST /admin/volume/unfreeze?volume=                        source: abandon the move
 *   GET  /admin/volume/snapshot?volume=                        source: sizes and .idx hash
 *   GET  /admin/volume/file?volume=&ext=dat|idx                source: the frozen bytes
 *   POST /admin/volume/copy?volume=&source=&mode=              target: pull and verify
 *   POST /admin/volume/mount?volume=&source=                   target: put in place, frozen
 *   POST /admin/volume/finish?volume=                          target: unfreeze the copy
 *   POST /admin/volume/delete?volume=&movedTo=|extra=true|abortArrival=true
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { InvalidParamError, MethodNotAllowedError, NotFoundError } from '../../shared/errors.ts';
import { HOST_PORT } from '../http/address.ts';
import { assertKnownParams, requireU32 } from '../http/params.ts';
import { sendJson } from '../http/respond.ts';
import type { MoveMarker } from './volume-info.ts';
import type { VolumeMoves } from './volume-move.ts';

function hostPort(query: URLSearchParams | null, name: string): string {
  const v = query?.get(name) ?? '';
  if (!HOST_PORT.test(v)) throw new InvalidParamError(`parameter "${name}" must be host:port`);
  return v;
}

function mode(query: URLSearchParams | null): MoveMarker['mode'] {
  const m = query?.get('mode') ?? 'move';
  if (m !== 'move' && m !== 'copy') throw new InvalidParamError('mode must be move or copy');
  return m;
}

export async function handleVolumeMove(
  req: IncomingMessage,
  res: ServerResponse,
  moves: VolumeMoves,
  pathname: string,
  query: URLSearchParams | null,
): Promise<void> {
  const get = req.method === 'GET' || req.method === 'HEAD';
  const step = pathname.slice('/admin/volume/'.length);
  const readSteps = new Set(['snapshot', 'file']);
  if (readSteps.has(step) ? !get : req.method !== 'POST') {
    throw new MethodNotAllowedError(`${pathname} takes ${readSteps.has(step) ? 'GET' : 'POST'}`);
  }
  const known = (names: string[]) => query && assertKnownParams(query, new Set(['volume', ...names]));
  const volumeId = requireU32(query, 'volume');
  switch (step) {
    case 'freeze':
      known(['peer', 'mode']);
      return sendJson(res, 200, await moves.freeze(volumeId, hostPort(query, 'peer'), mode(query)));
    case 'unfreeze':
      known([]);
      moves.unfreeze(volumeId);
      return sendJson(res, 200, { volume: volumeId, frozen: false });
    case 'snapshot':
      known([]);
      return sendJson(res, 200, moves.snapshot(volumeId));
    case 'file': {
      known(['ext']);
      const { path, length } = moves.fileOf(volumeId, query?.get('ext') ?? '');
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': length });
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        return;
      }
      await pipeline(createReadStream(path, { start: 0, end: length - 1 }), res);
      return;
    }
    case 'copy':
      known(['source', 'mode']);
      return sendJson(res, 200, await moves.copy(volumeId, hostPort(query, 'source'), mode(query)));
    case 'mount':
      known(['source']);
      moves.mount(volumeId, hostPort(query, 'source'));
      return sendJson(res, 200, { volume: volumeId, mounted: true });
    case 'finish':
      known([]);
      moves.finish(volumeId);
      return sendJson(res, 200, { volume: volumeId, finished: true });
    case 'delete': {
      known(['movedTo', 'extra', 'abortArrival']);
      const movedTo = query?.has('movedTo') ? hostPort(query, 'movedTo') : undefined;
      await moves.delete(volumeId, {
        ...(movedTo ? { movedTo } : {}),
        extra: query?.get('extra') === 'true',
        abortArrival: query?.get('abortArrival') === 'true',
      });
      return sendJson(res, 200, { volume: volumeId, deleted: true });
    }
    default:
      throw new NotFoundError(`no admin endpoint ${pathname}`);
  }
}
