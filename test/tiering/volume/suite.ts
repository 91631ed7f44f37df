/**
 * The volume-side tiering scenario every backend goes through (issue 7,
 * "Tests"): a sealed volume of a couple of thousand needles (100 B to 4 KiB,
 * every tenth stored gzipped, two over 1 MiB) is tiered through
 * `/admin/tier/upload`, read back through the volume server's HTTP API with
 * exactly one backend GET per read, ranged, deleted from, restarted (no
 * backend request at startup), and downloaded back to local disk.
 *
 * The `it`s run in order and build on each other, like the backend
 * conformance suite: one volume per backend keeps the wall time down.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAM_PAGE_BYTES } from '../../../origin/volume/data-file.ts';
import { tierLocationOf } from '../../../origin/volume/tier-sidecars.ts';
import { LARGE_NEEDLE_BYTES } from '../../../origin/volume/volume.ts';
import type { RemoteDat } from '../../../origin/volume/volume-info.ts';
import { parseFid } from '../../../shared/fid.ts';
import { needleRecordSize } from '../../../shared/needle.ts';
import type { BackendConfig, ObjectChecksum, TierBackend } from '../../../tiering/backends/backend.ts';
import { waitFor } from '../../support/wait.ts';
import {
  assignVolume,
  type Blob,
  type ChecksumKind,
  checksumFile,
  datPath,
  expectAllReadBack,
  expecting,
  fillVolume,
  http,
  json,
  KiB,
  MiB,
  newFid,
  putBlob,
  sealVolume,
  sha256File,
  startTierServer,
  startUpload,
  type TierServer,
  tierDownload,
  tierStatus,
  vifOf,
  waitForJob,
} from './harness.ts';

export interface TierTarget {
  /** The backend's name on the volume server (`s3.default`). */
  backend: string;
  /** The checksum its uploads record in the `.vif`. */
  checksum: ChecksumKind;
  /** What the volume server is configured with (`local.default` needs nothing). */
  configs(): BackendConfig[];
  /** A client of its own on the same store, to look at objects behind the server's back. */
  inspector(dataDir: string): Promise<TierBackend>;
  /** GETs of object bytes the store itself saw, where it counts them: cross-checks the server's counter. */
  serverGets?(): number;
  /** Every request the store saw from the volume server, where it counts them. */
  serverRequests?(): number;
}

/** Needles in the test volume besides the two large ones. */
export const SMALL_NEEDLES = 2_000;
const LARGE = [1536 * KiB, MiB + 4321];

export function describeTieredVolume(name: string, target: () => TierTarget): void {
  describe(`${name}: a tiered volume through the volume server`, () => {
    const VID = 1;
    let t: TierTarget;
    let dir: string;
    let srv: TierServer;
    let inspector: TierBackend;
    let blobs: Blob[];
    let datSize: number;
    let datSha: string;
    let datChecksum: ObjectChecksum;
    let remote: RemoteDat;
    const deleted = new Set<Blob>();
    const live = () => blobs.filter((b) => !deleted.has(b));
    const reads = () => srv.stats(t.backend).reads;
    /** The record a read of `b` must fetch: header, body, CRC, timestamp and padding, nothing more. */
    const recordBytes = (b: Blob) => {
      const volume = srv.server.store.get(VID);
      const entry = volume.map.get(parseFid(b.fid).key)!;
      return needleRecordSize(entry.size, volume.version);
    };
    const isLarge = (b: Blob) => recordBytes(b) > LARGE_NEEDLE_BYTES;
    /**
     * Backend GETs of a whole read of `b`: one for a small needle's record; for a large one
     * (streamed, never held whole) one for its header, one for its tail, one per page of data.
     */
    const getsFor = (b: Blob) => (isLarge(b) ? 2 + Math.ceil(b.bytes.length / STREAM_PAGE_BYTES) : 1);

    beforeAll(async () => {
      t = target();
      dir = mkdtempSync(join(tmpdir(), 'kelp-tier-volume-'));
      srv = await startTierServer(dir, t.configs());
      inspector = await t.inspector(dir);
      await assignVolume(srv.base, VID);
      blobs = await fillVolume(srv.base, VID, { small: SMALL_NEEDLES, large: LARGE });
      await sealVolume(srv.base, VID);
    }, 120_000);

    afterAll(async () => {
      await srv?.stop();
      await inspector?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('uploads the sealed volume: the job ends done, the .dat is gone, the .vif names the verified object', async () => {
      const dat = datPath(dir, VID);
      datSize = statSync(dat).size;
      datSha = sha256File(dat);
      datChecksum = checksumFile(dat, t.checksum);
      expect((await tierStatus(srv.base, VID)).remote).toBeNull();

      const job = await startUpload(srv.base, VID, t.backend);
      expect(job).toMatchObject({ volumeId: VID, action: 'upload', backend: t.backend, state: 'running' });
      const s = await waitForJob(srv.base, VID);
      expect(s.job).toMatchObject({ state: 'done', bytes: datSize, total: datSize });

      expect(existsSync(dat)).toBe(false);
      const vif = vifOf(dir, VID)!;
      expect(vif.readOnly).toBe(true);
      remote = vif.remote!;
      expect(remote).toMatchObject({
        backend: t.backend,
        size: datSize,
        ...datChecksum,
        keepLocalDat: false,
      });
      expect(remote[t.checksum === 'crc32c' ? 'sha256' : 'crc32c'], 'one checksum only').toBeUndefined();
      expect(remote.key).toMatch(/^1-[0-9a-f-]{36}\.dat$/);
      expect(Number.isNaN(Date.parse(remote.mtime))).toBe(false);
      expect(Buffer.from(remote.superBlock, 'base64').length).toBeGreaterThanOrEqual(8);
      expect(s.remote).toEqual(remote);

      expect((await inspector.stat(remote.key))?.size).toBe(datSize);
      const status = await json<{ Volumes: { id: number; remote?: string; readOnly: boolean }[] }>(
        http(srv.base, '/status'),
        200,
      );
      expect(status.Volumes.find((v) => v.id === VID)).toMatchObject({ remote: t.backend, readOnly: true });
    });

    it("publishes where the edge finds it (the lookup's tier location): kind, bucket, the object, its index and deletion set", async () => {
      const backends = srv.server.store.config.backends;
      // Published once the deletion set is in the bucket (written in the background at upload).
      const loc = await waitFor('the tier location', () =>
        tierLocationOf(srv.server.store.get(VID), backends),
      );
      const kind = t.backend.slice(0, t.backend.indexOf('.'));
      expect(loc).toMatchObject({ kind, backend: t.backend, key: remote.key, size: datSize });
      const bucket = backends?.get(t.backend).describe().bucket;
      // The edge refuses a location naming another bucket than its own config's (edge/tier-read.ts).
      if (kind === 'local') expect(loc.bucket).toBeUndefined();
      else expect(loc.bucket).toBe(bucket);
      expect((await inspector.stat(loc.indexKey))?.size).toBe(
        64 + 16 * loc.indexPages + 4096 * loc.indexPages,
      );
      expect((await inspector.stat(loc.deletesKey))?.size).toBeGreaterThan(0);
    });

    it('reads every needle back byte-identical, each with exactly one backend GET of exactly its record (a large one streamed in pages)', async () => {
      const stats = srv.stats(t.backend);
      const atStart = { reads: stats.reads, bytes: stats.bytesRead, server: t.serverGets?.() };
      // One at a time first, so "one GET" is checked per read, not only on average.
      const oneByOne = [...blobs.slice(0, 40), ...blobs.slice(-LARGE.length)];
      for (const b of oneByOne) {
        const before = { reads: stats.reads, bytes: stats.bytesRead, server: t.serverGets?.() };
        const r = await http(srv.base, `/${b.fid}`);
        expect(r.status, b.fid).toBe(200);
        expect(r.body.equals(b.bytes), b.fid).toBe(true);
        expect(stats.reads - before.reads, `backend GETs for ${b.fid}`).toBe(getsFor(b));
        expect(stats.bytesRead - before.bytes, `bytes fetched for ${b.fid}`).toBe(recordBytes(b));
        if (before.server !== undefined) expect(t.serverGets!() - before.server).toBe(getsFor(b));
      }
      await expectAllReadBack(srv.base, blobs);
      const expectedReads = [...oneByOne, ...blobs].reduce((a, b) => a + getsFor(b), 0);
      const expectedBytes = [...oneByOne, ...blobs].reduce((a, b) => a + recordBytes(b), 0);
      expect(stats.reads - atStart.reads).toBe(expectedReads);
      expect(stats.bytesRead - atStart.bytes).toBe(expectedBytes);
      if (atStart.server !== undefined) expect(t.serverGets!() - atStart.server).toBe(expectedReads);
    }, 120_000);

    it('answers a Range on a tiered blob with 206 and the right bytes, in one backend GET (a large one: header, tail and the range)', async () => {
      const small = blobs.find((b) => !b.text && b.bytes.length >= 1000)!;
      const text = blobs.find((b) => b.text && b.bytes.length >= 1000)!;
      const large = blobs.at(-2)!;
      const cases: [Blob, string, number, number][] = [
        [small, 'bytes=100-599', 100, 599],
        [small, 'bytes=-10', small.bytes.length - 10, small.bytes.length - 1],
        [text, 'bytes=7-70', 7, 70], // stored gzipped: ranged over the plain text
        [large, 'bytes=1000000-1000099', 1_000_000, 1_000_099],
        [large, `bytes=${large.bytes.length - 5}-`, large.bytes.length - 5, large.bytes.length - 1],
      ];
      for (const [b, range, start, end] of cases) {
        const before = reads();
        const r = await http(srv.base, `/${b.fid}`, { headers: { Range: range } });
        expect(r.status, range).toBe(206);
        expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${b.bytes.length}`);
        expect(r.body.equals(b.bytes.subarray(start, end + 1)), range).toBe(true);
        expect(reads() - before, range).toBe(isLarge(b) ? 3 : 1);
      }
    });

    it('streams a large needle from the tier: a Range of a verified one fetches only its bytes, plus the header and tail', async () => {
      const large = blobs.at(-2)!;
      expect(large.bytes.length).toBeGreaterThan(LARGE_NEEDLE_BYTES);
      const stats = srv.stats(t.backend);
      const volume = srv.server.store.get(VID);
      const entry = volume.map.get(parseFid(large.fid).key)!;
      const meta = needleRecordSize(entry.size, volume.version) - large.bytes.length;
      // A whole read: the record exactly, the data in pages no larger than one page (never held whole).
      let before = { reads: stats.reads, bytes: stats.bytesRead };
      const whole = await http(srv.base, `/${large.fid}`);
      expect(whole.status).toBe(200);
      expect(whole.body.equals(large.bytes)).toBe(true);
      expect(stats.bytesRead - before.bytes).toBe(recordBytes(large));
      expect(stats.reads - before.reads).toBe(2 + Math.ceil(large.bytes.length / STREAM_PAGE_BYTES));
      // Ranges of it: the asked bytes (and the needle's header and tail, for its headers), nothing else.
      for (const [start, end] of [
        [0, 0],
        [12_345, 12_345 + 4095],
        [STREAM_PAGE_BYTES - 10, STREAM_PAGE_BYTES + 9], // across the first page boundary of a whole read
        [large.bytes.length - 1, large.bytes.length - 1],
      ] as const) {
        before = { reads: stats.reads, bytes: stats.bytesRead };
        const r = await http(srv.base, `/${large.fid}`, { headers: { Range: `bytes=${start}-${end}` } });
        expect(r.status).toBe(206);
        expect(r.body.equals(large.bytes.subarray(start, end + 1))).toBe(true);
        expect(stats.bytesRead - before.bytes, `bytes fetched for ${start}-${end}`).toBe(
          meta + end - start + 1,
        );
      }
    });

    it('stays sealed: a tiered volume refuses writes and refuses to be made writable', async () => {
      const write = await http(srv.base, `/${newFid(VID)}`, { method: 'PUT', body: Buffer.from('no') });
      expect(write.status).toBe(409);
      const writable = await http(srv.base, `/admin/writable?volume=${VID}`, { method: 'POST' });
      expect(writable.status).toBe(409);
      expect(vifOf(dir, VID)?.readOnly).toBe(true);
    });

    it('a delete answers 202 and then 404, and leaves the remote object as it was', async () => {
      const victims = [blobs[5]!, blobs.find((b) => b.text)!, blobs.at(-1)!];
      for (const b of victims) {
        const wrongCookie = `${b.fid.slice(0, -8)}${'0'.repeat(8)}`;
        expect((await http(srv.base, `/${wrongCookie}`, { method: 'DELETE' })).status).toBe(404);
        const r = await http(srv.base, `/${b.fid}`, { method: 'DELETE' });
        expect(r.status, b.fid).toBe(202);
        deleted.add(b);
        const before = reads();
        expect((await http(srv.base, `/${b.fid}`)).status).toBe(404);
        expect(reads() - before, 'a 404 is answered from the index').toBe(0);
      }
      expect((await http(srv.base, `/${victims[0]!.fid}`, { method: 'DELETE' })).status).toBe(404);
      expect((await inspector.stat(remote.key))?.size).toBe(datSize);
      const copy = join(dir, 'remote-copy.bin');
      // A checksum-checked download of the object: its bytes are the ones uploaded.
      await inspector.download(remote.key, copy, expecting(datChecksum));
      rmSync(copy);
    });

    it('restarts without a backend request, and serves the same answers', async () => {
      await srv.stop();
      const serverBefore = t.serverRequests?.();
      srv = await startTierServer(dir, t.configs());
      expect(srv.stats(t.backend).requests, 'backend requests at startup').toBe(0);
      expect((await tierStatus(srv.base, VID)).remote).toEqual(remote);
      expect(srv.stats(t.backend).requests).toBe(0);
      if (serverBefore !== undefined)
        expect(t.serverRequests!(), 'requests the store saw').toBe(serverBefore);

      const before = reads();
      await expectAllReadBack(srv.base, live());
      expect(reads() - before).toBe(live().reduce((a, b) => a + getsFor(b), 0));
      for (const b of deleted) expect((await http(srv.base, `/${b.fid}`)).status).toBe(404);
    }, 120_000);

    it('downloads the volume back: .dat restored, .vif without remote, object deleted, reads local, writes accepted', async () => {
      const s = await tierDownload(srv.base, VID);
      expect(s.remote).toBeNull();
      expect(s.job).toMatchObject({ action: 'download', state: 'done' });
      expect(vifOf(dir, VID)?.remote).toBeUndefined();
      expect(sha256File(datPath(dir, VID))).toBe(datSha);
      expect(await inspector.stat(remote.key)).toBeUndefined();

      const before = srv.stats(t.backend).requests;
      await expectAllReadBack(srv.base, live());
      for (const b of deleted) expect((await http(srv.base, `/${b.fid}`)).status).toBe(404);
      expect(srv.stats(t.backend).requests - before, 'backend requests for local reads').toBe(0);

      // The deletes made while tiered are index-only entries: a reopen (recovery included) keeps them.
      await srv.stop();
      srv = await startTierServer(dir, t.configs());
      for (const b of deleted) expect((await http(srv.base, `/${b.fid}`)).status).toBe(404);
      await expectAllReadBack(srv.base, live());

      const fresh: Blob = { fid: newFid(VID), bytes: Buffer.from('written after the download'), text: false };
      await putBlob(srv.base, fresh);
      expect((await http(srv.base, `/${fresh.fid}`)).body.equals(fresh.bytes)).toBe(true);
      expect(srv.stats(t.backend).requests).toBe(0);
    }, 120_000);
  });
}
