/**
 * HTTP between servers of one process without sockets: `kelp server` runs a
 * master and a volume server in one process, and the master's calls to that
 * volume server (every `/submit` forwards its upload there) go through a pair
 * of in-memory streams the volume server's own node:http server serves, as
 * if they had come over a connection. Same requests, same handlers, same
 * checks (cluster signatures and file tokens travel in the headers as
 * before; the caller's address is the volume server's own, as a loopback
 * connection from this host would show); what goes is the loopback TCP: a
 * `writev` and a socket read per message and a trip through the event loop
 * per hop, about 40 µs of CPU of a 1 KiB `/submit` (measured: 70-104 µs per
 * exchange over loopback, 29-41 µs in memory).
 *
 * An upload already read whole (a small `/submit`, passed through unparsed)
 * goes further: it is handed to the volume server's write path as a call
 * (`InProcessUploads`), with the same headers, token check, parsing, fsync
 * and answer as its PUT, and no HTTP at all: the request the master would
 * write and the volume server parse, and the answer back, were half the CPU
 * of a 1 KiB `/submit` even in memory. What such a write skips is only the
 * volume server's per-request HTTP metrics and request log; the master's own
 * count it.
 *
 * Only `kelp server` links a server this way (commands/server.ts); separate
 * processes, and tests that start several servers in one process, talk over
 * sockets as before.
 */
import { Agent, type IncomingHttpHeaders, type Server } from 'node:http';
import { Duplex } from 'node:stream';
import { UnavailableError } from '../../shared/errors.ts';
import type { UploadAnswer } from './upload.ts';

/** An upload handed to a linked volume server's write path: what its PUT would have carried. */
export interface InProcessUpload {
  /** `/<fid>`, as the PUT's path. */
  pathname: string;
  query: URLSearchParams | null;
  /** Lower-case names, as node:http gives them: the upload's own headers, the token, the length. */
  headers: IncomingHttpHeaders;
  body: Buffer;
  requestId?: string;
}

/** A volume server's write path, as a call (volume/server.ts provides it). */
export type InProcessUploads = (upload: InProcessUpload) => Promise<UploadAnswer>;

/** One end of an in-memory connection: what one end writes, the other reads. */
class InProcessSocket extends Duplex {
  peer: InProcessSocket | undefined;
  readonly remoteAddress: string;
  readonly remotePort = 0;
  readonly localAddress: string;
  readonly localPort = 0;
  readonly remoteFamily = 'IPv4';
  /** Idle timeout in ms (net.Socket's `timeout`), 0 for none. */
  timeout = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(host: string) {
    super({ allowHalfOpen: false });
    this.remoteAddress = host;
    this.localAddress = host;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.deliver(chunk);
    done();
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void): void {
    for (const c of chunks) this.deliver(c.chunk);
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.peer?.push(null);
    done();
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    clearTimeout(this.timer);
    const peer = this.peer;
    this.peer = undefined;
    if (peer && !peer.destroyed) peer.destroy();
    done(err);
  }

  private deliver(chunk: Buffer): void {
    this.touch();
    this.peer?.touch();
    this.peer?.push(chunk);
  }

  /** Restarts the idle timer (net.Socket's timeout counts from the last activity). */
  private touch(): void {
    if (this.timer) this.timer.refresh();
  }

  /**
   * net.Socket's idle timeout: 'timeout' after `ms` without reads or writes;
   * 0 turns it off (and takes `onTimeout` off, as net.Socket does).
   */
  setTimeout(ms: number, onTimeout?: () => void): this {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timeout = ms;
    if (ms > 0) {
      this.timer = setTimeout(() => this.emit('timeout'), ms).unref();
      if (onTimeout) this.once('timeout', onTimeout);
    } else if (onTimeout) this.off('timeout', onTimeout);
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }
}

interface Link {
  server: Server;
  agent: Agent;
  /** Requests the server is answering on in-memory connections, and uploads handed over. */
  inFlight: number;
  uploads?: InProcessUploads;
}

/** Servers reachable in memory, by the `host:port` callers address them by. */
const links = new Map<string, Link>();

/** Most connections a caller opens to one linked server (as the socket agent's limit). */
const MAX_IN_PROCESS_SOCKETS = 64;
/** How often unlink() looks whether the requests in flight have finished. */
const UNLINK_POLL_MS = 10;

/**
 * Serves calls to `address` (`host:port`, as callers name the server) from
 * this process through `server` without a socket. Returns what undoes it:
 * later calls go over sockets again, and it resolves once the requests in
 * flight on in-memory connections have been answered (or `deadlineMs` has
 * passed), so a server can drain them like its socket connections.
 */
export function serveInProcess(
  address: string,
  server: Server,
  uploads?: InProcessUploads,
): (deadlineMs?: number) => Promise<void> {
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_PROCESS_SOCKETS });
  const link: Link = { server, agent, inFlight: 0, uploads };
  // Agent's documented hook for connections of another kind than TCP.
  agent.createConnection = () => {
    const client = new InProcessSocket(host);
    const served = new InProcessSocket(host);
    client.peer = served;
    served.peer = client;
    server.emit('connection', served);
    return client;
  };
  const count = (req: { socket: unknown }, res: { once(e: 'close', f: () => void): void }) => {
    if (!(req.socket instanceof InProcessSocket)) return;
    link.inFlight++;
    res.once('close', () => link.inFlight--);
  };
  server.prependListener('request', count);
  links.set(address, link);
  return async (deadlineMs = 0) => {
    if (links.get(address) === link) links.delete(address);
    // Idle connections close now; busy ones finish their request first.
    closeIdle(agent);
    const deadline = Date.now() + deadlineMs;
    while (link.inFlight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, UNLINK_POLL_MS));
    }
    server.off('request', count);
    agent.destroy();
  };
}

function closeIdle(agent: Agent): void {
  for (const sockets of Object.values(agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
}

/** The agent that reaches `url`'s server in memory, if it is linked in this process. */
export function inProcessAgent(url: string): Agent | undefined {
  if (links.size === 0) return undefined;
  // http://host:port/... → host:port
  const start = url.indexOf('//') + 2;
  const end = url.indexOf('/', start);
  return links.get(url.slice(start, end < 0 ? undefined : end))?.agent;
}

/**
 * The write path of the volume server at `address` (`host:port`), if it is
 * linked in this process and takes uploads as calls. A call counts as in
 * flight for the server's drain; one made after the server was unlinked
 * (it is stopping) fails as an unreachable server would.
 */
export function inProcessUploads(address: string): InProcessUploads | undefined {
  if (links.size === 0) return undefined;
  const link = links.get(address);
  if (!link?.uploads) return undefined;
  const uploads = link.uploads;
  return async (upload) => {
    if (links.get(address) !== link) throw new UnavailableError(`volume server ${address} is stopping`);
    link.inFlight++;
    try {
      return await uploads(upload);
    } finally {
      link.inFlight--;
    }
  };
}
