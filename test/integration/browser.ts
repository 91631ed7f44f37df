/**
 * Headless Chromium for the status page tests: Debian's `chromium`, driven by
 * playwright-core (never Playwright's own browser downloads). Installed with
 * apt when missing (what it does is printed), as .ci/run does.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** Screenshots the tests keep (gitignored). */
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  console.log('chromium is missing: apt-get update && apt-get install -y chromium');
  execFileSync('apt-get', ['update'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { stdio: 'inherit' });
}

export async function launchChromium(): Promise<Browser> {
  ensureChromium();
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The path of a screenshot under test-artifacts/<group>/ (created). */
export function artifact(group: string, name: string): string {
  const dir = join(ARTIFACTS, group);
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
