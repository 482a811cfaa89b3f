// Ordered SQL migrations, applied at start. Safe to run twice and from several
// processes at once: an advisory lock serialises them and schema_migrations records each.
import { readFile, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Db } from './db.ts';
import { STO_ERR, StorageError } from '../errors.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url));
// Any constant works; it only has to be the same for every gateway process.
const LOCK_KEY = 0x63617264; // 'card'

export interface MigrationResult {
  applied: string[];
  timescaledb: boolean;
}

export async function migrate(db: Db & { setKind?(kind: string): void }): Promise<MigrationResult> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  const timescaledb = await ensureTimescale(db);
  const applied = await db.transaction(async (tx) => {
    // Transaction-scoped: released by COMMIT/ROLLBACK even if this process dies.
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Map(
      (await tx.query<{ name: string; sha256: string }>('SELECT name, sha256 FROM schema_migrations')).rows.map((r) => [r.name, r.sha256]),
    );
    const now: string[] = [];
    for (const f of files) {
      const sql = await readFile(MIGRATIONS_DIR + f, 'utf8');
      const sha = createHash('sha256').update(sql).digest('hex');
      const prev = done.get(f);
      if (prev !== undefined) {
        if (prev !== sha) throw new StorageError(STO_ERR.MIGRATION, `migration ${f} changed after it was applied; add a new migration instead`);
        continue;
      }
      try {
        await tx.query(sql);
      } catch (err) {
        throw new StorageError(STO_ERR.MIGRATION, `migration ${f} failed: ${(err as Error).message}`, { cause: err });
      }
      await tx.query('INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)', [f, sha]);
      now.push(f);
    }
    return now;
  });
  db.setKind?.(timescaledb ? 'timescaledb' : 'postgres');
  return { applied, timescaledb };
}

/** Loads TimescaleDB where the server has it; plain PostgreSQL tables otherwise. */
async function ensureTimescale(db: Db): Promise<boolean> {
  const has = async () =>
    (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'timescaledb'")).rows[0]?.n === 1;
  if (await has()) return true;
  const avail = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'timescaledb'");
  if (avail.rows[0]?.n !== 1) return false;
  try {
    await db.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
  } catch {
    // Not allowed to create it (not owner/superuser), not preloaded, or created by a
    // concurrent process just now: whichever, the catalog tells.
    return has();
  }
  return has();
}
