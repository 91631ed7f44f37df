import { describe, expect, it } from 'vitest';
import {
  BadRequestError,
  ConflictError,
  errorBody,
  errorFromBody,
  InsufficientStorageError,
  InvalidFidError,
  type KelpError,
  MAX_ERROR_TEXT_CHARS,
  NotFoundError,
  NotLeaderError,
  ReadOnlyVolumeError,
  UnavailableError,
  UpstreamError,
  VolumeDeletedError,
  VolumeNotFoundError,
} from '../../../shared/errors.ts';

/** What a server sends for `err`, read back by a client. */
function roundTrip(err: KelpError): KelpError {
  return errorFromBody(err.status, JSON.stringify(errorBody(err)));
}

describe('errorFromBody', () => {
  it('reads back the class, code and message of every error errorBody writes', () => {
    const sent = [
      new InvalidFidError('bad fid "x"'),
      new ConflictError('a transfer is already running'),
      new NotLeaderError('not the leader', 2),
      new InsufficientStorageError('disk full'),
    ];
    for (const err of sent) {
      const back = roundTrip(err);
      expect(back).toBeInstanceOf(err.constructor);
      expect(back.code).toBe(err.code);
      expect(back.status).toBe(err.status);
      expect(back.message).toBe(err.message);
    }
  });

  it('keeps the code of a subclass that shares its status with its base class', () => {
    const back = errorFromBody(404, JSON.stringify({ error: 'not found', code: 'volume_not_found' }));
    expect(back).toBeInstanceOf(VolumeNotFoundError);
    expect(back.code).toBe('volume_not_found');
  });

  it('reads a deleted volume back as a 410 that is still a NotFoundError (a plain 410 too)', () => {
    const back = roundTrip(new VolumeDeletedError('volume 7 was deleted'));
    expect(back).toBeInstanceOf(VolumeDeletedError);
    expect(back).toBeInstanceOf(NotFoundError);
    expect([back.status, back.code]).toEqual([410, 'volume_deleted']);
    expect(errorFromBody(410, '')).toBeInstanceOf(VolumeDeletedError);
    // A volume with no live holder stays the plain 404.
    expect(errorFromBody(404, '')).not.toBeInstanceOf(VolumeDeletedError);
  });

  it('reads a sealed volume back as a conflict too (both are 409s of the target state)', () => {
    const back = roundTrip(new ReadOnlyVolumeError('volume 3 is read-only'));
    expect(back).toBeInstanceOf(ReadOnlyVolumeError);
    expect(back).toBeInstanceOf(ConflictError);
    expect(errorFromBody(409, '')).not.toBeInstanceOf(ReadOnlyVolumeError);
  });

  it('falls back to the class of the status when the body has no code', () => {
    expect(errorFromBody(409, '{"error":"busy"}')).toBeInstanceOf(ConflictError);
    expect(errorFromBody(400, 'nope')).toBeInstanceOf(BadRequestError);
    expect(errorFromBody(404, '')).toBeInstanceOf(NotFoundError);
    expect(errorFromBody(404, '')).not.toBeInstanceOf(VolumeNotFoundError);
    const unavailable = errorFromBody(503, '<html>bad gateway</html>', { retryAfter: 5 });
    expect(unavailable).toBeInstanceOf(UnavailableError);
    expect(unavailable.retryAfter).toBe(5);
  });

  it('makes an unknown code and status an UpstreamError', () => {
    expect(errorFromBody(418, '{"error":"teapot","code":"teapot"}')).toBeInstanceOf(UpstreamError);
  });

  it('quotes the start of a body that is not JSON, else the fallback', () => {
    const long = `  ${'x'.repeat(MAX_ERROR_TEXT_CHARS + 50)}  `;
    expect(errorFromBody(500, long).message).toBe('x'.repeat(MAX_ERROR_TEXT_CHARS));
    expect(errorFromBody(502, '  ', { fallback: 'Bad Gateway' }).message).toBe('Bad Gateway');
    expect(errorFromBody(502, '').message).toBe('502');
  });
});
