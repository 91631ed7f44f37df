/**
 * The hot read path of an S3 tier: one SigV4-signed ranged GET over a
 * keep-alive `node:http(s)` agent, without the AWS SDK's middleware stack
 * (docs/decisions/0009-tier-read-path.md). Through the SDK a 1 KiB GetObject
 * cost about 0.6-0.8 ms of CPU (serialization, endpoint rules evaluated per
 * request, the middleware chain, the response's stream mixin); this costs a
 * quarter of it, most of which is the HTTP client and the signature itself.
 *
 * Nothing is hand-rolled that the SDK already decides: the URL comes from the
 * client's own endpoint rules (evaluated once), the signature from the
 * client's own signer (credentials chain, session tokens and the clock-skew
 * offset included), and failures are mapped by `mapS3Error` like the SDK's.
 * Only the transport is ours: checks that the store answered exactly the
 * range asked for (never bytes from another offset), bounded timeouts, and an
 * abort signal.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { S3Client } from '@aws-sdk/client-s3';
import { TruncatedDataError, UnavailableError, UpstreamError } from '../../shared/errors.ts';
import { parseContentRange } from '../../shared/range.ts';

/** Sockets kept per store for reads: more concurrent reads than this queue for a free one. */
export const S3_READ_MAX_SOCKETS = 64;
/**
 * An idle keep-alive socket is closed after this long (sooner if the store's
 * `Keep-Alive: timeout` says so), well inside the idle limits stores and load
 * balancers apply, so a read rarely meets a socket the far end just closed.
 */
export const S3_READ_IDLE_SOCKET_MS = 4_000;
/** An error response's body is read up to this much, for its `<Code>`. */
const MAX_ERROR_BODY_BYTES = 16 * 1024;
/** SHA-256 of the empty body a GET sends: the payload is signed, not left UNSIGNED-PAYLOAD. */
const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Error codes of a request signed at a time the store does not accept: the clock is corrected and the read retried. */
const CLOCK_SKEW_CODES = new Set(['RequestTimeTooSkewed', 'RequestExpired', 'RequestInTheFuture']);

type Signer = Awaited<ReturnType<S3Client['config']['signer']>>;
type SignableRequest = Parameters<Signer['sign']>[0];

interface Target {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number | undefined;
  /** `/bucket` (path style) or `` (virtual-hosted), without a trailing slash. */
  basePath: string;
  signingRegion: string;
  signingService: string;
  signer: Signer;
}

export interface S3GetOptions {
  bucket: string;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

/** A store's answer as `mapS3Error` reads an SDK failure: the S3 error code as `name`, the HTTP status. */
export class S3ResponseError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(status: number, code: string | undefined) {
    super(`HTTP ${status}${code ? ` ${code}` : ''}`);
    this.name = code ?? '';
    this.$metadata = { httpStatusCode: status };
  }
}

/** A client setting that may be a value or a provider of one (the SDK resolves both kinds). */
async function settled<T>(v: T | (() => Promise<T> | T)): Promise<T> {
  return typeof v === 'function' ? await (v as () => Promise<T> | T)() : v;
}

/** A timeout as `isNetworkError` recognises it (retried, then 503). */
function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' });
}

/** S3's key encoding (the SDK's `extendedEncodeURIComponent`): RFC 3986, slashes kept as separators. */
export function encodeS3Key(key: string): string {
  return key
    .split('/')
    .map((segment) =>
      encodeURIComponent(segment).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join('/');
}

export class S3RangeGetter {
  readonly #client: S3Client;
  readonly #opts: S3GetOptions;
  readonly #agent: HttpAgent;
  readonly #endpoint: string | undefined;
  #target: Promise<Target> | undefined;

  constructor(client: S3Client, endpoint: string | undefined, opts: S3GetOptions) {
    this.#client = client;
    this.#opts = opts;
    this.#endpoint = endpoint;
    const https = endpoint === undefined || new URL(endpoint).protocol === 'https:';
    const agentOptions = {
      keepAlive: true,
      maxSockets: S3_READ_MAX_SOCKETS,
      timeout: S3_READ_IDLE_SOCKET_MS,
    };
    this.#agent = https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  /**
   * Where GETs of this bucket go and how they are signed, as the SDK decides
   * for GetObject: its endpoint rules (path or virtual-hosted style, FIPS,
   * dual stack, partitions) and its signer. Resolved on first use; a failure
   * is not kept, so the next read tries again.
   */
  #resolve(): Promise<Target> {
    if (!this.#target) {
      const p = this.#resolveOnce();
      this.#target = p;
      p.catch(() => {
        if (this.#target === p) this.#target = undefined;
      });
    }
    return this.#target;
  }

  async #resolveOnce(): Promise<Target> {
    const config = this.#client.config;
    const endpoint = config.endpointProvider(
      {
        Bucket: this.#opts.bucket,
        Region: await config.region(),
        UseFIPS: await config.useFipsEndpoint(),
        UseDualStack: await config.useDualstackEndpoint(),
        ForcePathStyle: await settled(config.forcePathStyle),
        Accelerate: await settled(config.useAccelerateEndpoint),
        UseGlobalEndpoint: await settled(config.useGlobalEndpoint),
        DisableMultiRegionAccessPoints: await settled(config.disableMultiregionAccessPoints),
        ...(this.#endpoint ? { Endpoint: this.#endpoint } : {}),
      },
      {},
    );
    const scheme = (
      endpoint.properties?.authSchemes as { name?: string; signingRegion?: string; signingName?: string }[]
    )?.[0];
    if (scheme && scheme.name !== 'sigv4') {
      throw new UpstreamError(
        `bucket ${this.#opts.bucket}: its endpoint wants ${scheme.name} signatures; tier reads sign with SigV4`,
      );
    }
    const url = endpoint.url;
    return {
      protocol: url.protocol === 'http:' ? 'http:' : 'https:',
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      basePath: url.pathname.replace(/\/+$/, ''),
      signingRegion: scheme?.signingRegion ?? (await config.region()),
      signingService: scheme?.signingName ?? 's3',
      signer: await config.signer(),
    };
  }

  /**
   * Exactly `length` bytes of `key` at `offset`, in one request (one attempt:
   * the caller's retry.ts loop decides about another). Anything but the range
   * asked for is an error: a short object `TruncatedDataError`, a store that
   * ignored or moved the range `UpstreamError`; store and socket failures are
   * thrown for `mapS3Error`.
   */
  async get(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const t = await this.#resolve();
    signal?.throwIfAborted();
    const host = t.port ? `${t.hostname}:${t.port}` : t.hostname;
    const unsigned: SignableRequest = {
      method: 'GET',
      protocol: t.protocol,
      hostname: t.hostname,
      ...(t.port ? { port: t.port } : {}),
      path: `${t.basePath}/${encodeS3Key(key)}`,
      query: {},
      headers: {
        host,
        range: `bytes=${offset}-${offset + length - 1}`,
        'x-amz-content-sha256': EMPTY_BODY_SHA256,
      },
    };
    const signed = await t.signer.sign(unsigned, {
      signingDate: new Date(Date.now() + this.#client.config.systemClockOffset),
      signingRegion: t.signingRegion,
      signingService: t.signingService,
    });
    const res = await this.#send(t, signed, signal);
    return this.#body(res, offset, length);
  }

  #send(t: Target, signed: SignableRequest, signal: AbortSignal | undefined): Promise<IncomingMessage> {
    const { connectTimeoutMs, requestTimeoutMs } = this.#opts;
    return new Promise((resolve, reject) => {
      const req = (t.protocol === 'http:' ? httpRequest : httpsRequest)({
        agent: this.#agent,
        protocol: t.protocol,
        hostname: t.hostname,
        ...(t.port ? { port: t.port } : {}),
        method: 'GET',
        path: signed.path,
        headers: signed.headers,
        ...(signal ? { signal } : {}),
      });
      req.setTimeout(requestTimeoutMs, () =>
        req.destroy(timeoutError(`no answer from the store in ${requestTimeoutMs} ms`)),
      );
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => req.destroy(timeoutError(`no connection to the store in ${connectTimeoutMs} ms`)),
          connectTimeoutMs,
        );
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.once('response', resolve);
      req.once('error', reject);
      req.end();
    });
  }

  /** Reads the answer: the range into one buffer, or an error response into a typed failure. */
  #body(res: IncomingMessage, offset: number, length: number): Promise<Uint8Array> {
    const status = res.statusCode ?? 0;
    if (status !== 200 && status !== 206) return this.#failure(res, status);
    const declared =
      res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
    if (status === 200) {
      // The store ignored the Range and is sending the object from its first byte: only a whole object
      // that is exactly the range (or shorter: a short read) may be taken.
      if (offset !== 0 || declared === undefined || declared > length) {
        res.destroy();
        return Promise.reject(new UpstreamError(`the store ignored the Range (HTTP 200, ${declared} bytes)`));
      }
    } else {
      const range = parseContentRange(res.headers['content-range']);
      if (!range || range.start !== offset) {
        res.destroy();
        return Promise.reject(new UpstreamError(`the store answered range ${res.headers['content-range']}`));
      }
      if (range.end - range.start + 1 > length || (declared !== undefined && declared > length)) {
        res.destroy();
        return Promise.reject(new UpstreamError(`the store answered more than the ${length}-byte range`));
      }
    }
    if (declared !== undefined && declared < length) {
      res.destroy();
      return Promise.reject(new TruncatedDataError(`the object ends early: ${declared} of ${length} bytes`));
    }
    return new Promise((resolve, reject) => {
      const out = Buffer.allocUnsafe(length);
      let got = 0;
      res.on('data', (chunk: Buffer) => {
        if (got + chunk.byteLength > length) {
          res.destroy(new UpstreamError(`the store sent more than the ${length}-byte range`));
          return;
        }
        chunk.copy(out, got);
        got += chunk.byteLength;
      });
      let ended = false;
      res.once('end', () => {
        ended = true;
        if (got === length) resolve(out);
        else reject(new TruncatedDataError(`got ${got} of ${length} bytes`));
      });
      res.once('error', reject);
      res.once('close', () => {
        if (!ended)
          reject(Object.assign(new Error('the connection closed mid-body'), { code: 'ECONNRESET' }));
      });
    });
  }

  /** An error response: its S3 code (from the XML body), the clock corrected if that was the trouble. */
  async #failure(res: IncomingMessage, status: number): Promise<never> {
    let body = '';
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        if (body.length < MAX_ERROR_BODY_BYTES) body += chunk.toString('utf8');
      }
    } catch {
      // A body cut off is still an answer with a status.
    }
    const code = /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
    const date = Date.parse(String(res.headers.date ?? ''));
    if (code !== undefined && CLOCK_SKEW_CODES.has(code) && Number.isFinite(date)) {
      // As the SDK does: sign the next attempts with the store's clock.
      this.#client.config.systemClockOffset = date - Date.now();
      throw new UnavailableError(`${code}: clock offset corrected to the store's, retrying`, undefined, {
        cause: new S3ResponseError(status, code),
      });
    }
    throw new S3ResponseError(status, code);
  }

  close(): void {
    this.#agent.destroy();
  }
}
