/**
 * A `multipart/byteranges` body (RFC 9110 §14.6) for a request with several
 * ranges. The framing is computed up front so the response carries an exact
 * Content-Length (caches and the edge need it) while the part bytes are read
 * lazily, one range at a time, through the injected `read` function: a local
 * pread, an S3 ranged GET, whatever the volume stands on.
 */
import { randomBytes } from 'node:crypto';
import { TruncatedDataError } from '../../shared/errors.ts';
import { OCTET_STREAM } from '../../shared/mime.ts';
import { type ByteRange, contentRange } from '../../shared/range.ts';

/** Returns exactly the bytes of `range` (inclusive ends). */
export type ReadRange = (range: ByteRange) => Uint8Array | Promise<Uint8Array>;

export interface ByteRangesBody {
  /** `multipart/byteranges; boundary=...`: the response's Content-Type. */
  contentType: string;
  /** Exact byte length of everything `chunks()` yields. */
  contentLength: number;
  /** The body, part by part; pipe it with `stream.pipeline(Readable.from(body.chunks()), res)`. */
  chunks(): AsyncGenerator<Uint8Array>;
}

/**
 * 24 random hex chars: the boundary must not occur in the parts, and random
 * bytes make that a 2^-96 event without scanning the data.
 */
export function randomBoundary(): string {
  return randomBytes(12).toString('hex');
}

/**
 * Frame `ranges` of a `size`-byte representation of type `type`. Each part
 * carries its own Content-Type and Content-Range; the parts follow the order
 * given (parseRange has already coalesced overlaps).
 */
export function byteRangesBody(
  ranges: readonly ByteRange[],
  size: number,
  type: string,
  read: ReadRange,
  boundary: string = randomBoundary(),
): ByteRangesBody {
  // The type is the uploader's: node:http guards real headers against CR/LF,
  // but nothing guards part headers inside the body, so anything but visible
  // ASCII falls back to the neutral type.
  const partType = /^[\x20-\x7e]+$/.test(type) ? type : OCTET_STREAM;
  // Delimiters as Go's mime/multipart writes them: the CRLF that ends a part's
  // data belongs to the next delimiter, so the first part has none before it.
  const heads = ranges.map((range, i) =>
    Buffer.from(
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${partType}\r\n` +
        `Content-Range: ${contentRange(range, size)}\r\n\r\n`,
      'latin1',
    ),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  let contentLength = tail.length;
  for (let i = 0; i < ranges.length; i++) {
    contentLength += heads[i]!.length + ranges[i]!.end - ranges[i]!.start + 1;
  }
  return {
    contentType: `multipart/byteranges; boundary=${boundary}`,
    contentLength,
    async *chunks() {
      for (let i = 0; i < ranges.length; i++) {
        const range = ranges[i]!;
        yield heads[i]!;
        const data = await read(range);
        // A short read would shift every later byte and corrupt the framing
        // the client is parsing against our Content-Length: stop instead.
        if (data.length !== range.end - range.start + 1) {
          throw new TruncatedDataError(
            `range ${range.start}-${range.end}: read ${data.length} bytes, expected ${range.end - range.start + 1}`,
          );
        }
        yield data;
      }
      yield tail;
    },
  };
}
