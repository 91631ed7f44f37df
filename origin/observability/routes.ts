/**
 * The `route` label of `kelp_http_request_duration_seconds`: a fixed, small
 * set per server (a raw path would give every blob a series of its own). A
 * path this table does not know is counted as `other`; add new endpoints here.
 */
import type { IncomingMessage } from 'node:http';

export const VOLUME_ROUTES = ['read', 'write', 'delete', 'replicate', 'admin', 'status', 'other'] as const;
/** The route whose handler echoes X-Request-Id in its own headers (read-handler.ts). */
export const VOLUME_READ_ROUTE = 0;
const WRITE = VOLUME_ROUTES.indexOf('write');
const DELETE = VOLUME_ROUTES.indexOf('delete');
const REPLICATE = VOLUME_ROUTES.indexOf('replicate');
const ADMIN = VOLUME_ROUTES.indexOf('admin');
const STATUS = VOLUME_ROUTES.indexOf('status');
const OTHER = VOLUME_ROUTES.indexOf('other');

/** By method and the URL's first characters: a blob path starts with its volume id's digits. */
export function volumeRouteOf(req: IncomingMessage): number {
  const url = req.url ?? '/';
  const method = req.method;
  if (method === 'GET' || method === 'HEAD') {
    const c = url.charCodeAt(1);
    if (c >= 48 && c <= 57) return VOLUME_READ_ROUTE;
    if (url.startsWith('/admin/')) return ADMIN;
    if (url.startsWith('/status')) return STATUS;
    return OTHER;
  }
  if (method === 'POST' || method === 'PUT') {
    if (url.startsWith('/admin/')) return ADMIN;
    return url.includes('type=replicate') ? REPLICATE : WRITE;
  }
  if (method === 'DELETE') return url.includes('type=replicate') ? REPLICATE : DELETE;
  return OTHER;
}

export const MASTER_ROUTES = [
  'assign',
  'lookup',
  'submit',
  'heartbeat',
  'leave',
  'grow',
  'status',
  'delete_collection',
  'redirect',
  'other',
] as const;
type MasterRoute = (typeof MASTER_ROUTES)[number];

/** Master endpoints by path; a GET of anything else is a blob redirect (or its 404). */
export const MASTER_PATHS: ReadonlyMap<string, MasterRoute> = new Map<string, MasterRoute>([
  ['/dir/assign', 'assign'],
  ['/dir/lookup', 'lookup'],
  ['/submit', 'submit'],
  ['/heartbeat', 'heartbeat'],
  ['/cluster/leave', 'leave'],
  ['/vol/grow', 'grow'],
  ['/vol/status', 'status'],
  ['/dir/status', 'status'],
  ['/cluster/status', 'status'],
  ['/col/delete', 'delete_collection'],
]);

export function masterRouteOf(req: IncomingMessage): number {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const route =
    MASTER_PATHS.get(q < 0 ? url : url.slice(0, q)) ??
    (req.method === 'GET' || req.method === 'HEAD' ? 'redirect' : 'other');
  return MASTER_ROUTES.indexOf(route);
}
