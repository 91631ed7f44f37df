/**
 * Write (and optional read) tokens, as SeaweedFS issues them (docs/format.md §8):
 * HS256 JWTs with claims `{fid, exp}`, short-lived, bound to one file id
 * without its `_N` delta suffix, plus `n`: how many fids of the assigned batch
 * the token covers (`fid`, `fid_1` .. `fid_<n-1>`), so a token for one key is
 * not a token for every key after it. Signed and checked with `jose`.
 */
import type { IncomingMessage } from 'node:http';
import { UnauthorizedError } from '../../shared/errors.ts';
import { formatFid, type ParsedFid } from '../../shared/fid.ts';
import { bearerToken } from './access.ts';

/**
 * jose is loaded on the first token signed or checked: a cluster without a
 * signing key never needs it, and a volume server's RSS is a budget per
 * needle (issue 15; test/integration/cli/startup-modules.test.ts).
 */
let joseModule: Promise<typeof import('jose')> | undefined;
function jose(): Promise<typeof import('jose')> {
  joseModule ??= import('jose');
  return joseModule;
}

/** SeaweedFS's default lifetime of a write token. */
export const DEFAULT_TOKEN_TTL_SECONDS = 10;

const keys = new Map<string, Uint8Array>();
function keyBytes(secret: string): Uint8Array {
  let k = keys.get(secret);
  if (!k) {
    k = new TextEncoder().encode(secret);
    keys.set(secret, k);
  }
  return k;
}

/** `3,01637037d6_2` → `3,01637037d6`: tokens cover the whole assigned batch. */
export function tokenFid(fid: string): string {
  const u = fid.indexOf('_');
  return u < 0 ? fid : fid.slice(0, u);
}

export async function signFileToken(
  secret: string,
  fid: string,
  options: { count?: number; ttlSeconds?: number } = {},
): Promise<string> {
  const { count = 1, ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS } = options;
  const { SignJWT } = await jose();
  return new SignJWT({ fid: tokenFid(fid), n: count })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(keyBytes(secret));
}

/** The token from `?jwt=`, `Authorization: Bearer`, or the `AT` cookie (SeaweedFS's three places). */
export function tokenFrom(req: IncomingMessage, query: URLSearchParams | null): string | undefined {
  const q = query?.get('jwt');
  if (q) return q;
  const bearer = bearerToken(req.headers);
  if (bearer) return bearer;
  const cookie = req.headers.cookie;
  const m = cookie ? /(?:^|;\s*)AT=([^;]+)/.exec(cookie) : null;
  return m ? m[1] : undefined;
}

/**
 * Throws UnauthorizedError unless `token` is a valid, unexpired token for `fid`
 * (its base key and its `_N` delta inside the batch the token was signed for).
 */
export async function verifyFileToken(
  secret: string,
  token: string | undefined,
  fid: ParsedFid,
): Promise<void> {
  if (!token) throw new UnauthorizedError('this cluster needs a token: pass the one /dir/assign returned');
  const { errors, jwtVerify } = await jose();
  try {
    // exp is required: a token without one would never expire, and the master never signs such a token.
    const { payload } = await jwtVerify(token, keyBytes(secret), {
      algorithms: ['HS256'],
      requiredClaims: ['exp'],
    });
    const base = formatFid({ volumeId: fid.volumeId, key: fid.key - fid.delta, cookie: fid.cookie });
    if (payload.fid !== base) throw new UnauthorizedError('token is for another file id');
    const n = payload.n ?? 1;
    if (typeof n !== 'number' || !(fid.delta < n))
      throw new UnauthorizedError('token is for another file id');
  } catch (err) {
    if (err instanceof UnauthorizedError) throw err;
    if (err instanceof errors.JWTExpired) throw new UnauthorizedError('token expired');
    throw new UnauthorizedError('invalid token');
  }
}
