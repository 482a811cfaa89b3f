// The embedded backend: PGlite (PostgreSQL compiled to WebAssembly, in-process), for a
// gateway started with no DATABASE_URL. Same migrations, same SQL; no TimescaleDB, so
// the tables stay plain tables. One connection: statements run one after the other.
import { PGlite, types } from '@electric-sql/pglite';
import type { Db, Queryable, QueryResult } from './db.ts';
import { initPgliteDataDir, PGLITE_INITDB_PARAMS, PGLITE_START_PARAMS, useBaselineWasmCompiler } from './pglite-init.ts';

/**
 * pg's rowCount: rows returned by a SELECT, rows changed by INSERT/UPDATE/DELETE. PGlite's
 * affectedRows is 0 for a SELECT, so the larger of the two is what pg would say.
 */
function rowCount(r: { rows: unknown[]; affectedRows?: number }): number {
  return Math.max(r.rows.length, r.affectedRows ?? 0);
}

export async function createPgliteDb(dataDir: string | null): Promise<Db & { setKind(kind: string): void }> {
  // Memory (pglite-init.ts): a first start's initdb in a child process, a 16MB buffer
  // pool, WebAssembly compiled by the baseline compiler only.
  useBaselineWasmCompiler();
  if (dataDir) await initPgliteDataDir(dataDir);
  const pg = await PGlite.create(dataDir ?? undefined, {
    // int8 → number, as with the pg backend (our bigints stay below 2^53).
    parsers: { [types.INT8]: (v: string) => Number(v) },
    startParams: [...PGLITE_START_PARAMS],
    initDbStartParams: [...PGLITE_INITDB_PARAMS],
  });
  let kind = 'pglite';
  let closed = false;

  const run = async <R>(q: { query: PGlite['query'] }, text: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
    const r = await q.query<R>(text, params as unknown[] | undefined);
    return { rows: r.rows, rowCount: rowCount(r) };
  };

  return {
    get kind() {
      return kind;
    },
    // PGlite does not speak the COPY protocol: writes use one statement, exports keyset pages.
    copy: null,
    setKind(k: string) {
      // The embedded server never has TimescaleDB; keep saying what it is.
      kind = k === 'timescaledb' ? k : 'pglite';
    },
    async query<R>(text: string, params?: readonly unknown[], _name?: string) {
      if (closed) throw Object.assign(new Error('database is closed'), { code: '57P01' });
      // A multi-statement text (migrations) has no parameters: exec runs it as a script.
      if (!params?.length && /;\s*\S/.test(text)) {
        await pg.exec(text);
        return { rows: [] as R[], rowCount: 0 };
      }
      return run<R>(pg, text, params);
    },
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return pg.transaction(async (tx) => {
        const q: Queryable = {
          async query<R>(text: string, params?: readonly unknown[]) {
            if (!params?.length && /;\s*\S/.test(text)) {
              await tx.exec(text);
              return { rows: [] as R[], rowCount: 0 };
            }
            const r = await tx.query<R>(text, params as unknown[] | undefined);
            return { rows: r.rows, rowCount: rowCount(r) };
          },
        };
        return fn(q);
      });
    },
    async listen(channel, onMessage) {
      const unsub = await pg.listen(channel, onMessage);
      return async () => {
        if (!closed) await unsub();
      };
    },
    stats: () => ({ total: 1, idle: 1, waiting: 0 }),
    async close() {
      if (closed) return;
      closed = true;
      await pg.close();
    },
  };
}
