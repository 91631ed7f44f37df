/**
 * The common multipart upload, read from a body already in memory without
 * busboy: exactly one part, a file with a plain ASCII file name, headers
 * `Content-Disposition` and at most `Content-Type`, nothing before the first
 * delimiter or after the last. That is what curl `-F`, browsers' single-file
 * forms and SeaweedFS clients send, and busboy's per-request stream machinery
 * (parser, header parser, part stream, boundary search in JS) was a tenth of
 * the server CPU of a 1 KiB `/submit` and scanned every byte of a 1 MiB one.
 *
 * Anything else answers undefined and goes to busboy (upload.ts): only bodies
 * this reads exactly as busboy would (same part, name, type) take this path.
 */

/** What busboy would have reported for the body's one file part. */
export interface SimplePart {
  /** The part's bytes: a view into the body, not a copy. */
  data: Buffer;
  /** The file name as busboy gives it (never empty here). */
  name: string;
  /** The part's Content-Type as sent (parameters kept), `text/plain` when it sent none (busboy's default). */
  mime: string;
}

const CRLF = '\r\n';
/** Part headers longer than this go to busboy (its own limit is 16 KiB). */
const MAX_PART_HEADER_BYTES = 1024;
/** `boundary=` of the request's Content-Type: RFC 2046's characters, quoted or not. */
const BOUNDARY =
  /^multipart\/form-data\s*;\s*boundary=(?:"([0-9A-Za-z'()+_,./:=? -]{1,70})"|([0-9A-Za-z'()+_,./:=?-]{1,70}))\s*$/i;
/** `form-data` with quoted `name` and a non-empty `filename` (either order), no escapes, no `filename*`. */
const DISPOSITION =
  /^form-data\s*;\s*(?:name="[^"\\]*"\s*;\s*filename="([^"\\/]+)"|filename="([^"\\/]+)"\s*;\s*name="[^"\\]*")\s*$/i;
/** `type/subtype` with simple parameters: what busboy parses to the same type. */
const CONTENT_TYPE = /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(?:;\s*[\w-]+=(?:"[^"\\]*"|[\w!#$&^.+-]+))*$/;

/** Printable ASCII and CRLF only: no encodings to decode, no control characters to judge. */
function isPlainAscii(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b > 0x7e || (b < 0x20 && b !== 0x0d && b !== 0x0a)) return false;
  }
  return true;
}

/** The body's single file part, or undefined when busboy should read the body. */
export function parseSimpleMultipart(body: Buffer, contentType: string): SimplePart | undefined {
  const m = BOUNDARY.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary || boundary.endsWith(' ')) return undefined;
  const open = `--${boundary}${CRLF}`;
  if (body.length < open.length || body.toString('latin1', 0, open.length) !== open) return undefined;
  // The part ends at the first delimiter after the opening one, wherever that
  // falls (busboy's rule): its headers and blank line must lie before it.
  const delimiter = `${CRLF}--${boundary}`;
  const dataEnd = body.indexOf(delimiter, open.length, 'latin1');
  const headersEnd = body.indexOf('\r\n\r\n', open.length, 'latin1');
  if (dataEnd < 0 || headersEnd < 0 || headersEnd + 4 > dataEnd) return undefined;
  if (headersEnd - open.length > MAX_PART_HEADER_BYTES) return undefined;
  const headerBytes = body.subarray(open.length, headersEnd);
  if (!isPlainAscii(headerBytes)) return undefined;
  let name: string | undefined;
  let mime: string | undefined;
  for (const line of headerBytes.toString('latin1').split(CRLF)) {
    const colon = line.indexOf(':');
    // A lone CR or LF inside a line: busboy's header rules, not ours.
    if (colon <= 0 || line.includes('\r') || line.includes('\n')) return undefined;
    const field = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (field === 'content-disposition' && name === undefined) {
      const d = DISPOSITION.exec(value);
      name = d?.[1] ?? d?.[2];
      // busboy drops path-like names ('.', '..') to ''.
      if (name === undefined || name === '.' || name === '..') return undefined;
    } else if (field === 'content-type' && mime === undefined) {
      if (!CONTENT_TYPE.test(value)) return undefined;
      mime = value;
    } else {
      return undefined;
    }
  }
  if (name === undefined) return undefined;
  const dataStart = headersEnd + 4;
  // The close delimiter, optionally a CRLF, and nothing more: one part only.
  const after = dataEnd + delimiter.length;
  if (body.length - after > 4) return undefined;
  const rest = body.toString('latin1', after);
  if (rest !== '--' && rest !== `--${CRLF}`) return undefined;
  return { data: body.subarray(dataStart, dataEnd), name, mime: mime ?? 'text/plain' };
}
