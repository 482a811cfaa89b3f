// Skips that say why. A test that cannot run here is skipped through ctx.skip(reason), so
// the reason travels with its result and the skip report at the end of the run
// (test/helpers/skip-reporter.ts) prints it next to the test's name.
import { beforeEach } from 'vitest';
import { tsdbInstalled } from './tsdb-instance.ts';

/**
 * Why the tests that start and stop a TimescaleDB server of their own cannot run on this
 * machine (the PostgreSQL 17 + TimescaleDB install of scripts/timescaledb.sh is missing,
 * e.g. TEST_DATABASE_URL points at a server elsewhere), or null when they can.
 */
export function localTsdbMissing(): string | null {
  if (tsdbInstalled()) return null;
  const url = process.env.TEST_DATABASE_URL;
  let where = 'and TEST_DATABASE_URL is not set';
  if (url) {
    try {
      where = `(TEST_DATABASE_URL points at ${new URL(url).host})`;
    } catch {
      where = '(TEST_DATABASE_URL is set)';
    }
  }
  return `needs the local PostgreSQL 17 + TimescaleDB install of scripts/timescaledb.sh to start and stop a server of its own; it is not on this machine ${where}`;
}

/**
 * In a describe block (or at the top of a file): when `reason` is not null, every test of
 * it is skipped with that reason (a beforeEach calling ctx.skip(reason)).
 */
export function skipEachWhen(reason: string | null): void {
  beforeEach((ctx) => {
    if (reason !== null) ctx.skip(reason);
  });
}
