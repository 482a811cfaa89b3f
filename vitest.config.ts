import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Integration files each get their own database; two workers match the 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
  },
});
