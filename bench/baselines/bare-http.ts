/**
 * Bare node:http servers that do the same I/O as a Kelp path and nothing else:
 * the baselines every bench row is measured against.
 *   node bench/baselines/bare-http.ts <mode> [dir]
 * modes: constant | pread-sync | pread-sync-headers | pread-callback | pread-promise | stream | append-nosync | append-group | append-always | append-group-forward | assign
 * Prints `listening <port>` once ready. The read modes read KELP_BENCH_READ_BLOB
 * bytes (default 1 KiB) at a random blob-aligned offset of KELP_BENCH_READ_BYTES
 * bytes (default 256 MiB) written into `dir` at startup, spread over
 * KELP_BENCH_READ_FILES files (default 1; a random one per request, as Kelp
 * spreads blobs over volumes). `stream` pipes the range with a read stream
 * (what a static file server does for large files). `append-group-forward`
 * is `append-group` that also POSTs each body to the bare server on
 * 127.0.0.1:KELP_BENCH_PEER (keep-alive, one request per write) and answers
 * once both have it: the least a replicated write does. `assign` answers
 * every request with a fresh file id and KELP_BENCH_ASSIGN_URL as JSON, from a
 * counter: the least a master's /dir/assign does.
 */
import {
  closeSync,
  createReadStream,
  fdatasync,
  fdatasyncSync,
  openSync,
  read,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BLOB = Number(process.env.KELP_BENCH_READ_BLOB ?? 1024);
const READ_FILES = Number(process.env.KELP_BENCH_READ_FILES ?? 1);
/** Bytes of each read file: the total over the files, rounded up to whole blobs. */
const READ_FILE_BYTES =
  Math.ceil(Number(process.env.KELP_BENCH_READ_BYTES ?? 256 * 1024 * 1024) / READ_FILES / BLOB) * BLOB;
const mode = process.argv[2] ?? 'constant';
const dir = process.argv[3] ?? tmpdir();

/** Fixed values for pread-sync-headers: a date and an 8-character id prefix, as Kelp's. */
const LAST_MODIFIED = new Date().toUTCString();
const REQUEST_ID_PREFIX = 'bAReHdRs';

const readPath = (i: number): string => join(dir, `kelp-bench-read-${process.pid}-${i}.bin`);

function makeReadFile(i: number): string {
  const path = readPath(i);
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4 * 1024 * 1024, 7);
  for (let off = 0; off < READ_FILE_BYTES; off += chunk.length) {
    writeSync(fd, chunk, 0, Math.min(chunk.length, READ_FILE_BYTES - off));
  }
  closeSync(fd);
  return path;
}

const randomOffset = (): number => Math.floor(Math.random() * (READ_FILE_BYTES / BLOB)) * BLOB;

function collect(req: IncomingMessage, done: (body: Buffer) => void): void {
  const parts: Buffer[] = [];
  req.on('data', (c: Buffer) => parts.push(c));
  req.on('end', () => done(Buffer.concat(parts)));
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function handlerFor(m: string): Handler {
  if (m === 'assign') {
    const url = process.env.KELP_BENCH_ASSIGN_URL ?? '127.0.0.1:0';
    let key = 0;
    return (_req, res) => {
      const fid = `1,${(++key).toString(16)}00000001`;
      const body = JSON.stringify({ fid, url, publicUrl: url, count: 1 });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
  }
  if (m === 'constant') {
    const body = Buffer.alloc(BLOB, 7);
    return (_req, res) => res.end(body);
  }
  if (m.startsWith('pread') || m === 'stream') {
    const paths = Array.from({ length: READ_FILES }, (_, i) => makeReadFile(i));
    const fds = paths.map((p) => openSync(p, 'r'));
    const randomFd = (): number => fds[READ_FILES === 1 ? 0 : Math.floor(Math.random() * READ_FILES)]!;
    if (m === 'pread-sync') {
      return (_req, res) => {
        const buf = Buffer.allocUnsafe(BLOB);
        readSync(randomFd(), buf, 0, BLOB, randomOffset());
        res.end(buf);
      };
    }
    if (m === 'pread-sync-headers') {
      // The same pread, answered with the header set a Kelp blob read carries (values of the same
      // lengths, only the ETag and request id differ per request): what those headers cost on their own.
      let n = 0;
      return (_req, res) => {
        const buf = Buffer.allocUnsafe(BLOB);
        readSync(randomFd(), buf, 0, BLOB, randomOffset());
        n = (n + 1) % 0x7fffffff;
        res.writeHead(200, {
          'Content-Type': 'application/octet-stream',
          ETag: `"${(n * 2654435761).toString(16).padStart(8, '0').slice(-8)}"`,
          'Accept-Ranges': 'bytes',
          'X-Content-Type-Options': 'nosniff',
          'Content-Disposition': 'attachment',
          'Last-Modified': LAST_MODIFIED,
          'X-Request-Id': `${REQUEST_ID_PREFIX}-${n.toString(36)}`,
          'Content-Length': BLOB,
        });
        res.end(buf);
      };
    }
    if (m === 'pread-callback') {
      return (_req, res) => {
        const buf = Buffer.allocUnsafe(BLOB);
        read(randomFd(), buf, 0, BLOB, randomOffset(), () => res.end(buf));
      };
    }
    if (m === 'stream') {
      return (_req, res) => {
        const start = randomOffset();
        res.writeHead(200, { 'Content-Length': BLOB });
        createReadStream('', { fd: randomFd(), start, end: start + BLOB - 1, autoClose: false }).pipe(res);
      };
    }
    const handleP = open(paths[0]!, 'r');
    return (_req, res) => {
      void handleP.then(async (h) => {
        const buf = Buffer.allocUnsafe(BLOB);
        await h.read(buf, 0, BLOB, randomOffset());
        res.end(buf);
      });
    };
  }
  const fd = openSync(join(dir, `kelp-bench-append-${process.pid}.bin`), 'a');
  if (m === 'append-nosync') {
    return (req, res) =>
      collect(req, (b) => {
        writeSync(fd, b);
        res.end('{}');
      });
  }
  if (m === 'append-always') {
    return (req, res) =>
      collect(req, (b) => {
        writeSync(fd, b);
        fdatasyncSync(fd);
        res.end('{}');
      });
  }
  // Group commit: start the next fdatasync as soon as the previous one ends,
  // covering every write that arrived meanwhile.
  let waiting: Array<() => void> = [];
  let syncing = false;
  const flush = (): void => {
    if (syncing || waiting.length === 0) return;
    const batch = waiting;
    waiting = [];
    syncing = true;
    fdatasync(fd, () => {
      syncing = false;
      for (const done of batch) done();
      flush();
    });
  };
  if (m === 'append-group-forward') {
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const peer = Number(process.env.KELP_BENCH_PEER);
    return (req, res) =>
      collect(req, (b) => {
        writeSync(fd, b);
        // Answered once both the local sync and the peer's answer are in.
        let pending = 2;
        const done = () => --pending === 0 && res.end('{}');
        waiting.push(done);
        flush();
        const fwd = request({ host: '127.0.0.1', port: peer, method: 'POST', path: '/', agent }, (r) => {
          r.resume();
          r.on('end', done);
        });
        fwd.end(b);
      });
  }
  return (req, res) =>
    collect(req, (b) => {
      writeSync(fd, b);
      waiting.push(() => res.end('{}'));
      flush();
    });
}

const server = createServer(handlerFor(mode));
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`listening ${typeof addr === 'object' && addr ? addr.port : 0}`);
});
// The files this server made go with it (a 256 MiB read file per run adds up in the temp dir).
process.on('SIGTERM', () => {
  for (let i = 0; i < READ_FILES; i++) rmSync(readPath(i), { force: true });
  rmSync(join(dir, `kelp-bench-append-${process.pid}.bin`), { force: true });
  process.exit(0);
});
