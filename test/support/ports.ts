import { createServer } from 'node:net';

/**
 * A loopback port that was free a moment ago (bound to 0, then released), for
 * a process that must be told its port before it starts.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
