/**
 * The startup sweep of a data directory (issue 10, finding 10): what a killed
 * process left behind that nothing would ever read or remove.
 * - `.spool/`: bodies of uploads in flight (upload.ts).
 * - `.<stem>.dat.<pid>.<random>.tmp`: a tier download's `.dat` before its rename
 *   (tiering/backends/transfer.ts), which can be as large as a volume.
 * - `.cpd`/`.cpx`/`.cpc` of a volume that is no longer here (removed while
 *   it was being compacted); those of a volume that is here are finished or
 *   discarded before it opens (vacuum.ts, finishInterruptedCompaction).
 *
 * - `.mvd`/`.mvx`: a moved or copied volume's files still in staging
 *   (volume-move.ts); a copy is only ever mounted from a staging the same
 *   process verified, so after a restart they are worthless.
 *
 * Everything matching is removed whatever its age: one volume server owns a
 * data directory (two on the same volumes would corrupt them anyway) and the
 * sweep runs before it serves, so no transfer of its own is running yet. The
 * local tier's folder, which may be shared, is swept by its backend with an
 * age rule (tiering/backends/local.ts); the sweep here does not descend into it.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sweepTempFiles } from '../../tiering/backends/transfer.ts';
import { clearSpoolDir } from '../http/upload.ts';
import type { Logger } from '../observability/log.ts';

/** A compaction's files (vacuum.ts): `<stem>.cpd`, `.cpx` and the commit marker `.cpc`. */
const COMPACTION_FILE = /^(?:(.+)_)?(\d{1,10})\.(cpd|cpx|cpc)$/;
/** A volume copy in staging (volume-move.ts). */
const MOVE_STAGING_FILE = /^(?:(.+)_)?(\d{1,10})\.(mvd|mvx)$/;

/**
 * Sweeps `dir`; `isOpen(collection, volumeId)` says whether the store opened
 * that volume. Logs each removal.
 */
export function sweepDataDir(
  dir: string,
  isOpen: (collection: string, volumeId: number) => boolean,
  log?: Logger,
): void {
  clearSpoolDir(dir);
  for (const path of sweepTempFiles(dir, { minAgeMs: 0 })) {
    log?.warn({ path }, `removed ${path}, left by a tier download that was interrupted`);
  }
  for (const name of readdirSync(dir)) {
    if (MOVE_STAGING_FILE.test(name)) {
      rmSync(join(dir, name), { force: true });
      log?.warn(
        { path: join(dir, name) },
        `removed ${join(dir, name)}, left by a volume copy that was interrupted`,
      );
      continue;
    }
    const m = COMPACTION_FILE.exec(name);
    if (!m || isOpen(m[1] ?? '', Number(m[2]))) continue;
    rmSync(join(dir, name), { force: true });
    log?.warn(
      { path: join(dir, name) },
      `removed ${join(dir, name)}, left by the compaction of a volume that is gone`,
    );
  }
}
