/**
 * The status pages in a real browser (headless Chromium via playwright-core):
 * the master's `/` and a volume server's `/ui/index.html` show the cluster's
 * real content, update in place (same page, no reload) as the cluster
 * changes, and render hostile text inert. Screenshots are kept under
 * test-artifacts/status-pages/.
 */

import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VacuumSchedule } from '../../../origin/admin/vacuum-schedule.ts';
import { MasterStatusPage } from '../../../origin/master/status-page.ts';
import { Topology } from '../../../origin/master/topology.ts';
import { silentLogger } from '../../../origin/observability/log.ts';
import { formatFid } from '../../../shared/fid.ts';
import { parsePlacement } from '../../../shared/placement.ts';
import { parseTtl } from '../../../shared/ttl.ts';
import { artifact, launchChromium } from '../../support/browser.ts';
import {
  json,
  master,
  send,
  stopAll,
  type TestMaster,
  type TestVolume,
  upload,
  volume,
  waitFor,
  waitForNodes,
} from './harness.ts';

/** The browser's globals as the functions given to page.evaluate use them (this project has no DOM lib). */
interface BrowserElement {
  textContent: string | null;
  querySelector(selector: string): BrowserElement | null;
  querySelectorAll(selector: string): BrowserElement[];
}
declare const document: BrowserElement & { body: { dataset: Record<string, string | undefined> } };
declare const window: { pageInstance?: string; pwned?: number };

let browser: Browser;
let m: TestMaster;
let vols: TestVolume[];

beforeAll(async () => {
  browser = await launchChromium();
  m = await master({ vacuumIntervalMs: 0 });
  vols = [
    await volume(m.address, { rack: 'rack-a', max: 20 }),
    await volume(m.address, { rack: 'rack-b', max: 20 }),
  ];
  await waitForNodes(m, 2);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stopAll();
});

/** Opens `url`, counting its loads: a refresh by reload would count twice. */
async function open(url: string): Promise<{ page: Page; loads: () => number }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  let loads = 0;
  page.on('load', () => loads++);
  await page.goto(url);
  await page.evaluate(() => {
    window.pageInstance = 'first';
  });
  return { page, loads: () => loads };
}

async function rows(page: Page, table: string): Promise<string[][]> {
  return page.$$eval(`table[data-table="${table}"] tbody tr`, (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => (td.textContent ?? '').trim())),
  );
}

async function write(collection: string, bytes: number): Promise<string> {
  const a = await json<{ fid: string; url: string }>(
    await fetch(`${m.base}/dir/assign?collection=${collection}`),
    200,
  );
  expect((await upload(a.url, a.fid, Buffer.alloc(bytes, 7))).status).toBe(201);
  return a.fid;
}

describe("the master's status page", () => {
  it('shows servers, volumes and collections, and updates in place as volumes appear and seal', async () => {
    const fid = await write('photos', 50_000);
    const volumeId = Number(fid.split(',')[0]);
    await waitFor('the heartbeat to count the blob', () => m.topology.volume(volumeId)?.fileCount === 1);
    const { page, loads } = await open(`${m.base}/`);
    expect(await page.title()).toBe('Kelp master');
    const nodes = await rows(page, 'nodes');
    expect(nodes.map((r) => r[2]).sort()).toEqual(vols.map((v) => v.url).sort());
    expect(nodes.map((r) => r[1]).sort()).toEqual(['rack-a', 'rack-b']);
    expect(nodes.every((r) => r[3] === 'alive')).toBe(true);
    const volumes = await rows(page, 'volumes');
    const mine = volumes.find((r) => r[0] === String(volumeId))!;
    expect(mine[1]).toBe('photos');
    expect(mine[2]).toBe('writable');
    expect(mine[4]).toBe('1');
    // Reads/day at origin, then the edge's (docs/decisions/0010-origin-free-reads.md), then the tier.
    expect(mine[7]).toBe('0');
    expect(mine[8]).toBe('local');
    const cluster = await rows(page, 'cluster');
    expect(cluster[0]![1]).toBe('2 alive / 2');
    expect((await rows(page, 'collections')).map((r) => r[0])).toContain('photos');
    await page.screenshot({ path: artifact('status-pages', 'master-initial.png'), fullPage: true });

    // A new collection and a sealed volume show up without a reload.
    await write('videos', 10_000);
    const seal = await send(`${m.base}/vol/mark?volumeId=${volumeId}&state=readonly`, { method: 'POST' });
    expect(seal.status).toBe(200);
    await page.waitForFunction(
      (id) => {
        const text = document.querySelector('table[data-table="volumes"]')?.textContent ?? '';
        const row = [...document.querySelectorAll('table[data-table="volumes"] tbody tr')].find(
          (tr) => tr.querySelector('td')?.textContent?.trim() === String(id),
        );
        return text.includes('videos') && row?.textContent?.includes('sealed');
      },
      volumeId,
      { timeout: 15_000 },
    );
    expect(loads()).toBe(1);
    expect(await page.evaluate(() => window.pageInstance)).toBe('first');
    expect(Number(await page.evaluate(() => document.body.dataset.refreshes))).toBeGreaterThan(0);
    expect((await rows(page, 'collections')).map((r) => r[0])).toEqual(
      expect.arrayContaining(['photos', 'videos']),
    );
    await page.screenshot({ path: artifact('status-pages', 'master-updated.png'), fullPage: true });
    await page.close();
  });

  it('renders hostile values inert (escaped text, no script runs)', async () => {
    // Heartbeats are schema-checked, so no such name reaches a real master; the
    // page must be safe on its own all the same.
    const topology = new Topology({ pulseSeconds: 1, volumeSizeLimit: 1 << 20, now: Date.now });
    const evil = '<img src=x onerror="window.pwned=1">';
    topology.heartbeat({
      url: '127.0.0.1:1',
      publicUrl: `"><script>window.pwned=2</script>`,
      dataCenter: evil,
      rack: `<script>window.pwned=3</script>`,
      maxVolumeCount: 3,
      maxFileKey: '0',
      volumes: [
        {
          id: 9,
          collection: evil,
          size: 100,
          fileCount: 1,
          deleteCount: 0,
          deletedByteCount: 0,
          readOnly: false,
          replicaPlacement: '000',
          ttl: '',
          compactRevision: 0,
          readsPerDay: 0,
          modifiedAt: 0,
        },
      ],
    });
    const schedule = new VacuumSchedule({
      intervalMs: 0,
      garbageThreshold: 0.3,
      view: () => ({ volumeSizeLimit: 0, nodes: [] }),
      client: undefined as never,
      log: silentLogger(),
    });
    const sections = await new MasterStatusPage(topology, () => 'master', schedule).sections();
    const page = await browser.newPage();
    await page.setContent(sections.map((s) => `<section id="${s.id}">${s.html}</section>`).join(''));
    expect(await page.evaluate(() => window.pwned)).toBeUndefined();
    expect(await page.$$('script')).toHaveLength(0);
    expect(await page.$$('img')).toHaveLength(0);
    const text = await page.textContent('body');
    expect(text).toContain(evil);
    await page.close();
  });
});

describe("a volume server's status page", () => {
  it('shows its volumes and disks, and its recent errors without query strings, updating in place', async () => {
    const v = vols[0]!;
    const { page, loads } = await open(`${v.base}/ui/index.html`);
    expect(await page.title()).toBe('Kelp volume server');
    const disks = await rows(page, 'disks');
    expect(disks).toHaveLength(1);
    expect(disks[0]![4]).toBe('writable');
    const before = (await rows(page, 'volumes')).length;
    // A volume with one copy where its placement wants two: writes to it fail with a 503.
    const id = 900;
    v.server.store.createVolume(id, 'lonely', parsePlacement('001'), parseTtl(''));
    const fid = formatFid({ volumeId: id, key: 1n, cookie: 0x12345678 });
    const res = await upload(v.url, `${fid}?jwt=secret-token-value`, Buffer.from('x'));
    expect(res.status).toBe(503);
    await page.waitForFunction(
      (n) =>
        document.querySelectorAll('table[data-table="volumes"] tbody tr').length > n &&
        (document.querySelector('table[data-table="errors"]')?.textContent ?? '').includes('503'),
      before,
      { timeout: 15_000 },
    );
    expect(loads()).toBe(1);
    expect(await page.evaluate(() => window.pageInstance)).toBe('first');
    const volumes = await rows(page, 'volumes');
    const lonely = volumes.find((r) => r[0] === String(id))!;
    expect(lonely[1]).toBe('lonely');
    expect(lonely[2]).toBe('writable');
    expect(lonely[6]).toBe('001');
    const errors = await rows(page, 'errors');
    expect(errors[0]![1]).toBe(`POST /${fid}`);
    expect(errors[0]![2]).toBe('503');
    expect(await page.content()).not.toContain('secret-token-value');
    await page.screenshot({ path: artifact('status-pages', 'volume-server.png'), fullPage: true });
    await page.close();
  });
});
