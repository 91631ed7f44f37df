/**
 * Structured logs (pino): one JSON object per line on stdout, or readable
 * lines when stdout is a terminal (pino-pretty, in this thread: no worker).
 * Each component logs through a child of the process logger
 * (`{"component":"volume"}`), and a line written while serving a request
 * carries its id (`reqId`, request-id.ts).
 *
 * No secret reaches a line: fields that hold credentials are censored by
 * path, and every message, and every string field, is scrubbed of bearer
 * tokens, `jwt=`/`sig=` query values and cluster signatures, wherever they
 * came from (an error message quoting a URL, a header echoed back).
 */
import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** `auto`: readable lines on a terminal, JSON otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

const CENSOR = '[redacted]';

/**
 * Fields censored wherever they appear one or two levels down: request and
 * response headers, configs, error objects. Keys are as Node gives headers
 * (lower case) and as Kelp names its settings.
 */
const SECRET_KEYS = [
  'authorization',
  'x-kelp-auth',
  'cookie',
  'set-cookie',
  'clusterKey',
  'previousClusterKey',
  'adminKey',
  'metricsKey',
  'clientKeys',
  'signingKey',
  'readSigningKey',
  'secretAccessKey',
  'sessionToken',
  'credentials',
  'token',
  'jwt',
];
const REDACT_PATHS = SECRET_KEYS.flatMap((k) => {
  const key = `["${k}"]`;
  return [key, `*${key}`, `*.*${key}`];
});

/**
 * Credentials as they show up inside text: `Bearer <token>`, a `jwt=`,
 * `sig=` or `token=` query value, an `X-Kelp-Auth: ...` header line, a JWT
 * anywhere (three base64url parts, the first `eyJ`).
 */
const SECRET_TEXT: Array<[RegExp, string]> = [
  [/\b(bearer)[ \t]+[^\s"',;]+/gi, `$1 ${CENSOR}`],
  [/([?&;\s](?:jwt|sig|token|auth)=)[^&\s"']+/gi, `$1${CENSOR}`],
  [/(x-kelp-auth["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, `$1${CENSOR}`],
  [/\beyJ[\w-]+\.[\w-]+\.[\w-]+/g, CENSOR],
];

/** `text` with every credential pattern replaced by `[redacted]`. */
export function scrubText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_TEXT) out = out.replace(pattern, replacement);
  return out;
}

/** Strings of a log object scrubbed, nested objects too (bounded depth: log objects are small). */
function scrubObject(obj: Record<string, unknown>, depth = 0): Record<string, unknown> {
  if (depth > 3) return obj;
  let copy: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(obj)) {
    let next: unknown = v;
    if (typeof v === 'string') next = scrubText(v);
    else if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Error))
      next = scrubObject(v as Record<string, unknown>, depth + 1);
    if (next !== v) {
      copy ??= { ...obj };
      copy[k] = next;
    }
  }
  return copy ?? obj;
}

export interface LoggerConfig {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go (tests pass a memory stream); stdout by default. */
  destination?: DestinationStream;
}

/** Options shared by every Kelp logger: label levels, ISO times, redaction, scrubbing. */
function options(level: LogLevel): LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      log: (obj) => scrubObject(obj),
    },
    serializers: {
      err: (err: unknown) => {
        const s = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
        return scrubObject(s);
      },
    },
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    hooks: {
      // Messages are scrubbed here: formatters only see the merged object.
      logMethod(args, method) {
        const scrubbed = args.map((a) => (typeof a === 'string' ? scrubText(a) : a)) as typeof args;
        method.apply(this, scrubbed);
      },
    },
  };
}

/**
 * pino-pretty (about 30 modules) is required only when a terminal wants it:
 * servers log JSON, and every module loaded stays in their RSS (issue 15).
 * Synchronously, as createLogger is; pino-pretty is CommonJS.
 */
function prettyStream(): DestinationStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  return pretty({
    colorize: true,
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,component',
    messageFormat: '{if component}{component}: {end}{msg}',
  });
}

export function createLogger(config: LoggerConfig = {}): Logger {
  const level = config.level ?? DEFAULT_LOG_LEVEL;
  if (config.destination) return pino(options(level), config.destination);
  const format = config.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  // Synchronous writes: few lines, and none lost when the process exits right after a signal.
  return pino(options(level), usePretty ? prettyStream() : pino.destination({ dest: 1, sync: true }));
}

let root: Logger | undefined;

/**
 * The process's logger. The CLI sets it from the config before starting a
 * server; until then (and in tests that pass no logger) it is a default one
 * at KELP_LOG_LEVEL or info.
 */
export function rootLogger(): Logger {
  root ??= createLogger({
    level: (LOG_LEVELS as readonly string[]).includes(process.env.KELP_LOG_LEVEL ?? '')
      ? (process.env.KELP_LOG_LEVEL as LogLevel)
      : DEFAULT_LOG_LEVEL,
  });
  return root;
}

export function setRootLogger(logger: Logger): void {
  root = logger;
}

/** A logger that writes nothing (tests that do not look at logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
