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
 * job: `{ progress }` every PROGRESS_EVERY_BYTES, `{ part, index }` as each
 * part is done when the job asks for them (`streamParts`), then one
 * `{ digest, parts }` or `{ error }`.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { nativeCrc32cUpdate } from '../../origin/native-crc.ts';

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
  /** With partSize: send each part's digest as soon as it is done (an upload signs the part with it). */
  streamParts: boolean;
}

type Message = ({ type: 'job' } & Job) | { type: 'advance'; available: number };

/** What `createHash` returns, as far as this file uses it; CRC-32C has the same shape below. */
interface Digest {
  update(chunk: Uint8Array): unknown;
  digest(): Buffer;
}

/**
 * CRC-32C (the native SSE4.2 step, 5-6 GB/s here: about four times SHA-256)
 * as a digest: the unsigned value, 4 bytes big-endian, so its hex is the
 * usual 8-digit spelling (`e3069283` for "123456789").
 */
function crc32cDigest(): Digest {
  let crc = 0;
  return {
    update(chunk) {
      crc = nativeCrc32cUpdate(chunk, crc);
    },
    digest() {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(crc >>> 0);
      return out;
    },
  };
}

function newDigest(algorithm: string): Digest {
  return algorithm === 'crc32c' ? crc32cDigest() : createHash(algorithm);
}

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
  const whole = job.partsOnly ? undefined : newDigest(job.algorithm);
  const parts: Uint8Array[] = [];
  let part: Digest | undefined = job.partSize > 0 ? newDigest(job.algorithm) : undefined;
  let inPart = 0;
  // A part's digest goes to the upload as soon as it is done, when the job asks (streamParts).
  const endPart = (done: Digest) => {
    const digest = done.digest();
    if (job.streamParts) parentPort!.postMessage({ part: digest, index: parts.length });
    parts.push(digest);
  };
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
          endPart(part);
          part = newDigest(job.algorithm);
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
    if (part && (inPart > 0 || parts.length === 0)) endPart(part);
    return { digest: whole?.digest().toString('hex') ?? '', parts };
  } finally {
    closeSync(fd);
  }
}
