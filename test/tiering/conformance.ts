/**
 * The one suite every tier backend passes (unstorage's idea: one interface,
 * one file per driver, one shared test). Each backend's test file supplies a
 * harness: a backend on a fresh bucket or directory, and where there is a
 * server, a way to reach it through another endpoint so the suite can put a
 * proxy in front and take it down.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '../../shared/crc.ts';
import {
  ChecksumMismatchError,
  InternalError,
  NotFoundError,
  TruncatedDataError,
  UnavailableError,
  UpstreamError,
} from '../../shared/errors.ts';
import {
  type BackendType,
  checksumOf,
  type DownloadOptions,
  type ObjectChecksum,
  type TierBackend,
  type UploadResult,
} from '../../tiering/backends/backend.ts';
import type { RetryPolicy } from '../../tiering/backends/retry.ts';
import { startTcpProxy } from './tcp-proxy.ts';

const MiB = 1024 * 1024;
/** S3's smallest part: the suite's file spans three parts, so multipart uploads are exercised. */
export const TEST_PART_SIZE = 5 * MiB;
/** An odd size, so the last part and the last byte sit at no round offset. */
export const TEST_FILE_SIZE = 2 * TEST_PART_SIZE + MiB + 12_345;
/** Outage tests: fast backoff, so a down backend costs milliseconds. */
export const FAST_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 10, maxDelayMs: 40 };

export interface BackendServer {
  host: string;
  port: number;
  /** A backend of the same kind and bucket that reaches the server at `endpoint` (a proxy). */
  connect(endpoint: string, overrides: { retry: RetryPolicy; uploadAttempts: number }): Promise<TierBackend>;
}

export interface BackendHarness {
  backend: TierBackend;
  /** Object GETs the server itself saw, where it can count them: cross-checks the backend's own counter. */
  serverGets?(): number;
  /** Config values that must never show up in describe(), JSON or inspect output. */
  secrets?: string[];
  stop(): Promise<void>;
}

export interface BackendCaps {
  type: BackendType;
  /** What an upload is verified by at the store (`UploadResult.verifiedBy`). */
  verifiedBy: string;
  /** The whole-object checksum its uploads return for the `.vif` (decision 0018: `crc32c` for `local`). */
  checksum: 'sha256' | 'crc32c';
  /** The kind has a server the suite can take down (not `local`). */
  server?: () => BackendServer;
  /**
   * The server answers `Range: bytes=0-0` with the whole object (s3rver 3.7.1 reads an end of 0 as "none"):
   * the suite then expects the backend to refuse those bytes with UpstreamError instead of serving them.
   */
  ignoresRangeEndingAtZero?: boolean;
}

const sha256Of = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** By the pure-JS step (this process never installs the native one): not the code under test. */
const crc32cOf = (b: Uint8Array) => crc32c(b).toString(16).padStart(8, '0');

/** The download options that check `c`, as the volume server passes a `.vif`'s. */
function expecting(c: ObjectChecksum | undefined): DownloadOptions {
  return { expectedSha256: c?.sha256, expectedCrc32c: c?.crc32c };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

export function describeBackend(name: string, caps: BackendCaps, setup: () => Promise<BackendHarness>): void {
  describe(`${name}: tier backend conformance`, () => {
    let h: BackendHarness;
    let b: TierBackend;
    let dir: string;
    let data: Buffer;
    let src: string;
    const key = `kelp-test/${randomUUID()}.dat`;
    let uploaded: UploadResult | undefined;
    const newKey = () => `kelp-test/${randomUUID()}.dat`;

    const expectBytes = (got: Uint8Array, offset: number, length: number) => {
      expect(got.byteLength).toBe(length);
      expect(
        Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(
          data.subarray(offset, offset + length),
        ),
      ).toBe(true);
    };

    beforeAll(async () => {
      h = await setup();
      b = h.backend;
      dir = await mkdtemp(join(tmpdir(), 'kelp-conformance-'));
      data = randomBytes(TEST_FILE_SIZE);
      src = join(dir, 'volume.dat');
      await writeFile(src, data);
    });

    afterAll(async () => {
      await b?.close();
      await h?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('uploads a multi-part-sized file, reporting progress up to the total, and verifies it at the store', async () => {
      const events: [number, number][] = [];
      uploaded = await b.upload(src, key, { onProgress: (n, total) => events.push([n, total]) });
      expect(uploaded).toMatchObject({ key, size: TEST_FILE_SIZE });
      expect(checksumOf(uploaded), 'the checksum for the .vif, and only that one').toEqual(
        caps.checksum === 'crc32c' ? { crc32c: crc32cOf(data) } : { sha256: sha256Of(data) },
      );
      expect(uploaded.verifiedBy).toBe(caps.verifiedBy);
      expect(uploaded.mtime.getTime()).toBeGreaterThan(Date.now() - 600_000);
      expect(events.length).toBeGreaterThan(1);
      for (let i = 1; i < events.length; i++) expect(events[i]![0]).toBeGreaterThanOrEqual(events[i - 1]![0]);
      expect(events.every(([, total]) => total === TEST_FILE_SIZE)).toBe(true);
      expect(events.at(-1)).toEqual([TEST_FILE_SIZE, TEST_FILE_SIZE]);
    });

    it('uploads a small file in one request and reads it back', async () => {
      const small = join(dir, 'small.dat');
      await writeFile(small, data.subarray(0, 1000));
      const k = newKey();
      const r = await b.upload(small, k);
      expect(r.size).toBe(1000);
      const f = b.openFile(k, 1000);
      expectBytes(await f.readAt(0, 1000), 0, 1000);
      await f.close();
      await b.delete(k);
    });

    it('stat reports the size and modification time', async () => {
      const st = await b.stat(key);
      expect(st?.size).toBe(TEST_FILE_SIZE);
      expect(Math.abs((st?.mtime.getTime() ?? 0) - (uploaded?.mtime.getTime() ?? 0))).toBeLessThan(5_000);
    });

    it('readAt returns the exact bytes at each offset in exactly one request', async () => {
      const f = b.openFile(key, TEST_FILE_SIZE);
      const cases: [number, number][] = [
        [0, 1],
        [0, 8],
        [0, 4096],
        [12_345, 7],
        [TEST_PART_SIZE - 100, 200], // across a multipart part boundary
        [2 * TEST_PART_SIZE + 1, 65_536],
        [TEST_FILE_SIZE - 8, 8],
        [TEST_FILE_SIZE - 1, 1], // the last byte
        [0, TEST_FILE_SIZE], // the whole object
      ];
      for (const [offset, length] of cases) {
        const reads = b.stats.reads;
        const server = h.serverGets?.();
        if (caps.ignoresRangeEndingAtZero && offset === 0 && length === 1) {
          expect(await rejection(f.readAt(offset, length))).toBeInstanceOf(UpstreamError);
        } else {
          expectBytes(await f.readAt(offset, length), offset, length);
        }
        expect(b.stats.reads - reads, `reads for ${offset}+${length}`).toBe(1);
        if (server !== undefined)
          expect(h.serverGets!() - server, `server GETs for ${offset}+${length}`).toBe(1);
      }
      await f.close();
    });

    it('readAt of zero bytes makes no request', async () => {
      const f = b.openFile(key, TEST_FILE_SIZE);
      const requests = b.stats.requests;
      expect((await f.readAt(TEST_FILE_SIZE, 0)).byteLength).toBe(0);
      expect(b.stats.requests).toBe(requests);
    });

    it('concurrent reads each get their own bytes', async () => {
      const f = b.openFile(key, TEST_FILE_SIZE);
      const ranges = Array.from({ length: 16 }, (_, i) => {
        const length = 2 + ((i * 7919) % 50_000);
        return [Math.floor((((i * 104_729) % 997) / 997) * (TEST_FILE_SIZE - length)), length] as const;
      });
      const reads = b.stats.reads;
      const got = await Promise.all(ranges.map(([o, l]) => f.readAt(o, l)));
      got.forEach((bytes, i) => {
        expectBytes(bytes, ranges[i]![0], ranges[i]![1]);
      });
      expect(b.stats.reads - reads).toBe(ranges.length);
      await f.close();
    });

    it('a read past the recorded size is TruncatedDataError, without a request', async () => {
      const f = b.openFile(key, TEST_FILE_SIZE);
      const requests = b.stats.requests;
      expect(await rejection(f.readAt(TEST_FILE_SIZE - 1, 2))).toBeInstanceOf(TruncatedDataError);
      expect(await rejection(f.readAt(TEST_FILE_SIZE + 10, 1))).toBeInstanceOf(TruncatedDataError);
      expect(await rejection(f.readAt(-1, 1))).toBeInstanceOf(InternalError);
      expect(b.stats.requests).toBe(requests);
    });

    it('an object shorter than its recorded size gives TruncatedDataError, never fewer bytes', async () => {
      // As if the .vif claimed more than the store holds.
      const f = b.openFile(key, TEST_FILE_SIZE + 1000);
      expect(await rejection(f.readAt(TEST_FILE_SIZE - 10, 20))).toBeInstanceOf(TruncatedDataError);
      expect(await rejection(f.readAt(TEST_FILE_SIZE + 10, 5))).toBeInstanceOf(TruncatedDataError);
      await f.close();
    });

    it('download writes a byte-identical copy and checks the recorded checksum', async () => {
      const out = join(dir, 'back', 'volume.dat');
      const events: number[] = [];
      const r = await b.download(key, out, {
        ...expecting(uploaded),
        onProgress: (n) => events.push(n),
      });
      expect(r).toEqual({ size: TEST_FILE_SIZE, ...checksumOf(uploaded!) });
      expect((await readFile(out)).equals(data)).toBe(true);
      expect(events.at(-1)).toBe(TEST_FILE_SIZE);
    });

    it('a download whose checksum does not match leaves nothing behind', async () => {
      const outDir = join(dir, 'bad');
      const wrong: DownloadOptions =
        caps.checksum === 'crc32c'
          ? { expectedCrc32c: (Number.parseInt(uploaded!.crc32c!, 16) ^ 1).toString(16).padStart(8, '0') }
          : { expectedSha256: '0'.repeat(64) };
      const err = await rejection(b.download(key, join(outDir, 'volume.dat'), wrong));
      expect(err).toBeInstanceOf(ChecksumMismatchError);
      expect(await readdir(outDir)).toEqual([]);
    });

    if (caps.checksum === 'crc32c') {
      it('an object recorded with a SHA-256 (a .vif from before decision 0018) downloads checked by SHA-256', async () => {
        const out = join(dir, 'old-vif', 'volume.dat');
        const r = await b.download(key, out, { expectedSha256: sha256Of(data) });
        expect(r).toEqual({ size: TEST_FILE_SIZE, sha256: sha256Of(data) });
        expect((await readFile(out)).equals(data)).toBe(true);
        const outDir = join(dir, 'old-vif-bad');
        const err = await rejection(
          b.download(key, join(outDir, 'volume.dat'), { expectedSha256: '0'.repeat(64) }),
        );
        expect(err).toBeInstanceOf(ChecksumMismatchError);
        expect(await readdir(outDir)).toEqual([]);
      });
    } else {
      it('a CRC-32C to check (only local objects record one) is refused, not skipped, and leaves nothing', async () => {
        const outDir = join(dir, 'crc-refused');
        const err = await rejection(
          b.download(key, join(outDir, 'volume.dat'), { expectedCrc32c: crc32cOf(data) }),
        );
        expect(err).toBeInstanceOf(InternalError);
        expect(await readdir(outDir)).toEqual([]);
      });
    }

    it('a download of an object one byte off, or one byte short, of the recorded checksum fails and leaves nothing', async () => {
      // The object at rest differs from what the `.vif` recorded: stored here by uploading the changed bytes.
      const flipped = Buffer.from(data);
      flipped[flipped.length >> 1]! ^= 0x01;
      const cases: [string, Buffer][] = [
        ['flipped', flipped],
        ['short', data.subarray(0, data.length - 1)],
      ];
      for (const [name, bytes] of cases) {
        const k = newKey();
        const path = join(dir, `${name}.dat`);
        await writeFile(path, bytes);
        await b.upload(path, k);
        const outDir = join(dir, `back-${name}`);
        const err = await rejection(b.download(k, join(outDir, 'volume.dat'), expecting(uploaded)));
        expect(err, name).toBeInstanceOf(ChecksumMismatchError);
        expect(await readdir(outDir)).toEqual([]);
        await b.delete(k);
      }
    });

    it('an aborted upload leaves no object under its key', async () => {
      const k = newKey();
      const ac = new AbortController();
      const err = await rejection(b.upload(src, k, { signal: ac.signal, onProgress: () => ac.abort() }));
      expect(err).toMatchObject({ name: 'AbortError' });
      expect(await b.stat(k)).toBeUndefined();
    });

    it('a missing key is NotFoundError for reads and downloads, and undefined for stat', async () => {
      const k = newKey();
      expect(await b.stat(k)).toBeUndefined();
      expect(await rejection(b.openFile(k, 100).readAt(0, 10))).toBeInstanceOf(NotFoundError);
      expect(await rejection(b.download(k, join(dir, 'missing.dat')))).toBeInstanceOf(NotFoundError);
    });

    it('delete removes the object: stat is undefined, reads are NotFoundError, a second delete succeeds', async () => {
      const k = newKey();
      const small = join(dir, 'to-delete.dat');
      await writeFile(small, data.subarray(0, 5000));
      await b.upload(small, k);
      expect((await b.stat(k))?.size).toBe(5000);
      await b.delete(k);
      expect(await b.stat(k)).toBeUndefined();
      expect(await rejection(b.openFile(k, 5000).readAt(0, 10))).toBeInstanceOf(NotFoundError);
      await b.delete(k);
    });

    it('never shows secrets in describe(), JSON or inspect output', () => {
      const described = b.describe();
      expect(described).toMatchObject({ type: caps.type, id: b.id });
      const shown = [JSON.stringify(described), JSON.stringify(b), inspect(b, { depth: 8 })].join('\n');
      for (const secret of h.secrets ?? []) expect(shown).not.toContain(secret);
    });

    const server = caps.server;
    if (server) {
      it('backend down: UnavailableError after the bounded retries, then reads recover without a restart', async () => {
        const srv = server();
        const proxy = await startTcpProxy({ host: srv.host, port: srv.port });
        const via = await srv.connect(proxy.endpoint, { retry: FAST_RETRY, uploadAttempts: 1 });
        try {
          const f = via.openFile(key, TEST_FILE_SIZE);
          expectBytes(await f.readAt(1000, 100), 1000, 100);

          await proxy.pause();
          const requests = via.stats.requests;
          const started = Date.now();
          const err = await rejection(f.readAt(5000, 100));
          expect(err).toBeInstanceOf(UnavailableError);
          expect((err as UnavailableError).retryAfter).toBeGreaterThan(0);
          expect(via.stats.requests - requests).toBe(FAST_RETRY.attempts);
          expect(Date.now() - started).toBeLessThan(3_000);
          expect(await rejection(via.stat(key))).toBeInstanceOf(UnavailableError);
          expect(await rejection(via.download(key, join(dir, 'down.dat')))).toBeInstanceOf(UnavailableError);
          const small = join(dir, 'down-upload.dat');
          await writeFile(small, data.subarray(0, 1000));
          expect(await rejection(via.upload(small, newKey()))).toBeInstanceOf(UnavailableError);

          await proxy.resume();
          expectBytes(await f.readAt(5000, 100), 5000, 100);
        } finally {
          await via.close();
          await proxy.stop();
        }
      });
    }
  });
}
