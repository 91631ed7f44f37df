/**
 * The cluster's masters as every client sees them (`a:9333,b:9333,c:9333`):
 * the edge, replication, the tiering service and the CLI ask them through
 * this, with one set of rules (docs/decisions/0013-one-api-client.md):
 *
 *   - The masters are tried in the order given. One that does not answer
 *     (NoAnswerError) or cannot answer now (502, 503, 504: restarting, no
 *     leader elected yet, the leader out of reach; `not_leader` is a 503)
 *     passes the call to the next. Any other answer is the cluster's, the same
 *     on every master, and final.
 *   - No leader hint to follow: a master that does not lead forwards what only
 *     the leader answers (origin/master/leader-proxy.ts), so any master that
 *     answers will do, and one that cannot says 503.
 *   - `rounds`: while some master answered "not now", the whole list is asked
 *     again after MASTER_ROUND_PAUSE_MS, up to `rounds` times (the CLI waits
 *     out an election that way). One round by default: a Worker answering a
 *     reader cannot wait for an election.
 *   - A lookup that finds fewer locations than the caller needs (a master that
 *     just started has not heard from every server yet; a 404 is none) passes
 *     to the next master. The answer with the most locations is returned; when
 *     no master knows one, NotFoundError: VolumeDeletedError (410, a subclass)
 *     if any master said the volume was deleted, a durable fact where the
 *     others' plain 404 ("no live holder") may only be a late heartbeat.
 *
 * Caching is the caller's: its rules differ (the edge keeps lookups for
 * LOOKUP_TTL_SECONDS across isolates, replication for seconds).
 */
import type { AssignResponse, LookupResponse, MasterVolume, MasterVolumesResponse } from '../api.ts';
import { KelpError, NoAnswerError, NotFoundError, UnavailableError, VolumeDeletedError } from '../errors.ts';
import { sleep } from '../sleep.ts';
import { baseUrl, type ClientOptions, type RequestOptions, sendJson } from './http.ts';

/** Pause between two rounds over the masters: the rounds of the CLI span a leader's lease TTL and more. */
export const MASTER_ROUND_PAUSE_MS = 500;
/** Largest `rounds` a client may ask for: every loop is bounded. */
export const MAX_MASTER_ROUNDS = 100;

export interface MasterClientOptions extends ClientOptions {
  /** Rounds over the list while a master answers "not now" (default 1: one pass). */
  rounds?: number;
  /** Override of MASTER_ROUND_PAUSE_MS. */
  roundPauseMs?: number;
}

/** Whether a master's answer means "try the next one": it is restarting or has no leader now. */
export function tryNextMaster(err: unknown): boolean {
  return err instanceof NoAnswerError || (err instanceof KelpError && [502, 503, 504].includes(err.status));
}

/** `"a:1, b:2"` or a list → base URLs; blanks dropped. */
export function masterUrls(spec: string | readonly string[]): string[] {
  const items = typeof spec === 'string' ? spec.split(',') : spec;
  return items
    .map((s) => s.trim())
    .filter(Boolean)
    .map(baseUrl);
}

/** How a lookup settles: enough locations end the search; otherwise the one ranked highest is kept. */
interface Settle<T> {
  enough: (body: T) => boolean;
  rank: (body: T) => number;
  /** An error answer that counts as "this master knows nothing" rather than the final word. */
  declined: (err: KelpError) => boolean;
}

export interface LookupOptions {
  /** Whether an answer has the locations the caller needs (default: at least one). */
  enough?: (lookup: LookupResponse) => boolean;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  timeoutMs?: number;
}

const hasLocations = (l: LookupResponse) => l.locations.length > 0;

export class MasterClient {
  /** Base URLs, in the order they are asked. */
  readonly masters: string[];
  private readonly opts: MasterClientOptions;

  constructor(masters: string | readonly string[], opts: MasterClientOptions = {}) {
    this.masters = masterUrls(masters);
    this.opts = opts;
  }

  /** A JSON call to the masters, with failover; `master` is the base URL that answered. */
  json<T>(pathAndQuery: string, o: RequestOptions = {}): Promise<{ body: T; res: Response; master: string }> {
    return this.failover<T>(pathAndQuery, o);
  }

  /** Where volume `volumeId` lives (and, tiered, where its bytes are in the bucket). */
  async lookupVolume(volumeId: number, o: LookupOptions = {}): Promise<LookupResponse> {
    return (await this.lookup(`/dir/lookup?volumeId=${volumeId}`, `volume ${volumeId}`, o)).lookup;
  }

  /**
   * Where the file's volume lives, and the token the master signs for it when
   * the caller is an authenticated client of a secured cluster (a delete token,
   * or with `read` a read token): it comes back as `Authorization: Bearer`.
   */
  async lookupFile(
    fid: string,
    o: LookupOptions & { read?: boolean } = {},
  ): Promise<{ lookup: LookupResponse; token?: string }> {
    // A parsed fid is digits, hex, a comma and an underscore: the comma stays as SeaweedFS clients send it.
    const fileId = encodeURIComponent(fid).replace(/%2C/gi, ',');
    const path = `/dir/lookup?fileId=${fileId}${o.read ? '&read=yes' : ''}`;
    const { lookup, res } = await this.lookup(path, `file ${fid}`, o);
    const token = /^Bearer\s+(\S+)$/i.exec(res.headers.get('authorization') ?? '')?.[1];
    return token ? { lookup, token } : { lookup };
  }

  /** A file id and the volume server to upload it to (`POST /dir/assign`). */
  async assign(params: URLSearchParams, o: RequestOptions = {}): Promise<AssignResponse> {
    return (await this.json<AssignResponse>(`/dir/assign?${params}`, { method: 'POST', ...o })).body;
  }

  /** Every volume the masters know, with the size limit at which volumes seal (`GET /vol/status`). */
  async volumes(o: RequestOptions = {}): Promise<{ volumeSizeLimit: number; volumes: MasterVolume[] }> {
    const { body } = await this.json<MasterVolumesResponse>('/vol/status', o);
    return { volumeSizeLimit: body.VolumeSizeLimit ?? 0, volumes: body.Volumes };
  }

  private async lookup(
    pathAndQuery: string,
    what: string,
    o: LookupOptions,
  ): Promise<{ lookup: LookupResponse; res: Response }> {
    const { enough = hasLocations, headers, signal, timeoutMs } = o;
    const settle: Settle<LookupResponse> = {
      enough,
      rank: (l) => l.locations.length,
      declined: (err) => err instanceof NotFoundError,
    };
    const req: RequestOptions = {
      ...(headers ? { headers } : {}),
      ...(signal ? { signal } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    };
    const { body, res } = await this.failover<LookupResponse>(pathAndQuery, req, settle);
    if (!body.locations?.length) throw new NotFoundError(`${what} not found`);
    return { lookup: body, res };
  }

  private async failover<T>(
    pathAndQuery: string,
    o: RequestOptions,
    settle?: Settle<T>,
  ): Promise<{ body: T; res: Response; master: string }> {
    if (this.masters.length === 0) throw new UnavailableError('no master is configured');
    const rounds = Math.min(Math.max(1, this.opts.rounds ?? 1), MAX_MASTER_ROUNDS);
    const failures: KelpError[] = [];
    let best: { body: T; res: Response; master: string } | undefined;
    let declined: KelpError | undefined;
    // Another round only when a master answered "not now": all of them down is not worth the wait.
    let notNow = true;
    for (let round = 0; round < rounds && notNow; round++) {
      if (round > 0) await sleep(this.opts.roundPauseMs ?? MASTER_ROUND_PAUSE_MS, o.signal);
      failures.length = 0;
      notNow = false;
      for (const master of this.masters) {
        let answer: { body: T; res: Response };
        try {
          answer = await sendJson<T>(`${master}${pathAndQuery}`, o, this.opts);
        } catch (err) {
          if (!(err instanceof KelpError)) throw err;
          if (tryNextMaster(err)) {
            failures.push(err);
            if (!(err instanceof NoAnswerError)) notNow = true;
            continue;
          }
          if (settle?.declined(err)) {
            // "Deleted" outranks "not found": it is the store's word, not one master's view of heartbeats.
            if (!declined || (err instanceof VolumeDeletedError && !(declined instanceof VolumeDeletedError)))
              declined = err;
            continue;
          }
          throw err;
        }
        if (!settle || settle.enough(answer.body)) return { ...answer, master };
        if (!best || settle.rank(answer.body) > settle.rank(best.body)) best = { ...answer, master };
      }
      if (best) return best;
      if (declined) throw declined;
    }
    if (best) return best;
    if (declined) throw declined;
    // One master asked once: its failure says it all.
    const why =
      failures.length === 1
        ? failures[0]!.message
        : `no master could answer:\n  ${failures.map((f) => f.message).join('\n  ')}`;
    throw new UnavailableError(why, failures.find((f) => f.retryAfter)?.retryAfter ?? 1, {
      cause: failures[failures.length - 1],
    });
  }
}
