/**
 * The Firebase Storage emulator's GCS JSON API, started in-process from
 * firebase-tools internals (toolchain.md): its CLI needs Java 21 and downloads
 * a rules-runtime jar at start, neither of which this machine has, and the
 * GCS API path (admin requests) never consults security rules, so the rules
 * runtime and manager are replaced by no-ops. These are internals of the
 * pinned firebase-tools version (package.json): a new version may move them.
 *
 * The harness serves the emulator's express app from its own node:http
 * server, so it can count requests at the server (the check that a read is
 * one GET).
 *
 * What the emulator cannot do (so the tests do not ask it to): create buckets
 * (501; a bucket appears on first upload), and resumable uploads sent in
 * several chunks (FILE_NO_UPLOAD). It answers an unsatisfiable Range with the
 * whole object and a 200, which the GCS backend treats as a short read.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);

interface StorageEmulatorInstance {
  getName(): string;
  getInfo(): { host: string; port: number };
  stop(): Promise<void>;
  _rulesRuntime: unknown;
  _rulesManager: unknown;
}
type StorageEmulatorClass = new (args: {
  projectId: string;
  host: string;
  port: number;
  auto_download?: boolean;
}) => StorageEmulatorInstance;
type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js') as {
  StorageEmulator: StorageEmulatorClass;
};
const { createApp } = require('firebase-tools/lib/emulator/storage/server.js') as {
  createApp(projectId: string, emulator: StorageEmulatorInstance): Promise<RequestListener>;
};
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js') as {
  EmulatorRegistry: {
    set(name: string, instance: StorageEmulatorInstance): void;
    clear(name: string): void;
  };
};

export interface GcsEmulator {
  /** `http://127.0.0.1:PORT`, for `apiEndpoint`. */
  readonly endpoint: string;
  readonly port: number;
  /** Requests seen by the server, by method, and GETs of object bytes (`alt=media`). */
  readonly counts: { all: number; mediaGets: number };
  stop(): Promise<void>;
}

export async function startGcsEmulator(projectId = 'kelp-test'): Promise<GcsEmulator> {
  const dir = await mkdtemp(join(tmpdir(), 'kelp-gcs-'));
  // The emulator keeps blobs under os.tmpdir()/firebase/storage/blobs by default, shared by every instance
  // on the machine and removed whole by stop(); a subclass gives each run its own directory.
  class IsolatedEmulator extends (StorageEmulator as StorageEmulatorClass) {
    getPersistenceTmpDir(): string {
      return join(dir, 'blobs');
    }
  }
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  const emulator = new IsolatedEmulator({ projectId, host: '127.0.0.1', port, auto_download: false });
  const noop = async () => {};
  emulator._rulesRuntime = { start: noop, stop: noop };
  emulator._rulesManager = { start: noop, stop: noop, getRuleset: () => undefined };
  // Object metadata carries self and media links built from the registry's host and port.
  EmulatorRegistry.set(emulator.getName(), emulator);
  const app = await createApp(projectId, emulator);

  const counts = { all: 0, mediaGets: 0 };
  server.on('request', (req: IncomingMessage, res) => {
    counts.all++;
    if (req.method === 'GET' && /[?&]alt=media(&|$)/.test(req.url ?? '')) counts.mediaGets++;
    app(req, res);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    counts,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await emulator.stop().catch(() => {});
      EmulatorRegistry.clear(emulator.getName());
      await rm(dir, { recursive: true, force: true });
    },
  };
}
