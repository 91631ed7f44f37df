import { afterAll, beforeAll } from 'vitest';
import type { GcsBackendConfig } from '../../../tiering/backends/backend.ts';
import { createBackend } from '../../../tiering/backends/create-backend.ts';
import { type GcsEmulator, startGcsEmulator } from '../gcs-emulator.ts';
import { describeTieredVolume } from './suite.ts';

// GCS on the Firebase Storage emulator's JSON API, started in-process (gcs-emulator.ts), once for the file.
// The volume is uploaded as a resumable upload sent in ONE request (no `chunkSize`): the emulator rejects
// resumable uploads sent in several chunks (FILE_NO_UPLOAD), so the multi-chunk path is left to real GCS.
// The emulator counts object GETs (`alt=media`) on its side, which cross-checks "one GET per read".
let emulator: GcsEmulator;

const config = (): GcsBackendConfig => ({
  type: 'gcs',
  id: 'default',
  bucket: 'kelp-tier-volume-test',
  projectId: 'kelp-test',
  apiEndpoint: emulator.endpoint,
  resumable: true,
});

beforeAll(async () => {
  emulator = await startGcsEmulator('kelp-test');
});

afterAll(async () => {
  await emulator?.stop();
});

describeTieredVolume('GCS on the Firebase Storage emulator', () => ({
  backend: 'gcs.default',
  checksum: 'sha256',
  configs: () => [config()],
  inspector: () => createBackend(config()),
  serverGets: () => emulator.counts.mediaGets,
  serverRequests: () => emulator.counts.all,
}));
