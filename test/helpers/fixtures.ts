// The set-up most integration files share, as vitest fixtures: a fresh database on the
// test server and the real gateway on it, both for the whole file (scope 'file'), set up
// the first time a test or a hook asks for them and taken down after the file's own
// afterAll hooks: the gateway closed first, then the database dropped, even when a test
// failed or the gateway did not start.
//
//   const test = gatewayTest({ JWT_KEYS });          // gateway settings for this file
//   test.beforeAll(({ gw }) => { … });                // hooks get them too
//   test('…', async ({ gw, db }) => { … });
import { test as base } from 'vitest';
import type { RunningGateway } from '../../app/gateway.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { startTestGateway } from './gateway.ts';

export interface GatewayFixtures {
  /** This file's own database on the test server. */
  db: TestDatabase;
  /** The gateway (app/gateway.ts startGateway) on `db`, on ephemeral 127.0.0.1 ports. */
  gw: RunningGateway;
}

/** `test` with the file-scoped `db` and `gw` fixtures; `env`: gateway settings on top of startTestGateway's. */
export function gatewayTest(env: Record<string, string> = {}) {
  return base.extend<{ $file: GatewayFixtures }>({
    db: [
      // eslint-disable-next-line no-empty-pattern -- vitest reads a fixture's dependencies from its first parameter, which must be an object pattern; `db` depends on none
      async ({}, use) => {
        const db = await createTestDatabase();
        try {
          await use(db);
        } finally {
          await db.drop();
        }
      },
      { scope: 'file' },
    ],
    gw: [
      async ({ db }, use) => {
        const gw = await startTestGateway(db.url, env);
        try {
          await use(gw);
        } finally {
          await gw.close();
        }
      },
      { scope: 'file' },
    ],
  });
}
