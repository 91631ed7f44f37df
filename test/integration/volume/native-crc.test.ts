import { afterAll, describe, expect, it } from 'vitest';
import { originCrc32cUpdate } from '../../../origin/native-crc.ts';
import { activeCrc32cUpdate, jsCrc32cUpdate } from '../../../shared/crc.ts';
import {
  assignVolume,
  getBytes,
  newFid,
  putOk,
  randomBlob,
  removeTempDirs,
  startInProcess,
  tempDir,
} from './harness.ts';

const hex = (crc: number) => crc.toString(16).padStart(8, '0');

describe('volume server CRC-32C', () => {
  afterAll(removeTempDirs);

  it('installs the native step at start, and stores and checks the same CRC the JS step computes', async () => {
    expect(activeCrc32cUpdate()).toBe(jsCrc32cUpdate);
    const v = await startInProcess(tempDir());
    try {
      expect(activeCrc32cUpdate()).toBe(originCrc32cUpdate);
      await assignVolume(v.base, 1);
      // One size under the native threshold and two over it (one above the uncopied-data path's size).
      for (const size of [100, 64 * 1024, 1024 * 1024 + 3]) {
        const blob = randomBlob(size);
        const fid = newFid(1);
        const written = await putOk(v.base, fid, blob);
        expect(written.eTag).toBe(hex(jsCrc32cUpdate(blob, 0)));
        expect((await getBytes(v.base, `/${fid}`)).equals(blob)).toBe(true);
      }
    } finally {
      await v.stop();
    }
  });
});
