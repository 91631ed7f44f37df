/**
 * What every Kelp HTTP server does around its handler, in one wrapper:
 * settles the request id (request-id.ts) and echoes it, answers `/metrics`,
 * `/healthz` and `/readyz`, turns a thrown error into a response
 * (respond.ts), and counts the request by route and status with its
 * duration (`kelp_http_request_duration_seconds`).
 *
 * Cheap on the hot read path (decision 0003): the route is a small integer
 * the server computes from the method and the first characters of the URL,
 * the series for (route, status) is found in an array, and the time is one
 * `performance.now()` difference; no closure, listener or label lookup per
 * request. For a synchronous handler (a small read from the page cache) the
 * response has been handed to the socket when it returns, so that is when it
 * is measured; for a promise, when it settles.
 *
 * Bytes in and out are counted per connection by the kernel's socket
 * counters, read when the connection closes or at scrape time: nothing per
 * request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { httpStatusOf, MethodNotAllowedError, NotFoundError } from '../../shared/errors.ts';
import { HEALTH_PATHS, type Health } from '../http/health.ts';
import { sendError } from '../http/respond.ts';
import type { Access } from '../security/access.ts';
import type { Logger } from './log.ts';
import {
  collectedCounter,
  collectedGauge,
  FastHistogram,
  type HistogramSeries,
  LATENCY_BUCKETS,
  METRIC_PREFIX,
  METRICS_CONTENT_TYPE,
  type ServerMetrics,
} from './metrics.ts';
import { incomingRequestId, REQUEST_ID_HEADER, type WithRequestId } from './request-id.ts';

/** Statuses are counted in an array this long; anything else is counted as 0. */
const MAX_STATUS = 600;
/** The wrapper's own routes, after the server's. */
const OPS_ROUTES = ['metrics', 'health'] as const;

export class HttpMetrics {
  private readonly names: readonly string[];
  private readonly histogram: FastHistogram;
  private readonly byRoute: Array<Array<HistogramSeries | undefined>>;
  private readonly sockets = new Set<Socket>();
  private closedIn = 0;
  private closedOut = 0;

  constructor(metrics: ServerMetrics, routes: readonly string[]) {
    const registry = metrics.registry;
    this.names = routes;
    this.byRoute = routes.map(() => new Array<HistogramSeries | undefined>(MAX_STATUS));
    this.histogram = new FastHistogram(
      registry,
      `${METRIC_PREFIX}http_request_duration_seconds`,
      'Requests by route and status, and how long they took to answer (seconds); _count is the number of requests',
      LATENCY_BUCKETS,
    );
    collectedCounter(
      registry,
      `${METRIC_PREFIX}http_received_bytes_total`,
      'Bytes received over HTTP (requests with their bodies, headers included)',
      [],
      () => [[{}, this.closedIn + this.live((s) => s.bytesRead)]],
    );
    collectedCounter(
      registry,
      `${METRIC_PREFIX}http_sent_bytes_total`,
      'Bytes sent over HTTP (responses with their bodies, headers included)',
      [],
      () => [[{}, this.closedOut + this.live((s) => s.bytesWritten)]],
    );
    collectedGauge(registry, `${METRIC_PREFIX}http_open_connections`, 'Open HTTP connections', [], () => [
      [{}, this.sockets.size],
    ]);
  }

  private live(bytes: (s: Socket) => number): number {
    let n = 0;
    for (const s of this.sockets) n += bytes(s);
    return n;
  }

  /** Counts the server's connections and their bytes (one listener per connection, none per request). */
  track(server: Server): void {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.closedIn += socket.bytesRead;
        this.closedOut += socket.bytesWritten;
      });
    });
  }

  observe(route: number, status: number, seconds: number): void {
    const byStatus = this.byRoute[route]!;
    const i = status > 0 && status < MAX_STATUS ? status : 0;
    let s = byStatus[i];
    if (s === undefined) {
      s = this.histogram.series({ route: this.names[route]!, status: String(i) });
      byStatus[i] = s;
    }
    s.observe(seconds);
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface InstrumentOptions {
  /** The server's route names; `routeOf` returns an index into them. Bounded: never a raw path. */
  routes: readonly string[];
  routeOf(req: IncomingMessage): number;
  /** A route whose handler puts X-Request-Id into its own response headers (the volume read path). */
  echoesRequestId?: number;
  health: Health;
  access: Access;
  /** Undefined when metrics are off: nothing is timed or counted, and /metrics is a 404. */
  metrics?: ServerMetrics;
  /** Access lines: one per request at debug (reads at trace), with its id, route, status and time. */
  log?: Logger;
  /** Told of every request that failed (after its error answer was sent). */
  onError?: (req: IncomingMessage, err: unknown) => void;
}

/** The route list the wrapper counts under: the server's, then its own (metrics, health). */
export function routeNames(routes: readonly string[]): readonly string[] {
  return [...routes, ...OPS_ROUTES];
}

/** `/metrics`, `/healthz`, `/readyz` (any query), told apart from a blob path by its first letter. */
function opsPath(url: string): string | undefined {
  const c = url.charCodeAt(1);
  // 'm', 'h', 'r': a fid path starts with a digit, so reads pay one comparison.
  if (c !== 109 && c !== 104 && c !== 114) return undefined;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return path === '/metrics' || HEALTH_PATHS.has(path) ? path : undefined;
}

async function serveOps(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  o: InstrumentOptions,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD')
    throw new MethodNotAllowedError(`${path} is read with GET`);
  if (path !== '/metrics') return o.health.serve(res, path);
  if (!o.metrics) throw new NotFoundError('metrics are off on this server (--metrics false)');
  o.access.requireMetricsReader(req, req.url ?? path);
  const body = await o.metrics.exposition();
  res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** The status a failed request was (or will be) answered with. */
function failedStatus(res: ServerResponse, err: unknown): number {
  return res.headersSent ? res.statusCode : httpStatusOf(err);
}

/** pino's numeric levels: access lines are debug (reads: trace, they are the bulk). */
const DEBUG = 20;
const TRACE = 10;

/** A node:http server running `handle` wrapped as the file comment says. */
export function createInstrumentedServer(handle: Handler, o: InstrumentOptions): Server {
  const names = routeNames(o.routes);
  const http = o.metrics ? new HttpMetrics(o.metrics, names) : undefined;
  const log = o.log;
  // Levels are set at start (config), so whether access lines are written is decided once, not per request.
  const accessLines = log !== undefined && log.levelVal <= DEBUG;
  const readLines = log !== undefined && log.levelVal <= TRACE;
  const metricsRoute = o.routes.length;
  const healthRoute = o.routes.length + 1;
  const echoes = o.echoesRequestId ?? -1;

  const done = (req: IncomingMessage, route: number, status: number, t0: number) => {
    const seconds = (performance.now() - t0) / 1000;
    if (http) http.observe(route, status, seconds);
    if (log && (route === echoes ? readLines : accessLines)) {
      const line = {
        reqId: (req as WithRequestId).requestId,
        method: req.method,
        url: req.url,
        route: names[route],
        status,
        ms: Math.round(seconds * 1e4) / 10,
      };
      if (route === echoes) log.trace(line, 'request');
      else log.debug(line, 'request');
    }
  };

  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown, route: number, t0: number) => {
    if (!res.headersSent) res.setHeader(REQUEST_ID_HEADER, (req as WithRequestId).requestId!);
    sendError(res, err);
    o.onError?.(req, err);
    if (t0 > 0) done(req, route, failedStatus(res, err), t0);
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    // Timed only when something will use the time: metrics, or an access line.
    const t0 = http !== undefined || accessLines ? performance.now() : 0;
    const id = incomingRequestId(req);
    (req as WithRequestId).requestId = id;
    const url = req.url ?? '/';
    const ops = opsPath(url);
    const route = ops ? (ops === '/metrics' ? metricsRoute : healthRoute) : o.routeOf(req);
    if (route !== echoes) res.setHeader(REQUEST_ID_HEADER, id);
    let pending: void | Promise<void>;
    try {
      pending = ops ? serveOps(req, res, ops, o) : handle(req, res);
    } catch (err) {
      fail(req, res, err, route, t0);
      return;
    }
    if (pending) {
      pending.then(t0 > 0 ? () => done(req, route, res.statusCode, t0) : undefined, (err: unknown) =>
        fail(req, res, err, route, t0),
      );
    } else if (t0 > 0) {
      done(req, route, res.statusCode, t0);
    }
  };
  const server = createServer(listener);
  http?.track(server);
  return server;
}
