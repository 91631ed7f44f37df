/**
 * An HTTP proxy that counts what reaches a store: every request, and GETs.
 * Put in front of Ceph's gateway, it checks "one GET per read" on the wire,
 * as the GCS emulator does on its side. Requests are forwarded unchanged (the
 * Host header included, so S3 signatures still verify), responses streamed back.
 */
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface CountingProxy {
  readonly endpoint: string;
  readonly counts: { requests: number; gets: number };
  /** The last request as it arrived (method, path, headers): what a signer sent. */
  readonly last: { method?: string; path?: string; headers: IncomingHttpHeaders; status?: number };
  stop(): Promise<void>;
}

export async function startCountingProxy(target: { host: string; port: number }): Promise<CountingProxy> {
  const counts = { requests: 0, gets: 0 };
  const last: CountingProxy['last'] = { headers: {} };
  const server: Server = createServer((req, res) => {
    counts.requests++;
    Object.assign(last, { method: req.method, path: req.url, headers: req.headers, status: undefined });
    if (req.method === 'GET') counts.gets++;
    const upstream = request(
      { host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        last.status = up.statusCode;
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    last,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
