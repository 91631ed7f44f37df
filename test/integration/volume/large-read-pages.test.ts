/**
 * Large needles stream in pooled pages (origin/volume/page-pool.ts): a page
 * goes back to the pool once the socket has taken it, and the next read
 * fills it again. Many concurrent whole reads and Ranges of different large
 * blobs must each get exactly their own bytes: a page reused while its bytes
 * were still on their way out would hand one client another blob's bytes.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assignVolume,
  concurrently,
  getBytes,
  newFid,
  putOk,
  type Running,
  randomBlob,
  raw,
  removeTempDirs,
  sha256,
  startInProcess,
  tempDir,
} from './harness.ts';

const VID = 3;
const MiB = 1024 * 1024;
/** Blobs of several pages each (pages are 1 MiB), with a short last page. */
const BLOBS = 6;
const BLOB_BYTES = 6 * MiB + 12_345;
/** How long a slow client leaves its response unread: the server's writes then wait in its buffers. */
const STALL_MS = 300;
const CLIENTS = 12;
const READS_PER_CLIENT = 6;

let srv: Running;
const blobs: { fid: string; bytes: Buffer; hash: string }[] = [];

beforeAll(async () => {
  srv = await startInProcess(tempDir());
  await assignVolume(srv.base, VID);
  for (let i = 0; i < BLOBS; i++) {
    const fid = newFid(VID);
    const bytes = randomBlob(BLOB_BYTES);
    await putOk(srv.base, fid, bytes);
    blobs.push({ fid, bytes, hash: sha256(bytes) });
  }
}, 60_000);

/** GET that stops reading after the first chunk for STALL_MS, then reads the rest. */
function slowGet(base: string, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.once('data', () => {
        res.pause();
        setTimeout(() => res.resume(), STALL_MS);
      });
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

afterAll(async () => {
  await srv?.stop();
  removeTempDirs();
});

describe('large needles read through pooled pages', () => {
  it('serve every concurrent whole read and Range its own bytes', async () => {
    let reads = 0;
    await concurrently(CLIENTS, async (worker) => {
      for (let n = 0; n < READS_PER_CLIENT; n++) {
        const blob = blobs[(worker + n) % BLOBS]!;
        if ((worker + n) % 3 === 0) {
          // A Range across a page boundary (served after the whole needle was verified once).
          const from = MiB - 100 + worker;
          const res = await raw(srv.base, `/${blob.fid}`, {
            headers: { range: `bytes=${from}-${from + 999}` },
          });
          expect(res.status).toBe(206);
          expect(res.body.equals(blob.bytes.subarray(from, from + 1000))).toBe(true);
        } else if (worker % 2 === 0) {
          // Slow readers: the pages of their responses are still queued when others take pages.
          expect(sha256(await slowGet(srv.base, `/${blob.fid}`))).toBe(blob.hash);
        } else {
          expect(sha256(await getBytes(srv.base, `/${blob.fid}`))).toBe(blob.hash);
        }
        reads++;
      }
    });
    expect(reads).toBe(CLIENTS * READS_PER_CLIENT);
  }, 120_000);
});
