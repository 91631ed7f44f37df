/**
 * What an upload request carries (docs/format.md §8): the bytes, a file name, a mime
 * type, whether the client already gzipped them, and pair headers. Multipart
 * bodies use their first file part (SeaweedFS's rule); anything else is the raw body.
 *
 * Bodies up to SPOOL_THRESHOLD_BYTES stay in memory. A larger one is spooled
 * as it arrives to a private temp file (`<dir>/.spool/<random>`), with its
 * length, CRC-32C (and MD5 when the client sent Content-MD5) computed on the
 * way, so no upload is ever held whole in memory. The source is paused while a
 * file write is pending (back-pressure, no queue). The caller owns the spool
 * file once parseUpload resolves and removes it with releaseUpload(); on any
 * failure parseUpload removes it itself (a full disk is InsufficientStorageError).
 */
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { Crc32cHasher } from '../../shared/crc.ts';
import { BadRequestError, PayloadTooLargeError, UnsupportedEncodingError } from '../../shared/errors.ts';
import { asStorageError } from '../fs/no-space.ts';
import { bufferedRequest, declaredLength, readBody } from './body.ts';
import { FilePartTypes } from './part-types.ts';
import { parseSimpleMultipart } from './simple-multipart.ts';

/** Bodies larger than this are spooled to disk instead of kept in memory (issue 3 item 9). */
export const SPOOL_THRESHOLD_BYTES = 1024 * 1024;

/** Slack for multipart framing on top of the file size limit when checking Content-Length. */
export const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
/**
 * Multipart bodies of known length up to this are read whole before they are
 * parsed (a part this size stays in memory anyway): the common single-file
 * form is then taken apart without busboy.
 */
const IN_MEMORY_MULTIPART_MAX_BYTES = SPOOL_THRESHOLD_BYTES + MULTIPART_OVERHEAD_BYTES;
/** Pair headers: `Kelp-*` and SeaweedFS's `Seaweed-*`, stored without the prefix. */
const PAIR_PREFIXES = ['kelp-', 'seaweed-'];
const MAX_PAIRS_JSON_BYTES = 0xffff;

/** A spooled body: the file holds exactly `size` bytes, as received. */
export interface Spool {
  path: string;
  size: number;
  /** CRC-32C of the bytes. */
  crc: number;
  /** MD5 (base64) of the bytes, computed only when the client sent Content-MD5. */
  md5?: string;
}

/** Where the body is: in memory (up to SPOOL_THRESHOLD_BYTES) or in a spool file. */
export type UploadBody = { data: Buffer; spool?: undefined } | { data?: undefined; spool: Spool };

export type Upload = UploadBody & UploadInfo;

export interface UploadInfo {
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

/** The spool directory under `dir` (a volume or master directory); a restart empties it (clearSpoolDir). */
export function spoolDir(dir: string): string {
  return join(dir, '.spool');
}

/** Removes spool files left by a crash. */
export function clearSpoolDir(dir: string): void {
  rmSync(spoolDir(dir), { recursive: true, force: true });
}

/** Removes an upload's spool file, if it has one. Safe to call more than once. */
export function releaseUpload(upload: UploadBody): void {
  if (upload.spool) rmSync(upload.spool.path, { force: true });
}

/** Bytes in the body, in memory or spooled. */
export function uploadSize(upload: UploadBody): number {
  return upload.spool ? upload.spool.size : upload.data.length;
}

function pairPrefix(header: string): string | undefined {
  for (const p of PAIR_PREFIXES) if (header.startsWith(p)) return p;
  return undefined;
}

/**
 * What a volume server answers a stored upload: 201 with its description, or
 * 204 when the same bytes were already there.
 */
export type UploadAnswer =
  | { status: 201; eTag: string; body: UploadDescription }
  | { status: 204; eTag: string };

/** The body of a 201: the name and plain size the upload was stored with, its ETag unquoted, its type. */
export interface UploadDescription {
  name: string;
  size: number;
  eTag: string;
  mime: string;
}

/** Request headers parseUpload reads (besides the length): what a body passed through unparsed needs beside it. */
const UPLOAD_HEADERS = ['content-type', 'content-disposition', 'content-encoding', 'content-md5'];

/**
 * The headers of `req` that describe its upload, for sending the body on
 * unparsed (the master's /submit): the receiver's parseUpload then sees what
 * this server's would have.
 */
export function uploadHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  const headers = req.headers;
  for (const header in headers) {
    const value = headers[header];
    if (value === undefined) continue;
    if (UPLOAD_HEADERS.includes(header) || pairPrefix(header)) {
      out[header] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  return out;
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

/**
 * Filename from `Content-Disposition: ...; filename="x"` (a quoted string may
 * escape `"` and `\\`) or `filename*=UTF-8''...`, if any, as stored: see baseName.
 */
function dispositionName(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(value);
  if (star) {
    try {
      return baseName(decodeURIComponent(star[1]!.trim()));
    } catch {
      return undefined;
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(value);
  if (!plain) return undefined;
  return baseName(plain[1] !== undefined ? plain[1].replace(/\\(.)/g, '$1') : plain[2]!);
}

/**
 * The last segment of a path-like name (`../../etc/passwd` is `passwd`,
 * `C:\\x\\y.txt` is `y.txt`), and none for `.` or `..`: busboy's rule for a
 * multipart part's name, so a raw body's name is stored the same way. The
 * name is never a path on the server; a path handed back in a
 * Content-Disposition is one a careless client might write to.
 */
function baseName(name: string): string {
  const base = name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
  return base === '.' || base === '..' ? '' : base;
}

function mimeOf(value: string | undefined): string {
  const mime = (value ?? '').trim();
  return mime.toLowerCase().startsWith('application/octet-stream') ? '' : mime;
}

/**
 * Whether the body comes gzipped (`Content-Encoding: gzip`: stored as sent).
 * Any coding but gzip and identity is refused (415): stored as they came and
 * served without their coding, br or deflate bytes would read back as garbage.
 */
function isGzipped(contentEncoding: string | undefined): boolean {
  if (contentEncoding === undefined) return false;
  const coding = contentEncoding.trim().toLowerCase();
  if (coding === 'gzip' || coding === 'x-gzip') return true;
  if (coding === '' || coding === 'identity') return false;
  throw new UnsupportedEncodingError(
    `uploads take Content-Encoding gzip or none, not ${JSON.stringify(contentEncoding)}`,
    'gzip',
  );
}

/**
 * Parses an upload. `spoolDir` is where bodies over SPOOL_THRESHOLD_BYTES are
 * spooled (created on demand, mode 0700; files 0600).
 */
export async function parseUpload(
  req: IncomingMessage,
  urlName: string,
  limit: number,
  spoolDir: string,
): Promise<Upload> {
  const type = req.headers['content-type'] ?? '';
  const gzipped = isGzipped(req.headers['content-encoding']);
  const pairs = pairsFrom(req);
  const md5 = typeof req.headers['content-md5'] === 'string' ? req.headers['content-md5'] : undefined;
  if (/^multipart\/form-data/i.test(type)) {
    return { ...(await multipartFile(req, type, limit, spoolDir, md5 !== undefined)), pairs, md5 };
  }
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit) {
    throw new PayloadTooLargeError(`request body exceeds ${limit} bytes`);
  }
  // Small declared bodies keep the cheap 'data'-event path (the 1 KiB write hot path).
  const body: UploadBody =
    declared !== undefined && declared <= SPOOL_THRESHOLD_BYTES
      ? { data: await readBody(req, limit) }
      : await collect(req, limit, spoolDir, md5 !== undefined);
  return {
    ...body,
    name: dispositionName(req.headers['content-disposition']) ?? urlName,
    mime: mimeOf(type),
    gzipped,
    pairs,
    md5,
  };
}

async function writeAll(file: FileHandle, bytes: Buffer): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const { bytesWritten } = await file.write(bytes, at, bytes.length - at);
    at += bytesWritten;
  }
}

/**
 * Reads `source` to its end: in memory while it stays within
 * SPOOL_THRESHOLD_BYTES, then into a spool file. Crossing `limit` rejects with
 * 413 and reads no more (the source is paused, not destroyed, so a request can
 * still get its answer). An error or a close before the end rejects. Either
 * way the spool file, if any, is removed before the promise settles.
 */
function collect(source: Readable, limit: number, spoolDir: string, wantMd5: boolean): Promise<UploadBody> {
  return new Promise((resolve, reject) => {
    let memory: Buffer[] | undefined = [];
    let length = 0;
    let path: string | undefined;
    let file: FileHandle | undefined;
    let crc: Crc32cHasher | undefined;
    let md5: Hash | undefined;
    /** File work in order: open, then one write per chunk. */
    let chain: Promise<void> = Promise.resolve();
    let pendingWrites = 0;
    let settled = false;
    let ended = false;

    const detach = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      source.off('close', onClose);
    };
    const discard = async () => {
      await file?.close().catch(() => {});
      file = undefined;
      if (path) await rm(path, { force: true }).catch(() => {});
    };
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      detach();
      source.pause();
      memory = undefined;
      // Wait for a write in flight before removing its file. A full disk is a 507, not a 500.
      chain.then(discard, discard).then(() => reject(asStorageError(err, 'spooling the upload')));
    };
    const enqueue = (work: () => Promise<void>) => {
      pendingWrites++;
      source.pause();
      chain = chain.then(async () => {
        if (settled && !ended) return;
        await work();
        if (--pendingWrites === 0 && !settled && !ended) source.resume();
      });
      chain.catch(fail);
    };
    const startSpool = (): void => {
      const held = memory!;
      memory = undefined;
      crc = new Crc32cHasher();
      md5 = wantMd5 ? createHash('md5') : undefined;
      for (const c of held) {
        crc.update(c);
        md5?.update(c);
      }
      enqueue(async () => {
        mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
        path = join(spoolDir, randomBytes(12).toString('hex'));
        file = await open(path, 'wx', 0o600);
        for (const c of held) await writeAll(file, c);
      });
    };
    const onData = (chunk: Buffer): void => {
      if (settled) return;
      length += chunk.length;
      if (length > limit) {
        fail(new PayloadTooLargeError(`request body exceeds ${limit} bytes`));
        return;
      }
      if (memory) {
        memory.push(chunk);
        if (length > SPOOL_THRESHOLD_BYTES) startSpool();
        return;
      }
      crc!.update(chunk);
      md5?.update(chunk);
      enqueue(() => writeAll(file!, chunk));
    };
    const onEnd = (): void => {
      if (settled) return;
      ended = true;
      detach();
      if (memory) {
        settled = true;
        resolve({ data: memory.length === 1 ? memory[0]! : Buffer.concat(memory, length) });
        return;
      }
      chain = chain.then(async () => {
        await file!.close();
        file = undefined;
        settled = true;
        resolve({ spool: { path: path!, size: length, crc: crc!.digest(), md5: md5?.digest('base64') } });
      });
      chain.catch((err: unknown) => {
        ended = false;
        fail(err);
      });
    };
    const onError = (err: unknown): void => fail(new BadRequestError('request body aborted', { cause: err }));
    // Destroyed before its end without an error (a client that went away).
    const onClose = (): void => {
      if (!ended) fail(new BadRequestError('request body aborted'));
    };
    if (source.readableEnded) return resolve({ data: Buffer.alloc(0) });
    if (source.destroyed) return reject(new BadRequestError('request body aborted'));
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
    source.on('close', onClose);
  });
}

/**
 * The first file part of a multipart body. A small body of known length is
 * read whole and, when it is the common single-file form, taken apart in
 * memory (simple-multipart.ts); any other body goes through busboy (from the
 * buffer already read, or streamed, spooling a large part).
 */
async function multipartFile(
  req: IncomingMessage,
  type: string,
  limit: number,
  spoolDir: string,
  wantMd5: boolean,
): Promise<UploadBody & Omit<UploadInfo, 'pairs'>> {
  const declared = declaredLength(req);
  if (declared === undefined || declared > IN_MEMORY_MULTIPART_MAX_BYTES) {
    return firstFilePart(req, limit, spoolDir, wantMd5);
  }
  if (declared > limit + MULTIPART_OVERHEAD_BYTES) {
    throw new PayloadTooLargeError(`request body exceeds ${limit} bytes`);
  }
  const body = await readBody(req, limit + MULTIPART_OVERHEAD_BYTES);
  const part = parseSimpleMultipart(body, type);
  // Over the limit (413) or the spool threshold (spooled): busboy's path decides, as for any body.
  if (!part || part.data.length > limit || part.data.length > SPOOL_THRESHOLD_BYTES) {
    return firstFilePart(bufferedRequest(body, req.headers), limit, spoolDir, wantMd5);
  }
  return { data: part.data, name: part.name, mime: mimeOf(part.mime), gzipped: false };
}

function firstFilePart(
  req: IncomingMessage,
  limit: number,
  spoolDir: string,
  wantMd5: boolean,
): Promise<UploadBody & Omit<UploadInfo, 'pairs'>> {
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit + MULTIPART_OVERHEAD_BYTES) {
    throw new PayloadTooLargeError(`request body exceeds ${limit} bytes`);
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    /** The first file part's stream while it is being read. */
    let active: Readable | undefined;
    let found: Promise<UploadBody & Omit<UploadInfo, 'pairs'>> | undefined;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      req.unpipe(parser);
      // Ends collect() (which then removes its spool file) if the part is still streaming,
      // and removes the spool file of a part already read.
      active?.destroy();
      found?.then(releaseUpload, () => {});
      reject(err);
    };
    let parser: busboy.Busboy;
    // busboy drops the part's charset; this keeps it (attached before the pipe below).
    const partTypes = new FilePartTypes(req, req.headers['content-type'] ?? '');
    try {
      parser = busboy({
        headers: req.headers,
        // curl and browsers send UTF-8 file names; busboy's default would read them as latin1.
        defParamCharset: 'utf8',
        // One byte over the limit, so collect() sees the crossing and answers 413.
        limits: { fileSize: limit + 1, files: 16, fields: 64, parts: 80 },
      });
    } catch (err) {
      reject(new BadRequestError(`malformed multipart request: ${(err as Error).message}`));
      return;
    }
    // Claimed when the part starts, not when it ends: busboy may announce the
    // next file before the first one's 'end', and the first file part wins.
    parser.on('file', (_field, stream, info) => {
      if (found || settled) {
        stream.resume();
        return;
      }
      // Its headers are parsed by now, so they lie in what partTypes saw (when within its scan).
      let gzipped: boolean;
      try {
        gzipped = isGzipped(partTypes.firstFileEncoding());
      } catch (err) {
        stream.resume();
        fail(err);
        return;
      }
      active = stream;
      found = collect(stream, limit, spoolDir, wantMd5).then(
        (body) => {
          active = undefined;
          const sent = info.filename !== undefined ? partTypes.firstFileType(info.mimeType) : undefined;
          return { ...body, name: info.filename ?? '', mime: mimeOf(sent ?? info.mimeType), gzipped };
        },
        (err: unknown) => {
          active = undefined;
          fail(err);
          throw err;
        },
      );
      found.catch(() => {});
    });
    parser.on('error', (err: Error) =>
      fail(new BadRequestError(`malformed multipart request: ${err.message}`)),
    );
    parser.on('partsLimit', () => fail(new BadRequestError('too many multipart parts')));
    parser.on('close', () => {
      if (settled) return;
      if (!found) return fail(new BadRequestError('multipart request has no file part'));
      found.then(
        (upload) => {
          if (settled) return releaseUpload(upload);
          settled = true;
          resolve(upload);
        },
        () => {},
      );
    });
    req.on('error', (err) => fail(new BadRequestError('request body aborted', { cause: err })));
    req.on('close', () => {
      if (!req.complete) fail(new BadRequestError('request body aborted'));
    });
    req.pipe(parser);
  });
}
