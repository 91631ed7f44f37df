/**
 * Server-to-server HTTP (master → volume server, volume → replica): plain
 * node:http on a keep-alive agent. Several times cheaper per request than
 * fetch/undici here, and these calls sit on the write path. A server linked
 * in this process (in-process.ts, `kelp server`) is reached without a socket.
 */
import { createReadStream } from 'node:fs';
import { Agent, type OutgoingHttpHeaders, request } from 'node:http';
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
    const via = inProcessAgent(url) ?? agent;
    const req = request(url, { method: init.method, headers, agent: via, timeout: init.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
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
