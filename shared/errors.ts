/**
 * Every failure Kelp knows how to name, each with the HTTP status it maps to.
 * This file is the only place a status code is decided: servers and the Worker
 * call `httpStatusOf(err)` and never pick a status themselves. Callers branch on
 * `instanceof` or `code`, never on the message.
 */
export abstract class KelpError extends Error {
  abstract readonly status: number;
  /** Stable machine-readable code, sent in error bodies as `{error, code}`. */
  abstract readonly code: string;
  /** Seconds a client should wait before retrying (sent as Retry-After), if any. */
  retryAfter?: number;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

// ---- 4xx: the request is at fault ----

export class BadRequestError extends KelpError {
  readonly status = 400;
  readonly code: string = 'bad_request';
}

/** A file id or volume id that does not parse (docs/format.md §1). */
export class InvalidFidError extends BadRequestError {
  override readonly code = 'invalid_fid';
}

/** A query parameter that is unknown, or whose value is out of range or malformed. */
export class InvalidParamError extends BadRequestError {
  override readonly code = 'invalid_param';
}

/** A TTL string that does not parse ("3m", "4h", "5d", "6w", "7M", "8y"). */
export class InvalidTtlError extends BadRequestError {
  override readonly code = 'invalid_ttl';
}

/** A replica placement string that is not three digits 0-9 ("000".."222" in practice). */
export class InvalidPlacementError extends BadRequestError {
  override readonly code = 'invalid_placement';
}

export class UnauthorizedError extends KelpError {
  readonly status = 401;
  readonly code = 'unauthorized';
}

export class ForbiddenError extends KelpError {
  readonly status = 403;
  readonly code = 'forbidden';
}

/** Missing, deleted, expired or wrong cookie: deliberately one error, so a 404 never hints which. */
export class NotFoundError extends KelpError {
  readonly status: number = 404;
  readonly code: string = 'not_found';
}

/**
 * The volume is not on this server (it moved, or was deleted with its
 * collection): says nothing of any blob, and tells a cache in front that its
 * lookup of the volume is out of date.
 */
export class VolumeNotFoundError extends NotFoundError {
  override readonly code = 'volume_not_found';
}

/**
 * The master's lookup of a volume it ordered deleted (its collection went;
 * volume ids are never reused, origin/master/deleted-volumes.ts): 410 Gone, so
 * that a cache in front tells a delete from an outage, where "no live holder"
 * (a plain 404) may be either. Still a NotFoundError: to any caller that only
 * needs the volume, a deleted one is not found.
 */
export class VolumeDeletedError extends NotFoundError {
  override readonly status = 410;
  override readonly code = 'volume_deleted';
}

export class MethodNotAllowedError extends KelpError {
  readonly status = 405;
  readonly code = 'method_not_allowed';
}

/** The master cannot place a volume where the request asks (no free slot that meets placement). */
export class NoSpaceError extends KelpError {
  readonly status = 406;
  readonly code = 'no_space';
}

/** The target's state refuses the request (409): something else is under way, or it already exists. */
export class ConflictError extends KelpError {
  readonly status = 409;
  readonly code: string = 'conflict';
}

/** A write to a sealed (read-only) volume: the client should assign again. A conflict with the volume's state. */
export class ReadOnlyVolumeError extends ConflictError {
  override readonly code = 'volume_read_only';
}

export class PayloadTooLargeError extends KelpError {
  readonly status = 413;
  readonly code = 'payload_too_large';
}

/** A precondition of the request (If-Match) does not hold for the current representation. */
export class PreconditionFailedError extends KelpError {
  readonly status = 412;
  readonly code = 'precondition_failed';
}

export class RangeNotSatisfiableError extends KelpError {
  readonly status = 416;
  readonly code = 'range_not_satisfiable';
  /** Size of the full representation, sent as `Content-Range: bytes * /size`. */
  readonly size: number;
  constructor(message: string, size: number) {
    super(message);
    this.size = size;
  }
}

/** A body in a content coding this server does not take (an upload sent `Content-Encoding: br`). */
export class UnsupportedEncodingError extends KelpError {
  readonly status = 415;
  readonly code = 'unsupported_encoding';
  /** The codings that would have been taken, sent back as `Accept-Encoding` (RFC 9110 §15.5.16). */
  readonly accepted: string;
  constructor(message: string, accepted: string, options?: { cause?: unknown }) {
    super(message, options);
    this.accepted = accepted;
  }
}

/** The request is well formed but its target cannot be processed (an image over the pixel limit). */
export class UnprocessableError extends KelpError {
  readonly status = 422;
  readonly code = 'unprocessable';
}

export class TooManyRequestsError extends KelpError {
  readonly status = 429;
  readonly code = 'too_many_requests';
  constructor(message: string, retryAfter = 1) {
    super(message);
    this.retryAfter = retryAfter;
  }
}

// ---- 5xx: Kelp or what it stands on is at fault ----

/**
 * Bytes read from a volume (or a decoder's input) that fail a structural check
 * or their CRC. Never served as good data.
 */
export class CorruptDataError extends KelpError {
  readonly status = 500;
  readonly code: string = 'corrupt_data';
}

/** Input ended before a complete record: a torn write, a truncated file. */
export class TruncatedDataError extends CorruptDataError {
  override readonly code = 'truncated_data';
}

/** A needle whose stored CRC does not match its data. */
export class ChecksumMismatchError extends CorruptDataError {
  override readonly code = 'checksum_mismatch';
}

/** A format version Kelp does not read. */
export class UnsupportedVersionError extends CorruptDataError {
  override readonly code = 'unsupported_version';
}

export class InternalError extends KelpError {
  readonly status = 500;
  readonly code = 'internal';
}

/** A peer (replica, master, cloud backend) failed or timed out. */
export class UpstreamError extends KelpError {
  readonly status = 502;
  readonly code: string = 'upstream_failed';
}

/**
 * A peer did not answer at all: the connection was refused or reset, or no
 * answer came in time. Unlike an UpstreamError read back from a 502 body, it
 * says nothing was heard, so a client may ask another master or replica.
 */
export class NoAnswerError extends UpstreamError {
  override readonly code = 'no_answer';
}

/** Temporarily unable to serve: growing volumes, backend down, queue full. */
export class UnavailableError extends KelpError {
  readonly status = 503;
  readonly code: string = 'unavailable';
  constructor(message: string, retryAfter?: number, options?: { cause?: unknown }) {
    super(message, options);
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }
}

/**
 * This master is not the leader of its cluster (several masters on etcd), or
 * stopped being it: assigns and volume growth happen on the leader only. Worth
 * retrying, on another master or here once a leader is elected.
 */
export class NotLeaderError extends UnavailableError {
  override readonly code = 'not_leader';
}

/**
 * The disk under a volume (or an upload's spool) is full: ENOSPC or EDQUOT.
 * Nothing was stored; the volume is reported full so the master assigns
 * elsewhere, and writes resume once space is freed (origin/volume/disk-space.ts).
 */
export class InsufficientStorageError extends KelpError {
  readonly status = 507;
  readonly code = 'insufficient_storage';
}

/** The HTTP status for any thrown value: KelpErrors carry theirs, anything else is a 500. */
/**
 * A peer's refusal that is the client's own fault (the body it sent: 400, too
 * large: 413, in a coding not taken: 415), as the error to pass on with that
 * status: a 502 would tell the client to retry what can never succeed.
 * Undefined for any other status, which is the cluster's problem.
 */
export function clientFaultOf(status: number, message: string, cause?: unknown): KelpError | undefined {
  const options = cause === undefined ? undefined : { cause };
  if (status === 400) return new BadRequestError(message, options);
  if (status === 413) return new PayloadTooLargeError(message, options);
  if (status === 415) return new UnsupportedEncodingError(message, 'gzip', options);
  return undefined;
}

export function httpStatusOf(err: unknown): number {
  return err instanceof KelpError ? err.status : 500;
}

/**
 * The JSON body for an error response. Unknown errors say nothing of their
 * internals; a 404 says only "not found" so it never hints whether the key,
 * the cookie or a deletion was the reason.
 */
export function errorBody(err: unknown): { error: string; code: string } {
  if (err instanceof VolumeDeletedError) return { error: 'volume deleted', code: err.code };
  if (err instanceof NotFoundError) return { error: 'not found', code: err.code };
  if (err instanceof KelpError) return { error: err.message, code: err.code };
  return { error: 'internal error', code: 'internal' };
}

// ---- reading an error body back ----

/** Characters of a non-JSON error body kept in the message (a proxy's HTML page says little more). */
export const MAX_ERROR_TEXT_CHARS = 300;

type ErrorFactory = (message: string) => KelpError;

/**
 * Every concrete error, for errorFromBody. A base class comes before its
 * subclasses, so it is the one a bare status maps to. A 416 read back has no
 * representation size (0); a 429 or 503 gets the sender's Retry-After.
 */
const ERROR_TABLE: readonly ErrorFactory[] = [
  (m) => new BadRequestError(m),
  (m) => new InvalidFidError(m),
  (m) => new InvalidParamError(m),
  (m) => new InvalidTtlError(m),
  (m) => new InvalidPlacementError(m),
  (m) => new UnauthorizedError(m),
  (m) => new ForbiddenError(m),
  (m) => new NotFoundError(m),
  (m) => new VolumeNotFoundError(m),
  (m) => new VolumeDeletedError(m),
  (m) => new MethodNotAllowedError(m),
  (m) => new NoSpaceError(m),
  (m) => new ConflictError(m),
  (m) => new ReadOnlyVolumeError(m),
  (m) => new PayloadTooLargeError(m),
  (m) => new RangeNotSatisfiableError(m, 0),
  (m) => new UnprocessableError(m),
  (m) => new TooManyRequestsError(m),
  (m) => new CorruptDataError(m),
  (m) => new TruncatedDataError(m),
  (m) => new ChecksumMismatchError(m),
  (m) => new UnsupportedVersionError(m),
  (m) => new InternalError(m),
  (m) => new UpstreamError(m),
  (m) => new NoAnswerError(m),
  (m) => new UnavailableError(m),
  (m) => new NotLeaderError(m),
  (m) => new InsufficientStorageError(m),
];

const BY_CODE = new Map<string, ErrorFactory>();
const BY_STATUS = new Map<number, ErrorFactory>();
for (const make of ERROR_TABLE) {
  const sample = make('');
  BY_CODE.set(sample.code, make);
  if (!BY_STATUS.has(sample.status)) BY_STATUS.set(sample.status, make);
}

/**
 * The error an error response stands for, read back from its status and body:
 * the class its `code` names (bodies as errorBody writes them), else the class
 * of its status, else UpstreamError. The message is the body's `error`, else
 * the start of the body's text, else `fallback` (a status line). Callers branch
 * on the class (`instanceof ConflictError`) or its `code`, never on the status
 * number or the message.
 */
export function errorFromBody(
  status: number,
  text: string,
  options: { fallback?: string; retryAfter?: number } = {},
): KelpError {
  let code: unknown;
  let message: string | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: unknown; code?: unknown } | null;
    if (typeof parsed?.error === 'string') message = parsed.error;
    code = parsed?.code;
  } catch {
    // not JSON: the raw text will do
  }
  message ??= text.trim().slice(0, MAX_ERROR_TEXT_CHARS) || options.fallback || String(status);
  const make = (typeof code === 'string' ? BY_CODE.get(code) : undefined) ?? BY_STATUS.get(status);
  const err = make ? make(message) : new UpstreamError(message);
  if (options.retryAfter !== undefined) err.retryAfter = options.retryAfter;
  return err;
}
