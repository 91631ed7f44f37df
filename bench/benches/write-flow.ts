/**
 * Writes as users make them (issue 15 item 1), through `kelp server`
 * (`--volume.fsync batch`), with 1 KiB and 1 MiB blobs: the two-request flow
 * (GET /dir/assign at the master, then PUT the blob to the volume server it
 * names) and `/submit` (one multipart POST to the master), each beside a bare
 * node:http server appending the same bodies with group fdatasync, and beside
 * the same bare flow of two requests (a bare `assign` server naming the bare
 * append server: what two exchanges per write cost with nothing else). All
 * are driven by the same in-process loop (bench/lib/drive.ts): wrk cannot
 * make one request of two calls to two ports.
 */
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compare } from '../lib/compare.ts';
import { drive } from '../lib/drive.ts';
import { scratchDir } from '../lib/kelp.ts';
import { type Started, startBehind, startServer } from '../lib/process.ts';
import type { Row } from '../lib/table.ts';
import type { Bench } from '../run.ts';
import { startCluster } from './cluster.ts';

const BARE = fileURLToPath(new URL('../baselines/bare-http.ts', import.meta.url));
const BOUNDARY = 'kelpbenchboundary7f3a';
const SIZES = [
  { label: '1 KiB', bytes: 1024 },
  { label: '1 MiB', bytes: 1024 * 1024 },
];

interface Answer {
  status: number;
  body: Buffer;
}

function call(
  port: number,
  method: string,
  path: string,
  body: Buffer | undefined,
  agent: Agent,
  headers = {},
) {
  return new Promise<Answer>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function multipart(blob: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="b.bin"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    blob,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

/** A bare append-group server and a bare `assign` server naming it; resolves to the latter. */
function startBareTwoRequests(dir: string): Promise<Started> {
  return startBehind(
    () => startServer([BARE, 'append-group', dir]),
    (append) => startServer([BARE, 'assign'], { env: { KELP_BENCH_ASSIGN_URL: `127.0.0.1:${append.port}` } }),
  );
}

const bench: Bench = {
  name: 'write-flow',
  description: 'kelp server: assign + PUT (two requests) and /submit, 1 KiB and 1 MiB, vs bare group commit',
  async run(ctx) {
    const scratch = scratchDir('write-flow');
    const agent = new Agent({ keepAlive: true, maxSockets: ctx.connections * 2 });
    const rows: Row[] = [];
    try {
      for (const size of SIZES) {
        const blob = Buffer.alloc(size.bytes, 'k');
        const form = multipart(blob);
        let volumePort = 0;
        // GET /dir/assign, then PUT the blob where it says; a write counts when the PUT answers `stored`.
        const assignThenPut = (stored: number) => (port: number, c: number, d: number) =>
          drive(
            async () => {
              const a = await call(port, 'GET', '/dir/assign', undefined, agent);
              if (a.status !== 200) return false;
              const { fid, url } = JSON.parse(a.body.toString()) as { fid: string; url: string };
              const target = Number(url.split(':')[1] ?? volumePort);
              return (await call(target, 'PUT', `/${fid}`, blob, agent)).status === stored;
            },
            c,
            d,
          );
        // One assign before the rounds: the first grows the volumes (files created and synced),
        // which is start-up, not the steady state the rounds measure.
        const cluster = async () => {
          const started = await startCluster(join(scratch.dir, `${size.bytes}-${Math.random()}`));
          const warm = await call(started.master.port, 'GET', '/dir/assign', undefined, agent);
          if (warm.status !== 200) throw new Error(`warm-up assign: HTTP ${warm.status}`);
          return started;
        };
        rows.push(
          ...(await compare(
            [
              {
                subject: `bare append + group fdatasync, ${size.label}`,
                start: () => startServer([BARE, 'append-group', scratch.dir]),
                load: () => ({ url: '' }),
                drive: (port, c, d) =>
                  drive(async () => (await call(port, 'POST', '/', blob, agent)).status === 200, c, d),
              },
              {
                // Not a goal: what two exchanges per write cost with nothing else done.
                subject: `bare assign + append (two requests), ${size.label}`,
                start: () => startBareTwoRequests(scratch.dir),
                load: () => ({ url: '' }),
                drive: assignThenPut(200),
              },
              {
                subject: `kelp assign + PUT (two requests), ${size.label}`,
                start: async () => {
                  const started = await cluster();
                  volumePort = started.volumePort;
                  return started.master;
                },
                load: () => ({ url: '' }),
                drive: assignThenPut(201),
              },
              {
                subject: `kelp /submit (one request), ${size.label}`,
                start: async () => (await cluster()).master,
                load: () => ({ url: '' }),
                drive: (port, c, d) =>
                  drive(
                    async () =>
                      (
                        await call(port, 'POST', '/submit', form, agent, {
                          'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`,
                        })
                      ).status === 201,
                    c,
                    d,
                  ),
              },
            ],
            { bench: `write ${size.label}`, ...ctx, goal: 'two requests ≥ 60 %, /submit ≥ 50 %' },
          )),
        );
      }
      return rows;
    } finally {
      agent.destroy();
      scratch.remove();
    }
  },
};
export default bench;
