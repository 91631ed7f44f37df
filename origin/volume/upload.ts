/**
 * What an upload request carries (brief §5): the bytes, a file name, a mime
 * type, whether the client already gzipped them, and pair headers. Multipart
 * bodies use their first file part (SeaweedFS's rule); anything else is the raw body.
 */
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { BadRequestError, PayloadTooLargeError } from '../../shared/errors.ts';
import { declaredLength, readBody } from '../http/body.ts';

/** Slack for multipart framing on top of the file size limit when checking Content-Length. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
/** Pair headers: `Kelp-*` and SeaweedFS's `Seaweed-*`, stored without the prefix. */
const PAIR_PREFIXES = ['kelp-', 'seaweed-'];
const MAX_PAIRS_JSON_BYTES = 0xffff;

export interface Upload {
  data: Buffer;
  name: string;
  /** As sent; empty when the client sent none (or only application/octet-stream). */
  mime: string;
  /** The client sent the bytes gzipped (`Content-Encoding: gzip`): stored as they are. */
  gzipped: boolean;
  /** Pair headers without their prefix, or undefined when there are none. */
  pairs?: Record<string, string>;
  /** Content-MD5 (base64) to check against the uncompressed bytes, if sent. */
  md5?: string;
}

function pairPrefix(header: string): string | undefined {
  for (const p of PAIR_PREFIXES) if (header.startsWith(p)) return p;
  return undefined;
}

function pairsFrom(req: IncomingMessage): Record<string, string> | undefined {
  let pairs: Record<string, string> | undefined;
  // A for-in over the headers, not Object.entries: no array of pairs built on every upload.
  const headers = req.headers;
  for (const header in headers) {
    const prefix = pairPrefix(header);
    const value = headers[header];
    if (!prefix || value === undefined || header.length === prefix.length) continue;
    pairs ??= {};
    pairs[header.slice(prefix.length)] = Array.isArray(value) ? value.join(', ') : value;
  }
  if (pairs && Buffer.byteLength(JSON.stringify(pairs)) > MAX_PAIRS_JSON_BYTES) {
    throw new BadRequestError(`pair headers exceed ${MAX_PAIRS_JSON_BYTES} bytes`);
  }
  return pairs;
}

/** Filename from `Content-Disposition: ...; filename="x"`, if any. */
function dispositionName(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(value);
  if (star) {
    try {
      return decodeURIComponent(star[1]!.trim());
    } catch {
      return undefined;
    }
  }
  const plain = /filename\s*=\s*(?:"([^"]*)"|([^;\s]+))/i.exec(value);
  return plain ? (plain[1] ?? plain[2]) : undefined;
}

function mimeOf(value: string | undefined): string {
  const mime = (value ?? '').trim();
  return mime.toLowerCase().startsWith('application/octet-stream') ? '' : mime;
}

export async function parseUpload(req: IncomingMessage, urlName: string, limit: number): Promise<Upload> {
  const type = req.headers['content-type'] ?? '';
  const pairs = pairsFrom(req);
  if (/^multipart\/form-data/i.test(type)) return { ...(await firstFilePart(req, limit)), pairs };
  const data = await readBody(req, limit);
  return {
    data,
    name: dispositionName(req.headers['content-disposition']) ?? urlName,
    mime: mimeOf(type),
    gzipped: /^\s*gzip\s*$/i.test(req.headers['content-encoding'] ?? ''),
    pairs,
    md5: typeof req.headers['content-md5'] === 'string' ? req.headers['content-md5'] : undefined,
  };
}

function firstFilePart(req: IncomingMessage, limit: number): Promise<Omit<Upload, 'pairs'>> {
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit + MULTIPART_OVERHEAD_BYTES) {
    throw new PayloadTooLargeError(`request body exceeds ${limit} bytes`);
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      req.unpipe(parser);
      reject(err);
    };
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        // curl and browsers send UTF-8 file names; busboy's default would read them as latin1.
        defParamCharset: 'utf8',
        limits: { fileSize: limit, files: 16, fields: 64, parts: 80 },
      });
    } catch (err) {
      reject(new BadRequestError(`malformed multipart request: ${(err as Error).message}`));
      return;
    }
    let found: Omit<Upload, 'pairs'> | undefined;
    // Claimed when the part starts, not when it ends: busboy may announce the
    // next file before the first one's 'end', and the first file part wins.
    let claimed = false;
    parser.on('file', (_field, stream, info) => {
      if (claimed || settled) {
        stream.resume();
        return;
      }
      claimed = true;
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(new PayloadTooLargeError(`file exceeds ${limit} bytes`)));
      stream.on('end', () => {
        if (settled) return;
        found = {
          data: Buffer.concat(chunks),
          name: info.filename ?? '',
          mime: mimeOf(info.mimeType),
          gzipped: false,
        };
      });
    });
    parser.on('error', (err: Error) =>
      fail(new BadRequestError(`malformed multipart request: ${err.message}`)),
    );
    parser.on('partsLimit', () => fail(new BadRequestError('too many multipart parts')));
    parser.on('close', () => {
      if (settled) return;
      if (!found) return fail(new BadRequestError('multipart request has no file part'));
      settled = true;
      resolve(found);
    });
    req.on('error', (err) => fail(new BadRequestError('request body aborted', { cause: err })));
    req.pipe(parser);
  });
}
