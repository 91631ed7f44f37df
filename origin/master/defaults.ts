/**
 * The master's defaults, apart from its server: origin/config.ts reads them
 * to document and resolve options in every kelp process, and importing
 * server.ts for them would load the master's modules (zod, etcd's gRPC
 * client) into volume servers too (issue 15: RAM per needle).
 */
import { DEFAULT_GARBAGE_THRESHOLD } from '../admin/operations.ts';
import { DEFAULT_VACUUM_INTERVAL_MS } from '../admin/vacuum-schedule.ts';
import { MAX_UPLOAD_BYTES } from '../http/body.ts';
import { DEFAULT_DRAIN_SECONDS } from '../http/drain.ts';

/**
 * TTL of each master's lease: a killed leader is replaced after about this
 * long. Long enough that the leader rides out etcd electing a new raft leader
 * of its own (1-2 s at etcd's default election timeout, with no keep-alive
 * answered meanwhile) without stepping down.
 */
export const LEASE_SECONDS = 5;

/** Default of `edgeHeatPersistInterval`: a lost interval is a twelfth of an hourly bucket. */
export const DEFAULT_EDGE_HEAT_PERSIST_MS = 5 * 60_000;

export const MASTER_DEFAULTS = {
  host: '127.0.0.1',
  port: 9333,
  mdir: './data/master',
  pulseSeconds: 5,
  volumeSizeLimitBytes: 30 * 1024 * 1024 * 1024,
  defaultReplication: '000',
  maxUploadBytes: MAX_UPLOAD_BYTES,
  etcdPrefix: 'kelp',
  leaseSeconds: LEASE_SECONDS,
  vacuumIntervalMs: DEFAULT_VACUUM_INTERVAL_MS,
  garbageThreshold: DEFAULT_GARBAGE_THRESHOLD,
  edgeHeatPersistMs: DEFAULT_EDGE_HEAT_PERSIST_MS,
  now: Date.now,
  metrics: true,
  drainSeconds: DEFAULT_DRAIN_SECONDS,
};
