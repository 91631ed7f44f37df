import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeState, encodeState, FileStateStore } from '../../../../origin/master/state-store.ts';
import { CorruptDataError } from '../../../../shared/errors.ts';
import { removeTempDirs, tempDir } from '../../../support/temp-dirs.ts';

afterAll(removeTempDirs);

describe('the master state', () => {
  it('reads a state saved before deletions were remembered as none deleted, and writes none as no field', () => {
    const old = decodeState('{"maxFileKey":"40000","maxVolumeId":7}');
    expect(old).toEqual({ maxFileKey: 40_000n, maxVolumeId: 7, deletedVolumes: [] });
    expect(JSON.parse(encodeState(old))).toEqual({ maxFileKey: '40000', maxVolumeId: 7 });
  });

  it('keeps the deleted volumes through a file store, beside the counters', async () => {
    const dir = tempDir('kelp-state-');
    writeFileSync(join(dir, 'master-state.json'), '{"maxFileKey":"10","maxVolumeId":3}\n');
    const store = new FileStateStore(dir);
    await store.update((s) => ({ ...s, deletedVolumes: [[1, 2]] }));
    const again = await new FileStateStore(dir).load();
    expect(again).toEqual({ maxFileKey: 10n, maxVolumeId: 3, deletedVolumes: [[1, 2]] });
  });

  it('refuses a state file whose deleted volumes are not ranges of ids', async () => {
    const dir = tempDir('kelp-state-');
    writeFileSync(
      join(dir, 'master-state.json'),
      '{"maxFileKey":"1","maxVolumeId":1,"deletedVolumes":[[3,1]]}',
    );
    await expect(new FileStateStore(dir).load()).rejects.toBeInstanceOf(CorruptDataError);
  });
});
