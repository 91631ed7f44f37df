/**
 * Signed resize URLs: with a key configured, a resize request must carry
 * `sig` = HMAC-SHA256(key, `<path>?<canonical params>`) as lowercase hex, so
 * nobody can make the origin render arbitrary sizes. Plain reads need no
 * signature. Web Crypto only: the Worker and the volume server both check it.
 */
import { ForbiddenError } from './errors.ts';

const encoder = new TextEncoder();
type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const keys = new Map<string, Promise<HmacKey>>();

function hmacKey(secret: string): Promise<HmacKey> {
  let k = keys.get(secret);
  if (!k) {
    k = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    keys.set(secret, k);
  }
  return k;
}

function toHex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function fromHex(hex: string): Uint8Array | null {
  if (!/^[0-9a-f]{64}$/.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** What is signed: the path as requested and the canonical resize query (shared/resize.ts). */
export function signedMessage(pathname: string, canonicalQuery: string): string {
  return `${pathname}?${canonicalQuery}`;
}

export async function signResize(secret: string, pathname: string, canonicalQuery: string): Promise<string> {
  const mac = await crypto.subtle.sign(
    'HMAC',
    await hmacKey(secret),
    encoder.encode(signedMessage(pathname, canonicalQuery)),
  );
  return toHex(mac);
}

/** Throws ForbiddenError unless `sig` signs this path and these params (constant-time compare by Web Crypto). */
export async function verifyResizeSignature(
  secret: string,
  pathname: string,
  canonicalQuery: string,
  sig: string | null,
): Promise<void> {
  const mac = sig ? fromHex(sig.toLowerCase()) : null;
  const ok =
    mac !== null &&
    (await crypto.subtle.verify(
      'HMAC',
      await hmacKey(secret),
      mac,
      encoder.encode(signedMessage(pathname, canonicalQuery)),
    ));
  if (!ok) throw new ForbiddenError('resize requests need a valid signature (sig)');
}
