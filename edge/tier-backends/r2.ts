/**
 * An R2 bucket through the Worker's binding (`env.TIER.get(key, {range})`):
 * no credentials, no signing, and the request stays inside Cloudflare.
 */
import { NotFoundError, TruncatedDataError, UnavailableError } from '../../shared/errors.ts';
import type { Conditional, TierCost, TierReader } from './reader.ts';

/** What an R2 `get` gives back: the object's metadata, with a body unless a precondition failed. */
interface R2Got {
  etag: string;
  body?: ReadableStream | null;
  arrayBuffer?(): Promise<ArrayBuffer>;
}

/**
 * The part of the R2 binding used here (workers-types' R2Bucket), declared
 * structurally so that Node-side code importing the edge's config needs no Worker types.
 */
export interface R2Binding {
  get(
    key: string,
    options?: { range?: { offset: number; length: number }; onlyIf?: { etagDoesNotMatch?: string } },
  ): Promise<R2Got | null>;
}

export class R2Reader implements TierReader {
  readonly kind = 'r2';
  readonly bucket: string;
  readonly #binding: R2Binding;

  constructor(binding: R2Binding, bucket: string) {
    this.#binding = binding;
    this.bucket = bucket;
  }

  async read(key: string, offset: number, length: number, cost: TierCost): Promise<Uint8Array> {
    cost.requests++;
    let obj: R2Got | null;
    try {
      obj = await this.#binding.get(key, { range: { offset, length } });
    } catch (err) {
      throw new UnavailableError(`r2 ${this.bucket}/${key}: ${(err as Error).message}`, 1, { cause: err });
    }
    if (!obj?.arrayBuffer) throw new NotFoundError(`r2 ${this.bucket}/${key}: no such object`);
    const bytes = new Uint8Array(await obj.arrayBuffer());
    cost.bytes += bytes.length;
    if (bytes.length !== length) {
      throw new TruncatedDataError(
        `r2 ${this.bucket}/${key}: ${bytes.length} bytes for a ${length}-byte range`,
      );
    }
    return bytes;
  }

  async readIfChanged(key: string, etag: string | undefined, cost: TierCost): Promise<Conditional> {
    cost.requests++;
    let obj: R2Got | null;
    try {
      obj = await this.#binding.get(key, etag ? { onlyIf: { etagDoesNotMatch: etag } } : {});
    } catch (err) {
      throw new UnavailableError(`r2 ${this.bucket}/${key}: ${(err as Error).message}`, 1, { cause: err });
    }
    if (!obj) return { kind: 'missing' };
    // A failed precondition comes back as the object's metadata without a body.
    if (!obj.body || !obj.arrayBuffer) return { kind: 'unchanged' };
    const bytes = new Uint8Array(await obj.arrayBuffer());
    cost.bytes += bytes.length;
    return { kind: 'changed', etag: obj.etag, bytes };
  }
}
