// DATABASE_READ_URL (docs/high-availability.md "Reads off the primary"): exports read on a
// standby (HAProxy's read port in front of Patroni's replicas) when it is caught up.
//
// The rule that bounds staleness: when an export begins, the primary's current WAL position
// is taken; the export reads on the standby only once that standby has replayed up to it
// (waiting at most DATABASE_READ_MAX_WAIT_MS), else on the primary. So an export sees every
// commit acknowledged before its request, the caller's own included (an erasure, a consent
// change, the disclosure filed for a grant's read just before), as a read on the primary
// would. Everything else (disclosures, reports that write their disclosures, status, the
// portal) stays on the primary. The read port balances by source address, so the pool's
// connections land on the standby that was checked.
import type { Logger } from 'pino';
import type { Db } from '../storage/driver/db.ts';
import type { ReadRepo } from '../storage/repos/reads.ts';

export interface ReplicaReadsDeps {
  primary: Db;
  replica: Db;
  /** Reads on the primary (the API's pool). */
  onPrimary: ReadRepo;
  /** The same reads on the standby. */
  onReplica: ReadRepo;
  maxWaitMs: number;
  log: Logger;
  /** Counts where each export read (for /metrics or tests); optional. */
  onChoice?: (where: 'replica' | 'primary', reason: string) => void;
}

const POLL_MS = 20;

export function replicaReads(deps: ReplicaReadsDeps): ReadRepo {
  const { primary, replica, onPrimary, onReplica, maxWaitMs, log } = deps;
  let lastWarn = 0;
  async function pick(): Promise<ReadRepo> {
    let reason: string;
    try {
      const at = (await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      const deadline = Date.now() + maxWaitMs;
      for (;;) {
        const r = await replica.query<{ ok: boolean | null; standby: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok, pg_is_in_recovery() AS standby', [at]);
        const row = r.rows[0]!;
        // Not a standby (a promoted node behind the read port): its data is the primary's.
        if (!row.standby || row.ok === true) {
          log.debug({ event: 'read_replica_used', lsn: at }, 'export reads on the standby');
          deps.onChoice?.('replica', row.standby ? 'caught up' : 'not in recovery');
          return onReplica;
        }
        if (Date.now() >= deadline) {
          reason = `standby behind the primary's ${at} after ${maxWaitMs} ms`;
          break;
        }
        await new Promise((res) => setTimeout(res, POLL_MS));
      }
    } catch (err) {
      reason = `read URL unavailable: ${(err as Error).message}`;
    }
    deps.onChoice?.('primary', reason);
    if (Date.now() - lastWarn > 60_000) {
      lastWarn = Date.now();
      log.warn({ event: 'read_replica_fallback', reason }, 'export reads on the primary');
    }
    return onPrimary;
  }
  return {
    ...onPrimary,
    async *ndjson(...args) {
      yield* (await pick()).ndjson(...args);
    },
    async *records(...args) {
      yield* (await pick()).records(...args);
    },
  };
}
