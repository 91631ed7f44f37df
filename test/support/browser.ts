/**
 * Headless Chromium for the browser tests: Debian's `chromium`, driven by
 * playwright-core (never Playwright's own browser downloads). `npm test`
 * installs it when missing (system-packages.ts).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** Screenshots the tests keep (gitignored). */
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  throw new Error(`${CHROMIUM} is missing: npm test installs it as root (test/support/system-packages.ts)`);
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
