/**
 * "Example: Using Seaweed Blob Store" from the SeaweedFS README
 * (shared/reference/seaweedfs-readme.txt), command for command with real
 * `curl`, only the ports changed: assign, upload with `curl -F`, update,
 * lookup, read in each URL form, delete. First against an in-process master
 * with two volume servers (as the README starts them), then against the
 * one-process `kelp server`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { master, stopAll, tempDir, volume, waitFor, waitForNodes } from './harness.ts';

const CLI = fileURLToPath(new URL('../../../origin/cli.ts', import.meta.url));

afterAll(stopAll);

interface Curl {
  status: number;
  body: string;
  contentType: string;
}

/** `curl -s ARGS`, with the status and content type taken from `-w`. */
function curl(...args: string[]): Promise<Curl> {
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      ['-s', '-S', '--max-time', '10', '-w', '\n%{http_code} %{content_type}', ...args],
      { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`curl ${args.join(' ')}: ${err.message}\n${stderr}`));
        const nl = stdout.lastIndexOf('\n');
        const [code, contentType = ''] = stdout.slice(nl + 1).split(' ');
        resolve({ status: Number(code), body: stdout.slice(0, nl), contentType });
      },
    );
  });
}

/** `curl -s -o FILE URL`: the bytes exactly as served. */
async function curlBytes(
  url: string,
  dir: string,
): Promise<{ status: number; bytes: Buffer; contentType: string }> {
  const out = join(dir, `read-${randomBytes(4).toString('hex')}`);
  const r = await curl('-o', out, url);
  return {
    status: r.status,
    bytes: r.status === 200 ? readFileSync(out) : Buffer.alloc(0),
    contentType: r.contentType,
  };
}

/** The walkthrough; `masterPort` is the only thing that differs from the README. */
async function walkthrough(masterPort: number): Promise<void> {
  const dir = tempDir('kelp-readme-');
  const photo = join(dir, 'myphoto.jpg');
  const bytes = randomBytes(43_234);
  writeFileSync(photo, bytes);

  // > curl http://localhost:9333/dir/assign
  const assigned = await curl(`http://localhost:${masterPort}/dir/assign`);
  expect(assigned.status).toBe(200);
  const a = JSON.parse(assigned.body) as { count: number; fid: string; url: string; publicUrl: string };
  expect(a).toEqual({
    count: 1,
    fid: expect.stringMatching(/^\d+,[0-9a-f]+$/),
    url: a.url,
    publicUrl: a.publicUrl,
  });
  expect(a.url).toMatch(/^[\w.-]+:\d+$/);
  const [vid, keyCookie] = a.fid.split(',') as [string, string];

  // > curl -F file=@/home/chris/myphoto.jpg http://127.0.0.1:8080/3,01637037d6
  const up = await curl('-F', `file=@${photo}`, `http://${a.url}/${a.fid}`);
  expect(up.status).toBe(201);
  expect(JSON.parse(up.body)).toMatchObject({
    name: 'myphoto.jpg',
    size: 43_234,
    eTag: expect.stringMatching(/^[0-9a-f]{8}$/),
  });

  // "To update, send another POST request with updated blob content."
  const updated = randomBytes(40_000);
  writeFileSync(photo, updated);
  const up2 = await curl('-F', `file=@${photo}`, `http://${a.url}/${a.fid}`);
  expect(up2.status).toBe(201);
  expect(JSON.parse(up2.body)).toMatchObject({ name: 'myphoto.jpg', size: 40_000 });

  // > curl http://localhost:9333/dir/lookup?volumeId=3
  const looked = await curl(`http://localhost:${masterPort}/dir/lookup?volumeId=${vid}`);
  expect(looked.status).toBe(200);
  const lookup = JSON.parse(looked.body) as {
    volumeId: string;
    volumeOrFileId: string;
    locations: Array<{ url: string; publicUrl: string }>;
  };
  expect(lookup.volumeId).toBe(vid);
  expect(lookup.volumeOrFileId).toBe(vid);
  expect(lookup.locations).toEqual([expect.objectContaining({ url: a.url, publicUrl: a.publicUrl })]);

  // "Now you can take the public URL ... read directly from the volume server"
  const base = `http://${lookup.locations[0]!.publicUrl}`;
  const forms = [
    `/${vid}/${keyCookie}/my_preferred_name.jpg`,
    `/${vid}/${keyCookie}.jpg`,
    `/${vid},${keyCookie}.jpg`,
    `/${vid}/${keyCookie}`,
    `/${vid},${keyCookie}`,
  ];
  for (const form of forms) {
    const r = await curlBytes(`${base}${form}`, dir);
    expect(r.status, form).toBe(200);
    expect(r.bytes.equals(updated), `${form} serves the updated blob`).toBe(true);
    expect(r.contentType, form).toBe('image/jpeg');
  }

  // > curl -X DELETE http://127.0.0.1:8080/3,01637037d6
  const del = await curl('-X', 'DELETE', `http://${a.url}/${a.fid}`);
  expect(del.status).toBe(202);
  for (const form of forms) expect((await curl(`${base}${form}`)).status, form).toBe(404);

  // "curl http://localhost:9333/dir/assign?replication=001" needs two servers in a rack;
  // "?dataCenter=dc1" an existing data center: both are answered, never a 500.
  const replicated = await curl(`http://localhost:${masterPort}/dir/assign?replication=001`);
  expect([200, 406]).toContain(replicated.status);
  expect((await curl(`http://localhost:${masterPort}/dir/assign?dataCenter=nowhere`)).status).toBe(400);
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

describe('the SeaweedFS README walkthrough with curl', () => {
  it('works against a master and two volume servers', async () => {
    const m = await master();
    // weed volume -dir="/tmp/data1" -max=5 ... & weed volume -dir="/tmp/data2" -max=10 ...
    await volume(m.address, { max: 5 });
    await volume(m.address, { max: 10 });
    await waitForNodes(m, 2);
    await walkthrough(portOf(m.address));
    // With two servers in one rack, "001" is placeable.
    const r = await curl(`http://localhost:${portOf(m.address)}/dir/assign?replication=001`);
    expect(r.status).toBe(200);
  });

  it('works against `kelp server`', async () => {
    const dir = tempDir('kelp-server-');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KELP_')));
    const child: ChildProcess = spawn(
      process.execPath,
      [CLI, 'server', '--dir', dir, '--master.port', '0', '--volume.port', '0', '--master.pulseSeconds', '1'],
      { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = once(child, 'exit');
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    try {
      const masterAddress = await waitFor(
        '`kelp server` to print its addresses',
        () => {
          if (child.exitCode !== null) throw new Error(`kelp server exited with ${child.exitCode}:\n${out}`);
          const mm = /master listening on http:\/\/([\d.]+:\d+)/.exec(out);
          return /volume server listening/.test(out) && mm ? mm[1]! : undefined;
        },
        15_000,
      );
      const port = portOf(masterAddress);
      await waitFor('the volume server to join', async () => {
        const s = (await (await fetch(`http://${masterAddress}/dir/status`)).json()) as {
          Topology: { Max: number };
        };
        return s.Topology.Max > 0;
      });
      await walkthrough(port);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    }
    expect(out).not.toMatch(/unexpected error/);
  });
});
