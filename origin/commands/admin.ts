/**
 * `kelp admin ...`: the operations SeaweedFS operators run from `weed shell`,
 * under the same names (docs/admin.md). Each reads the cluster from the
 * master (`/vol/list`), works out what to do with the same code the master's
 * endpoints run (origin/admin/), prints it, and unless `--dry-run` does it,
 * talking to the volume servers directly with a progress bar. Credentials:
 * the admin key (KELP_ADMIN_KEY) or the cluster key (KELP_CLUSTER_KEY).
 */
import type { Command } from 'commander';
import { InvalidFidError } from '../../shared/errors.ts';
import { parseVolumeId } from '../../shared/fid.ts';
import { type ClusterView, holdersById, VolumeServerClient } from '../admin/cluster.ts';
import { MOVE_STEPS, moveVolume } from '../admin/move.ts';
import {
  type ActionResult,
  DEFAULT_GARBAGE_THRESHOLD,
  markVolume,
  runActions,
  vacuumCluster,
} from '../admin/operations.ts';
import { type Action, describe, planBalance, planFixReplication } from '../admin/plans.ts';
import { ADMIN_OPTIONS, type AdminOptions, ConfigError } from '../config.ts';
import { bytes } from '../http/html.ts';
import { clusterVolumeState } from '../master/status-page.ts';
import { stepProgress } from './admin-progress.ts';
import { cli, LONG_CALL_TIMEOUT_MS, masters } from './client.ts';
import { adminAuth } from './credentials.ts';
import { addOptions, resolveFlags } from './options.ts';

function volumeFlag(raw: unknown): number {
  try {
    return parseVolumeId(String(raw ?? ''));
  } catch (err) {
    if (err instanceof InvalidFidError) throw new ConfigError(`--volume: ${err.message}`);
    throw err;
  }
}

function hostPortFlag(raw: unknown, name: string): string {
  const s = String(raw ?? '')
    .replace(/^http:\/\//, '')
    .replace(/\/+$/, '');
  if (!/^[^\s/:]+:\d{1,5}$/.test(s)) throw new ConfigError(`--${name} must be a volume server's HOST:PORT`);
  return s;
}

/** The cluster as the master sees it (`GET /vol/list`, an admin call). */
async function readView(o: AdminOptions): Promise<ClusterView> {
  return (await cli(() => masters(o.master, adminAuth(o)).json<ClusterView>('/vol/list'))).body;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

function printList(view: ClusterView): void {
  const servers = [['DATA CENTER', 'RACK', 'SERVER', 'STATE', 'VOLUMES', 'FREE SLOTS']];
  for (const n of view.nodes) {
    servers.push([
      n.dataCenter,
      n.rack,
      n.url,
      n.alive ? 'alive' : `dead (${n.lastSeenSecondsAgo} s)`,
      `${n.volumes.length}/${n.maxVolumeCount}`,
      String(Math.max(0, n.maxVolumeCount - n.volumes.length)),
    ]);
  }
  for (const line of table(servers)) console.log(line);
  console.log('');
  const holders = holdersById(view);
  if (holders.size === 0) {
    console.log('no volumes');
    return;
  }
  const rows = [
    ['VOLUME', 'COLLECTION', 'STATE', 'SIZE', 'FILES', 'GARBAGE', 'REPLICATION', 'TTL', 'SERVERS'],
  ];
  for (const [id, hs] of holders) {
    const v = hs.map((h) => h.v).reduce((a, b) => (b.size > a.size ? b : a));
    rows.push([
      String(id),
      v.collection || '-',
      clusterVolumeState(hs.map((h) => h.v)),
      bytes(v.size),
      String(v.fileCount),
      `${((v.size ? v.deletedByteCount / v.size : 0) * 100).toFixed(1)}%`,
      v.replicaPlacement,
      v.ttl || '-',
      hs.map((h) => h.node.url).join(','),
    ]);
  }
  for (const line of table(rows)) console.log(line);
}

/** Prints a plan; runs it unless a dry run; exit code 1 if anything failed or was skipped. */
async function carryOut(
  client: VolumeServerClient,
  plan: Action[],
  dryRun: boolean,
  nothing: string,
): Promise<void> {
  if (plan.length === 0) {
    console.log(nothing);
    return;
  }
  if (dryRun) {
    console.log(`would do ${plan.length}:`);
    for (const a of plan) console.log(`  ${describe(a)}`);
    if (plan.some((a) => a.kind === 'skip')) process.exitCode = 1;
    return;
  }
  const progress = stepProgress(plan.length);
  let results: ActionResult[];
  try {
    results = await runActions(client, plan, { onAction: (i, a) => progress.step(i, describe(a)) });
  } finally {
    progress.stop();
  }
  for (const r of results)
    console.log(
      `${r.ok ? 'done' : r.action.kind === 'skip' ? 'left' : 'FAILED'}: ${r.description}${r.error ? `: ${r.error}` : ''}`,
    );
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

export function registerAdminCommand(program: Command): void {
  const admin = program
    .command('admin')
    .description(
      "cluster operations (weed shell's): vacuum, volume.list|balance|move|fix.replication|mark, collection.delete",
    )
    .addHelpText(
      'after',
      '\nEach asks the master (--master) and presents KELP_ADMIN_KEY or KELP_CLUSTER_KEY. See docs/admin.md.',
    );

  const sub = (name: string, description: string) => {
    const cmd = admin.command(name).description(description);
    return cmd;
  };
  const finish = (
    cmd: Command,
    action: (o: AdminOptions, flags: Record<string, unknown>) => Promise<void>,
  ) => {
    addOptions(cmd, ADMIN_OPTIONS).action(async () => {
      const { values } = resolveFlags(cmd, ADMIN_OPTIONS);
      await action(values, cmd.opts());
    });
  };

  const vacuum = sub('vacuum', 'compact every volume replica whose garbage is at least the threshold')
    .option(
      '--garbageThreshold <ratio>',
      'deleted bytes over bytes written',
      String(DEFAULT_GARBAGE_THRESHOLD),
    )
    .option('--collection <name>', 'only this collection')
    .option('--volume <id>', 'only this volume')
    .option('--dry-run', "list the candidates (by the heartbeats' estimate); change nothing");
  finish(vacuum, async (o, f) => {
    const threshold = Number(f.garbageThreshold);
    if (!(threshold >= 0 && threshold <= 1)) throw new ConfigError('--garbageThreshold must be a ratio 0..1');
    const view = await readView(o);
    const progress = f.dryRun
      ? undefined
      : stepProgress(holdersById(view).size ? [...holdersById(view).values()].flat().length : 0);
    let results: Awaited<ReturnType<typeof vacuumCluster>>;
    try {
      results = await vacuumCluster(view, new VolumeServerClient(adminAuth(o)), {
        garbageThreshold: threshold,
        dryRun: f.dryRun === true,
        ...(typeof f.collection === 'string' ? { collection: f.collection } : {}),
        ...(f.volume !== undefined ? { volumeId: volumeFlag(f.volume) } : {}),
        onVolume: (done, _total, label) => progress?.step(done, label),
      });
    } finally {
      progress?.stop();
    }
    for (const r of results) {
      const est = `${(r.garbageEstimate * 100).toFixed(1)}% garbage`;
      if (r.skipped) console.log(`volume ${r.volumeId} on ${r.server}: skipped, ${r.skipped} (${est})`);
      else if (f.dryRun) console.log(`volume ${r.volumeId} on ${r.server}: would vacuum (${est})`);
      else if (r.error) console.log(`volume ${r.volumeId} on ${r.server}: FAILED: ${r.error}`);
      else if (r.report?.compacted)
        console.log(
          `volume ${r.volumeId} on ${r.server}: compacted ${bytes(r.report.sizeBefore)} -> ${bytes(r.report.sizeAfter)}`,
        );
      else
        console.log(
          `volume ${r.volumeId} on ${r.server}: under the threshold (${((r.report?.garbageRatio ?? 0) * 100).toFixed(1)}%)`,
        );
    }
    if (results.some((r) => r.error)) process.exitCode = 1;
  });

  const list = sub('volume.list', 'every volume server and volume, with state, size and garbage').option(
    '--json',
    'print the cluster as JSON',
  );
  finish(list, async (o, f) => {
    const view = await readView(o);
    if (f.json) console.log(JSON.stringify(view, null, 2));
    else printList(view);
  });

  const balance = sub(
    'volume.balance',
    'spread writable and sealed volumes evenly over the servers, keeping each placement',
  )
    .option('--collection <name>', 'only this collection')
    .option('--dry-run', 'print the moves; change nothing');
  finish(balance, async (o, f) => {
    const view = await readView(o);
    const plan = planBalance(view, typeof f.collection === 'string' ? { collection: f.collection } : {});
    await carryOut(
      new VolumeServerClient(adminAuth(o)),
      plan,
      f.dryRun === true,
      'balanced already: nothing to move',
    );
  });

  const move = sub(
    'volume.move',
    'move a volume to another server: copy, verify, switch, delete (run again to finish an interrupted one)',
  )
    .requiredOption('--volume <id>', 'volume id')
    .requiredOption('--source <host:port>', 'the server that holds it now')
    .requiredOption('--target <host:port>', 'the server to move it to')
    .option('--dry-run', 'print the steps; change nothing');
  finish(move, async (o, f) => {
    const req = {
      volumeId: volumeFlag(f.volume),
      source: hostPortFlag(f.source, 'source'),
      target: hostPortFlag(f.target, 'target'),
      mode: 'move' as const,
    };
    if (f.dryRun) {
      console.log(
        `would move volume ${req.volumeId} from ${req.source} to ${req.target}: ${MOVE_STEPS.join(', ')}`,
      );
      return;
    }
    const progress = stepProgress(MOVE_STEPS.length);
    try {
      const out = await moveVolume(new VolumeServerClient(adminAuth(o)), req, {
        onStep: (step, detail) => progress.step(MOVE_STEPS.indexOf(step), `${step}: ${detail}`),
      });
      progress.stop();
      console.log(
        `volume ${req.volumeId} is on ${req.target}${out.bytes ? ` (${bytes(out.bytes)} copied)` : ''}; steps run: ${out.steps.join(', ') || 'none (done before)'}`,
      );
    } finally {
      progress.stop();
    }
  });

  const fix = sub(
    'volume.fix.replication',
    're-create missing replicas, remove extra ones, finish or undo interrupted moves',
  ).option('--dry-run', 'print the repairs; change nothing');
  finish(fix, async (o, f) => {
    const plan = planFixReplication(await readView(o));
    await carryOut(
      new VolumeServerClient(adminAuth(o)),
      plan,
      f.dryRun === true,
      'every volume has the copies its placement asks for',
    );
  });

  const mark = sub('volume.mark', 'mark every replica of a volume read-only or writable')
    .argument('<state>', 'readonly or writable')
    .requiredOption('--volume <id>', 'volume id')
    .option('--dry-run', 'print the servers; change nothing');
  finish(mark, async (o, f) => {
    const state = mark.args[0];
    if (state !== 'readonly' && state !== 'writable')
      throw new ConfigError('state must be readonly or writable');
    const id = volumeFlag(f.volume);
    const servers = await markVolume(
      await readView(o),
      new VolumeServerClient(adminAuth(o)),
      id,
      state === 'readonly',
      f.dryRun === true,
    );
    console.log(`${f.dryRun ? 'would mark' : 'marked'} volume ${id} ${state} on ${servers.join(', ')}`);
  });

  const delCollection = sub('collection.delete', 'delete a collection: every volume of it, on every server')
    .requiredOption('--collection <name>', 'collection name')
    .option('--dry-run', 'list its volumes; delete nothing');
  finish(delCollection, async (o, f) => {
    const name = String(f.collection);
    const ids = [...holdersById(await readView(o))]
      .filter(([, hs]) => hs.some((h) => h.v.collection === name))
      .map(([id]) => id);
    if (f.dryRun) {
      console.log(
        ids.length
          ? `would delete collection ${name}: volumes ${ids.join(', ')}`
          : `collection ${name} has no volumes`,
      );
      return;
    }
    await cli(() =>
      masters(o.master, adminAuth(o)).json(`/col/delete?collection=${encodeURIComponent(name)}`, {
        method: 'POST',
        expect: [204],
        timeoutMs: LONG_CALL_TIMEOUT_MS,
      }),
    );
    console.log(`deleted collection ${name} (volumes ${ids.join(', ') || 'none'})`);
  });
}
