/**
 * Request bodies under a byte limit. An upload larger than the limit is
 * refused as early as it can be known: from Content-Length before a byte is
 * read, or at the chunk that crosses the limit for a chunked body.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { BadRequestError, PayloadTooLargeError } from '../../shared/errors.ts';

/** Largest upload accepted, as SeaweedFS's `-fileSizeLimitMB` default (docs/format.md §8); config overrides it. */
export const MAX_UPLOAD_BYTES = 256 * 1024 * 1024;

function tooLarge(limit: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`request body exceeds ${limit} bytes`);
}

/** The declared Content-Length, or undefined for a chunked (or body-less) request. */
export function declaredLength(req: IncomingMessage): number | undefined {
  const h = req.headers['content-length'];
  // node:http has already rejected malformed or conflicting values.
  return h === undefined ? undefined : Number(h);
}

/**
 * The body as chunks, pulled one at a time: the socket is only read as fast
 * as the consumer iterates (the stream stays in paused mode, so its buffer
 * never grows past the highWaterMark). The Content-Length check runs now, at
 * call time, so a handler learns of a 413 before it starts any work.
 *
 * On crossing the limit the iterator throws PayloadTooLargeError and reads no
 * more. It does not destroy the request: that would destroy the socket and
 * with it the 413. sendError (respond.ts) answers with `Connection: close`
 * because the body is incomplete, so the rest of the upload is never read.
 */
export function streamBody(req: IncomingMessage, limit: number = MAX_UPLOAD_BYTES): AsyncGenerator<Buffer> {
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit) throw tooLarge(limit);
  return pull(req, limit);
}

async function* pull(req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  let wake: (() => void) | undefined;
  let failure: unknown;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onError = (err: unknown) => {
    failure = err;
    notify();
  };
  // One set of listeners for the whole iteration; an 'error' listener must be
  // present at all times or a client abort while the consumer is busy would
  // be missed.
  req.on('readable', notify);
  req.on('end', notify);
  req.on('close', notify);
  req.on('error', onError);
  try {
    let received = 0;
    for (;;) {
      const chunk = req.read() as Buffer | null;
      if (chunk !== null) {
        received += chunk.length;
        if (received > limit) throw tooLarge(limit);
        yield chunk;
        continue;
      }
      if (req.readableEnded) return;
      if (failure !== undefined || req.destroyed) {
        throw new BadRequestError('request body aborted', { cause: failure });
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    req.off('readable', notify);
    req.off('end', notify);
    req.off('close', notify);
    req.off('error', onError);
  }
}

/**
 * The whole body in one Buffer, for small bodies (JSON, forms, small blobs).
 * Same contract as collecting `streamBody`, but on 'data' events: every small
 * upload comes through here, and the async generator costs about 2 µs of CPU
 * per request. Back-pressure is moot when the whole body is kept anyway; on
 * crossing the limit the stream is paused and no more is read.
 */
export function readBody(req: IncomingMessage, limit: number = MAX_UPLOAD_BYTES): Promise<Buffer> {
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit) return Promise.reject(tooLarge(limit));
  const buffered = (req as Partial<Buffered>).bufferedBody;
  if (buffered) return buffered.length > limit ? Promise.reject(tooLarge(limit)) : Promise.resolve(buffered);
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  if (req.destroyed) return Promise.reject(new BadRequestError('request body aborted'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      length += chunk.length;
      if (length > limit) {
        done();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      done();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    };
    const onError = (err: unknown): void => {
      done();
      reject(new BadRequestError('request body aborted', { cause: err }));
    };
    // Destroyed before its end without an error (a client that went away).
    const onClose = (): void => {
      if (req.readableEnded) return;
      done();
      reject(new BadRequestError('request body aborted'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onError);
  });
}

interface Buffered {
  /** The whole body, for readBody to take without reading the stream. */
  bufferedBody: Buffer;
}

/**
 * A body already read, as a request the upload parsers can read: the headers
 * it came with, complete (so its end is not taken for an abort). readBody
 * takes the bytes as they are; busboy pipes them from the stream.
 */
export function bufferedRequest(body: Buffer, headers: IncomingHttpHeaders): IncomingMessage {
  const buffered: Buffered & { headers: IncomingHttpHeaders; complete: boolean } = {
    headers,
    complete: true,
    bufferedBody: body,
  };
  return Object.assign(Readable.from([body], { objectMode: false }), buffered) as unknown as IncomingMessage;
}
