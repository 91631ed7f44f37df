/**
 * The Content-Type of a multipart upload's file parts as sent, parameters
 * included. busboy reports only `type/subtype` and drops `charset`, so
 * `text/plain; charset=utf-8` from a browser or from curl would be stored and
 * served as bare `text/plain`, which browsers render as windows-1252. This
 * looks at the start of the body as it streams past (busboy still parses all
 * of it) and reads the part headers found there; the part's Content-Encoding,
 * which busboy does not report at all, too.
 */
import type { IncomingMessage } from 'node:http';

/** Bytes of the body's start searched for part headers (fields before the file rarely come near). */
export const PART_HEADER_SCAN_BYTES = 64 * 1024;

export class FilePartTypes {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private readonly req: IncomingMessage;
  private readonly boundary: string | undefined;
  private readonly onData = (chunk: Buffer) => {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= PART_HEADER_SCAN_BYTES) this.stop();
  };

  /** Call before piping `req` anywhere, so every chunk of the start passes here first. */
  constructor(req: IncomingMessage, contentType: string) {
    this.req = req;
    this.boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType)?.slice(1).find(Boolean);
    if (this.boundary) req.on('data', this.onData);
  }

  stop(): void {
    this.req.off('data', this.onData);
  }

  /** The first file part's header block once found: it cannot change as more of the body streams past. */
  private found: string | undefined;

  /** The header block of the first file part, when it lies in the scanned start; else undefined. */
  private firstFileHeaders(): string | undefined {
    if (this.found !== undefined) return this.found;
    if (!this.boundary) return undefined;
    const text = Buffer.concat(this.chunks).subarray(0, PART_HEADER_SCAN_BYTES).toString('latin1');
    for (const part of text.split(`--${this.boundary}`).slice(1)) {
      const end = part.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const headers = part.slice(0, end);
      if (/^content-disposition:[^\r\n]*filename/im.test(headers)) {
        this.found = headers;
        return headers;
      }
    }
    return undefined;
  }

  /**
   * The first file part's Content-Type as sent, when its headers lie in the
   * scanned start and name the same type busboy reported; else undefined.
   */
  firstFileType(busboyType: string): string | undefined {
    const type = /^content-type:[ \t]*([^\r\n]+)/im.exec(this.firstFileHeaders() ?? '')?.[1]?.trim();
    if (!type) return undefined;
    const essence = type.split(';')[0]!.trim().toLowerCase();
    return essence === busboyType.toLowerCase() ? type : undefined;
  }

  /**
   * The first file part's Content-Encoding (SeaweedFS's clients send
   * `gzip` on a part they compressed), when its headers lie in the scanned
   * start; else undefined.
   */
  firstFileEncoding(): string | undefined {
    return /^content-encoding:[ \t]*([^\r\n]+)/im.exec(this.firstFileHeaders() ?? '')?.[1]?.trim();
  }
}
