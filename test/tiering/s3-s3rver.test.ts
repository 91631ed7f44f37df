import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3BackendConfig } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import { describeBackend, TEST_PART_SIZE } from './conformance.ts';

// s3rver, a fake S3 on the filesystem (0.5 s to start): the quick loop beside Ceph, never instead of it. It gives
// multipart uploads the whole object's MD5 as ETag (no "-N"), which the verification accepts; it answers
// `Range: bytes=0-0` with the whole object, which the backend must refuse rather than serve; and it counts
// requests at the server, so "one GET per read" is checked on the wire here.
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer: Server;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

const BUCKET = 'kelp-tier-test';
let port = 0;
const config = (endpoint: string, extra: Partial<S3BackendConfig> = {}): S3BackendConfig => ({
  type: 's3',
  id: 'quick',
  endpoint,
  region: 'us-east-1',
  bucket: BUCKET,
  accessKeyId: 'S3RVER',
  secretAccessKey: 'S3RVER',
  partSize: TEST_PART_SIZE,
  ...extra,
});

describeBackend(
  'S3 on s3rver',
  {
    type: 's3',
    verifiedBy: 'md5-etag',
    checksum: 'sha256',
    ignoresRangeEndingAtZero: true,
    server: () => ({
      host: '127.0.0.1',
      port,
      connect: (endpoint, { retry, uploadAttempts }) =>
        createBackend(config(endpoint, { retry, uploadAttempts })),
    }),
  },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kelp-s3rver-'));
    const server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: dir,
      configureBuckets: [{ name: BUCKET }],
    });
    port = (await server.run()).port;
    let gets = 0;
    server.httpServer.on('request', (req: IncomingMessage) => {
      if (req.method === 'GET') gets++;
    });
    return {
      backend: await createBackend(config(`http://127.0.0.1:${port}`)),
      serverGets: () => gets,
      stop: async () => {
        server.httpServer.closeAllConnections();
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
);
