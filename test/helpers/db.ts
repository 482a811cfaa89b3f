// One fresh database per test file on the shared test server, dropped afterwards.
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { typeParsers } from '../../storage/driver/db.ts';

export interface TestDatabase {
  url: string;
  name: string;
  /** A pg client on the test database, for assertions. */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('databaseUrl');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  // The gateway's own parsers (int8 → number), so assertions compare numbers.
  const pool = new pg.Pool({ connectionString: url, max: 3, types: typeParsers() });
  pool.on('error', () => {});
  return {
    url,
    name,
    async query(sql, params) {
      const r = await pool.query(sql, params);
      return r.rows;
    },
    async drop() {
      await pool.end();
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      try {
        // An autovacuum worker (a superuser backend) in the database makes FORCE fail with
        // 42501 for our unprivileged role; a plain DROP stops autovacuum workers itself but
        // fails on our own lingering sessions (55006). Alternate until one goes through.
        for (let attempt = 0; ; attempt++) {
          try {
            await a.query(attempt % 2 === 0 ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${name}`);
            break;
          } catch (err) {
            const code = (err as { code?: string }).code;
            if ((code !== '42501' && code !== '55006') || attempt >= 40) throw err;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      } finally {
        await a.end();
      }
    },
  };
}
