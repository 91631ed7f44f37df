import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Installs the Debian packages of the servers the tests run (Ceph, ...) when missing.
    globalSetup: ['test/support/system-packages.ts'],
    // Integration tests start real servers; two cores are shared by the whole suite.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
