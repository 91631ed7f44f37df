/**
 * infra/: the systemd units pass `systemd-analyze verify`; the Prometheus
 * scrape config and alert rules pass `promtool` (config, rules, and the
 * alerts' own unit tests), and every metric an alert reads is one Kelp
 * exports; the three-node example configs load, and a cluster started from
 * them (moved to loopback) keeps each blob on two racks (replication 010);
 * the Worker's staging and production environments bundle with their vars;
 * the container definition names files and ports that exist. The container
 * image itself is not built here: this machine has no docker or podman.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseCorsOrigins } from '../../edge/cors.ts';
import {
  loadConfigFile,
  MASTER_OPTIONS,
  resolveOptions,
  TIER_SERVE_OPTIONS,
  TIER_SERVE_PORT,
  VOLUME_OPTIONS,
} from '../../origin/config.ts';
import { MASTER_DEFAULTS } from '../../origin/master/server.ts';
import { loadBackends, loadTierRules } from '../../origin/tier-config.ts';
import { VOLUME_SERVER_DEFAULTS } from '../../origin/volume/server.ts';
import type { AssignResponse, LookupResponse } from '../../shared/api.ts';
import { allMetricNames, promtool } from '../helpers/metrics.ts';
import { CLI, cleanEnv, freePort, REPO_ROOT, removeTempDirs, tempDir } from '../integration/cli/harness.ts';

const INFRA = join(REPO_ROOT, 'infra');
const EXAMPLES = join(INFRA, 'examples/three-node');

afterAll(removeTempDirs);

describe('systemd units', () => {
  beforeAll(() => {
    // Debian's systemd package has systemd-analyze; CI installs it too (.ci/run).
    if (spawnSync('systemd-analyze', ['--version']).error) {
      const r = spawnSync(
        'sh',
        ['-c', 'apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd'],
        {
          timeout: 240_000,
        },
      );
      if (r.status !== 0) throw new Error(`cannot install systemd: ${r.stderr}`);
    }
  }, 300_000);

  it('pass systemd-analyze verify (installed under /opt/kelp: checked with this checkout in its place)', () => {
    const units = readdirSync(join(INFRA, 'systemd')).filter((f) => f.endsWith('.service'));
    expect(units.sort()).toEqual(['kelp-master.service', 'kelp-tier.service', 'kelp-volume.service']);
    const dir = tempDir('kelp-units-');
    for (const unit of units) {
      const text = readFileSync(join(INFRA, 'systemd', unit), 'utf8');
      expect(text).toContain('ExecStart=/opt/kelp/node_modules/.bin/node /opt/kelp/dist/origin/cli.js ');
      writeFileSync(join(dir, unit), text.replaceAll('/opt/kelp', REPO_ROOT.replace(/\/$/, '')));
    }
    const r = spawnSync('systemd-analyze', ['verify', ...units.map((u) => join(dir, u))], {
      encoding: 'utf8',
    });
    // Bad values are only warnings for systemd: any output is a failure here.
    expect({ status: r.status, output: `${r.stdout}${r.stderr}` }).toEqual({ status: 0, output: '' });
  });

  it('run the commands the CLI has, stop with SIGTERM, and wait longer than the drain', () => {
    for (const [unit, command] of [
      ['kelp-master.service', 'master'],
      ['kelp-volume.service', 'volume'],
      ['kelp-tier.service', 'tier serve'],
    ] as const) {
      const text = readFileSync(join(INFRA, 'systemd', unit), 'utf8');
      expect(text).toMatch(new RegExp(`^ExecStart=\\S+ \\S+/dist/origin/cli\\.js ${command}$`, 'm'));
      expect(text).toMatch(/^KillSignal=SIGTERM$/m);
      const timeout = Number(/^TimeoutStopSec=(\d+)$/m.exec(text)?.[1]);
      expect(timeout).toBeGreaterThan(VOLUME_SERVER_DEFAULTS.drainSeconds);
      expect(text).toMatch(/^Environment=KELP_CONFIG=\/etc\/kelp\/kelp\.toml$/m);
    }
  });
});

describe('Prometheus', () => {
  const dir = tempDir('kelp-prometheus-');
  beforeAll(() => {
    for (const f of ['kelp-alerts.yml', 'kelp-alerts.test.yml'])
      copyFileSync(join(INFRA, 'prometheus', f), join(dir, f));
    // The scrape config names the metrics key's file on the Prometheus host: one here.
    writeFileSync(join(dir, 'key'), 'a-metrics-key\n');
    const config = readFileSync(join(INFRA, 'prometheus/prometheus.yml'), 'utf8');
    writeFileSync(
      join(dir, 'prometheus.yml'),
      config.replaceAll('/etc/prometheus/kelp-metrics-key', join(dir, 'key')),
    );
  });

  it('the scrape config and the alert rules pass promtool check', () => {
    const config = promtool(['check', 'config', join(dir, 'prometheus.yml')]);
    expect(config, config.output).toMatchObject({ ok: true });
    expect(config.output).toMatch(/SUCCESS: \d+ rules found/);
    const rules = promtool(['check', 'rules', join(dir, 'kelp-alerts.yml')]);
    expect(rules, rules.output).toMatchObject({ ok: true });
  });

  it("the alerts' unit tests pass (promtool test rules)", () => {
    const r = promtool(['test', 'rules', join(dir, 'kelp-alerts.test.yml')]);
    expect(r, r.output).toMatchObject({ ok: true });
  });

  it('every kelp_ metric an alert reads is one Kelp exports, and the scrape config has a job per server', async () => {
    const names = await allMetricNames();
    const alerts = readFileSync(join(INFRA, 'prometheus/kelp-alerts.yml'), 'utf8');
    const used = new Set([...alerts.matchAll(/\b(kelp_[a-z0-9_]+)/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((n) => !names.has(n))).toEqual([]);
    const config = readFileSync(join(INFRA, 'prometheus/prometheus.yml'), 'utf8');
    for (const job of ['kelp-master', 'kelp-volume', 'kelp-tier'])
      expect(config).toContain(`job_name: ${job}`);
    for (const port of [MASTER_DEFAULTS.port, VOLUME_SERVER_DEFAULTS.port, TIER_SERVE_PORT])
      expect(config).toMatch(new RegExp(`:${port}["']`));
  });
});

describe('docs/operations.md', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs/operations.md'), 'utf8');

  it('says what every metric and every alert means', async () => {
    const names = [...(await allMetricNames())].filter(
      (n) => !/^kelp_(process|nodejs)_/.test(n) && !/_(bucket|sum|count)$/.test(n),
    );
    expect(names.length).toBeGreaterThan(40);
    expect(names.filter((n) => !doc.includes(`\`${n}\``))).toEqual([]);
    expect(doc).toContain('`kelp_process_*`, `kelp_nodejs_*`');
    const alerts = readFileSync(join(INFRA, 'prometheus/kelp-alerts.yml'), 'utf8');
    const alertNames = [...alerts.matchAll(/^ {6}- alert: (\w+)$/gm)].map((m) => m[1]!);
    expect(alertNames.length).toBeGreaterThan(15);
    expect(alertNames.filter((a) => !doc.includes(`| \`${a}\` |`))).toEqual([]);
  });

  it('leaves the sections other changes fill', () => {
    for (const heading of ['## Admin commands', '## Several masters'])
      expect(doc).toContain(`\n${heading}\n`);
  });
});

describe('the three-node example', () => {
  const node = (n: number) => join(EXAMPLES, `node${n}.toml`);

  it('loads: replication 010, one rack per node, the S3 tier on every volume server, the policy on node3', () => {
    for (const n of [1, 2, 3]) {
      expect(loadConfigFile(node(n)).size).toBeGreaterThan(10);
      const v = resolveOptions(VOLUME_OPTIONS, { configFile: node(n) }).values;
      expect(v).toMatchObject({
        rack: `rack${n}`,
        dataCenter: 'dc1',
        master: '10.0.0.1:9333',
        logFormat: 'json',
      });
      expect(loadBackends(loadConfigFile(node(n)), {}).map((b) => `${b.type}.${b.id}`)).toContain('s3.cold');
    }
    expect(resolveOptions(MASTER_OPTIONS, { configFile: node(1) }).values.defaultReplication).toBe('010');
    const tier = resolveOptions(TIER_SERVE_OPTIONS, { configFile: node(3) }).values;
    expect(tier).toMatchObject({ master: '10.0.0.1:9333', ip: '10.0.0.3', port: TIER_SERVE_PORT });
    expect(loadTierRules(loadConfigFile(node(3)), node(3)).map((r) => r.backend)).toEqual(['s3.cold']);
    const secrets = readFileSync(join(EXAMPLES, 'secrets.env.example'), 'utf8');
    for (const key of ['KELP_CLUSTER_KEY', 'KELP_JWT_SIGNING_KEY', 'KELP_ADMIN_KEY', 'KELP_METRICS_KEY'])
      expect(secrets).toMatch(new RegExp(`^${key}=$`, 'm'));
  });

  const procs: Array<{ kill(): void; exited: Promise<unknown> }> = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.kill();
      await p.exited;
    }
  });

  function run(args: string[], env: Record<string, string>): Promise<string> {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    const exited = once(child, 'exit');
    procs.push({ kill: () => child.kill('SIGKILL'), exited });
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        if (/listening on/.test(out)) {
          clearInterval(timer);
          resolve(out);
        } else if (child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error(out));
        }
      }, 50);
    });
  }

  it('runs, moved to loopback: a write with the default replication lands on two racks', async () => {
    const masterPort = await freePort();
    const master = `127.0.0.1:${masterPort}`;
    const work = tempDir('kelp-three-node-');
    // The files as they are; only addresses and directories moved (env vars win over the file).
    await run(['master'], {
      KELP_CONFIG: node(1),
      KELP_IP: '127.0.0.1',
      KELP_PORT: String(masterPort),
      KELP_MDIR: join(work, 'master'),
      KELP_PULSE_SECONDS: '1',
    });
    for (const n of [1, 2, 3]) {
      const port = await freePort();
      const dir = join(work, `node${n}`);
      mkdirSync(dir);
      await run(['volume'], {
        KELP_CONFIG: node(n),
        KELP_IP: '127.0.0.1',
        KELP_PORT: String(port),
        KELP_DIR: dir,
        KELP_MAX: '4',
        KELP_MASTER: master,
        KELP_PUBLIC_URL: `127.0.0.1:${port}`,
        KELP_PULSE_SECONDS: '1',
      });
    }
    const deadline = Date.now() + 15_000;
    let status = { Topology: { DataCenters: [] as Array<{ Racks: unknown[] }> } };
    while (Date.now() < deadline) {
      status = (await (await fetch(`http://${master}/dir/status`)).json()) as typeof status;
      if (status.Topology.DataCenters[0]?.Racks.length === 3) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(status.Topology.DataCenters[0]?.Racks).toHaveLength(3);
    const a = (await (await fetch(`http://${master}/dir/assign`)).json()) as AssignResponse;
    const put = await fetch(`http://${a.url}/${a.fid}`, { method: 'PUT', body: 'on two racks' });
    expect(put.status).toBe(201);
    const vid = a.fid.split(',')[0];
    const lookup = (await (
      await fetch(`http://${master}/dir/lookup?volumeId=${vid}`)
    ).json()) as LookupResponse;
    expect(lookup.locations).toHaveLength(2);
    for (const l of lookup.locations) {
      expect(await (await fetch(`http://${l.url}/${a.fid}`)).text()).toBe('on two racks');
    }
  }, 60_000);
});

describe('the Worker environments', () => {
  const wrangler = parseToml(readFileSync(join(REPO_ROOT, 'wrangler.toml'), 'utf8')) as {
    env: Record<string, { name: string; vars: Record<string, string> }>;
  };

  it('staging and production have their own vars; only local takes public writes', () => {
    expect(Object.keys(wrangler.env).sort()).toEqual(['local', 'production', 'staging']);
    for (const env of ['staging', 'production']) {
      expect(wrangler.env[env]!.vars.MASTER_URL).toMatch(/^https:\/\//);
      expect(wrangler.env[env]!.vars).not.toHaveProperty('PUBLIC_WRITES');
    }
    expect(wrangler.env.local!.vars.PUBLIC_WRITES).toBe('true');
    // Cross-origin reads are opt-in: deployed edges send no CORS headers until told which sites to allow.
    for (const env of ['staging', 'production']) {
      expect(wrangler.env[env]!.vars).not.toHaveProperty('CORS_ALLOW_ORIGINS');
    }
    const localCors = parseCorsOrigins(wrangler.env.local!.vars.CORS_ALLOW_ORIGINS);
    expect(localCors?.patterns.map((p) => p.text)).toEqual(['http://localhost:*', 'http://127.0.0.1:*']);
    expect(new Set(Object.values(wrangler.env).map((e) => e.name)).size).toBe(3);
    const text = readFileSync(join(REPO_ROOT, 'wrangler.toml'), 'utf8');
    for (const secret of ['WRITE_KEYS', 'MASTER_CLIENT_KEY']) {
      expect(text).toContain(`npx wrangler secret put ${secret} --env <env>`);
    }
  });

  it.each(['staging', 'production'])(
    '%s bundles (wrangler deploy --dry-run) with exactly its vars',
    (env) => {
      const out = tempDir('kelp-wrangler-');
      const r = spawnSync(
        process.execPath,
        [
          join(REPO_ROOT, 'node_modules/wrangler/bin/wrangler.js'),
          'deploy',
          '--dry-run',
          '--env',
          env,
          '--outdir',
          out,
        ],
        {
          cwd: REPO_ROOT,
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
        },
      );
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      expect(existsSync(join(out, 'index.js'))).toBe(true);
      expect(r.stdout).toContain(`env.MASTER_URL ("${wrangler.env[env]!.vars.MASTER_URL}")`);
      expect(r.stdout).not.toContain('PUBLIC_WRITES');
    },
    90_000,
  );
});

describe('the container definition', () => {
  const text = readFileSync(join(INFRA, 'container/Containerfile'), 'utf8');

  it('copies sources that exist, runs the pinned Node on the built dist/origin/cli.js, exposes the default ports, stops with SIGTERM', () => {
    const copies = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
    expect(copies.length).toBeGreaterThan(3);
    for (const src of copies) expect(existsSync(join(REPO_ROOT, src)), src).toBe(true);
    expect(text).toContain('RUN node_modules/.bin/node scripts/build.ts');
    expect(text).toContain('ENTRYPOINT ["/opt/kelp/node_modules/.bin/node", "/opt/kelp/dist/origin/cli.js"]');
    expect(existsSync(join(REPO_ROOT, 'node_modules/.bin/node'))).toBe(true);
    const exposed = /^EXPOSE (.+)$/m.exec(text)?.[1]?.split(' ').map(Number);
    expect(exposed).toEqual([MASTER_DEFAULTS.port, VOLUME_SERVER_DEFAULTS.port, TIER_SERVE_PORT]);
    expect(text).toMatch(/^STOPSIGNAL SIGTERM$/m);
    expect(text).toMatch(/^HEALTHCHECK /m);
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['node_modules', 'data', '.git']));
  });
});
