/**
 * Request and response shapes of the master and volume HTTP APIs, shared by
 * servers, the CLI, the edge and the tests. Field names follow SeaweedFS
 * (docs/format.md §7, §8) so its clients work unchanged.
 */

/** `GET|POST /dir/assign` → 200. */
export interface AssignResponse {
  fid: string;
  /** host:port the volume server listens on (internal). */
  url: string;
  /** host:port (or URL) clients should use for reads. */
  publicUrl: string;
  count: number;
  /** HS256 write token bound to the fid, when the cluster is secured (also sent as `Authorization: Bearer`). */
  auth?: string;
}

export interface Location {
  url: string;
  publicUrl: string;
  dataCenter: string;
}

/**
 * Where a tiered volume's bytes are in its bucket, for readers that go there
 * directly (the edge, docs/decisions/0010-origin-free-reads.md). The reader
 * maps `backend` to its own endpoint and credentials; nothing here is a URL.
 */
export interface TierLocation {
  /** The backend's type on origin: `s3`, `r2`, `gcs` or `local`. */
  kind: string;
  /** `type.id` as volume servers name the backend (`s3.archive`). */
  backend: string;
  /** Absent for `local`. */
  bucket?: string;
  /** The `.dat` object. */
  key: string;
  /** Its size in bytes. */
  size: number;
  /** The sorted, paged needle index beside it (shared/tier-index.ts). */
  indexKey: string;
  /** Pages of the index: its header and directory are the first `64 + 16 × indexPages` bytes. */
  indexPages: number;
  /** Keys deleted since the index was written, kept current by origin. */
  deletesKey: string;
}

/** `GET /dir/lookup?volumeId=|fileId=` → 200. */
export interface LookupResponse {
  volumeOrFileId: string;
  /** The same as volumeOrFileId, for clients written against older SeaweedFS docs. */
  volumeId: string;
  locations: Location[];
  /** Present when the volume is tiered and its index is in the bucket: the edge may read from there. */
  tier?: TierLocation;
}

/** One volume as a volume server reports it in a heartbeat. */
export interface HeartbeatVolume {
  id: number;
  collection: string;
  size: number;
  fileCount: number;
  deleteCount: number;
  deletedByteCount: number;
  readOnly: boolean;
  /**
   * The disk under it is full: no writes until space is freed (the volume
   * server clears it by itself). Not a seal: the volume is not read-only.
   */
  full?: boolean;
  /** "000".."222" */
  replicaPlacement: string;
  /** "" or a TTL string such as "3d". */
  ttl: string;
  compactRevision: number;
  /** The backend holding the `.dat` (`s3.default`) when the volume is tiered. */
  remote?: string;
  /** Where its bytes are in the bucket, once its index and deletion set are there. */
  tier?: TierLocation;
  /** Reads over the last 24 hours (heat, for tier policies). */
  readsPerDay: number;
  /** Unix seconds of the last write or delete. */
  modifiedAt: number;
  /** A move or replica copy under way (docs/decisions/0007-volume-move.md): the volume is frozen. */
  moving?: VolumeMoving;
}

/**
 * One volume of a volume server's `GET /status`: the heartbeat's fields (with
 * `full` always present) plus the needle version and the largest key stored.
 * The one JSON shape of a volume; the volume's in-memory status
 * (origin/volume/volume.ts `VolumeStatus`) is this with placement and TTL parsed.
 */
export interface VolumeStatusJson extends HeartbeatVolume {
  full: boolean;
  /** Needle version of the volume (2 or 3). */
  version: number;
  /** Largest file key stored (decimal string: u64). */
  maxFileKey: string;
}

/** One disk location of a volume server's `GET /status`. */
export interface DiskStatus {
  dir: string;
  all: number;
  used: number;
  free: number;
  /** A write here met a full disk; writes are refused until space is freed (origin/volume/disk-space.ts). */
  full: boolean;
  volumeCount: number;
  maxVolumes: number;
}

/** A volume server's `GET /status` → 200 (SeaweedFS's field names). */
export interface VolumeServerStatus {
  Version: string;
  DiskStatuses: DiskStatus[];
  Volumes: VolumeStatusJson[];
}

/**
 * Where a tiered volume's `.dat` is, and what it must be: the `.vif`'s
 * `remote` record (origin/volume/volume-info.ts), also served by
 * `GET /admin/tier/status?volume=N`.
 */
export interface RemoteDat {
  /** `type.id`, e.g. `s3.default`. */
  backend: string;
  /**
   * The bucket the object was written to (S3, GCS), so a backend reconfigured
   * to another bucket is noticed instead of read from; absent for `local`.
   */
  bucket?: string;
  key: string;
  size: number;
  /**
   * The whole object's checksum, checked by every download; exactly one is
   * set (docs/decisions/0018). `sha256` (hex): objects in S3, R2 and GCS, and
   * `local` objects uploaded before 0018.
   */
  sha256?: string;
  /** CRC-32C (8 hex digits): `local` objects uploaded since 0018. */
  crc32c?: string;
  /** ISO time the store reported for the object. */
  mtime: string;
  /** The superblock, base64: opening the volume needs no request to the backend. */
  superBlock: string;
  /** The local `.dat` was kept (reads stay local while it exists). */
  keepLocalDat: boolean;
  /** The needle index beside the object (tier-sidecars.ts); absent for volumes tiered before it existed. */
  indexKey?: string;
  /** Pages of the index (shared/tier-index.ts): how much of it a reader fetches first. */
  indexPages?: number;
  /** The deletion set beside the object. */
  deletesKey?: string;
  /**
   * This replica uploaded the object and writes its deletion set; the other
   * replicas point at the same object and leave it to this one.
   */
  owner?: boolean;
}

/** One side of a volume move or copy, as a volume server reports it. */
export interface VolumeMoving {
  /** `source`: being copied away; `target`: arrived, not yet confirmed. */
  role: 'source' | 'target';
  /** host:port of the other side. */
  peer: string;
  /** `move` removes the source at the end; `copy` (a new replica) keeps it. */
  mode: 'move' | 'copy';
  since: string;
}

/**
 * `POST /heartbeat` from a volume server: its full state when it joins, then
 * deltas (docs/decisions/0014-heartbeat-deltas.md): only the volumes new or
 * changed since the last beat that master acknowledged, with a full list
 * again every FULL_BEAT_EVERY beats, after a failed beat, when the leader
 * changes and when the master asks. A change (new volume, sealed volume)
 * triggers a beat at once.
 */
export interface HeartbeatRequest {
  /** host:port the master and peers reach this server at. */
  url: string;
  publicUrl: string;
  dataCenter: string;
  rack: string;
  maxVolumeCount: number;
  /** Largest file key stored on this server (decimal string: u64): keeps the sequencer ahead. */
  maxFileKey: string;
  /** Every volume (a full beat), or only those new or changed since the acknowledged beat (a delta). */
  volumes: HeartbeatVolume[];
  /**
   * Present on a delta: the `session` of the master's reply to the beat it
   * is relative to. A master with another session (it restarted) applies
   * nothing and asks for the full list.
   */
  deltaOf?: string;
  /** In a delta: ids of the volumes this server no longer holds. */
  deletedVolumes?: number[];
}

export interface HeartbeatResponse {
  /** Bytes at which volumes seal themselves. */
  volumeSizeLimit: number;
  /** Seconds between pulses the master expects; three missed pulses and the node is dead. */
  pulseSeconds: number;
  leader: string;
  /** This master process's session (random at start): a delta names the one it is relative to. */
  session: string;
  /** The beat was a delta this master cannot apply (it restarted, or forgot the server): send the full list now. */
  fullListWanted?: boolean;
}

/** `POST|PUT /<fid>` on a volume server → 201. */
export interface UploadResponse {
  name: string;
  size: number;
  eTag: string;
  mime: string;
}

/** `POST /submit` → 201. */
export interface SubmitResponse {
  fileName: string;
  fid: string;
  fileUrl: string;
  size: number;
  eTag: string;
}

/** A tier transfer as a volume server reports it (`/admin/tier/status`). */
export interface TierJob {
  volumeId: number;
  action: 'upload' | 'download';
  backend: string;
  state: 'running' | 'done' | 'failed';
  bytes: number;
  total: number;
  error?: string;
  startedAt: number;
  finishedAt?: number;
}

/** `POST /admin/vacuum?volume=` on a volume server. */
export interface VacuumReport {
  volumeId: number;
  compacted: boolean;
  garbageRatio: number;
  sizeBefore: number;
  sizeAfter: number;
  /** Needles dropped because their bytes failed the CRC (they could never be served). */
  corruptSkipped: number;
}

/** One volume of the master's `GET /vol/status`: the heartbeat fields and its alive locations. */
export type MasterVolume = HeartbeatVolume & {
  locations: string[];
  /** Reads the edge answered without an origin, as the master heard (origin/master/edge-heat.ts). */
  edgeReadsPerDay?: number;
};

/** The master's `GET /vol/status` → 200 (the fields a client reads). */
export interface MasterVolumesResponse {
  /** Bytes at which volumes seal themselves; absent from masters that predate it. */
  VolumeSizeLimit?: number;
  Volumes: MasterVolume[];
}

/** A volume server's `GET /admin/tier/status?volume=N` → 200. */
export interface VolumeTierStatus {
  volume: number;
  remote: RemoteDat | null;
  job: TierJob | null;
}

/** A volume server's `GET /admin/tier/status` → 200. */
export interface ServerTierStatus {
  backends: string[];
  jobs: TierJob[];
}

/** `DELETE /<fid>` on a volume server → 202: the size of what was deleted. */
export interface DeleteResponse {
  size: number;
}
