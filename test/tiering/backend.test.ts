import { describe, expect, it } from 'vitest';
import {
  ChecksumMismatchError,
  InvalidParamError,
  NotFoundError,
  TruncatedDataError,
  UnavailableError,
  UpstreamError,
} from '../../shared/errors.ts';
import { type BackendConfig, backendName, redactConfig } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import { crc32cBase64, mapGcsError } from '../../tiering/backends/gcs.ts';
import { mapFsError } from '../../tiering/backends/local.ts';
import { mapS3Error } from '../../tiering/backends/s3.ts';

const s3: BackendConfig = {
  type: 's3',
  id: 'archive',
  endpoint: 'http://127.0.0.1:1',
  region: 'us-east-1',
  bucket: 'b',
  accessKeyId: 'AKIAEXAMPLEKEY',
  secretAccessKey: 'very-secret-value',
  sessionToken: 'session-secret',
};

describe('createBackend', () => {
  it('builds each type and names it type.id', async () => {
    const local = await createBackend({ type: 'local', id: 'default', path: '/tmp/kelp-tier-never-written' });
    const remote = await createBackend(s3);
    const gcs = await createBackend({
      type: 'gcs',
      id: 'default',
      bucket: 'b',
      apiEndpoint: 'http://127.0.0.1:1',
    });
    expect([local.name, remote.name, gcs.name]).toEqual(['local.default', 's3.archive', 'gcs.default']);
    expect([local.type, remote.type, gcs.type]).toEqual(['local', 's3', 'gcs']);
    expect(backendName({ type: 's3', id: 'default' })).toBe('s3.default');
    await Promise.all([local.close(), remote.close(), gcs.close()]);
  });

  it('refuses configs that miss what the backend needs', async () => {
    const bad: unknown[] = [
      { type: 'local', id: 'default' },
      { type: 's3', id: 'default', region: 'us-east-1' },
      { type: 's3', id: 'default', region: 'us-east-1', bucket: 'b', accessKeyId: 'only-the-id' },
      { type: 'gcs', id: 'default' },
      { type: 'ftp', id: 'default' },
      { type: 'local', path: '/x' },
    ];
    for (const config of bad) {
      await expect(createBackend(config as BackendConfig), JSON.stringify(config)).rejects.toBeInstanceOf(
        InvalidParamError,
      );
    }
  });
});

describe('redactConfig', () => {
  it('hides secrets and shortens the access key id', () => {
    const shown = JSON.stringify(redactConfig(s3));
    expect(shown).not.toContain('very-secret-value');
    expect(shown).not.toContain('session-secret');
    expect(shown).not.toContain('AKIAEXAMPLEKEY');
    expect(redactConfig(s3)).toMatchObject({
      type: 's3',
      id: 'archive',
      bucket: 'b',
      secretAccessKey: '[redacted]',
    });
  });
});

const sdkError = (name: string, status?: number, code?: string) =>
  Object.assign(new Error(name), {
    name,
    ...(status ? { $metadata: { httpStatusCode: status } } : {}),
    code,
  });

describe('error mapping', () => {
  it('maps S3 failures to typed errors', () => {
    expect(mapS3Error(sdkError('NoSuchKey', 404), 'x')).toBeInstanceOf(NotFoundError);
    expect(mapS3Error(sdkError('NotFound', 404), 'x')).toBeInstanceOf(NotFoundError);
    expect(mapS3Error(sdkError('NoSuchBucket', 404), 'x')).toBeInstanceOf(UpstreamError);
    expect(mapS3Error(sdkError('InvalidRange', 416), 'x')).toBeInstanceOf(TruncatedDataError);
    expect(mapS3Error(sdkError('InternalError', 500), 'x')).toBeInstanceOf(UnavailableError);
    expect(mapS3Error(sdkError('SlowDown', 503), 'x')).toBeInstanceOf(UnavailableError);
    expect(mapS3Error(sdkError('Unknown', 429), 'x')).toBeInstanceOf(UnavailableError);
    expect(mapS3Error(sdkError('Error', undefined, 'ECONNREFUSED'), 'x')).toBeInstanceOf(UnavailableError);
    expect(mapS3Error(sdkError('TimeoutError'), 'x')).toBeInstanceOf(UnavailableError);
    expect(mapS3Error(sdkError('AccessDenied', 403), 'x')).toBeInstanceOf(UpstreamError);
    const bug = new TypeError('bug');
    expect(mapS3Error(bug, 'x')).toBe(bug);
    const abort = Object.assign(new Error('aborted'), { name: 'AbortError' });
    expect(mapS3Error(abort, 'x')).toBe(abort);
  });

  it('maps GCS failures to typed errors', () => {
    const api = (code: number | string) => Object.assign(new Error('api'), { code });
    expect(mapGcsError(api(404), 'x')).toBeInstanceOf(NotFoundError);
    expect(mapGcsError(api(416), 'x')).toBeInstanceOf(TruncatedDataError);
    expect(mapGcsError(api(503), 'x')).toBeInstanceOf(UnavailableError);
    expect(mapGcsError(api('ECONNRESET'), 'x')).toBeInstanceOf(UnavailableError);
    expect(mapGcsError(api('FILE_NO_UPLOAD'), 'x')).toBeInstanceOf(ChecksumMismatchError);
    expect(mapGcsError(api('CONTENT_DOWNLOAD_MISMATCH'), 'x')).toBeInstanceOf(ChecksumMismatchError);
    expect(mapGcsError(api(403), 'x')).toBeInstanceOf(UpstreamError);
  });

  it('maps filesystem failures: ENOENT is not found, a failing disk or mount is unavailable', () => {
    const fsErr = (code: string) => Object.assign(new Error(code), { code });
    expect(mapFsError(fsErr('ENOENT'), 'x')).toBeInstanceOf(NotFoundError);
    expect(mapFsError(fsErr('EIO'), 'x')).toBeInstanceOf(UnavailableError);
    expect(mapFsError(fsErr('ESTALE'), 'x')).toBeInstanceOf(UnavailableError);
    const other = fsErr('EACCES');
    expect(mapFsError(other, 'x')).toBe(other);
  });

  it('writes CRC-32C the way GCS reports it', () => {
    // 0xE3069283 is the CRC-32C check value (of "123456789").
    expect(crc32cBase64(0xe3069283)).toBe('4waSgw==');
  });
});
