/**
 * Stopping a node:http server gracefully: stop accepting connections, let the
 * requests in flight finish (each connection closes once its response is
 * out), and after `deadlineMs` close whatever is left. The sockets a client
 * keeps alive are closed as soon as they fall idle, and responses written
 * while draining carry `Connection: close`, so no client starts another
 * request on a server that is going away.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** Default time in-flight requests get to finish on SIGTERM (seconds; `--drainSeconds`). */
export const DEFAULT_DRAIN_SECONDS = 10;
/** How often idle connections are closed while draining. */
const DRAIN_POLL_MS = 50;

export interface DrainResult {
  /** Connections still busy at the deadline, closed mid-request. */
  forced: number;
  elapsedMs: number;
}

export async function drainServer(server: Server, deadlineMs: number): Promise<DrainResult> {
  const started = Date.now();
  const noKeepAlive = (_req: IncomingMessage, res: ServerResponse) => {
    res.shouldKeepAlive = false;
  };
  server.prependListener('request', noKeepAlive);
  let closed = false;
  const done = new Promise<void>((resolve) => {
    server.close(() => {
      closed = true;
      resolve();
    });
  });
  server.closeIdleConnections();
  const deadline = started + Math.max(0, deadlineMs);
  while (!closed && Date.now() < deadline) {
    await Promise.race([
      done,
      new Promise((r) => setTimeout(r, Math.min(DRAIN_POLL_MS, deadline - Date.now()))),
    ]);
    server.closeIdleConnections();
  }
  let forced = 0;
  if (!closed) {
    forced = await new Promise<number>((resolve) => server.getConnections((_err, n) => resolve(n ?? 0)));
    server.closeAllConnections();
    await done;
  }
  server.off('request', noKeepAlive);
  return { forced, elapsedMs: Date.now() - started };
}
