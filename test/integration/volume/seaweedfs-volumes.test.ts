/**
 * Volumes written by SeaweedFS (test/fixtures/seaweedfs, see its README),
 * copied into a data directory: a Kelp volume server must serve every live
 * needle of manifest.json byte for byte, and refuse the damaged ones.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Running,
  raw,
  removeTempDirs,
  sha256,
  startInProcess,
  tempDir,
  volumeStatus,
  withWrongCookie,
} from './harness.ts';

interface ManifestNeedle {
  key: number;
  cookie: string;
  fid_suffix: string;
  gzipped: boolean;
  name: string;
  mime: string;
  last_modified: number;
  crc: 'castagnoli' | 'legacy' | 'MISMATCH';
  sha256_stored: string;
  sha256_plain: string;
  plain_size: number;
}
interface Manifest {
  volumes: Record<string, { dat_bytes: number; live_needles: ManifestNeedle[] }>;
}

const FIXTURES = fileURLToPath(new URL('../../fixtures/seaweedfs/', import.meta.url));
const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;

/** Fixture volume -> the volume id it gets in the data directory. */
const VOLUMES: Record<string, number> = {
  healthy_volume: 1,
  legacy_crc_volume: 2,
  bitrot_volume: 3,
  no_index_volume: 4,
  empty_volume: 5,
};

let srv: Running;

beforeAll(async () => {
  const dir = tempDir();
  for (const [name, id] of Object.entries(VOLUMES)) {
    copyFileSync(join(FIXTURES, `${name}.dat`), join(dir, `${id}.dat`));
    if (name !== 'no_index_volume') copyFileSync(join(FIXTURES, `${name}.idx`), join(dir, `${id}.idx`));
  }
  srv = await startInProcess(dir);
});

afterAll(async () => {
  await srv?.stop();
  removeTempDirs();
});

describe.each(['healthy_volume', 'legacy_crc_volume', 'no_index_volume'])('%s', (name) => {
  const vid = VOLUMES[name]!;
  const needles = manifest.volumes[name]!.live_needles;

  it('serves every live needle of the manifest byte for byte, gunzipped for a plain client', async () => {
    expect(needles.length).toBeGreaterThan(0);
    for (const n of needles) {
      const res = await raw(srv.base, `/${vid},${n.fid_suffix}`);
      expect(res.status, n.fid_suffix).toBe(200);
      expect(res.body.length, n.fid_suffix).toBe(n.plain_size);
      expect(sha256(res.body), n.fid_suffix).toBe(n.sha256_plain);
      expect(res.headers['last-modified'], n.fid_suffix).toBe(new Date(n.last_modified * 1000).toUTCString());
      if (n.mime) expect(res.headers['content-type'], n.fid_suffix).toBe(n.mime);
    }
  });

  // Only the volumes that hold gzipped needles get this test (it is not defined, rather than skipped, for the rest).
  if (needles.some((n) => n.gzipped))
    it('sends gzipped needles as stored to a client that accepts gzip', async () => {
      for (const n of needles.filter((x) => x.gzipped).slice(0, 20)) {
        const res = await raw(srv.base, `/${vid},${n.fid_suffix}`, {
          headers: { 'Accept-Encoding': 'gzip' },
        });
        expect(res.headers['content-encoding'], n.fid_suffix).toBe('gzip');
        expect(sha256(res.body), n.fid_suffix).toBe(n.sha256_stored);
        expect(sha256(gunzipSync(res.body)), n.fid_suffix).toBe(n.sha256_plain);
      }
    });

  it('answers 404 to a live key with the wrong cookie', async () => {
    const n = needles[0]!;
    expect((await raw(srv.base, `/${withWrongCookie(`${vid},${n.fid_suffix}`)}`)).status).toBe(404);
  });

  it('counts the live needles in /status', async () => {
    expect((await volumeStatus(srv.base, vid)).fileCount).toBe(needles.length);
  });
});

describe('bitrot_volume', () => {
  const needles = manifest.volumes.bitrot_volume!.live_needles;

  it('refuses the damaged needles with 5xx and serves the others byte for byte', async () => {
    const damaged = needles.filter((n) => n.crc === 'MISMATCH');
    expect(damaged.map((n) => n.key)).toEqual([3, 48]);
    for (const n of needles) {
      const res = await raw(srv.base, `/3,${n.fid_suffix}`);
      if (n.crc === 'MISMATCH') {
        expect(res.status, n.fid_suffix).toBeGreaterThanOrEqual(500);
      } else {
        expect(res.status, n.fid_suffix).toBe(200);
        expect(sha256(res.body), n.fid_suffix).toBe(n.sha256_plain);
      }
    }
  });
});

describe('writing to a SeaweedFS volume', () => {
  it('appends new needles after the SeaweedFS ones and serves both', async () => {
    // legacy_crc_volume: replica placement 000, so no master is needed to write.
    const fid = '2,03e8cafebabe';
    const bytes = Buffer.from('written by kelp into a seaweedfs volume');
    const res = await fetch(`${srv.base}/${fid}`, { method: 'PUT', body: bytes });
    expect(res.status).toBe(201);
    expect((await raw(srv.base, `/${fid}`)).body.equals(bytes)).toBe(true);
    const n = manifest.volumes.legacy_crc_volume!.live_needles[0]!;
    expect(sha256((await raw(srv.base, `/2,${n.fid_suffix}`)).body)).toBe(n.sha256_plain);
  });
});

describe('empty_volume', () => {
  it('opens with no needles', async () => {
    expect(await volumeStatus(srv.base, 5)).toMatchObject({ fileCount: 0, size: 8 });
  });
});
