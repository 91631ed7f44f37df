/**
 * Write (and optional read) tokens, as SeaweedFS issues them (brief §5):
 * HS256 JWTs with claims `{fid, exp}`, short-lived, bound to one file id
 * without its `_N` delta suffix. Signed and checked with `jose`.
 */
import type { IncomingMessage } from 'node:http';
import { errors, jwtVerify, SignJWT } from 'jose';
import { UnauthorizedError } from '../../shared/errors.ts';

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

export function signFileToken(
  secret: string,
  fid: string,
  ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS,
): Promise<string> {
  return new SignJWT({ fid: tokenFid(fid) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(keyBytes(secret));
}

/** The token from `?jwt=`, `Authorization: Bearer`, or the `AT` cookie (SeaweedFS's three places). */
export function tokenFrom(req: IncomingMessage, query: URLSearchParams | null): string | undefined {
  const q = query?.get('jwt');
  if (q) return q;
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const cookie = req.headers.cookie;
  const m = cookie ? /(?:^|;\s*)AT=([^;]+)/.exec(cookie) : null;
  return m ? m[1] : undefined;
}

/** Throws UnauthorizedError unless `token` is a valid, unexpired token for `fid`. */
export async function verifyFileToken(secret: string, token: string | undefined, fid: string): Promise<void> {
  if (!token) throw new UnauthorizedError('this cluster needs a token: pass the one /dir/assign returned');
  try {
    // exp is required: a token without one would never expire, and the master never signs such a token.
    const { payload } = await jwtVerify(token, keyBytes(secret), {
      algorithms: ['HS256'],
      requiredClaims: ['exp'],
    });
    if (payload.fid !== tokenFid(fid)) throw new UnauthorizedError('token is for another file id');
  } catch (err) {
    if (err instanceof UnauthorizedError) throw err;
    if (err instanceof errors.JWTExpired) throw new UnauthorizedError('token expired');
    throw new UnauthorizedError('invalid token');
  }
}
