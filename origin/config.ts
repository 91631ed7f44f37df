/**
 * Options of every `kelp` command, resolved in one place. Each option has one
 * name, and everything else follows from it (docs/configuration.md):
 *
 *   flag      --<name>                    --volumeSizeLimitMB, --master.port
 *   env var   KELP_<NAME IN UPPER_SNAKE>  KELP_VOLUME_SIZE_LIMIT_MB, KELP_MASTER_PORT
 *   TOML key  <name> in [<section>]       [volume] volumeSizeLimitMB, [server.master] port
 *
 * Precedence, lowest first: built-in default < TOML file (--config FILE, else
 * ./kelp.toml if present) < KELP_* env var < flag. The signing key is the one
 * option without a flag (a flag shows in `ps`): `[jwt.signing] key` or
 * KELP_JWT_SIGNING_KEY, as SeaweedFS keeps it in security.toml.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { KelpError } from '../shared/errors.ts';
import { formatPlacement, parsePlacement } from '../shared/placement.ts';
import { MAX_RESIZE_SIDE, parseResizeParams, type ResizeParams } from '../shared/resize.ts';
import { formatTtl, parseTtl } from '../shared/ttl.ts';
import { parseDuration } from '../tiering/service/duration.ts';
import { ConfigError } from './config-error.ts';
import { MAX_UPLOAD_BYTES } from './http/body.ts';
import { DEFAULT_DRAIN_SECONDS } from './http/drain.ts';
import { MASTER_DEFAULTS } from './master/defaults.ts';
import {
  DEFAULT_LOG_LEVEL,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
} from './observability/log.ts';
import { checkTierKey, isTierKey } from './tier-config.ts';
import { RESIZE_DEFAULTS } from './volume/resize.ts';
import { VOLUME_SERVER_DEFAULTS } from './volume/server.ts';
import { FSYNC_POLICIES, type FsyncPolicy } from './volume/syncer.ts';
import { DEFAULT_VOLUME_SIZE_LIMIT } from './volume/volume.ts';

export { ConfigError };

/** The file looked for in the working directory when no --config (or KELP_CONFIG) is given. */
export const DEFAULT_CONFIG_FILE = 'kelp.toml';
export const CONFIG_ENV = 'KELP_CONFIG';

// ---- values ----

/** Thrown by a parser; resolve() prefixes where the value came from. */
class BadValue extends Error {}

/** Env vars and flags arrive as strings, TOML values typed; parsers take both. */
type Parse<T> = (raw: unknown) => T;

function str(raw: unknown): string {
  if (typeof raw === 'string') return raw.trim();
  if (typeof raw === 'number' || typeof raw === 'bigint') return String(raw);
  throw new BadValue(`must be a string, not ${JSON.stringify(raw)}`);
}

function int(min: number, max: number): Parse<number> {
  return (raw) => {
    const s = typeof raw === 'bigint' ? String(raw) : raw;
    const n =
      typeof s === 'number' ? s : typeof s === 'string' && /^\s*-?\d+\s*$/.test(s) ? Number(s) : Number.NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new BadValue(`must be an integer ${min}-${max}`);
    return n;
  };
}

const port = int(0, 65535);
const positive = int(1, 2 ** 31 - 1);
const text: Parse<string> = (raw) => {
  const s = str(raw);
  if (s === '') throw new BadValue('must not be empty');
  return s;
};

/** "a,b" or a TOML array: one or more items. */
function list<T>(item: Parse<T>): Parse<T[]> {
  return (raw) => {
    const items = Array.isArray(raw) ? raw : str(raw).split(',');
    if (items.length === 0) throw new BadValue('must list at least one value');
    return items.map((x) => item(typeof x === 'string' ? x.trim() : x));
  };
}

function choice<T extends string>(choices: readonly T[]): Parse<T> {
  return (raw) => {
    const s = str(raw);
    if (!(choices as readonly string[]).includes(s))
      throw new BadValue(`must be one of ${choices.join(', ')}`);
    return s as T;
  };
}

/** host:port; an http:// prefix or a trailing slash is forgiven. */
const hostPort: Parse<string> = (raw) => {
  const s = text(raw)
    .replace(/^http:\/\//, '')
    .replace(/\/+$/, '');
  if (!/^[^\s/:]+:\d{1,5}$/.test(s)) throw new BadValue('must be HOST:PORT');
  return s;
};
/** One master or several (`a:9333,b:9333` or a TOML array), kept as a comma-separated list. */
const hostPorts: Parse<string> = (raw) => list(hostPort)(raw).join(',');
/** A volume server's masters: "" runs it standalone, reporting to no master. */
const hostPortsOrNone: Parse<string> = (raw) =>
  (Array.isArray(raw) ? raw.length === 0 : str(raw) === '') ? '' : hostPorts(raw);

/** Checked by the parsers of shared/, whose errors (KelpErrors) carry the reason. */
function checked(fn: (s: string) => string): Parse<string> {
  return (raw) => {
    try {
      return fn(str(raw));
    } catch (err) {
      if (err instanceof KelpError) throw new BadValue(err.message);
      throw err;
    }
  };
}
const replication = checked((s) => formatPlacement(parsePlacement(s)));
/** "#rgb" or "#rrggbb". */
const colour: Parse<string> = (raw) => {
  const s = str(raw);
  if (!/^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(s)) throw new BadValue('must be a colour #rgb or #rrggbb');
  return s;
};
/** http(s)://host[:port], no path. */
const baseUrlValue: Parse<string> = (raw) => {
  const s = text(raw).replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/]+$/.test(s)) throw new BadValue('must be http(s)://host[:port]');
  return s;
};
const ttl = checked((s) => formatTtl(parseTtl(s)));
/** "60s", "5m" → milliseconds (tiering/service/policy.ts's units). */
const durationMs: Parse<number> = (raw) => {
  let ms: number;
  try {
    ms = parseDuration(str(raw));
  } catch (err) {
    if (err instanceof KelpError) throw new BadValue(err.message);
    throw err;
  }
  if (ms <= 0) throw new BadValue('must be longer than 0');
  return ms;
};

// ---- schemas ----

export interface OptionSpec<T> {
  /** Name after `--`; none for secrets. */
  flag?: string;
  /** Help placeholder, e.g. `<port>`. */
  arg: string;
  env: string;
  /** Dotted TOML path, e.g. `master.port` = `port` in `[master]`. */
  toml: string;
  description: string;
  default: T;
  /** How the default reads in help and docs when it is not a plain value. */
  defaultText?: string;
  parse: Parse<T>;
}

type Field<T> = Omit<OptionSpec<T>, 'env' | 'toml' | 'flag'> & { noFlag?: { env: string; toml: string } };

function field<T>(arg: string, description: string, parse: Parse<T>, def: T, defaultText?: string): Field<T> {
  return { arg, description, parse, default: def, ...(defaultText ? { defaultText } : {}) };
}

/** `volumeSizeLimitMB` → `VOLUME_SIZE_LIMIT_MB`, `master.port` → `MASTER_PORT`. */
export function envName(name: string): string {
  return `KELP_${name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/\./g, '_')
    .toUpperCase()}`;
}

type Schema = Record<string, OptionSpec<unknown>>;
type Specs<F> = { [K in keyof F]: F[K] extends Field<infer T> ? OptionSpec<T> : never };

function schema<F extends Record<string, Field<unknown>>>(section: string, fields: F): Specs<F> {
  const out: Record<string, OptionSpec<unknown>> = {};
  for (const [name, { noFlag, ...f }] of Object.entries(fields)) {
    out[name] = noFlag
      ? { ...f, ...noFlag }
      : { ...f, flag: name, env: envName(name), toml: `${section}.${name}` };
  }
  return out as Specs<F>;
}

const MIB = 1024 * 1024;
const SIGNING_KEY: Field<string | undefined> = {
  ...field<string | undefined>('', 'HS256 key for write tokens; unset = an open cluster', text, undefined),
  noFlag: { env: 'KELP_JWT_SIGNING_KEY', toml: 'jwt.signing.key' },
};

const READ_SIGNING_KEY: Field<string | undefined> = {
  ...field<string | undefined>('', 'HS256 key for read tokens; unset = open reads', text, undefined),
  noFlag: { env: 'KELP_JWT_SIGNING_READ_KEY', toml: 'jwt.signing.read.key' },
};

/** `--insecure` alone, `true`/`false` from env and file. */
const bool: Parse<boolean> = (raw) => {
  if (raw === true || raw === 'true' || raw === '1') return true;
  if (raw === false || raw === 'false' || raw === '0' || raw === '') return false;
  throw new BadValue('must be true or false');
};

function secret(description: string, env: string, toml: string): Field<string | undefined> {
  return { ...field<string | undefined>('', description, text, undefined), noFlag: { env, toml } };
}

// Credentials (docs/security.md): secrets have no flag, a flag shows in `ps`.
const CLUSTER_KEY = secret(
  'HMAC key every master, volume server and tier service shares: signs heartbeats, replication and admin calls between them; unset = members unauthenticated',
  'KELP_CLUSTER_KEY',
  'security.clusterKey',
);
const PREVIOUS_CLUSTER_KEY = secret(
  'the cluster key being rotated out: still accepted from members, never used to sign (docs/security.md)',
  'KELP_PREVIOUS_CLUSTER_KEY',
  'security.previousClusterKey',
);
const ADMIN_KEY = secret(
  'Bearer key of admin calls (/vol/grow, /col/delete, /admin/*); unset = only cluster members (or anyone, without a cluster key)',
  'KELP_ADMIN_KEY',
  'security.adminKey',
);
const CLIENT_KEYS: Field<string[] | undefined> = {
  ...field<string[] | undefined>(
    '',
    'Bearer keys of clients of the write API (assign, /submit, lookup tokens), comma-separated',
    list(text),
    undefined,
  ),
  noFlag: { env: 'KELP_CLIENT_KEYS', toml: 'security.clientKeys' },
};
const EDGE_HEAT_KEYS: Field<string[] | undefined> = {
  ...field<string[] | undefined>(
    '',
    "Bearer keys the edge Worker reports its read heat with (POST /edge/heat only; the Worker's HEAT_KEY), comma-separated",
    list(text),
    undefined,
  ),
  noFlag: { env: 'KELP_EDGE_HEAT_KEYS', toml: 'security.edgeHeatKeys' },
};
const WHITE_LIST = field<string[] | undefined>(
  '<cidrs>',
  'networks whose callers may use the write API without a client key, e.g. 10.0.0.0/8',
  list(text),
  undefined,
);
const INSECURE = field(
  '',
  'listen on a non-loopback address without credentials (refused otherwise)',
  bool,
  false,
);
const METRICS_KEY = secret(
  'Bearer key Prometheus presents to read /metrics; unset = /metrics takes the admin credentials (open when there are none)',
  'KELP_METRICS_KEY',
  'security.metricsKey',
);
/** `--metrics false` switches the counting off (and /metrics answers 404). */
const METRICS = field('<bool>', 'Prometheus metrics at /metrics', bool, true);
const DRAIN_SECONDS = field(
  '<s>',
  'on SIGTERM, seconds requests in flight get to finish before their connections are closed',
  int(0, 3600),
  DEFAULT_DRAIN_SECONDS,
);

/** Every server's [log] section: `--logLevel`, KELP_LOG_LEVEL, `level` in [log]. */
const LOG_OPTIONS = {
  logLevel: {
    ...field<LogLevel>(
      '<level>',
      `least severe level logged (${LOG_LEVELS.join('|')})`,
      choice(LOG_LEVELS),
      DEFAULT_LOG_LEVEL,
    ),
    flag: 'logLevel',
    env: 'KELP_LOG_LEVEL',
    toml: 'log.level',
  },
  logFormat: {
    ...field<LogFormat>(
      '<format>',
      'auto (readable lines on a terminal, JSON lines otherwise), json or pretty',
      choice(LOG_FORMATS),
      'auto',
    ),
    flag: 'logFormat',
    env: 'KELP_LOG_FORMAT',
    toml: 'log.format',
  },
} satisfies Record<string, OptionSpec<unknown>>;

/** The key `kelp upload`, `download` and `tier` present as a client (or admin) of the cluster. */
const CLIENT_KEY = secret('Bearer key this client presents to the master', 'KELP_CLIENT_KEY', 'client.key');

/** Several masters (docs/several-masters.md): `kelp master` and `kelp server` alike. */
const ETCD_FIELDS = {
  etcd: field<string[] | undefined>(
    '<host:port,...>',
    'etcd members: run as one of several masters sharing state and electing a leader there; unset = a single master with its state in --mdir',
    list(hostPort),
    undefined,
  ),
  etcdPrefix: field(
    '<prefix>',
    "prefix of this cluster's keys in etcd (clusters sharing an etcd need different ones)",
    text,
    MASTER_DEFAULTS.etcdPrefix,
  ),
};

/** "15m", "90s"; "0" or "off" = never (the master's vacuum schedule). */
const intervalOrOff: Parse<number> = (raw) => {
  const s = str(raw);
  if (s === '0' || s === 'off') return 0;
  return durationMs(s);
};
/** A ratio 0..1 (garbage thresholds). */
const ratio: Parse<number> = (raw) => {
  const n = typeof raw === 'number' ? raw : Number(str(raw));
  if (!(Number.isFinite(n) && n >= 0 && n <= 1)) throw new BadValue('must be a ratio from 0 to 1, e.g. 0.3');
  return n;
};

const MASTER_FIELDS = {
  port: field('<port>', 'HTTP port (0 picks a free one)', port, MASTER_DEFAULTS.port),
  ip: field('<address>', 'address to bind', text, MASTER_DEFAULTS.host),
  mdir: field('<dir>', 'directory of the durable state (sequencer, volume ids)', text, MASTER_DEFAULTS.mdir),
  volumeSizeLimitMB: field(
    '<mb>',
    'volumes seal at this size',
    positive,
    MASTER_DEFAULTS.volumeSizeLimitBytes / MIB,
  ),
  defaultReplication: field(
    '<xyz>',
    'replica placement when an assign names none',
    replication,
    MASTER_DEFAULTS.defaultReplication,
  ),
  pulseSeconds: field('<s>', 'seconds between heartbeats', positive, MASTER_DEFAULTS.pulseSeconds),
  ...ETCD_FIELDS,
  vacuumInterval: field(
    '<duration>',
    'how often the master vacuums the cluster by itself, e.g. 15m; 0 = never',
    intervalOrOff,
    MASTER_DEFAULTS.vacuumIntervalMs,
    '15m',
  ),
  garbageThreshold: field(
    '<ratio>',
    'garbage ratio at which the scheduled vacuum compacts a volume',
    ratio,
    MASTER_DEFAULTS.garbageThreshold,
  ),
  edgeHeatPersistInterval: field(
    '<duration>',
    'how often the leader saves the edge read heat in its state store (followers load it at the same pace); 0 = never',
    intervalOrOff,
    MASTER_DEFAULTS.edgeHeatPersistMs,
    '5m',
  ),
  metrics: METRICS,
  drainSeconds: DRAIN_SECONDS,
};

const VOLUME_FIELDS = {
  port: field('<port>', 'HTTP port (0 picks a free one)', port, VOLUME_SERVER_DEFAULTS.port),
  ip: field('<address>', 'address to bind', text, VOLUME_SERVER_DEFAULTS.host),
  dir: field('<dirs>', 'data directories, comma-separated', list(text), ['./data'], './data'),
  max: field(
    '<counts>',
    'most volumes per directory, comma-separated; 0 = as many as its free disk fits at the size limit (SeaweedFS -max=0)',
    list(int(0, 2 ** 31 - 1)),
    [0],
    '0',
  ),
  master: field(
    '<host:port,...>',
    'masters to heartbeat to, comma-separated: every one gets every beat ("" = none)',
    hostPortsOrNone,
    '127.0.0.1:9333',
  ),
  dataCenter: field('<name>', 'data center of this server', text, VOLUME_SERVER_DEFAULTS.dataCenter),
  rack: field('<name>', 'rack of this server', text, VOLUME_SERVER_DEFAULTS.rack),
  publicUrl: field<string | undefined>(
    '<url>',
    'host:port clients read from',
    text,
    undefined,
    'the bound address',
  ),
  fsync: field<FsyncPolicy>(
    '<policy>',
    `when a write is acknowledged (${FSYNC_POLICIES.join('|')})`,
    choice(FSYNC_POLICIES),
    VOLUME_SERVER_DEFAULTS.fsync,
  ),
  volumeSizeLimitMB: field('<mb>', 'seal a volume at this size', positive, DEFAULT_VOLUME_SIZE_LIMIT / MIB),
  fileSizeLimitMB: field('<mb>', 'largest upload accepted (413 beyond)', positive, MAX_UPLOAD_BYTES / MIB),
  pulseSeconds: field('<s>', 'seconds between heartbeats', positive, VOLUME_SERVER_DEFAULTS.pulseSeconds),
  metrics: METRICS,
  drainSeconds: DRAIN_SECONDS,
};

const { port: volumePort, dataCenter, rack, publicUrl, fsync, fileSizeLimitMB } = VOLUME_FIELDS;

/**
 * `?preset=NAME` variants: a table of tables in the file (`[resize.presets.thumb]
 * width = 200`), or JSON in KELP_RESIZE_PRESETS. Each is checked as the query
 * string it stands for would be, against the largest side allowed by default.
 */
const presets: Parse<Record<string, ResizeParams>> = (raw) => {
  let table: unknown = raw;
  if (typeof raw === 'string') {
    try {
      table = JSON.parse(raw);
    } catch {
      throw new BadValue('must be a JSON object of presets, e.g. {"thumb":{"width":200,"height":200}}');
    }
  }
  if (table === null || typeof table !== 'object' || Array.isArray(table))
    throw new BadValue('must be a table of presets, e.g. [resize.presets.thumb]');
  const out: Record<string, ResizeParams> = {};
  for (const [name, p] of Object.entries(table as Record<string, unknown>)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name))
      throw new BadValue(`preset name "${name}" must be letters, digits, - or _`);
    if (p === null || typeof p !== 'object' || Array.isArray(p))
      throw new BadValue(`preset "${name}" must be a table of width, height, mode, format, quality`);
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(p as Record<string, unknown>)) {
      if (k === 'preset' || !['width', 'height', 'mode', 'format', 'quality'].includes(k))
        throw new BadValue(
          `preset "${name}": unknown key "${k}" (known: width, height, mode, format, quality)`,
        );
      query.set(k, String(v));
    }
    let parsed: ResizeParams | null;
    try {
      parsed = parseResizeParams(query);
    } catch (err) {
      if (err instanceof KelpError) throw new BadValue(`preset "${name}": ${err.message}`);
      throw err;
    }
    if (!parsed) throw new BadValue(`preset "${name}" asks for no change`);
    out[name] = parsed;
  }
  return out;
};

/** The [resize] section, read by `kelp volume` and `kelp server` alike: `--resize.<name>`, KELP_RESIZE_<NAME>. */
function resizeFields(): Record<string, OptionSpec<unknown>> {
  const at = (name: string, flag = true) => ({
    ...(flag ? { flag: `resize.${name}` } : {}),
    env: envName(`resize.${name}`),
    toml: `resize.${name}`,
  });
  const fields = {
    maxSourcePixels: field(
      '<pixels>',
      'largest image resized (decompression bombs refused: 422)',
      positive,
      RESIZE_DEFAULTS.maxSourcePixels,
    ),
    maxSide: field(
      '<px>',
      'largest width or height a resize may ask for (400 beyond)',
      positive,
      MAX_RESIZE_SIDE,
    ),
    concurrency: field('<n>', 'resize jobs run at once', positive, RESIZE_DEFAULTS.concurrency),
    maxQueue: field(
      '<n>',
      'resize jobs allowed to wait (429 beyond)',
      int(0, 2 ** 31 - 1),
      RESIZE_DEFAULTS.maxQueue,
    ),
    timeoutSeconds: field(
      '<s>',
      'time limit of one resize job (503)',
      positive,
      RESIZE_DEFAULTS.timeoutSeconds,
    ),
    background: field(
      '<#rrggbb>',
      'colour transparent pixels become in a JPEG variant',
      colour,
      RESIZE_DEFAULTS.background,
    ),
  };
  const out: Record<string, OptionSpec<unknown>> = {};
  for (const [name, f] of Object.entries(fields)) out[`resize.${name}`] = { ...f, ...at(name) };
  out['resize.presets'] = {
    ...field<Record<string, ResizeParams>>(
      '',
      'named variants for ?preset=NAME, a table of tables ([resize.presets.thumb] width = 200)',
      presets,
      {},
      '(none)',
    ),
    ...at('presets', false),
  };
  out['resize.signingKey'] = {
    ...field<string | undefined>(
      '',
      'HMAC-SHA256 key resize URLs must be signed with (sig); unset = unsigned resizes allowed',
      text,
      undefined,
    ),
    ...at('signingKey', false),
  };
  return out;
}

interface ResizeSpecs {
  'resize.maxSourcePixels': OptionSpec<number>;
  'resize.maxSide': OptionSpec<number>;
  'resize.concurrency': OptionSpec<number>;
  'resize.maxQueue': OptionSpec<number>;
  'resize.timeoutSeconds': OptionSpec<number>;
  'resize.background': OptionSpec<string>;
  'resize.presets': OptionSpec<Record<string, ResizeParams>>;
  'resize.signingKey': OptionSpec<string | undefined>;
}
const RESIZE_OPTIONS = resizeFields() as unknown as ResizeSpecs;

/**
 * The [edge] section, read by `kelp volume` and `kelp server`: where purge
 * events go (origin/volume/edge-purge.ts). `--edge.<name>`, KELP_EDGE_<NAME>.
 */
function edgeFields(): Record<string, OptionSpec<unknown>> {
  const at = (name: string, flag = true) => ({
    ...(flag ? { flag: `edge.${name}` } : {}),
    env: envName(`edge.${name}`),
    toml: `edge.${name}`,
  });
  return {
    'edge.purgeUrls': {
      ...field<string[]>(
        '<urls>',
        "edge Workers told of overwrites and deletes (their POST /_kelp/purge), comma-separated; none = the edge's fresh period bounds staleness alone",
        list(baseUrlValue),
        [],
        '(none)',
      ),
      ...at('purgeUrls'),
    },
    'edge.purgeKey': {
      ...field<string | undefined>(
        '',
        "the edge's PURGE_KEY (bearer token of its purge endpoint)",
        text,
        undefined,
      ),
      ...at('purgeKey', false),
    },
    'edge.cloudflareZone': {
      ...field<string | undefined>(
        '<zone id>',
        'Cloudflare zone whose cache is purged by tag on overwrites and deletes (every location)',
        text,
        undefined,
      ),
      ...at('cloudflareZone'),
    },
    'edge.cloudflareApiToken': {
      ...field<string | undefined>('', 'API token with Cache Purge permission on that zone', text, undefined),
      ...at('cloudflareApiToken', false),
    },
  };
}

interface EdgeSpecs {
  'edge.purgeUrls': OptionSpec<string[]>;
  'edge.purgeKey': OptionSpec<string | undefined>;
  'edge.cloudflareZone': OptionSpec<string | undefined>;
  'edge.cloudflareApiToken': OptionSpec<string | undefined>;
}
const EDGE_OPTIONS = edgeFields() as unknown as EdgeSpecs;

/** The credentials a volume server takes (docs/security.md). */
const VOLUME_SECURITY = {
  insecure: INSECURE,
  signingKey: SIGNING_KEY,
  readSigningKey: READ_SIGNING_KEY,
  clusterKey: CLUSTER_KEY,
  previousClusterKey: PREVIOUS_CLUSTER_KEY,
  adminKey: ADMIN_KEY,
  metricsKey: METRICS_KEY,
};
/** A master's: a volume server's, and who may use its write API. */
const MASTER_SECURITY = {
  whiteList: WHITE_LIST,
  ...VOLUME_SECURITY,
  clientKeys: CLIENT_KEYS,
  edgeHeatKeys: EDGE_HEAT_KEYS,
};

export const MASTER_OPTIONS = {
  ...schema('master', { ...MASTER_FIELDS, ...MASTER_SECURITY }),
  ...LOG_OPTIONS,
};
export const VOLUME_OPTIONS = {
  ...schema('volume', { ...VOLUME_FIELDS, ...VOLUME_SECURITY }),
  ...RESIZE_OPTIONS,
  ...EDGE_OPTIONS,
  ...LOG_OPTIONS,
};
/** Master + one volume server: --master.X and --volume.X, in [server], [server.master], [server.volume]. */
export const SERVER_OPTIONS = {
  ...schema('server', {
    dir: field('<dir>', 'volumes here, master state in DIR/master', text, './data'),
    ip: field('<address>', 'address both servers bind', text, MASTER_DEFAULTS.host),
    'master.port': MASTER_FIELDS.port,
    'master.mdir': field<string | undefined>(
      '<dir>',
      MASTER_FIELDS.mdir.description,
      text,
      undefined,
      '<dir>/master',
    ),
    'master.volumeSizeLimitMB': MASTER_FIELDS.volumeSizeLimitMB,
    'master.defaultReplication': MASTER_FIELDS.defaultReplication,
    'master.pulseSeconds': MASTER_FIELDS.pulseSeconds,
    etcd: ETCD_FIELDS.etcd,
    etcdPrefix: ETCD_FIELDS.etcdPrefix,
    'master.peers': field<string | undefined>(
      '<host:port,...>',
      'the other masters of a cluster on etcd: the volume server heartbeats them too',
      hostPorts,
      undefined,
    ),
    'master.vacuumInterval': MASTER_FIELDS.vacuumInterval,
    'master.garbageThreshold': MASTER_FIELDS.garbageThreshold,
    'master.edgeHeatPersistInterval': MASTER_FIELDS.edgeHeatPersistInterval,
    'volume.port': volumePort,
    'volume.max': field('<count>', 'most volumes in DIR', positive, 8),
    'volume.dataCenter': dataCenter,
    'volume.rack': rack,
    'volume.publicUrl': publicUrl,
    'volume.fsync': fsync,
    'volume.fileSizeLimitMB': fileSizeLimitMB,
    metrics: METRICS,
    drainSeconds: DRAIN_SECONDS,
    ...MASTER_SECURITY,
  }),
  ...RESIZE_OPTIONS,
  ...EDGE_OPTIONS,
  ...LOG_OPTIONS,
};

const CLIENT_MASTER = field(
  '<host:port,...>',
  'masters to ask, comma-separated: tried in order',
  hostPorts,
  '127.0.0.1:9333',
);
/** `kelp upload`, `kelp download` and `kelp delete` share the [client] section. */
export const UPLOAD_OPTIONS = schema('client', {
  master: CLIENT_MASTER,
  collection: field('<name>', 'collection to write into', str, ''),
  replication: field<string | undefined>(
    '<xyz>',
    'replica placement',
    replication,
    undefined,
    "the master's",
  ),
  ttl: field('<ttl>', 'time to live, e.g. 3d', ttl, ''),
  key: CLIENT_KEY,
});
export const DOWNLOAD_OPTIONS = schema('client', { master: CLIENT_MASTER, key: CLIENT_KEY });
export const DELETE_OPTIONS = schema('client', { master: CLIENT_MASTER, key: CLIENT_KEY });

/** Every `kelp tier` command finds the cluster through the master; [tier] in the file. */
const TIER_MASTER = field(
  '<host:port,...>',
  'masters of the cluster, comma-separated: tried in order',
  hostPorts,
  '127.0.0.1:9333',
);
export const TIER_OPTIONS = schema('tier', {
  master: TIER_MASTER,
  clusterKey: CLUSTER_KEY,
  adminKey: ADMIN_KEY,
});
export const TIER_INTERVAL_MS = 60_000;
/** `kelp tier serve`'s own HTTP server (/healthz, /readyz, /metrics): loopback unless told otherwise. */
export const TIER_SERVE_PORT = 9336;
export const TIER_SERVE_OPTIONS = {
  ...schema('tier', {
    master: TIER_MASTER,
    clusterKey: CLUSTER_KEY,
    adminKey: ADMIN_KEY,
    metricsKey: METRICS_KEY,
    interval: field(
      '<duration>',
      'pause between rounds with nothing to move, e.g. 30s, 5m',
      durationMs,
      TIER_INTERVAL_MS,
      '60s',
    ),
    ip: field('<address>', 'address of its /healthz, /readyz and /metrics', text, '127.0.0.1'),
    port: field(
      '<port>',
      'port of its /healthz, /readyz and /metrics (0 picks a free one)',
      port,
      TIER_SERVE_PORT,
    ),
    metrics: METRICS,
    insecure: INSECURE,
  }),
  ...LOG_OPTIONS,
};

/** `kelp admin ...`: the master to ask, and the admin key or cluster key to present; [admin] in the file. */
export const ADMIN_OPTIONS = schema('admin', {
  master: field('<host:port>', 'master of the cluster', hostPort, '127.0.0.1:9333'),
  clusterKey: CLUSTER_KEY,
  adminKey: ADMIN_KEY,
});

export const COMMAND_OPTIONS = {
  master: MASTER_OPTIONS,
  volume: VOLUME_OPTIONS,
  server: SERVER_OPTIONS,
  upload: UPLOAD_OPTIONS,
  download: DOWNLOAD_OPTIONS,
  delete: DELETE_OPTIONS,
  // Subcommands as "parent sub"; kelp tier's [[tier.policy]] and [backend.*] sections are in tier-config.ts.
  'tier upload': TIER_OPTIONS,
  'tier download': TIER_OPTIONS,
  'tier status': TIER_OPTIONS,
  'tier plan': TIER_OPTIONS,
  'tier compact': TIER_OPTIONS,
  'tier serve': TIER_SERVE_OPTIONS,
  'admin vacuum': ADMIN_OPTIONS,
  'admin volume.list': ADMIN_OPTIONS,
  'admin volume.balance': ADMIN_OPTIONS,
  'admin volume.move': ADMIN_OPTIONS,
  'admin volume.fix.replication': ADMIN_OPTIONS,
  'admin volume.mark': ADMIN_OPTIONS,
  'admin collection.delete': ADMIN_OPTIONS,
} satisfies Record<string, Schema>;

export type Resolved<S> = { [K in keyof S]: S[K] extends OptionSpec<infer T> ? T : never };
export type MasterOptions = Resolved<typeof MASTER_OPTIONS>;
export type VolumeOptions = Resolved<typeof VOLUME_OPTIONS>;
export type ServerOptions = Resolved<typeof SERVER_OPTIONS>;
export type UploadOptions = Resolved<typeof UPLOAD_OPTIONS>;
export type DownloadOptions = Resolved<typeof DOWNLOAD_OPTIONS>;
export type DeleteOptions = Resolved<typeof DELETE_OPTIONS>;
export type TierOptions = Resolved<typeof TIER_OPTIONS>;
export type TierServeOptions = Resolved<typeof TIER_SERVE_OPTIONS>;
export type AdminOptions = Resolved<typeof ADMIN_OPTIONS>;

// ---- the TOML file ----

/** Every dotted key any command reads: a key outside this set is a typo, whichever command runs. */
const KNOWN_KEYS = new Set(
  Object.values(COMMAND_OPTIONS).flatMap((s) => Object.values(s).map((o) => o.toml)),
);

/** Keys whose value is a whole table, not a section of keys. */
const WHOLE_TABLES = new Set(['resize.presets']);

function flatten(table: Record<string, unknown>, prefix: string, out: Map<string, unknown>): void {
  for (const [k, v] of Object.entries(table)) {
    const path = prefix ? `${prefix}.${k}` : k;
    // [resize.presets.*] is one value, a table of tables, parsed whole.
    if (
      v !== null &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      !(v instanceof Date) &&
      !WHOLE_TABLES.has(path)
    ) {
      flatten(v as Record<string, unknown>, path, out);
    } else {
      out.set(path, v);
    }
  }
}

function describeKey(path: string): string {
  const dot = path.lastIndexOf('.');
  return dot < 0 ? `"${path}"` : `"${path.slice(dot + 1)}" in [${path.slice(0, dot)}]`;
}

/** The file's values by dotted key, or a ConfigError naming the first unknown key. */
export function loadConfigFile(path: string): Map<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let table: Record<string, unknown>;
  try {
    table = parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) throw new ConfigError(`${path}: ${err.message}`);
    throw err;
  }
  const values = new Map<string, unknown>();
  flatten(table, '', values);
  for (const [key, value] of values) {
    if (isTierKey(key)) {
      checkTierKey(key, value, path);
      continue;
    }
    if (!KNOWN_KEYS.has(key)) {
      const section = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '';
      const siblings = [...KNOWN_KEYS].filter(
        (k) => k.startsWith(`${section}.`) && !k.slice(section.length + 1).includes('.'),
      );
      const hint = siblings.length
        ? ` (known there: ${siblings.map((k) => k.slice(section.length + 1)).join(', ')})`
        : '';
      throw new ConfigError(`${path}: unknown key ${describeKey(key)}${hint}`);
    }
  }
  return values;
}

// ---- resolution ----

export type Source = 'default' | 'file' | 'env' | 'flag';

export interface Sources {
  /** Flag values as the parser gives them (strings), keyed by option name; absent = not given. */
  flags?: Record<string, unknown>;
  env?: Record<string, string | undefined>;
  /** --config FILE; else KELP_CONFIG; else ./kelp.toml in `cwd` if present. */
  configFile?: string;
  cwd?: string;
}

export interface Resolution<S> {
  values: Resolved<S>;
  /** Where each value came from (shown by tests and useful in logs). */
  sources: Record<keyof S, Source>;
  configFile?: string;
}

export function findConfigFile(sources: Sources): string | undefined {
  const cwd = sources.cwd ?? process.cwd();
  const explicit = sources.configFile ?? sources.env?.[CONFIG_ENV];
  if (explicit) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) throw new ConfigError(`config file ${path} does not exist`);
    return path;
  }
  const implicit = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(implicit) ? implicit : undefined;
}

export function resolveOptions<S extends Schema>(spec: S, sources: Sources = {}): Resolution<S> {
  const env = sources.env ?? {};
  const flags = sources.flags ?? {};
  const configFile = findConfigFile(sources);
  const file = configFile ? loadConfigFile(configFile) : new Map<string, unknown>();
  const values: Record<string, unknown> = {};
  const origin: Record<string, Source> = {};
  for (const [name, o] of Object.entries(spec)) {
    const parse = (raw: unknown, where: string) => {
      try {
        return o.parse(raw);
      } catch (err) {
        if (err instanceof BadValue) throw new ConfigError(`${where}: ${err.message}`);
        throw err;
      }
    };
    if (o.flag && flags[o.flag] !== undefined) {
      values[name] = parse(flags[o.flag], `--${o.flag}`);
      origin[name] = 'flag';
    } else if (env[o.env] !== undefined && env[o.env] !== '') {
      values[name] = parse(env[o.env], o.env);
      origin[name] = 'env';
    } else if (file.has(o.toml)) {
      values[name] = parse(file.get(o.toml), `${configFile}: ${describeKey(o.toml)}`);
      origin[name] = 'file';
    } else {
      values[name] = o.default;
      origin[name] = 'default';
    }
  }
  return {
    values: values as Resolved<S>,
    sources: origin as Record<keyof S, Source>,
    ...(configFile ? { configFile } : {}),
  };
}

/** How an option's default reads in help and docs. */
export function defaultText(o: OptionSpec<unknown>): string {
  if (o.defaultText) return o.defaultText;
  if (o.default === undefined) return '(none)';
  if (o.default === '') return '""';
  return Array.isArray(o.default) ? o.default.join(',') : String(o.default);
}
