import { type Command, Option } from 'commander';
import type { ResizeParams } from '../../shared/resize.ts';
import { type BackendConfig, defaultLocalConfig, redactConfig } from '../../tiering/backends/backend.ts';
import {
  CONFIG_ENV,
  ConfigError,
  DEFAULT_CONFIG_FILE,
  defaultText,
  loadConfigFile,
  type OptionSpec,
  type Resolution,
  resolveOptions,
} from '../config.ts';
import { loadBackends } from '../tier-config.ts';
import type { ReadConfig } from '../volume/blob-headers.ts';
import type { EdgePurgeConfig } from '../volume/edge-purge.ts';
import { Resizer } from '../volume/resize.ts';

type Schema = Record<string, OptionSpec<unknown>>;

/** Adds `--config` and one flag per schema option (no commander defaults: see resolveFlags). */
export function addOptions(cmd: Command, spec: Schema): Command {
  cmd.addOption(
    new Option(
      '--config <file>',
      `TOML config file (default: ./${DEFAULT_CONFIG_FILE} if present; env ${CONFIG_ENV})`,
    ),
  );
  const secrets: string[] = [];
  for (const o of Object.values(spec)) {
    if (!o.flag) {
      secrets.push(
        `${o.env} or \`${o.toml.slice(o.toml.lastIndexOf('.') + 1)}\` in [${o.toml.slice(0, o.toml.lastIndexOf('.'))}]`,
      );
      continue;
    }
    cmd.addOption(
      new Option(`--${o.flag} ${o.arg}`, `${o.description} (default: ${defaultText(o)}; env ${o.env})`),
    );
  }
  const flagged = Object.values(spec).filter((o) => o.flag);
  const section = (o: OptionSpec<unknown>) => o.toml.slice(0, o.toml.length - o.flag!.length - 1);
  const dotted = flagged.find((o) => o.flag!.includes('.'));
  const example = dotted
    ? ` (so --${dotted.flag} is \`${dotted.toml.slice(dotted.toml.lastIndexOf('.') + 1)}\` in [${dotted.toml.slice(0, dotted.toml.lastIndexOf('.'))}])`
    : '';
  const lines = [
    '',
    `Config file: each option is a key named like its flag in [${section(flagged[0]!)}]${example}.`,
    'Precedence: flag > env var > config file > default. See docs/configuration.md.',
  ];
  if (secrets.length)
    lines.push(`Signing keys and tables have no flag (flags show in \`ps\`): ${secrets.join('; ')}.`);
  cmd.addHelpText('after', lines.join('\n'));
  return cmd;
}

/** The command's options with defaults, config file, env and typed flags applied. */
export function resolveFlags<S extends Schema>(cmd: Command, spec: S): Resolution<S> {
  const given = cmd.opts() as Record<string, unknown>;
  const flags: Record<string, unknown> = {};
  for (const o of Object.values(spec))
    if (o.flag && given[o.flag] !== undefined) flags[o.flag] = given[o.flag];
  return resolveOptions(spec, {
    flags,
    env: process.env,
    ...(typeof given.config === 'string' ? { configFile: given.config } : {}),
  });
}

/** `{a: 1, b: undefined}` → `{a: 1}`: an undefined field must not mask a server default when spread. */
export function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export const MIB = 1024 * 1024;

/** The [resize] options of `kelp volume` and `kelp server` as the volume server's read config. */
export function resizeReadConfig(o: {
  'resize.maxSourcePixels': number;
  'resize.maxSide': number;
  'resize.concurrency': number;
  'resize.maxQueue': number;
  'resize.timeoutSeconds': number;
  'resize.background': string;
  'resize.presets': Record<string, ResizeParams>;
  'resize.signingKey': string | undefined;
}): ReadConfig {
  return {
    resizer: new Resizer({
      maxSourcePixels: o['resize.maxSourcePixels'],
      concurrency: o['resize.concurrency'],
      maxQueue: o['resize.maxQueue'],
      timeoutSeconds: o['resize.timeoutSeconds'],
      background: o['resize.background'],
    }),
    resizeLimits: { maxSide: o['resize.maxSide'], presets: o['resize.presets'] },
    ...(o['resize.signingKey'] ? { resizeSigningKey: o['resize.signingKey'] } : {}),
  };
}

/** The [edge] options as the volume server's purge config; undefined when they name no edge. */
export function edgePurgeConfig(o: {
  'edge.purgeUrls': string[];
  'edge.purgeKey': string | undefined;
  'edge.cloudflareZone': string | undefined;
  'edge.cloudflareApiToken': string | undefined;
}): EdgePurgeConfig | undefined {
  const urls = o['edge.purgeUrls'];
  const zone = o['edge.cloudflareZone'];
  if (urls.length && !o['edge.purgeKey']) {
    throw new ConfigError(
      "edge.purgeUrls needs the edge's purge key: [edge] purgeKey or KELP_EDGE_PURGE_KEY",
    );
  }
  if (zone && !o['edge.cloudflareApiToken']) {
    throw new ConfigError(
      'edge.cloudflareZone needs an API token: [edge] cloudflareApiToken or KELP_EDGE_CLOUDFLARE_API_TOKEN',
    );
  }
  if (!urls.length && !zone) return undefined;
  return {
    urls,
    ...(o['edge.purgeKey'] ? { key: o['edge.purgeKey'] } : {}),
    ...(zone ? { cloudflare: { zoneId: zone, apiToken: o['edge.cloudflareApiToken']! } } : {}),
  };
}

/** One line for the start-up banner: where purge events go (never the key). */
export function describeEdgePurge(config: EdgePurgeConfig | undefined): string {
  const targets = [
    ...(config?.urls ?? []),
    ...(config?.cloudflare ? [`cloudflare zone ${config.cloudflare.zoneId}`] : []),
  ];
  return targets.length
    ? `edge purge events: ${targets.join(', ')}`
    : "edge purge events: none (the edge's EDGE_FRESH_SECONDS alone bounds how long a change goes unseen)";
}

/** The values of the resolution's config file by dotted key (none without a file). */
export function configFileValues(r: { configFile?: string }): Map<string, unknown> {
  return r.configFile ? loadConfigFile(r.configFile) : new Map();
}

/** The tier backends of the config file's [backend.*] sections and KELP_BACKEND_* env vars. */
export function resolveBackends(r: { configFile?: string }): BackendConfig[] {
  return loadBackends(configFileValues(r), process.env, r.configFile ? { configFile: r.configFile } : {});
}

/** One line naming each backend a volume server can tier to, secrets redacted (redactConfig). */
export function describeBackends(backends: BackendConfig[], firstDataDir: string): string {
  const all = backends.some((b) => b.type === 'local' && b.id === 'default')
    ? backends
    : [defaultLocalConfig(firstDataDir), ...backends];
  return all
    .map((b) => {
      const { type, id, ...rest } = redactConfig(b);
      return `${type}.${id} ${JSON.stringify(rest)}`;
    })
    .join(', ');
}

interface VolumeSecurityOptions {
  insecure: boolean;
  metricsKey: string | undefined;
  signingKey: string | undefined;
  readSigningKey: string | undefined;
  clusterKey: string | undefined;
  previousClusterKey: string | undefined;
  adminKey: string | undefined;
}

/** The credentials of a volume server's config (docs/security.md), from any command's options. */
export function volumeSecurity(o: VolumeSecurityOptions): VolumeSecurityOptions {
  const { insecure, metricsKey, signingKey, readSigningKey, clusterKey, previousClusterKey, adminKey } = o;
  return { insecure, metricsKey, signingKey, readSigningKey, clusterKey, previousClusterKey, adminKey };
}

/** A master's: a volume server's, and who may use its write API. */
export function masterSecurity(
  o: VolumeSecurityOptions & {
    whiteList: string[] | undefined;
    clientKeys: string[] | undefined;
    edgeHeatKeys?: string[] | undefined;
  },
) {
  return {
    ...volumeSecurity(o),
    whiteList: o.whiteList,
    clientKeys: o.clientKeys,
    ...(o.edgeHeatKeys ? { edgeHeatKeys: o.edgeHeatKeys } : {}),
  };
}
