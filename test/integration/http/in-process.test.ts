/**
 * http/in-process.ts: calls to a server linked in this process go through
 * in-memory streams its own node:http server serves (no TCP connection),
 * keep net.Socket's idle timeout, and drain when unlinked.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { peerRequest } from '../../../origin/http/client.ts';
import { serveInProcess } from '../../../origin/http/in-process.ts';

const servers: Server[] = [];
const unlinks: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const u of unlinks.splice(0)) await u();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A server on a free loopback port, counting the TCP connections it accepts and the others. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler);
  const seen = { tcp: 0, other: 0 };
  server.on('connection', (s) => (s instanceof Socket ? seen.tcp++ : seen.other++));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  return { server, seen, address };
}

const echo = (req: IncomingMessage, res: ServerResponse) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('X-Caller', req.socket.remoteAddress ?? '');
    res.end(Buffer.concat(chunks));
  });
};

describe('in-process HTTP', () => {
  it('a linked server answers without a TCP connection, the same bytes as over one; unlinked, over TCP again', async () => {
    const { server, seen, address } = await serve(echo);
    const body = Buffer.from('x'.repeat(100_000));
    const overTcp = await peerRequest(`http://${address}/a`, { method: 'PUT', body, timeoutMs: 5_000 });
    expect(seen).toEqual({ tcp: 1, other: 0 });

    const unlink = serveInProcess(address, server);
    for (let i = 0; i < 20; i++) {
      const res = await peerRequest(`http://${address}/a?i=${i}`, { method: 'PUT', body, timeoutMs: 5_000 });
      expect(res.status).toBe(200);
      expect(res.body.equals(body)).toBe(true);
      // The caller's address is the one a loopback connection shows.
      expect(res.headers['x-caller']).toBe(overTcp.headers['x-caller']);
    }
    // Keep-alive: the 20 calls shared one in-memory connection, and none went over TCP.
    expect(seen).toEqual({ tcp: 1, other: 1 });

    await unlink();
    await peerRequest(`http://${address}/a`, { method: 'PUT', body, timeoutMs: 5_000 });
    expect(seen.other).toBe(1);
  });

  it("a call the linked server never answers times out as over a socket (the socket's idle timeout)", async () => {
    const { server, address } = await serve(() => {});
    unlinks.push(serveInProcess(address, server));
    const started = Date.now();
    await expect(peerRequest(`http://${address}/hang`, { method: 'GET', timeoutMs: 200 })).rejects.toThrow(
      /no answer/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('unlinking waits for the calls in flight on in-memory connections (up to its deadline)', async () => {
    let answered = 0;
    const { server, seen, address } = await serve((req, res) => {
      setTimeout(() => {
        answered++;
        echo(req, res);
      }, 300);
    });
    const unlink = serveInProcess(address, server);
    const call = peerRequest(`http://${address}/slow`, {
      method: 'PUT',
      body: Buffer.from('hi'),
      timeoutMs: 5_000,
    });
    await new Promise((r) => setTimeout(r, 50));
    await unlink(5_000);
    // Unlink returned only once the call in flight had its answer.
    expect(answered).toBe(1);
    expect((await call).body.toString()).toBe('hi');
    expect(seen).toEqual({ tcp: 0, other: 1 });
  });
});
