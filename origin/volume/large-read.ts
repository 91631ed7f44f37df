/**
 * Needles too large to read whole (over LARGE_NEEDLE_BYTES) stream from the
 * volume's data file in pages (data-file.ts: preads from the `.dat`, ranged
 * GETs from a tier, so a tiered needle is never held whole either). A full read checks the CRC as it goes and, on a mismatch, cuts the
 * connection so the client sees a truncated response, never a complete-looking
 * bad one. A Range of such a needle is served only after the whole needle has
 * been verified once (remembered per record, so seeking in a video costs one
 * verification, not one per seek).
 */

import { once } from 'node:events';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { createGunzip } from 'node:zlib';
import { Crc32cHasher } from '../../shared/crc.ts';
import { FLAG_GZIP } from '../../shared/needle.ts';
import { assertChecksum } from '../../shared/needle-decode.ts';
import { contentRange, parseRange } from '../../shared/range.ts';
import { byteRangesBody } from '../http/byteranges.ts';
import { acceptsGzip } from '../http/encoding.ts';
import type { DataFile } from './data-file.ts';
import { releasePage } from './page-pool.ts';
import type { ReadResult, Volume } from './volume.ts';

/** Records verified by a full CRC pass, so Ranges of them can be served directly. */
const VERIFIED_LIMIT = 10_000;
const verified = new Set<string>();

type Large = Extract<ReadResult, { kind: 'large' }>;

function remember(key: string): void {
  if (verified.size >= VERIFIED_LIMIT) verified.delete(verified.values().next().value!);
  verified.add(key);
}

async function writeAll(res: ServerResponse, chunk: Uint8Array): Promise<void> {
  if (!res.write(chunk)) await once(res, 'drain');
}

/** Writes a page and gives it back to the pool once the socket has taken it (page-pool.ts; a tier's page is not the pool's and is left alone). */
async function writePage(res: ServerResponse, page: Uint8Array): Promise<void> {
  if (!res.write(page, (err) => err || releasePage(page))) await once(res, 'drain');
}

/** Bytes [start, end] of the data file, a page at a time. */
function pages(file: DataFile, start: number, end: number): AsyncIterable<Uint8Array> {
  return file.stream(start, end - start + 1);
}

async function verifyWhole(file: DataFile, found: Large): Promise<void> {
  const hasher = new Crc32cHasher();
  for await (const page of pages(file, found.dataOffset, found.dataOffset + found.dataSize - 1)) {
    hasher.update(page);
    releasePage(page);
  }
  assertChecksum(found.needle.id, found.needle.checksum, hasher.digest());
}

export async function serveLargeNeedle(
  req: IncomingMessage,
  res: ServerResponse,
  volume: Volume,
  found: Large,
  headers: OutgoingHttpHeaders,
  mime: string,
  /** The Range to honour (the request's, unless an If-Range ruled it out: shared/conditional.ts). */
  range: string | undefined,
): Promise<void> {
  // Held now, before any await, so a swap of the volume's files (vacuum, a tier move) cannot close it under us.
  const file = found.source;
  const release = file.hold();
  try {
    const head = req.method === 'HEAD';
    const first = found.dataOffset;
    const last = found.dataOffset + found.dataSize - 1;
    const gzipped = (found.needle.flags & FLAG_GZIP) !== 0;
    if (gzipped && !(acceptsGzip(req) && range === undefined)) {
      // Decompressed length is unknown up front: chunked, and no Range on this representation.
      res.writeHead(200, headers);
      if (head) return void res.end();
      await verifyWhole(file, found);
      const gunzip = createGunzip();
      const done = once(gunzip, 'end');
      gunzip.on('data', (c: Buffer) => res.write(c));
      for await (const page of pages(file, first, last)) if (!gunzip.write(page)) await once(gunzip, 'drain');
      gunzip.end();
      await done;
      res.end();
      return;
    }
    if (gzipped) headers['Content-Encoding'] = 'gzip';
    const ranges = gzipped ? null : parseRange(range, found.dataSize);
    if (ranges === null) {
      headers['Content-Length'] = found.dataSize;
      res.writeHead(200, headers);
      if (head) return void res.end();
      const hasher = new Crc32cHasher();
      // The last page is held back until the CRC checks: had every byte gone out,
      // the client would already hold a complete-looking response when the check
      // fails. A mismatch throws here, and sendError destroys the socket short of
      // Content-Length, so the client sees a truncated response.
      let held: Uint8Array | undefined;
      for await (const page of pages(file, first, last)) {
        hasher.update(page);
        if (held) await writePage(res, held);
        held = page;
      }
      assertChecksum(found.needle.id, found.needle.checksum, hasher.digest());
      remember(`${volume.id}:${first}:${found.needle.checksum}`);
      res.end(held);
      return;
    }
    const key = `${volume.id}:${first}:${found.needle.checksum}`;
    if (!verified.has(key)) {
      await verifyWhole(file, found);
      remember(key);
    }
    if (ranges.length === 1) {
      const r = ranges[0]!;
      headers['Content-Range'] = contentRange(r, found.dataSize);
      headers['Content-Length'] = r.end - r.start + 1;
      res.writeHead(206, headers);
      if (head) return void res.end();
      for await (const page of pages(file, first + r.start, first + r.end)) await writePage(res, page);
      res.end();
      return;
    }
    const multi = byteRangesBody(ranges, found.dataSize, mime, async (r) => {
      const parts: Uint8Array[] = [];
      for await (const page of pages(file, first + r.start, first + r.end)) parts.push(page);
      const part = Buffer.concat(parts);
      for (const page of parts) releasePage(page);
      return part;
    });
    headers['Content-Type'] = multi.contentType;
    headers['Content-Length'] = multi.contentLength;
    res.writeHead(206, headers);
    if (head) return void res.end();
    for await (const chunk of multi.chunks()) await writeAll(res, chunk);
    res.end();
  } finally {
    release();
  }
}
