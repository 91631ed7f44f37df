/**
 * Server-to-server HTTP (master → volume server, volume → replica): plain
 * node:http on a keep-alive agent. Several times cheaper per request than
 * fetch/undici here, and these calls sit on the write path. A server linked
 * in this process (in-process.ts, `kelp server`) is reached without a socket.
 */
import { createReadStream } from 'node:fs';
import { Agent, type IncomingMessage, type OutgoingHttpHeaders, request } from 'node:http';
import { inProcessAgent } from './in-process.ts';

/**
 * How long our servers keep an idle keep-alive connection: longer than
 * clients' idle timeouts (undici: 4 s), so a client never reuses a socket the
 * server is closing at that moment.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

const agent = new Agent({ keepAlive: true, maxSockets: 64, keepAliveMsecs: 1_000 });

export interface PeerResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A body streamed from a file (a spooled upload) rather than sent from memory. */
export interface FileBody {
  path: string;
  /** Its length in bytes, sent as Content-Length. */
  size: number;
}

/** `http://host:port/path` (host a name, IPv4 or bracketed IPv6). */
const PLAIN_HTTP_URL = /^http:\/\/(?:\[([^\]]+)\]|([^/:[\]]+)):(\d{1,5})(\/[^#\s]*)?$/;

/**
 * request() options for a plain `http://host:port/path` URL, which is what
 * peers call each other by; parsing it here saves request() a WHATWG URL
 * parse per call (4 µs of a 29 µs in-process exchange, measured). Anything
 * else (no port, a fragment, credentials) goes through request()'s own
 * parsing, as `url`.
 */
function plainHttpTarget(url: string): { host: string; port: number; path: string } | undefined {
  const m = PLAIN_HTTP_URL.exec(url);
  if (!m) return undefined;
  return { host: m[1] ?? m[2]!, port: Number(m[3]), path: m[4] ?? '/' };
}

/**
 * One request. A `FileBody` is piped from disk with the stream's own
 * back-pressure, so a large upload is never held in memory; each call opens
 * the file afresh, so a retry sends it again from the start.
 */
export function peerRequest(
  url: string,
  init: { method: string; headers?: OutgoingHttpHeaders; body?: Uint8Array | FileBody; timeoutMs: number },
): Promise<PeerResponse> {
  const body = init.body;
  const fromFile = body !== undefined && !(body instanceof Uint8Array);
  const headers = fromFile ? { ...init.headers, 'Content-Length': body.size } : init.headers;
  return new Promise((resolve, reject) => {
    const options = {
      method: init.method,
      headers,
      agent: inProcessAgent(url) ?? agent,
      timeout: init.timeoutMs,
    };
    const target = plainHttpTarget(url);
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    };
    const req = target ? request({ ...target, ...options }, onResponse) : request(url, options, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in ${init.timeoutMs} ms`)));
    req.on('error', reject);
    if (!fromFile) {
      req.end(body);
      return;
    }
    const file = createReadStream(body.path);
    file.on('error', (err) => req.destroy(err));
    // A peer that answers (or fails) before reading it all: stop reading the file.
    req.on('close', () => file.destroy());
    file.pipe(req);
  });
}
