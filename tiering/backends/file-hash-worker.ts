/**
 * The thread body of file-hash.ts: hashes a file's bytes [0, total) in
 * order, reading them itself (preads of HASH_CHUNK_BYTES, from the page cache
 * when the file was just read or written), never past what the main thread
 * has said is final (`available`, raised by `advance` messages while a
 * download is still writing the file). Imports only node: modules, so Node
 * runs it as it is.
 *
 * Messages in: `{ type: 'job', ... }`, one at a time (a thread serves many
 * jobs, one after the other), and `{ type: 'advance', available }`. Out, per
 * job: `{ progress }` every PROGRESS_EVERY_BYTES, then one `{ digest, parts }`
 * or `{ error }`.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

/** One pread: big enough that syscalls cost nothing next to the hash, small enough to bound memory. */
const HASH_CHUNK_BYTES = 1024 * 1024;
const PROGRESS_EVERY_BYTES = 4 * HASH_CHUNK_BYTES;

interface Job {
  path: string;
  algorithm: string;
  total: number;
  available: number;
  /** Digest each part of this many bytes too (S3 multipart ETags); 0 for none. */
  partSize: number;
  /** With partSize: no digest of the whole range (it costs as much again); `digest` is ''. */
  partsOnly: boolean;
}

type Message = ({ type: 'job' } & Job) | { type: 'advance'; available: number };

// One job at a time: file-hash.ts sends the next only after this one's answer.
let available = 0;
let total = 0;
let wake: (() => void) | undefined;
parentPort!.on('message', (m: Message) => {
  if (m.type === 'advance') {
    available = Math.max(available, Math.min(m.available, total));
    wake?.();
    return;
  }
  total = m.total;
  available = Math.min(m.available, m.total);
  run(m).then(
    (result) => parentPort!.postMessage(result),
    (err: unknown) => parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  );
});

async function run(job: Job): Promise<{ digest: string; parts: Uint8Array[] }> {
  const whole = job.partsOnly ? undefined : createHash(job.algorithm);
  const parts: Uint8Array[] = [];
  let part: Hash | undefined = job.partSize > 0 ? createHash(job.algorithm) : undefined;
  let inPart = 0;
  const buf = Buffer.allocUnsafe(HASH_CHUNK_BYTES);
  const fd = openSync(job.path, 'r');
  let hashed = 0;
  let reported = 0;
  try {
    while (hashed < job.total) {
      if (hashed >= available) {
        // Nothing final to read yet: wait for the writer to say more is.
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      let want = Math.min(HASH_CHUNK_BYTES, available - hashed);
      if (part) want = Math.min(want, job.partSize - inPart);
      const n = readSync(fd, buf, 0, want, hashed);
      if (n === 0) throw new Error(`${job.path} ends at ${hashed} bytes, ${job.total} expected`);
      const chunk = buf.subarray(0, n);
      whole?.update(chunk);
      if (part) {
        part.update(chunk);
        inPart += n;
        if (inPart === job.partSize) {
          parts.push(part.digest());
          part = createHash(job.algorithm);
          inPart = 0;
        }
      }
      hashed += n;
      if (hashed - reported >= PROGRESS_EVERY_BYTES) {
        reported = hashed;
        parentPort!.postMessage({ progress: hashed });
        // Let `advance` messages in.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    if (part && (inPart > 0 || parts.length === 0)) parts.push(part.digest());
    return { digest: whole?.digest('hex') ?? '', parts };
  } finally {
    closeSync(fd);
  }
}
