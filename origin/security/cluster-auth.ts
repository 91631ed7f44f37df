/**
 * Cluster membership: every server-to-server call (heartbeats, replication
 * fan-out, master → volume admin, tiering service → volume servers) carries an
 * HMAC-SHA256 signature made with the cluster key (docs/decisions/0004-cluster-auth.md).
 *
 *   X-Kelp-Content-Sha256: <hex SHA-256 of the body>
 *   X-Kelp-Auth: v1 t=<unix seconds>,s=<hex HMAC>
 *
 * The HMAC covers `kelp-v1`, the method, the path with its query, the time and
 * the body hash, so a captured signature cannot be moved to another request or
 * another body, and it expires after MAX_CLOCK_SKEW_SECONDS. The receiver checks
 * the signature before it reads the body and the body against the signed hash
 * after, so an outsider cannot make a server spool a large body.
 */
import { createHash, createHmac, hash, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { UnauthorizedError } from '../../shared/errors.ts';

export const CLUSTER_AUTH_HEADER = 'x-kelp-auth';
export const CONTENT_SHA256_HEADER = 'x-kelp-content-sha256';
/** How far a signer's clock may be from ours, either way; also how long a captured request replays. */
export const MAX_CLOCK_SKEW_SECONDS = 300;
export const EMPTY_SHA256 = createHash('sha256').digest('hex');

const SIGNATURE = /^v1 t=(\d{1,12}),s=([0-9a-f]{64})$/;
const HASH = /^[0-9a-f]{64}$/;

export function sha256Hex(data: Uint8Array | string): string {
  // One-shot crypto.hash: about 2.5x cheaper than createHash() for a 1 KiB body (every replicated write pays it).
  return hash('sha256', data, 'hex');
}

/** SHA-256 of a file's bytes, streamed (a spooled upload is never read whole into memory). */
export async function fileSha256Hex(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function mac(key: string, method: string, pathAndQuery: string, t: string, bodySha256: string): Buffer {
  return createHmac('sha256', key)
    .update(`kelp-v1\n${method.toUpperCase()}\n${pathAndQuery}\n${t}\n${bodySha256}`)
    .digest();
}

/** The headers that make a request a cluster member's. `bodySha256` defaults to an empty body's. */
export function clusterHeaders(
  key: string,
  method: string,
  pathAndQuery: string,
  bodySha256 = EMPTY_SHA256,
  nowMs = Date.now(),
): Record<string, string> {
  const t = String(Math.floor(nowMs / 1000));
  return {
    [CLUSTER_AUTH_HEADER]: `v1 t=${t},s=${mac(key, method, pathAndQuery, t, bodySha256).toString('hex')}`,
    [CONTENT_SHA256_HEADER]: bodySha256,
  };
}

/** The path and query of a URL, as signed. */
export function signedPath(url: string): string {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
}

/** Whether the request claims to come from a cluster member (it may still fail verification). */
export function hasClusterAuth(headers: IncomingHttpHeaders): boolean {
  return headers[CLUSTER_AUTH_HEADER] !== undefined;
}

/**
 * Checks the signature of a request (before its body is read) and returns the
 * body hash it was signed with, which the caller must compare with the body it
 * reads (`assertBody`). Throws UnauthorizedError, saying nothing of which part failed.
 * `keys`: the cluster key, or [current, previous] while a new key is rolled out.
 */
export function verifyClusterRequest(
  keys: string | readonly (string | undefined)[],
  method: string,
  pathAndQuery: string,
  headers: IncomingHttpHeaders,
  nowMs = Date.now(),
): string {
  const auth = headers[CLUSTER_AUTH_HEADER];
  const bodySha256 = headers[CONTENT_SHA256_HEADER];
  const m = typeof auth === 'string' ? SIGNATURE.exec(auth) : null;
  if (!m || typeof bodySha256 !== 'string' || !HASH.test(bodySha256)) {
    throw new UnauthorizedError('this call is for cluster members: it needs a valid cluster signature');
  }
  const t = m[1]!;
  if (Math.abs(Number(t) - nowMs / 1000) > MAX_CLOCK_SKEW_SECONDS) {
    throw new UnauthorizedError('cluster signature expired (or the clocks differ by more than 5 minutes)');
  }
  const given = Buffer.from(m[2]!, 'hex');
  // The current key, and during a rotation the previous one (docs/security.md).
  let ok = false;
  for (const key of typeof keys === 'string' ? [keys] : keys) {
    if (key) ok = timingSafeEqual(mac(key, method, pathAndQuery, t, bodySha256), given) || ok;
  }
  if (!ok) {
    throw new UnauthorizedError('this call is for cluster members: it needs a valid cluster signature');
  }
  return bodySha256;
}

/** The body read must be the body signed. */
export function assertBody(signedSha256: string, actualSha256: string): void {
  if (signedSha256 !== actualSha256) throw new UnauthorizedError('body does not match its cluster signature');
}

/**
 * `headers` plus the cluster signature of a request to `url` (absolute), when
 * a cluster key is set; unchanged without one (an open cluster on loopback).
 */
export function withClusterAuth(
  key: string | undefined,
  method: string,
  url: string,
  headers: Record<string, string> = {},
  body?: Uint8Array | string,
): Record<string, string> {
  if (!key) return headers;
  const hash = body === undefined || body.length === 0 ? EMPTY_SHA256 : sha256Hex(body);
  return { ...headers, ...clusterHeaders(key, method, signedPath(url), hash) };
}
