/**
 * Bare node:http servers that do the same I/O as a Kelp path and nothing else:
 * the baselines every bench row is measured against.
 *   node bench/baselines/bare-http.ts <mode> [dir]
 * modes: constant | pread-sync | pread-callback | pread-promise | append-nosync | append-group | append-always
 * Prints `listening <port>` once ready. The pread modes read a file of
 * KELP_BENCH_READ_BYTES bytes (default 256 MiB) written into `dir` at startup.
 */
import { closeSync, fdatasync, fdatasyncSync, openSync, read, readSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BLOB = 1024;
const READ_FILE_BYTES = Number(process.env.KELP_BENCH_READ_BYTES ?? 256 * 1024 * 1024);
const mode = process.argv[2] ?? 'constant';
const dir = process.argv[3] ?? tmpdir();

function makeReadFile(): string {
  const path = join(dir, `kelp-bench-read-${process.pid}.bin`);
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
  if (m === 'constant') {
    const body = Buffer.alloc(BLOB, 7);
    return (_req, res) => res.end(body);
  }
  if (m.startsWith('pread')) {
    const fd = openSync(makeReadFile(), 'r');
    if (m === 'pread-sync') {
      return (_req, res) => {
        const buf = Buffer.allocUnsafe(BLOB);
        readSync(fd, buf, 0, BLOB, randomOffset());
        res.end(buf);
      };
    }
    if (m === 'pread-callback') {
      return (_req, res) => {
        const buf = Buffer.allocUnsafe(BLOB);
        read(fd, buf, 0, BLOB, randomOffset(), () => res.end(buf));
      };
    }
    const handleP = open(join(dir, `kelp-bench-read-${process.pid}.bin`), 'r');
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
  let waiting: ServerResponse[] = [];
  let syncing = false;
  const flush = (): void => {
    if (syncing || waiting.length === 0) return;
    const batch = waiting;
    waiting = [];
    syncing = true;
    fdatasync(fd, () => {
      syncing = false;
      for (const r of batch) r.end('{}');
      flush();
    });
  };
  return (req, res) =>
    collect(req, (b) => {
      writeSync(fd, b);
      waiting.push(res);
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
  for (const f of [`kelp-bench-read-${process.pid}.bin`, `kelp-bench-append-${process.pid}.bin`]) {
    rmSync(join(dir, f), { force: true });
  }
  process.exit(0);
});
