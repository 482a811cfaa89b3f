// Ownership periods and the data subject's rights: transfer, erasure (GDPR Art. 17).
import type { Db, Queryable } from '../driver/db.ts';
import { STO_ERR, StorageError } from '../errors.ts';
import { appendConsentEvent, CONSENT_CHANNEL, type ChangeHooks } from './consent.ts';
import { GROUP_FLAG, type Group } from '../../proto/fields.ts';
import { clearGroupSet } from './telemetry-sql.ts';
import { afterChange } from './summaries.ts';
import { eraseConnectivity } from './connectivity.ts';
import { CURRENT_CONSENT } from './consent-sql.ts';
import type { Shards } from '../driver/shards.ts';
import type { ErasureResult, OwnershipPeriod, OwnershipStore } from '../../proto/ownership.ts';

export type ErasureCategory = Group;

/** The store this module implements (proto/ownership.ts). */
export type RightsRepo = OwnershipStore;

/** `recorded_at` inside one of the periods (the SQL condition and its parameters). */
export function periodCondition(periods: readonly OwnershipPeriod[], firstParam: number, column = 'recorded_at'): { sql: string; params: unknown[] } {
  if (periods.length === 0) return { sql: 'false', params: [] };
  const parts: string[] = [];
  const params: unknown[] = [];
  let p = firstParam;
  for (const per of periods) {
    parts.push(`(${column} >= $${p} AND ($${p + 1}::timestamptz IS NULL OR ${column} < $${p + 1}))`);
    params.push(per.from, per.to);
    p += 2;
  }
  return { sql: `(${parts.join(' OR ')})`, params };
}

/** Start of the first owner's period for reads: records measured before provisioning are theirs. */
const BEGINNING = new Date(0);

async function periods(q: Queryable, vin: string, ownerId: string | null): Promise<OwnershipPeriod[]> {
  const r = await q.query<{ owner_id: string; started_at: Date; ended_at: Date | null; first: boolean }>(
    `SELECT owner_id, started_at, ended_at, row_number() OVER (ORDER BY started_at, id) = 1 AS first
       FROM ownership_periods WHERE vin = $1 ORDER BY started_at, id`,
    [vin],
  );
  return r.rows
    .filter((x) => ownerId === null || x.owner_id === ownerId)
    .map((x) => ({ ownerId: x.owner_id, from: x.first ? BEGINNING : x.started_at, startedAt: x.started_at, to: x.ended_at }));
}

/** Deletes (or, for one category, clears) the telemetry-side rows of `vin` in the periods. */
async function eraseRows(q: Queryable, vin: string, pers: readonly OwnershipPeriod[], category: ErasureCategory | null, sharingRefused: boolean): Promise<ErasureResult> {
  const res: ErasureResult = { telemetryDeleted: 0, telemetryUpdated: 0, obfcmDeleted: 0, obfcmKept: 0, quarantineDeleted: 0 };
  const cond = periodCondition(pers, 2);
  if (category === null) {
    res.telemetryDeleted = (await q.query(`DELETE FROM telemetry WHERE vin = $1 AND ${cond.sql}`, [vin, ...cond.params])).rowCount;
    // The hourly summaries of those periods go in the same transaction.
    await afterChange(q, vin, pers, { kind: 'delete' });
    res.quarantineDeleted = (await q.query(`DELETE FROM quarantine WHERE vin = $1 AND ${periodCondition(pers, 2, 'received_at').sql}`, [vin, ...cond.params])).rowCount;
  } else {
    res.telemetryUpdated = (
      await q.query(`UPDATE telemetry SET ${clearGroupSet(category)} WHERE vin = $1 AND ${GROUP_FLAG[category]} AND ${cond.sql}`, [vin, ...cond.params])
    ).rowCount;
    await afterChange(q, vin, pers, { kind: 'clear', group: category });
  }
  if (category === null || category === 'consumption') {
    if (sharingRefused) {
      res.obfcmDeleted = (await q.query(`DELETE FROM obfcm_readings WHERE vin = $1 AND ${cond.sql}`, [vin, ...cond.params])).rowCount;
    } else {
      const k = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM obfcm_readings WHERE vin = $1 AND ${cond.sql}`, [vin, ...cond.params]);
      res.obfcmKept = k.rows[0]?.n ?? 0;
    }
  }
  return res;
}

function addErased(into: ErasureResult, r: ErasureResult): void {
  into.telemetryDeleted += r.telemetryDeleted;
  into.telemetryUpdated += r.telemetryUpdated;
  into.obfcmDeleted += r.obfcmDeleted;
  into.obfcmKept += r.obfcmKept;
  into.quarantineDeleted += r.quarantineDeleted;
}

/**
 * `db`: the control database. With `shards` sharded, an erasure also runs on every shard
 * (the telemetry-side tables live there).
 */
export function createRightsRepo(db: Db, hooks: ChangeHooks = {}, shards?: Pick<Shards, 'sharded' | 'all'>): RightsRepo {
  return {
    async currentOwner(vin) {
      const r = await db.query<{ owner_id: string }>('SELECT owner_id FROM ownership_periods WHERE vin = $1 AND ended_at IS NULL', [vin]);
      return r.rows[0]?.owner_id ?? null;
    },
    periodsOf: (vin, ownerId) => periods(db, vin, ownerId),
    allPeriods: (vin) => periods(db, vin, null),
    async transfer(vin, newOwnerId, actor) {
      const period = await db.transaction(async (tx) => {
        const lock = await tx.query('SELECT 1 FROM vehicles WHERE vin = $1 FOR UPDATE', [vin]);
        if (lock.rowCount === 0) throw new StorageError(STO_ERR.NOT_FOUND, `vehicle ${vin} is not provisioned`);
        const cur = await tx.query<{ owner_id: string }>('SELECT owner_id FROM ownership_periods WHERE vin = $1 AND ended_at IS NULL', [vin]);
        if (cur.rows[0]?.owner_id === newOwnerId) throw new StorageError(STO_ERR.CONFLICT, `${newOwnerId} already owns ${vin}`);
        const now = await tx.query<{ t: Date }>('SELECT clock_timestamp() AS t');
        const t = now.rows[0]!.t;
        await tx.query('UPDATE ownership_periods SET ended_at = $2 WHERE vin = $1 AND ended_at IS NULL', [vin, t]);
        await tx.query('INSERT INTO ownership_periods (vin, owner_id, started_at) VALUES ($1, $2, $3)', [vin, newOwnerId, t]);
        await tx.query('UPDATE vehicles SET owner_id = $2 WHERE vin = $1', [vin, newOwnerId]);
        // The previous owner's choices do not bind the new owner: back to the defaults.
        await appendConsentEvent(tx, vin, { actor, channel: 'transfer' }, { reset: true });
        return { ownerId: newOwnerId, from: t, startedAt: t, to: null };
      });
      hooks.onCommitted?.(vin);
      return period;
    },
    async erase(vin, ownerId, category, opts = {}) {
      const erased = await db.transaction(async (tx) => {
        // The vehicle's row stays locked until the erasure is logged: erasures, transfers
        // and consent changes of one vehicle run one at a time.
        const lock = await tx.query('SELECT 1 FROM vehicles WHERE vin = $1 FOR UPDATE', [vin]);
        if (lock.rowCount === 0) throw new StorageError(STO_ERR.NOT_FOUND, `vehicle ${vin} is not provisioned`);
        if (opts.asCurrentOwner) {
          // Read after the lock: a transfer committed while this waited for it is seen.
          const cur = await tx.query<{ owner_id: string }>('SELECT owner_id FROM ownership_periods WHERE vin = $1 AND ended_at IS NULL', [vin]);
          if (cur.rows[0]?.owner_id !== ownerId) throw new StorageError(STO_ERR.NOT_FOUND, `${ownerId} is not the current owner of ${vin}`);
        }
        const pers = await periods(tx, vin, ownerId);
        const res: ErasureResult = { telemetryDeleted: 0, telemetryUpdated: 0, obfcmDeleted: 0, obfcmKept: 0, quarantineDeleted: 0 };
        if (pers.length === 0) return res;
        const state = await tx.query<{ co2_sharing_allowed: boolean }>(
          `SELECT co2_sharing_allowed FROM (${CURRENT_CONSENT}) c WHERE c.vin = $1`,
          [vin],
        );
        // Rule (README "Erasure"): OBFCM readings the owner did not refuse to share are
        // kept, as (EU) 2021/392 obliges their transmission (GDPR Art. 17(3)(b)); once
        // the owner refuses CO2 sharing, an erasure deletes them too.
        const sharingRefused = state.rows[0] ? !state.rows[0].co2_sharing_allowed : false;
        // Connectivity lives in the control database (migration 012).
        if (category === null || category === 'connectivity') res.connectivityDeleted = await eraseConnectivity(tx, vin, pers);
        if (category === 'connectivity') {
          // The telemetry is left as it is.
        } else if (!shards?.sharded) {
          addErased(res, await eraseRows(tx, vin, pers, category, sharingRefused));
        } else {
          // On every shard, each in its own transaction, committed before the erasure is
          // logged here: the vehicle's rows are on its own shard, and on two only while its
          // bucket moves; a shard that fails fails the erasure (503), which is retried whole
          // (the deletes already committed elsewhere find nothing the second time).
          for (const s of shards.all()) addErased(res, await s.transaction((stx) => eraseRows(stx, vin, pers, category, sharingRefused)));
        }
        const first = pers[0]!;
        const last = pers[pers.length - 1]!;
        await tx.query(
          `INSERT INTO erasure_log (vin, owner_id, category, period_from, period_to, rows_affected) VALUES ($1, $2, $3, $4, $5, $6)`,
          [vin, ownerId, category, first.from, last.to, JSON.stringify(res)],
        );
        // Announced like a consent change (on commit): every process lets go of what it
        // holds of this vehicle's rows for its live streams, and rechecks them.
        await tx.query('SELECT pg_notify($1, $2)', [CONSENT_CHANNEL, vin]);
        return res;
      });
      hooks.onCommitted?.(vin);
      return erased;
    },
  };
}
