/**
 * Request and response shapes of the master and volume HTTP APIs, shared by
 * servers, the CLI, the edge and the tests. Field names follow SeaweedFS
 * (brief §4, §5) so its clients work unchanged.
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
 * `POST /heartbeat` from a volume server: its full state when it joins and on
 * every pulse; a change (new volume, sealed volume) triggers a beat at once.
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
  volumes: HeartbeatVolume[];
}

export interface HeartbeatResponse {
  /** Bytes at which volumes seal themselves. */
  volumeSizeLimit: number;
  /** Seconds between pulses the master expects; three missed pulses and the node is dead. */
  pulseSeconds: number;
  leader: string;
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
