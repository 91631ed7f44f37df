/**
 * The headers a blob read carries, from the needle and the URL: Content-Type
 * (stored mime, else the URL's extension or the stored name's), the quoted
 * CRC as ETag, Content-Disposition (active content as an attachment),
 * Last-Modified, Expires for a TTL, stored pairs as `Kelp-*`. Shared by the
 * volume servers and the edge's origin-free reads (edge/tier-read.ts), so a
 * blob answers the same wherever it is read from.
 */
import { httpDate } from './conditional.ts';
import { essence, isInlineSafe, mimeFromExtension, OCTET_STREAM } from './mime.ts';
import { FLAG_GZIP, type NeedleMeta } from './needle.ts';

/** Header name to value, as node's OutgoingHttpHeaders and the Headers constructor both take. */
export type BlobHeaders = Record<string, string | number>;

/** What blobHeaders needs of a server's read config. */
export interface InlineConfig {
  /** Extra mime types served inline (e.g. text/html on a domain of its own). */
  alsoInline?: ReadonlySet<string>;
}

const DECODER = new TextDecoder();

/**
 * UTF-8 bytes of a stored name or mime type as a string. These fields are
 * short and nearly always ASCII, which String.fromCharCode turns into a
 * string several times faster than a TextDecoder call; anything else goes
 * through the decoder, so the result is the same either way.
 */
function decodeField(bytes: Uint8Array | undefined): string {
  if (bytes === undefined || bytes.length === 0) return '';
  if (bytes.length > 64) return DECODER.decode(bytes);
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) return DECODER.decode(bytes);
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The quoted CRC in 8 lowercase hex digits. By table: a CRC above 2^31 is a
 * heap number, whose toString(16) is ten times slower, on every read.
 */
export function etagOf(checksum: number): string {
  const c = checksum >>> 0;
  return `"${BYTE_HEX[c >>> 24]}${BYTE_HEX[(c >>> 16) & 0xff]}${BYTE_HEX[(c >>> 8) & 0xff]}${BYTE_HEX[c & 0xff]}"`;
}

/** `filename` for ASCII-safe names plus RFC 8187 `filename*` so any UTF-8 name survives. */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  if (!name) return kind;
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** Stored pairs come back as `Kelp-<name>` headers (never bare: a pair must not become Set-Cookie). */
function pairHeaders(pairs: Uint8Array | undefined, headers: BlobHeaders): void {
  if (!pairs || pairs.length === 0) return;
  try {
    const parsed = JSON.parse(DECODER.decode(pairs)) as Record<string, unknown>;
    for (const [k, v] of Object.entries(parsed)) {
      const value = String(v);
      if (/^[A-Za-z0-9-]+$/.test(k) && !/[\r\n]/.test(value)) headers[`Kelp-${k}`] = value;
    }
  } catch {
    // Pairs written by another tool that are not JSON are not ours to interpret.
  }
}

/** The headers every successful read carries, from the needle and the URL. */
export function blobHeaders(
  meta: NeedleMeta & { checksum: number },
  urlName: string | undefined,
  urlExt: string | undefined,
  download: boolean,
  config: InlineConfig,
  expiresAt?: number,
): { headers: BlobHeaders; mime: string; name: string } {
  const stored = decodeField(meta.mime);
  const name = urlName ?? decodeField(meta.name);
  const dot = name.lastIndexOf('.');
  const mime =
    (stored && essence(stored) !== OCTET_STREAM ? stored : undefined) ??
    (urlExt ? mimeFromExtension(urlExt) : undefined) ??
    (dot > 0 ? mimeFromExtension(name.slice(dot + 1)) : undefined) ??
    OCTET_STREAM;
  const inline = !download && isInlineSafe(mime, config.alsoInline);
  const headers: BlobHeaders = {
    'Content-Type': mime,
    ETag: etagOf(meta.checksum),
    'Accept-Ranges': 'bytes',
    'X-Content-Type-Options': 'nosniff',
    'Content-Disposition': contentDisposition(inline ? 'inline' : 'attachment', name),
  };
  if (meta.lastModified !== undefined) headers['Last-Modified'] = httpDate(meta.lastModified);
  // Whole seconds (TTLs count from Last-Modified, itself in seconds), so this is exact.
  if (expiresAt !== undefined) headers.Expires = new Date(expiresAt).toUTCString();
  if (meta.flags & FLAG_GZIP) headers.Vary = 'Accept-Encoding';
  pairHeaders(meta.pairs, headers);
  return { headers, mime, name };
}
