/**
 * The pages a large needle streams in (large-read.ts), read into buffers that
 * are used again once the socket has taken their bytes. A new 1 MiB buffer
 * per page (what a file read stream allocates) is memory outside V8's heap,
 * and that much of it allocated every millisecond starts full garbage
 * collections of the volume server's tens of MB of heap: a profile of 1 MiB
 * reads put the collector at an eighth of the server's time.
 *
 * A page goes back only through releasePage(), which its user calls once,
 * after the last use of every byte of it: after its CRC was taken and the
 * socket's write callback said the bytes were handed to the kernel. A page
 * never released (an aborted response, a path that keeps it) is simply
 * collected, as before.
 */
import { read } from 'node:fs';
import { STREAM_PAGE_BYTES as PAGE_BYTES } from './data-file.ts';

/** Free pages kept for reuse, at most: the pool holds no more than this many MiB idle. */
const POOL_PAGES = 16;
const free: ArrayBuffer[] = [];
/** Every page this pool made: only these ever go back to it (a tier's page of the same size is not ours). */
const owned = new WeakSet<ArrayBufferLike>();

function takePage(): Buffer {
  const buffer = free.pop();
  if (buffer) return Buffer.from(buffer);
  const page = Buffer.allocUnsafeSlow(PAGE_BYTES);
  owned.add(page.buffer);
  return page;
}

/**
 * Gives back the page `chunk` (as yielded by readPages) was read into. Call
 * it once per chunk, when nothing will read the chunk again.
 */
export function releasePage(chunk: Uint8Array): void {
  const buffer = chunk.buffer;
  // Only pages of our own (an allocUnsafeSlow buffer owns its ArrayBuffer), never twice.
  if (!owned.has(buffer) || !(buffer instanceof ArrayBuffer)) return;
  if (free.length < POOL_PAGES && !free.includes(buffer)) free.push(buffer);
}

function readInto(fd: number, page: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, page, 0, length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/**
 * Bytes [start, end] of the file, a page at a time, read on the thread pool.
 * Like a read stream it stops at the end of the file (a short needle then
 * fails its CRC check). Each chunk is a view of its own page.
 */
export async function* readPages(fd: number, start: number, end: number): AsyncGenerator<Buffer> {
  for (let at = start; at <= end; ) {
    const page = takePage();
    const n = await readInto(fd, page, Math.min(PAGE_BYTES, end - at + 1), at);
    if (n === 0) {
      releasePage(page);
      return;
    }
    yield page.subarray(0, n);
    at += n;
  }
}
