import { defineConfig } from 'vitest/config';

// Four projects:
// - unit: pure modules with fakes that honour the ports (test/unit); no database, no
//   root, no external binary: `npm run test:unit`, seconds.
// - integration: the real broker, HTTP, TimescaleDB, child processes (test/integration);
//   its globalSetup brings up (or points at) the test server.
// - solo: tests whose assertion is a latency figure (test/solo): they run after the other
//   two have finished, one file at a time, so that the machine's two cores measure the
//   gateway and not other test files.
// `npm test` (scripts/test.sh) runs all three.
export default defineConfig({
  test: {
    testTimeout: 30_000,
    // After the default output: every skipped test with its reason (test/helpers/skip-reporter.ts).
    reporters: ['default', './test/helpers/skip-reporter.ts'],
    hookTimeout: 120_000,
    // Integration files each get their own database; two workers match the 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        // Pure modules without module-level state: one module graph per worker (no
        // isolation) saves most of the start-up, which is most of this project's time.
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], isolate: false },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          // global.gc: memory checks measure what is retained after a full collection.
          execArgv: ['--expose-gc'],
        },
      },
      {
        extends: true,
        test: {
          name: 'solo',
          include: ['test/solo/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          sequence: { groupOrder: 1 },
          fileParallelism: false,
        },
      },
      {
        extends: true,
        // Failover of a Patroni cluster under load (test/ha, docs/high-availability.md):
        // etcd, two PostgreSQL + TimescaleDB nodes and HAProxy from scripts/ha.sh; skipped
        // with the reason when those cannot run here. After the others, one file at a time.
        test: {
          name: 'ha',
          include: ['test/ha/**/*.test.ts'],
          globalSetup: ['test/helpers/ha-setup.ts'],
          sequence: { groupOrder: 2 },
          fileParallelism: false,
          testTimeout: 240_000,
        },
      },
    ],
  },
});
