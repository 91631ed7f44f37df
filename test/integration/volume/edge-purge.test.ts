/**
 * The volume server's purge events on their way to the edge
 * (origin/volume/edge-purge.ts): a purge the edge cannot take is retried with
 * backoff until delivered, never dropped; an overlong queue is collapsed into
 * purges of volumes; what is left at shutdown is logged. The edge is the real
 * Worker in workerd; "down" is nothing listening on its port. Cloudflare's API
 * cannot be reached from here, so its adapter is checked against a local
 * server that records what it is sent (the request's shape, not Cloudflare's
 * answer to it).
 */

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Miniflare } from 'miniflare';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../origin/observability/log.ts';
import {
  CLOUDFLARE_TAGS_PER_PURGE,
  CloudflareTagPurge,
  PurgeQueue,
  WorkerPurgeEndpoint,
} from '../../../origin/volume/edge-purge.ts';
import { fileTag, volumeTag } from '../../../shared/cache-tags.ts';
import { bundleWorker, LOOPBACK_ORIGINS, startWorker, tempDir, WORKER_ENTRY } from '../../edge/harness.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { freePort } from '../../support/ports.ts';

const KEY = 'purge-test-key';
const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

async function waitUntil(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('delivery', () => {
  it('retries a purge the edge could not take, with backoff, until the edge is back (logged both ways)', async () => {
    const port = await freePort();
    const lines: string[] = [];
    const queue = new PurgeQueue(
      new WorkerPurgeEndpoint(`http://127.0.0.1:${port}`, KEY),
      captureLogs(lines).logger,
    );
    cleanup.push(() => queue.close(100));
    queue.add(['3,01637037d6', '3,01637037d7'], [9]);
    await waitUntil('the failure to be logged', () => lines.some((l) => l.includes('purge failed')));
    expect(queue.pending).toBe(3);
    expect(queue.delivered).toBe(0);

    // The edge comes up on that port.
    const scriptPath = await bundleWorker(WORKER_ENTRY, tempDir('kelp-purge-'));
    const mf: Miniflare = startWorker(
      scriptPath,
      { MASTER_URL: 'http://127.0.0.1:9', ORIGIN_ALLOW: LOOPBACK_ORIGINS, PURGE_KEY: KEY },
      port,
    );
    cleanup.push(() => mf.dispose());
    await mf.ready;
    expect(await queue.drained(40_000)).toBe(true);
    expect(queue.delivered).toBe(3);
    expect(lines.some((l) => /delivered again after \d+ failed attempts/.test(l))).toBe(true);
    // Logged once when it started failing, not once per attempt.
    expect(lines.filter((l) => l.includes('purge failed'))).toHaveLength(1);
  }, 60_000);

  it('collapses an overlong queue into purges of the volumes, and logs what shutdown leaves undelivered', async () => {
    const port = await freePort();
    const lines: string[] = [];
    const queue = new PurgeQueue(
      new WorkerPurgeEndpoint(`http://127.0.0.1:${port}`, KEY),
      captureLogs(lines).logger,
      10,
    );
    const fids = Array.from({ length: 11 }, (_, i) => `${3 + (i % 2)},${(0x100 + i).toString(16)}01637037`);
    queue.add(fids);
    expect(lines.some((l) => l.includes('sending them as purges of volumes 3, 4'))).toBe(true);
    expect(queue.pending).toBe(2);
    await queue.close(300);
    expect(lines.some((l) => l.includes('2 purges not delivered at shutdown'))).toBe(true);
  });
});

describe('Cloudflare purge by tag (request shape, against a local recorder)', () => {
  it('POSTs the tags the Worker stores its copies under, with the token, at most 30 per request', async () => {
    const seen: Array<{ method: string; url: string; auth: string; body: { tags: string[] } }> = [];
    const recorder: Server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          auth: req.headers.authorization ?? '',
          body: JSON.parse(body) as { tags: string[] },
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"success":true,"errors":[],"messages":[],"result":{"id":"x"}}');
      });
    });
    await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => recorder.close(r)));
    const apiBase = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/client/v4`;
    const queue = new PurgeQueue(
      new CloudflareTagPurge({ zoneId: 'zone1', apiToken: 'tok', apiBase }),
      silentLogger(),
    );
    const fids = Array.from({ length: 40 }, (_, i) => `3,${(0x100 + i).toString(16)}01637037`);
    queue.add(fids, [7]);
    expect(await queue.drained(5000)).toBe(true);
    expect(seen).toHaveLength(2);
    for (const r of seen) {
      expect(r.method).toBe('POST');
      expect(r.url).toBe('/client/v4/zones/zone1/purge_cache');
      expect(r.auth).toBe('Bearer tok');
      expect(r.body.tags.length).toBeLessThanOrEqual(CLOUDFLARE_TAGS_PER_PURGE);
    }
    const tags = seen.flatMap((r) => r.body.tags);
    expect(new Set(tags)).toEqual(new Set([volumeTag(7), ...fids.map(fileTag)]));
    expect(fileTag('3,01637037d6')).toBe('kelp-f-3-01637037d6');
  });
});
