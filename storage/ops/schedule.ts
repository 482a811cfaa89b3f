// Once per period across every gateway process on one database. Each process runs the
// same timer; whichever asks first in a period claims it and does the work, the others
// see the claim and skip. The claim and the work share one transaction, held under a
// transaction-scoped advisory lock:
// - two processes never work at once (the lock), even when one period's run outlasts
//   the period;
// - a process that dies half-way releases both (ROLLBACK), so the period is not lost:
//   the next process to ask takes it over;
// - the period is cut from the database's clock, so processes with skewed clocks agree.
import type { Db, Queryable } from '../driver/db.ts';

/** Key space of the two-int advisory locks (migrate() uses the one-bigint space). */
const LOCK_CLASS = 0x63617264; // 'card'

export type OnceResult<T> =
  | { ran: true; periodStart: Date; result: T }
  | { ran: false; reason: 'busy' | 'done'; periodStart: Date | null };

/**
 * Runs `fn` unless this period of `job` was already done (or is being done) by any
 * process on this database. `fn` gets the transaction; what it returns is kept in
 * scheduled_runs.result (as JSON) with the instance's name.
 */
export async function runOncePerPeriod<T>(
  db: Db,
  job: string,
  periodMs: number,
  instance: string,
  fn: (tx: Queryable & { readonly kind: string }) => Promise<T>,
): Promise<OnceResult<T>> {
  return db.transaction(async (tx) => {
    const got = await tx.query<{ ok: boolean; p: Date }>(
      `SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS ok,
              to_timestamp(floor(extract(epoch FROM now()) * 1000 / $3) * $3 / 1000) AS p`,
      [LOCK_CLASS, job, periodMs],
    );
    const row = got.rows[0]!;
    if (!row.ok) return { ran: false, reason: 'busy', periodStart: null };
    const claim = await tx.query(
      'INSERT INTO scheduled_runs (job, period_start, instance) VALUES ($1, $2, $3) ON CONFLICT (job, period_start) DO NOTHING RETURNING 1',
      [job, row.p, instance],
    );
    if (claim.rowCount === 0) return { ran: false, reason: 'done', periodStart: row.p };
    const result = await fn(Object.assign(tx, { kind: db.kind }));
    await tx.query('UPDATE scheduled_runs SET finished_at = clock_timestamp(), result = $3 WHERE job = $1 AND period_start = $2', [job, row.p, JSON.stringify(result ?? null)]);
    return { ran: true, periodStart: row.p, result };
  });
}

/**
 * Runs `fn` in a transaction under a blocking transaction-scoped advisory lock named
 * `name`: set-up that every process does at start (e.g. compression policies) runs one
 * process at a time, each seeing what the previous one did.
 */
export async function runExclusive<T>(db: Db, name: string, fn: (tx: Queryable & { readonly kind: string }) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, name]);
    return fn(Object.assign(tx, { kind: db.kind }));
  });
}
