import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileHasher } from '../../tiering/backends/file-hash.ts';
import {
  DEFAULT_S3_PART_SIZE,
  multipartEtag,
  normalizeEtag,
  S3_MAX_PARTS,
  S3_MIN_PART_SIZE,
  s3PartSize,
} from '../../tiering/backends/s3-etag.ts';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest();

/** The S3 multipart ETag written out from its definition, to check the streaming version against. */
function referenceEtag(data: Buffer, partSize: number): string {
  if (data.length <= partSize) return md5(data).toString('hex');
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += partSize) parts.push(md5(data.subarray(at, at + partSize)));
  return `${md5(Buffer.concat(parts)).toString('hex')}-${parts.length}`;
}

describe('multipartEtag with the part MD5s of the hash thread', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kelp-etag-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['empty', 0],
    ['smaller than a part', 700],
    ['exactly one part', 1024],
    ['one byte over a part', 1025],
    ['exactly three parts', 3072],
    ['three parts and a tail', 3500],
  ])('predicts the ETag of a %s file', async (_name, size) => {
    const partSize = 1024;
    const data = randomBytes(size);
    const path = join(dir, `${size}.dat`);
    await writeFile(path, data);
    // As S3Backend.upload asks: the parts' MD5s only when the file takes more than one part, else the whole's.
    const multipart = size > partSize;
    const { digest, parts } = await new FileHasher(path, {
      algorithm: 'md5',
      total: size,
      ...(multipart ? { partSize, partsOnly: true } : {}),
    }).result();
    expect(multipart ? multipartEtag(parts) : digest).toBe(referenceEtag(data, partSize));
    if (multipart) {
      expect(parts).toHaveLength(Math.ceil(size / partSize));
      expect(parts.map((p) => p.toString('hex'))).toEqual(
        Array.from({ length: parts.length }, (_, i) =>
          md5(data.subarray(i * partSize, (i + 1) * partSize)).toString('hex'),
        ),
      );
      expect(digest).toBe('');
      // Asked for the whole too, the same thread gives it beside the same parts.
      const both = await new FileHasher(path, { algorithm: 'md5', total: size, partSize }).result();
      expect(both.digest).toBe(md5(data).toString('hex'));
      expect(both.parts).toEqual(parts);
    } else {
      expect(digest).toBe(md5(data).toString('hex'));
    }
  });
});

describe('s3PartSize', () => {
  it('never goes below S3 minimum and grows so a file needs at most 10,000 parts', () => {
    expect(s3PartSize(1, 1024)).toBe(S3_MIN_PART_SIZE);
    expect(s3PartSize(100 * 1024 * 1024)).toBe(DEFAULT_S3_PART_SIZE);
    for (const size of [1e9, 200e9, 5 * 1024 ** 4]) {
      const part = s3PartSize(size);
      expect(Math.ceil(size / part)).toBeLessThanOrEqual(S3_MAX_PARTS);
      // No larger than needed: half of it would not fit.
      if (part > DEFAULT_S3_PART_SIZE) expect(Math.ceil(size / (part / 2))).toBeGreaterThan(S3_MAX_PARTS);
    }
  });
});

describe('normalizeEtag', () => {
  it('drops quotes and a weak marker', () => {
    expect(normalizeEtag('"ABC-3"')).toBe('abc-3');
    expect(normalizeEtag('W/"abc"')).toBe('abc');
    expect(normalizeEtag(undefined)).toBeUndefined();
  });
});
