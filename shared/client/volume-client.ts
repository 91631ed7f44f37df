/**
 * Volume servers as clients call them (`host:port` or a URL per call: a
 * client talks to whichever server holds the volume): blob upload, read and
 * delete, `/status`, and the admin endpoints of tiering and vacuum. Timeout,
 * credentials and error mapping are shared/client/http.ts's; there is no
 * failover here, because which replica to try next is the caller's choice
 * (it has the locations).
 */
import type {
  DeleteResponse,
  ServerTierStatus,
  TierJob,
  UploadResponse,
  VacuumReport,
  VolumeServerStatus,
  VolumeTierStatus,
} from '../api.ts';
import { baseUrl, type ClientOptions, type RequestOptions, send, sendJson } from './http.ts';

/** Bound on a vacuum, answered only once the volume is compacted (GiBs copied on disk). */
export const VACUUM_TIMEOUT_MS = 60 * 60_000;

/** `Authorization: Bearer <token>` for a fid's write or read token, when there is one. */
function tokenHeaders(token: string | undefined): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export class VolumeClient {
  private readonly opts: ClientOptions;

  constructor(opts: ClientOptions = {}) {
    this.opts = opts;
  }

  /** A JSON call to one volume server. */
  async json<T>(server: string, pathAndQuery: string, o: RequestOptions = {}): Promise<T> {
    return (await sendJson<T>(`${baseUrl(server)}${pathAndQuery}`, o, this.opts)).body;
  }

  /** `POST /<fid>` of a multipart form (the blob as its `file` part), with the fid's write token. */
  upload(
    server: string,
    fid: string,
    form: FormData,
    o: { token?: string; ttl?: string; signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<UploadResponse> {
    const ttl = o.ttl ? `?ttl=${encodeURIComponent(o.ttl)}` : '';
    return this.json<UploadResponse>(server, `/${fid}${ttl}`, {
      method: 'POST',
      headers: tokenHeaders(o.token),
      body: form,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    });
  }

  /** `GET /<fid>`: the answer, its body for the caller to stream (the timeout covers the headers only). */
  read(server: string, fid: string, o: { token?: string; signal?: AbortSignal } = {}): Promise<Response> {
    return send(
      `${baseUrl(server)}/${fid}`,
      { headers: tokenHeaders(o.token), ...(o.signal ? { signal: o.signal } : {}) },
      this.opts,
    );
  }

  /** `GET` of any path, its body for the caller to stream (a volume move pulls a `.dat` this way). */
  get(server: string, pathAndQuery: string, o: RequestOptions = {}): Promise<Response> {
    return send(`${baseUrl(server)}${pathAndQuery}`, o, this.opts);
  }

  /** `DELETE /<fid>` with the fid's delete token; the server replicates it. */
  delete(server: string, fid: string, o: { token?: string } = {}): Promise<DeleteResponse> {
    return this.json<DeleteResponse>(server, `/${fid}`, { method: 'DELETE', headers: tokenHeaders(o.token) });
  }

  /** The server's volumes, disks and version (`GET /status`), live. */
  status(server: string, signal?: AbortSignal): Promise<VolumeServerStatus> {
    return this.json<VolumeServerStatus>(server, '/status', signal ? { signal } : {});
  }

  /** The backends the server can tier to and the transfers it knows (`GET /admin/tier/status`). */
  tierStatus(server: string, signal?: AbortSignal): Promise<ServerTierStatus> {
    return this.json<ServerTierStatus>(server, '/admin/tier/status', signal ? { signal } : {});
  }

  /** Where one volume's `.dat` is and its latest transfer (`GET /admin/tier/status?volume=N`). */
  volumeTierStatus(server: string, volumeId: number, signal?: AbortSignal): Promise<VolumeTierStatus> {
    return this.json<VolumeTierStatus>(
      server,
      `/admin/tier/status?volume=${volumeId}`,
      signal ? { signal } : {},
    );
  }

  /** Starts moving a volume's `.dat` to `backend` (202 and the job; a transfer already running is a ConflictError). */
  startTierUpload(
    server: string,
    volumeId: number,
    backend: string,
    keepLocalDat: boolean,
    signal?: AbortSignal,
  ): Promise<TierJob> {
    const q = new URLSearchParams({ volume: String(volumeId), backend, keepLocalDat: String(keepLocalDat) });
    return this.json<TierJob>(server, `/admin/tier/upload?${q}`, {
      method: 'POST',
      expect: [202],
      ...(signal ? { signal } : {}),
    });
  }

  /** Starts bringing a tiered volume's `.dat` back to local disk (202 and the job). */
  startTierDownload(server: string, volumeId: number, signal?: AbortSignal): Promise<TierJob> {
    return this.json<TierJob>(server, `/admin/tier/download?volume=${volumeId}`, {
      method: 'POST',
      expect: [202],
      ...(signal ? { signal } : {}),
    });
  }

  /** Compacts a local volume (`POST /admin/vacuum`); answered once done, so it gets VACUUM_TIMEOUT_MS. */
  vacuum(
    server: string,
    volumeId: number,
    o: { garbageThreshold?: number; force?: boolean; signal?: AbortSignal } = {},
  ): Promise<VacuumReport> {
    const q = new URLSearchParams({ volume: String(volumeId) });
    if (o.garbageThreshold !== undefined) q.set('garbageThreshold', String(o.garbageThreshold));
    if (o.force) q.set('force', 'true');
    return this.json<VacuumReport>(server, `/admin/vacuum?${q}`, {
      method: 'POST',
      timeoutMs: VACUUM_TIMEOUT_MS,
      ...(o.signal ? { signal: o.signal } : {}),
    });
  }

  /** Seals a volume (`POST /admin/readonly`, persisted in its `.vif`). */
  async setReadOnly(server: string, volumeId: number, signal?: AbortSignal): Promise<void> {
    await this.json<unknown>(server, `/admin/readonly?volume=${volumeId}`, {
      method: 'POST',
      ...(signal ? { signal } : {}),
    });
  }
}
