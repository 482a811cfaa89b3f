// Consent events: append-only history of each vehicle's opt-outs. The state in force at
// time t is the latest event with effective_at <= t; none means the defaults (allowed).
import type { Db } from './db.ts';
import { StorageError } from './errors.ts';

/** NOTIFY channel announcing a committed consent change; payload = the VIN. */
export const CONSENT_CHANNEL = 'consent_changed';

export interface ConsentPeriod {
  /** Start of this state, ms since epoch; 0 for the defaults before any event. */
  sinceMs: number;
  location: boolean;
  co2Sharing: boolean;
}

export interface ConsentChange {
  location: boolean;
  co2Sharing: boolean;
  actor: string;
  channel: string;
}

export interface ConsentRepo {
  /**
   * The periods that can still matter for records arriving now: the state in force at
   * `sinceMs` (or the defaults) and every change after it, oldest first.
   */
  timeline(vin: string, sinceMs: number): Promise<ConsentPeriod[]>;
  /** Appends a consent event and announces it, in one transaction. */
  set(vin: string, change: ConsentChange): Promise<ConsentPeriod>;
}

export const DEFAULT_CONSENT: Readonly<ConsentPeriod> = Object.freeze({ sinceMs: 0, location: true, co2Sharing: true });

export function createConsentRepo(db: Db): ConsentRepo {
  return {
    async timeline(vin, sinceMs) {
      const r = await db.query<{ ms: number; location_allowed: boolean; co2_sharing_allowed: boolean }>(
        `(SELECT (extract(epoch FROM effective_at) * 1000)::float8 AS ms, location_allowed, co2_sharing_allowed, id
            FROM consent_events WHERE vin = $1 AND effective_at <= to_timestamp($2 / 1000.0)
            ORDER BY effective_at DESC, id DESC LIMIT 1)
         UNION ALL
         (SELECT (extract(epoch FROM effective_at) * 1000)::float8, location_allowed, co2_sharing_allowed, id
            FROM consent_events WHERE vin = $1 AND effective_at > to_timestamp($2 / 1000.0))
         ORDER BY ms, id`,
        [vin, sinceMs],
      );
      const periods: ConsentPeriod[] = [];
      if (r.rows.length === 0 || r.rows[0]!.ms > sinceMs) periods.push({ ...DEFAULT_CONSENT });
      for (const row of r.rows) periods.push({ sinceMs: row.ms, location: row.location_allowed, co2Sharing: row.co2_sharing_allowed });
      return periods;
    },
    async set(vin, change) {
      return db.transaction(async (tx) => {
        const r = await tx.query<{ ms: number }>(
          `INSERT INTO consent_events (vin, location_allowed, co2_sharing_allowed, actor, channel)
           VALUES ($1, $2, $3, $4, $5) RETURNING (extract(epoch FROM effective_at) * 1000)::float8 AS ms`,
          [vin, change.location, change.co2Sharing, change.actor, change.channel],
        ).catch((err: { code?: string }) => {
          if (err.code === '23503') throw new StorageError('STO_ERR_NOT_FOUND', `vehicle ${vin} is not provisioned`);
          throw err;
        });
        // Delivered on COMMIT only, so listeners never see an uncommitted change.
        await tx.query('SELECT pg_notify($1, $2)', [CONSENT_CHANNEL, vin]);
        return { sinceMs: r.rows[0]!.ms, location: change.location, co2Sharing: change.co2Sharing };
      });
    },
  };
}
