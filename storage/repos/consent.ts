// Privacy state events: append-only history of each vehicle's opt-outs (location,
// CO2/OBFCM sharing) and restriction of processing. The state in force at time t is the
// latest event with effective_at <= t; none means the defaults (allowed, not restricted).
import type { Db, Queryable } from '../driver/db.ts';
import type { ConsentChange, ConsentFlags, ConsentPeriod, ConsentStore } from '../../proto/consent.ts';
import { STO_ERR, StorageError } from '../errors.ts';
import { clearGroupSet } from './telemetry-sql.ts';
import { afterChange } from './summaries.ts';
import { CURRENT_CONSENT } from './consent-sql.ts';
import type { Shards } from '../driver/shards.ts';

/** NOTIFY channel announcing a committed change; payload = the VIN. */
export const CONSENT_CHANNEL = 'consent_changed';

export type { ConsentPeriod };
/** The three choices without their time (proto/consent.ts). */
export type PrivacyState = ConsentFlags;

/** The store this module implements (proto/consent.ts). */
export type ConsentRepo = ConsentStore;

export const DEFAULT_STATE: Readonly<ConsentPeriod> = Object.freeze({ sinceMs: 0, location: true, co2Sharing: true, restricted: false });

const EPOCH_MS = '(extract(epoch FROM effective_at) * 1000)::float8';

/** The state in force now, inside a transaction that has locked the vehicle row. */
async function currentState(q: Queryable, vin: string): Promise<PrivacyState> {
  const r = await q.query<{ location_allowed: boolean; co2_sharing_allowed: boolean; restricted: boolean }>(
    `SELECT location_allowed, co2_sharing_allowed, restricted FROM (${CURRENT_CONSENT}) c WHERE c.vin = $1`,
    [vin],
  );
  const row = r.rows[0];
  return row ? { location: row.location_allowed, co2Sharing: row.co2_sharing_allowed, restricted: row.restricted } : { ...DEFAULT_STATE };
}

/** Appends an event inside an existing transaction (used by transfer too). */
export async function appendConsentEvent(
  q: Queryable,
  vin: string,
  change: ConsentChange,
  opts: {
    reset?: boolean;
    /**
     * Where the telemetry-side tables are (sharded: every shard, each in its own
     * transaction committed before this one); default: `q` itself.
     */
    telemetryOn?: readonly Db[];
    /** Only while this is the current owner (else NOT_FOUND): the change one owner asked for. */
    asOwner?: string;
  } = {},
): Promise<ConsentPeriod & { erasedLocationRows: number }> {
  // The vehicle's row lock, which transfer() and erase() take too, serialises them and
  // concurrent changes: the owner and the previous state read below are exact. Taken on
  // its own: a statement that waited for the lock would see the ownership it joined as it
  // was before the transfer it waited for; the next statement sees that transfer.
  const lock = await q.query('SELECT 1 FROM vehicles WHERE vin = $1 FOR UPDATE', [vin]);
  if (lock.rowCount === 0) throw new StorageError(STO_ERR.NOT_FOUND, `vehicle ${vin} is not provisioned`);
  // started_at of the current period; the first owner's period reaches back to the epoch.
  const owner = await q.query<{ owner_id: string | null; started_at: Date | null }>(
    `SELECT o.owner_id,
            CASE WHEN EXISTS (SELECT 1 FROM ownership_periods p WHERE p.vin = v.vin AND p.ended_at IS NOT NULL)
                 THEN o.started_at ELSE timestamptz 'epoch' END AS started_at
       FROM vehicles v
       LEFT JOIN ownership_periods o ON o.vin = v.vin AND o.ended_at IS NULL
      WHERE v.vin = $1`,
    [vin],
  );
  const own = owner.rows[0];
  if (!own) throw new StorageError(STO_ERR.NOT_FOUND, `vehicle ${vin} is not provisioned`);
  if (opts.asOwner !== undefined && own.owner_id !== opts.asOwner) {
    throw new StorageError(STO_ERR.NOT_FOUND, `${opts.asOwner} is not the current owner of ${vin}`);
  }
  const prev = await currentState(q, vin);
  const base = opts.reset ? { ...DEFAULT_STATE } : prev;
  const next: PrivacyState = {
    location: change.location ?? base.location,
    co2Sharing: change.co2Sharing ?? base.co2Sharing,
    restricted: change.restricted ?? base.restricted,
  };
  let erasedLocationRows = 0;
  const erase = change.eraseLocationHistory === true && !next.location;
  if (erase) {
    // Only the current owner's period: earlier owners' data is theirs to decide on.
    const since = own.started_at ?? new Date(0);
    const eraseOn = async (t: Queryable): Promise<number> => {
      const r = await t.query(`UPDATE telemetry SET ${clearGroupSet('location')} WHERE vin = $1 AND recorded_at >= $2 AND has_location`, [vin, since]);
      await afterChange(t, vin, [{ from: since, to: null }], { kind: 'clear', group: 'location' });
      // Quarantined bytes may hold positions too: keep the reasons, drop the bytes.
      await t.query('UPDATE quarantine SET payload = NULL WHERE vin = $1 AND received_at >= $2 AND payload IS NOT NULL', [vin, since]);
      return r.rowCount;
    };
    if (!opts.telemetryOn) erasedLocationRows = await eraseOn(q);
    else for (const s of opts.telemetryOn) erasedLocationRows += await s.transaction(eraseOn);
  }
  const ins = await q.query<{ ms: number }>(
    `INSERT INTO consent_events (vin, location_allowed, co2_sharing_allowed, restricted, actor, channel, owner_id,
        previous_location_allowed, previous_co2_sharing_allowed, previous_restricted, erased_location_history)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ${EPOCH_MS} AS ms`,
    // After a transfer the previous state was another person's choice: not recorded here.
    opts.reset
      ? [vin, next.location, next.co2Sharing, next.restricted, change.actor, change.channel, own.owner_id ?? null, null, null, null, erase]
      : [vin, next.location, next.co2Sharing, next.restricted, change.actor, change.channel, own.owner_id ?? null, prev.location, prev.co2Sharing, prev.restricted, erase],
  );
  // Delivered on COMMIT only, so listeners never see an uncommitted change.
  await q.query('SELECT pg_notify($1, $2)', [CONSENT_CHANNEL, vin]);
  return { sinceMs: ins.rows[0]!.ms, ...next, erasedLocationRows };
}

export interface ChangeHooks {
  /**
   * Called with the VIN once a change is committed, before the caller hears of it. This
   * process's consent cache is invalidated here; other processes learn of it by NOTIFY.
   */
  onCommitted?: (vin: string) => void;
}

/** `db`: the control database; `shards` (when sharded): where a location-history erasure runs. */
export function createConsentRepo(db: Db, hooks: ChangeHooks = {}, shards?: Pick<Shards, 'sharded' | 'all'>): ConsentRepo {
  const telemetryOn = shards?.sharded ? shards.all() : undefined;
  return {
    async timeline(vin, sinceMs) {
      const r = await db.query<{ ms: number; location_allowed: boolean; co2_sharing_allowed: boolean; restricted: boolean }>(
        `(SELECT ${EPOCH_MS} AS ms, location_allowed, co2_sharing_allowed, restricted, id
            FROM consent_events WHERE vin = $1 AND effective_at <= to_timestamp($2 / 1000.0)
            ORDER BY effective_at DESC, id DESC LIMIT 1)
         UNION ALL
         (SELECT ${EPOCH_MS}, location_allowed, co2_sharing_allowed, restricted, id
            FROM consent_events WHERE vin = $1 AND effective_at > to_timestamp($2 / 1000.0))
         ORDER BY ms, id`,
        [vin, sinceMs],
      );
      const periods: ConsentPeriod[] = [];
      if (r.rows.length === 0 || r.rows[0]!.ms > sinceMs) periods.push({ ...DEFAULT_STATE });
      for (const row of r.rows) {
        periods.push({ sinceMs: row.ms, location: row.location_allowed, co2Sharing: row.co2_sharing_allowed, restricted: row.restricted });
      }
      return periods;
    },
    async set(vin, change, asOwner) {
      const r = await db.transaction((tx) => appendConsentEvent(tx, vin, change, { ...(telemetryOn ? { telemetryOn } : {}), ...(asOwner !== undefined ? { asOwner } : {}) }));
      hooks.onCommitted?.(vin);
      return r;
    },
    async history(vin, fromMs) {
      const r = await db.query<{
        id: number;
        effective_at: Date;
        location_allowed: boolean;
        co2_sharing_allowed: boolean;
        restricted: boolean;
        actor: string;
        channel: string;
        owner_id: string | null;
        previous_location_allowed: boolean | null;
        previous_co2_sharing_allowed: boolean | null;
        previous_restricted: boolean | null;
        erased_location_history: boolean;
      }>(
        `SELECT * FROM consent_events WHERE vin = $1 AND ($2::float8 IS NULL OR effective_at >= to_timestamp($2 / 1000.0))
          ORDER BY effective_at, id`,
        [vin, fromMs ?? null],
      );
      return r.rows.map((x) => ({
        id: x.id,
        effectiveAt: x.effective_at,
        location: x.location_allowed,
        co2Sharing: x.co2_sharing_allowed,
        restricted: x.restricted,
        actor: x.actor,
        channel: x.channel,
        ownerId: x.owner_id,
        previous:
          x.previous_location_allowed === null
            ? null
            : { location: x.previous_location_allowed, co2Sharing: x.previous_co2_sharing_allowed ?? true, restricted: x.previous_restricted ?? false },
        erasedLocationHistory: x.erased_location_history,
      }));
    },
  };
}
