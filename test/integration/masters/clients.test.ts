/**
 * Clients of three masters on a real etcd follow the leader: `kelp upload`,
 * `kelp download` and `kelp tier status` given a list of masters (one of them
 * dead, a follower first), the CLI across a leader kill, and the edge Worker
 * (in workerd) with a comma list MASTER_URL: writes come back after a leader
 * kill, and reads go on while no leader exists.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFid } from '../../../shared/fid.ts';
import { bundleWorker, LOOPBACK_ORIGINS, multipart, startWorker } from '../../edge/harness.ts';
import { type EtcdCluster, freePort, startEtcdCluster } from './etcd.ts';
import {
  agreedLeader,
  aliveNodes,
  CLI,
  type KelpProcess,
  kelpProcess,
  masterProcess,
  onStop,
  stopAll,
  tempDir,
  volumeProcess,
  waitFor,
} from './harness.ts';

/** A killed leader is replaced after its 5 s lease: a client that keeps trying gets through well within this. */
const FAILOVER_LIMIT_MS = 10_000;

let etcd: EtcdCluster;
let masters: KelpProcess[];
let addresses: string[];

beforeAll(async () => {
  etcd = await startEtcdCluster(3);
  onStop(() => etcd.stop());
  const prefix = `clients-${process.pid}`;
  masters = [];
  for (let i = 0; i < 3; i++)
    masters.push(await masterProcess({ port: await freePort(), etcd: etcd.endpoints, prefix }));
  addresses = masters.map((m) => m.address);
  await volumeProcess({ masters: addresses });
  await volumeProcess({ masters: addresses });
  await waitFor('every master to see both volume servers', async () =>
    (await Promise.all(addresses.map(aliveNodes))).every((n) => n === 2),
  );
  await waitFor('a leader', () => agreedLeader(addresses));
}, 120_000);

afterAll(stopAll, 60_000);

async function kelp(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

describe('clients of three masters', () => {
  it('kelp upload, download and tier status take a list: a dead master and a follower first are fine', async () => {
    const leader = (await agreedLeader(addresses))!;
    const follower = addresses.find((a) => a !== leader)!;
    const dead = `127.0.0.1:${await freePort()}`;
    const list = [dead, follower, leader].join(',');
    const file = join(tempDir(), 'hello.txt');
    writeFileSync(file, 'hello, several masters');
    const up = await kelp(['upload', '--master', list, file]);
    expect(up.code, up.stderr).toBe(0);
    const { fid } = JSON.parse(up.stdout) as { fid: string };
    const down = await kelp(['download', '--master', [dead, follower].join(','), fid]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toBe('hello, several masters');
    const status = await kelp(['tier', 'status', '--master', [dead, follower].join(',')]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^${parseFid(fid).volumeId}\\s`, 'm'));
  }, 60_000);

  it('the edge Worker (MASTER_URL a list): reads go on while no leader exists, /submit works again after the leader is killed', async () => {
    const script = await bundleWorker(join(process.cwd(), 'edge/index.ts'), tempDir('kelp-edge-'));
    const leader = (await agreedLeader(addresses))!;
    // The leader first: its death is what the Worker must get past.
    const ordered = [leader, ...addresses.filter((a) => a !== leader)];
    const mf: Miniflare = startWorker(script, {
      MASTER_URL: ordered.map((a) => `http://${a}`).join(','),
      PUBLIC_WRITES: 'true',
      ORIGIN_ALLOW: LOOPBACK_ORIGINS,
      ORIGIN_TIMEOUT_MS: '2000',
    });
    onStop(() => mf.dispose());
    const submit = async (text: string) => {
      const { body, headers } = await multipart(new TextEncoder().encode(text), 'e.txt', 'text/plain');
      return mf.dispatchFetch('http://edge.test/submit', { method: 'POST', body, headers });
    };
    const first = await submit('before the kill');
    expect(first.status, await first.clone().text()).toBe(201);
    const { fid } = (await first.json()) as { fid: string };
    expect(await (await mf.dispatchFetch(`http://edge.test/${fid}`)).text()).toBe('before the kill');

    const killAt = Date.now();
    await masters[addresses.indexOf(leader)]!.kill();
    // No leader for a few seconds: the read is served all the same.
    const read = await mf.dispatchFetch(`http://edge.test/${fid}`);
    expect(read.status).toBe(200);
    expect(await read.text()).toBe('before the kill');

    let statuses: number[] = [];
    let after: string | undefined;
    for (let i = 0; i < 100 && Date.now() - killAt < FAILOVER_LIMIT_MS + 5_000 && !after; i++) {
      const res = await submit('after the kill');
      statuses.push(res.status);
      if (res.status === 201) after = ((await res.json()) as { fid: string }).fid;
      else {
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const window = Date.now() - killAt;
    statuses = [...new Set(statuses)];
    console.log(
      `edge /submit after a leader kill: answered 201 after ${window} ms (statuses seen: ${statuses})`,
    );
    expect(after).toBeDefined();
    expect(window).toBeLessThan(FAILOVER_LIMIT_MS);
    expect(parseFid(after!).key).toBeGreaterThan(parseFid(fid).key);
    expect(await (await mf.dispatchFetch(`http://edge.test/${after}`)).text()).toBe('after the kill');
  }, 90_000);

  it('two `kelp server --etcd --master.peers` processes form one cluster: one leader, each volume server known to both masters', async () => {
    const prefix = `servers-${process.pid}`;
    const ports = [await freePort(), await freePort()];
    const servers = await Promise.all(
      ports.map((port, i) =>
        kelpProcess(
          [
            'server',
            '--dir',
            tempDir(),
            '--master.port',
            String(port),
            '--volume.port',
            '0',
            '--master.pulseSeconds',
            '1',
            '--etcd',
            etcd.endpoints.join(','),
            '--etcdPrefix',
            prefix,
            '--master.peers',
            `127.0.0.1:${ports[1 - i]}`,
          ],
          /kelp master listening on http:\/\/127\.0\.0\.1:(\d+) \(state in etcd/,
        ),
      ),
    );
    const both = servers.map((s) => s.address);
    const leader = await waitFor('one leader of the two', () => agreedLeader(both));
    await waitFor('each master to know both volume servers', async () =>
      (await Promise.all(both.map(aliveNodes))).every((n) => n === 2),
    );
    const follower = both.find((a) => a !== leader)!;
    const res = await fetch(`http://${follower}/dir/assign`);
    expect(res.status, await res.clone().text()).toBe(200);
    await Promise.all(servers.map((s) => s.stop()));
  }, 60_000);

  it('kelp upload issued right after a leader kill waits for the new leader and succeeds', async () => {
    const running = (p: KelpProcess) => p.child.exitCode === null && p.child.signalCode === null;
    const live = addresses.filter((_, i) => running(masters[i]!));
    const leader = await waitFor('a leader among the masters left', () => agreedLeader(live));
    const file = join(tempDir(), 'during.txt');
    writeFileSync(file, 'during a failover');
    await masters[addresses.indexOf(leader)]!.kill();
    const started = Date.now();
    const up = await kelp(['upload', '--master', live.join(','), file]);
    expect(up.code, up.stderr).toBe(0);
    console.log(`kelp upload through a leader kill took ${Date.now() - started} ms`);
    const { fileUrl } = JSON.parse(up.stdout) as { fileUrl: string };
    expect(await (await fetch(`http://${fileUrl}`)).text()).toBe('during a failover');
  }, 60_000);
});
