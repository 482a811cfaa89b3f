// Brings up the real TimescaleDB the tests need (scripts/timescaledb.sh: idempotent,
// about 30 s the first time on a fresh machine, under a second after), unless
// TEST_DATABASE_URL points at an existing server.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

export default function setup(project: TestProject): void {
  let url = process.env.TEST_DATABASE_URL;
  if (!url) {
    const script = fileURLToPath(new URL('../../scripts/timescaledb.sh', import.meta.url));
    url = execFileSync('bash', [script, 'up'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
  }
  project.provide('databaseUrl', url);
}
