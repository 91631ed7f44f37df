import type { GcsBackendConfig } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import { describeBackend } from './conformance.ts';
import { type GcsEmulator, startGcsEmulator } from './gcs-emulator.ts';

// The Firebase Storage emulator in-process (gcs-emulator.ts). Uploads are resumable and sent in one request:
// the emulator rejects resumable uploads in several chunks (FILE_NO_UPLOAD), so `chunkSize` stays unset here
// and the multi-chunk path is left to real GCS. Server-side GET counts cross-check "one request per read".
let emulator: GcsEmulator;
const config = (apiEndpoint: string): GcsBackendConfig => ({
  type: 'gcs',
  id: 'default',
  bucket: 'kelp-tier-test',
  projectId: 'kelp-test',
  apiEndpoint,
  resumable: true,
});

describeBackend(
  'GCS on the Firebase Storage emulator',
  {
    type: 'gcs',
    verifiedBy: 'crc32c+md5',
    checksum: 'sha256',
    server: () => ({
      host: '127.0.0.1',
      port: emulator.port,
      connect: (endpoint, { retry, uploadAttempts }) =>
        createBackend({ ...config(endpoint), retry, uploadAttempts }),
    }),
  },
  async () => {
    emulator = await startGcsEmulator('kelp-test');
    const backend = await createBackend(config(emulator.endpoint));
    return { backend, serverGets: () => emulator.counts.mediaGets, stop: () => emulator.stop() };
  },
);
