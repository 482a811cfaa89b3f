// globalSetup of the `ha` project: brings up the Patroni cluster of scripts/ha.sh
// (idempotent) and gives the tests its write port's URL as `databaseUrl`, so
// createTestDatabase() makes each test's database there; stops it at the end (HA_KEEP=1: left running). When the tools cannot run here
// the tests skip with the reason (test/helpers/ha.ts haMissing()).
import type { TestProject } from 'vitest/node';
import { ha, haMissing, waitHealthy } from './ha.ts';

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  if (haMissing() !== null) {
    project.provide('databaseUrl', '');
    return undefined;
  }
  ha('up');
  await waitHealthy();
  project.provide('databaseUrl', ha('url'));
  // Stopped afterwards (data kept: the next run starts it in seconds): on a 2-core machine
  // two idle PostgreSQL servers, Patroni and etcd are not left running for others.
  return () => {
    if (process.env.HA_KEEP !== '1') ha('down');
  };
}
