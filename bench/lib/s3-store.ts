/**
 * The S3 store the tiering benches run against: Ceph's RADOS Gateway when its
 * Debian packages are installed (about 15 s to start; test/tiering/ceph-rgw.ts),
 * else s3rver. KELP_BENCH_S3=ceph|s3rver|none chooses. Both run on this
 * machine, so every request costs the store's CPU on the same cores.
 */
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { assertCephInstalled, startCephRgw } from '../../test/tiering/ceph-rgw.ts';
import type { S3BackendConfig } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import type { S3Backend } from '../../tiering/backends/s3.ts';

export interface S3Store {
  label: string;
  config: S3BackendConfig;
  /** The store's processes when they are not this one (Ceph's daemons), for what a transfer costs them. */
  pids?(): number[];
  stop(): Promise<void>;
}

export interface S3StoreOptions {
  /** The bucket, created empty. */
  bucket: string;
  /** Scratch space (s3rver keeps its objects there). */
  dir: string;
  /** Ceph's memstore capacity, in RAM: deleted objects count until RGW's garbage collection, hours later. */
  memstoreBytes?: number;
}

export async function startS3Store(opts: S3StoreOptions): Promise<S3Store | undefined> {
  const choice = process.env.KELP_BENCH_S3 ?? 'auto';
  if (choice === 'none') return undefined;
  let ceph = choice === 'ceph';
  if (choice === 'auto') {
    try {
      assertCephInstalled();
      ceph = true;
    } catch {
      ceph = false;
    }
  }
  const base = {
    type: 's3',
    id: 'default',
    region: 'us-east-1',
    bucket: opts.bucket,
    forcePathStyle: true,
  } as const;
  let store: S3Store;
  if (ceph) {
    const rgw = await startCephRgw(opts.memstoreBytes ? { memstoreBytes: opts.memstoreBytes } : {});
    const config = {
      ...base,
      endpoint: rgw.endpoint,
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: rgw.secretAccessKey,
    };
    store = { label: 'S3 (Ceph RGW)', config, pids: () => rgw.pids(), stop: () => rgw.stop() };
  } else {
    type S3rver = new (
      o: Record<string, unknown>,
    ) => { run(): Promise<AddressInfo>; close(): Promise<void>; httpServer: Server };
    const S3rverClass = createRequire(import.meta.url)('s3rver') as S3rver;
    const s3rver = new S3rverClass({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: join(opts.dir, 's3rver'),
    });
    const { port } = await s3rver.run();
    const config = {
      ...base,
      endpoint: `http://127.0.0.1:${port}`,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
    };
    store = {
      label: 'S3 (s3rver)',
      config,
      stop: async () => {
        s3rver.httpServer.closeAllConnections();
        await s3rver.close();
      },
    };
  }
  const admin = (await createBackend(store.config)) as S3Backend;
  try {
    await admin.client.send(new CreateBucketCommand({ Bucket: opts.bucket }));
  } finally {
    await admin.close();
  }
  return store;
}
