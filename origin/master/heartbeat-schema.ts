/**
 * What the master accepts as a heartbeat (zod): every field typed and bounded,
 * addresses that are addresses, keys inside the 64-bit key space, and a
 * bounded number of volumes, so one request can neither crash the master nor
 * grow its memory without limit.
 */
import { z } from 'zod';
import type { HeartbeatRequest } from '../../shared/api.ts';
import { COLLECTION_PATTERN } from '../../shared/collection.ts';
import { BadRequestError } from '../../shared/errors.ts';
import { parseTtl } from '../../shared/ttl.ts';
import { HOST_PORT, PUBLIC_URL } from '../http/address.ts';

/** Most volumes one volume server may report (SeaweedFS's default is 8 per disk). */
export const MAX_VOLUMES_PER_NODE = 4096;
/** Largest heartbeat body read (4096 volumes of about 300 bytes each, with room). */
export const MAX_HEARTBEAT_BYTES = 2 * 1024 * 1024;
export const MAX_FILE_KEY = 2n ** 64n - 1n;

export { HOST_PORT, PUBLIC_URL };

const name = z.string().regex(/^[A-Za-z0-9_.-]{0,64}$/, 'letters, digits, ".", "_" or "-", at most 64');
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** An object key Kelp writes (`<collection>_<vid>-<uuid>.dat` and its sidecars): no slashes, no spaces. */
const objectKey = z.string().regex(/^[A-Za-z0-9_.-]{1,256}$/, 'an object key');

const volume = z.object({
  id: z.number().int().min(1).max(0xffffffff),
  collection: z.string().regex(COLLECTION_PATTERN, 'a collection name'),
  size: count,
  fileCount: count,
  deleteCount: count,
  deletedByteCount: count,
  readOnly: z.boolean(),
  /** Its disk is out of space (disk-space.ts): not writable until space is freed. */
  full: z.boolean().optional(),
  replicaPlacement: z.string().regex(/^[0-2]{3}$/),
  ttl: z
    .string()
    .max(16)
    .refine((s) => {
      try {
        parseTtl(s);
        return true;
      } catch {
        return false;
      }
    }, 'a TTL such as 3d'),
  compactRevision: z.number().int().min(0).max(0xffff),
  remote: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,128}$/)
    .optional(),
  tier: z
    .object({
      kind: z.enum(['s3', 'r2', 'gcs', 'local']),
      backend: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/),
      bucket: z
        .string()
        .regex(/^[A-Za-z0-9_.-]{1,222}$/)
        .optional(),
      key: objectKey,
      size: count,
      indexKey: objectKey,
      indexPages: z.number().int().min(0).max(16_777_216),
      deletesKey: objectKey,
    })
    .optional(),
  readsPerDay: count,
  modifiedAt: count,
  moving: z
    .object({
      role: z.enum(['source', 'target']),
      peer: z.string().regex(HOST_PORT, 'host:port'),
      mode: z.enum(['move', 'copy']),
      since: z.string().max(40),
    })
    .optional(),
});

const volumeId = z.number().int().min(1).max(0xffffffff);

const heartbeat = z
  .object({
    url: z.string().regex(HOST_PORT, 'host:port'),
    publicUrl: z
      .string()
      .max(300)
      .regex(PUBLIC_URL, 'host:port or an http(s) URL with no path')
      .or(z.literal('')),
    dataCenter: name,
    rack: name,
    maxVolumeCount: z.number().int().min(0).max(MAX_VOLUMES_PER_NODE),
    maxFileKey: z
      .string()
      .regex(/^\d{1,20}$/, 'a decimal u64')
      // Refinements run even after the regex failed: check the digits again before BigInt.
      .refine((s) => /^\d{1,20}$/.test(s) && BigInt(s) <= MAX_FILE_KEY, 'inside the 64-bit key space'),
    volumes: z
      .array(volume)
      .max(MAX_VOLUMES_PER_NODE)
      .refine((vs) => new Set(vs.map((v) => v.id)).size === vs.length, 'each volume once'),
    /** A master's session (a UUID): present on a delta beat. */
    deltaOf: z
      .string()
      .regex(/^[A-Za-z0-9-]{1,64}$/, 'a master session')
      .optional(),
    deletedVolumes: z.array(volumeId).max(MAX_VOLUMES_PER_NODE).optional(),
  })
  .refine((hb) => hb.deletedVolumes === undefined || hb.deltaOf !== undefined, {
    message: 'deletedVolumes only in a delta (with deltaOf)',
    path: ['deletedVolumes'],
  });

/** The heartbeat, or BadRequestError (400) naming the first field at fault. */
export function parseHeartbeat(body: string): HeartbeatRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (err) {
    throw new BadRequestError('malformed heartbeat: not JSON', { cause: err });
  }
  const parsed = heartbeat.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BadRequestError(`malformed heartbeat: ${issue.path.join('.') || '(body)'}: ${issue.message}`);
  }
  return parsed.data;
}
