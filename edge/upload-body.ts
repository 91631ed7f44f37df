/**
 * An upload's body on its way through the Worker: streamed, never held whole
 * (a Worker has 128 MB of memory; uploads may be 256 MiB), counted against the
 * size limit as it passes, and replayable from its start while little of it
 * has been read, so a master that refuses the connection can be replaced by
 * the next one (fetch reads the first chunks before it has a connection).
 */
import { PayloadTooLargeError } from '../shared/errors.ts';

/** Bytes kept to replay the start of a body to the next master. */
export const REPLAY_BYTES = 1024 * 1024;

export class UploadBody {
  /** Bytes read from the client so far. */
  read = 0;
  /** The client sent more than the limit: the upload was cut off. */
  overLimit = false;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly limit: number;
  /** Copies of the chunks read so far, while they fit in REPLAY_BYTES; undefined once they did not. */
  private head: Uint8Array[] | undefined = [];
  private headBytes = 0;
  /** Only the latest stream() reads from the client; older ones (failed attempts) stop. */
  private generation = 0;
  /** The read in progress, if any: a new stream() waits for it (its chunk belongs to the replay). */
  private pending: Promise<void> | undefined;

  constructor(body: ReadableStream<Uint8Array>, limit: number) {
    this.reader = body.getReader();
    this.limit = limit;
  }

  /** Whether a new stream() would start from the body's first byte. */
  get replayable(): boolean {
    return this.head !== undefined;
  }

  /**
   * A stream of the whole body from its start (only while replayable). Await
   * settled() first when an earlier stream may still have a read in flight.
   */
  stream(): ReadableStream<Uint8Array> {
    const generation = ++this.generation;
    const replay = [...(this.head ?? [])];
    return new ReadableStream<Uint8Array>({
      pull: (controller) => {
        const kept = replay.shift();
        if (kept) {
          controller.enqueue(kept);
          return;
        }
        if (generation !== this.generation) return;
        this.pending = this.next(controller, generation);
        return this.pending;
      },
    });
  }

  /** Resolves when no read from the client is in flight. */
  async settled(): Promise<void> {
    await this.pending?.catch(() => {});
  }

  cancel(): Promise<void> {
    return this.reader.cancel().catch(() => {});
  }

  private async next(controller: ReadableStreamDefaultController<Uint8Array>, generation: number) {
    const { done, value } = await this.reader.read();
    const current = generation === this.generation;
    if (done) {
      if (current) controller.close();
      return;
    }
    this.read += value.byteLength;
    if (this.read > this.limit) {
      this.overLimit = true;
      // The origin sees the request break off; the client gets the 413.
      if (current) controller.error(new PayloadTooLargeError(`upload exceeds ${this.limit} bytes`));
      await this.reader.cancel().catch(() => {});
      return;
    }
    if (this.head) {
      if (this.headBytes + value.byteLength <= REPLAY_BYTES) {
        this.head.push(value.slice());
        this.headBytes += value.byteLength;
      } else {
        this.head = undefined;
      }
    }
    if (current) controller.enqueue(value);
  }
}
