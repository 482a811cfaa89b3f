// Recipients, owner-issued grants, their events (for receipts), workshop check-in codes,
// and the disclosure every read through a grant writes. Whether a grant allows a read is
// decided by access/grants.ts; the one rule repeated here, in SQL, is "still active and
// not restricted", re-checked by the very statement that files the read's disclosure, so
// a revocation or restriction committed before it can never be read past.
import type { Db, Queryable } from '../driver/db.ts';
import { STO_ERR, StorageError, isStorageError, isUniqueViolation } from '../errors.ts';
import type { CheckinStore, GrantDisclosure, GrantEvent, GrantRecord, GrantStore, NewGrant, Recipient, RecipientRole, RecipientStore } from '../../proto/grants.ts';

/** NOTIFY channel announcing that a grant was revoked or ended; payload = the grant id. */
export const GRANT_CHANNEL = 'grant_changed';

/** The stores this module implements (proto/grants.ts). */
export type RecipientRepo = RecipientStore;
export type GrantRepo = GrantStore;
export type CheckinRepo = CheckinStore;

/** A grant as GRANT_COLUMNS selects it (with `g.id`), for the repositories that read grants. */
export type GrantRow = {
  id: string;
  vin: string;
  owner_id: string;
  recipient_id: string;
  recipient_role: RecipientRole;
  recipient_name: string;
  categories: GrantRecord['categories'];
  fields: string[] | null;
  access: GrantRecord['access'];
  purpose: string;
  data_from: Date;
  created_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  period_ended_at: Date | null;
  origin: GrantRecord['origin'];
};

/** A grant's columns but its id and VIN, from `grants g`, `recipients r` and its `ownership_periods p`. */
export const GRANT_COLUMNS = `g.owner_id, g.recipient_id, r.role AS recipient_role, r.name AS recipient_name,
       g.categories, g.fields, g.access, g.purpose, g.data_from, g.created_at, g.expires_at, g.revoked_at, p.ended_at AS period_ended_at, g.origin`;

const SELECT_GRANT = `SELECT g.id::text AS id, g.vin, ${GRANT_COLUMNS}
  FROM grants g JOIN recipients r ON r.id = g.recipient_id JOIN ownership_periods p ON p.id = g.period_id`;

export function toGrant(x: GrantRow): GrantRecord {
  return {
    id: x.id,
    vin: x.vin,
    ownerId: x.owner_id,
    recipientId: x.recipient_id,
    recipientRole: x.recipient_role,
    recipientName: x.recipient_name,
    categories: x.categories,
    fields: x.fields,
    access: x.access,
    purpose: x.purpose,
    dataFrom: x.data_from,
    createdAt: x.created_at,
    expiresAt: x.expires_at,
    revokedAt: x.revoked_at,
    periodEndedAt: x.period_ended_at,
    origin: x.origin,
  };
}

/** Still active at the statement's clock: not revoked, not expired, its ownership period open. */
const ACTIVE = 'g.revoked_at IS NULL AND g.expires_at > clock_timestamp() AND p.ended_at IS NULL';
/** The vehicle's processing is not restricted now (GDPR Art. 18). */
const NOT_RESTRICTED = `NOT coalesce((SELECT c.restricted FROM consent_events c WHERE c.vin = g.vin ORDER BY c.effective_at DESC, c.id DESC LIMIT 1), false)`;

/**
 * The disclosure of a read through a grant, filed with the granting owner, inserted only
 * while the grant is active and the vehicle not restricted. Returns whether it was filed.
 */
export async function insertGrantDisclosure(q: Queryable, d: GrantDisclosure): Promise<boolean> {
  return (await fileGrantDisclosure(q, d)) !== null;
}

/** insertGrantDisclosure, answering the id of the disclosure filed (null: not filed). */
async function fileGrantDisclosure(q: Queryable, d: GrantDisclosure): Promise<string | null> {
  const r = await q.query<{ id: string }>(
    `INSERT INTO disclosures (vin, role, subject, endpoint, categories, fields, range_from, range_to, owner_id, grant_id)
     SELECT g.vin, $2, $3, $4, $5, $8, $6, $7, g.owner_id, g.id
       FROM grants g JOIN ownership_periods p ON p.id = g.period_id
      WHERE g.id = $1::uuid AND ${ACTIVE} AND ${NOT_RESTRICTED}
     RETURNING id::text AS id`,
    [d.grantId, d.role, d.subject, d.endpoint, [...d.categories], d.rangeFrom, d.rangeTo, d.fields ? [...d.fields] : null],
  );
  return r.rows[0]?.id ?? null;
}

/** The caller's current ownership period of `vin`, locked against a concurrent transfer. */
async function currentPeriod(q: Queryable, vin: string, ownerId: string): Promise<{ id: number; from: Date }> {
  // transfer() locks the vehicle row FOR UPDATE: FOR SHARE waits for it, so a grant is
  // never tied to a period that a transfer is ending.
  const lock = await q.query('SELECT 1 FROM vehicles WHERE vin = $1 FOR SHARE', [vin]);
  if (lock.rowCount === 0) throw new StorageError(STO_ERR.NOT_FOUND, `vehicle ${vin} is not provisioned`);
  const r = await q.query<{ id: number; from: Date }>(
    `SELECT o.id, CASE WHEN EXISTS (SELECT 1 FROM ownership_periods e WHERE e.vin = o.vin AND e.ended_at IS NOT NULL)
                       THEN o.started_at ELSE timestamptz 'epoch' END AS from
       FROM ownership_periods o WHERE o.vin = $1 AND o.ended_at IS NULL AND o.owner_id = $2`,
    [vin, ownerId],
  );
  const row = r.rows[0];
  if (!row) throw new StorageError(STO_ERR.NOT_FOUND, `${ownerId} is not the current owner of ${vin}`);
  return row;
}

async function insertGrant(q: Queryable, periodId: number, g: NewGrant, origin: 'owner' | 'checkin'): Promise<string> {
  // One instant for created_at, the default dataFrom and a relative expiry.
  const r = await q.query<{ id: string }>(
    `WITH now AS (SELECT clock_timestamp() AS t)
     INSERT INTO grants (id, vin, owner_id, period_id, recipient_id, categories, access, purpose, created_at, data_from, expires_at, origin, fields)
     SELECT gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, now.t, coalesce($8, now.t), coalesce($9, now.t + $10 * interval '1 millisecond'), $11, $12 FROM now
     RETURNING id::text AS id`,
    [
      g.vin, g.ownerId, periodId, g.recipientId, [...g.categories], [...g.access], g.purpose, g.dataFrom,
      g.expiresAt instanceof Date ? g.expiresAt : null, g.expiresAt instanceof Date ? null : g.expiresAt.afterMs, origin,
      g.fields ? [...g.fields] : null,
    ],
  );
  const id = r.rows[0]!.id;
  await q.query(`INSERT INTO grant_events (grant_id, kind, actor) VALUES ($1, 'given', $2)`, [id, g.actor]);
  return id;
}

async function getGrant(q: Queryable, id: string): Promise<GrantRecord | null> {
  const r = await q.query<GrantRow>(`${SELECT_GRANT} WHERE g.id = $1::uuid`, [id]);
  return r.rows[0] ? toGrant(r.rows[0]) : null;
}

export function createRecipientRepo(db: Db): RecipientRepo {
  const out = (x: { id: string; role: Recipient['role']; name: string; created_at: Date }): Recipient => ({ id: x.id, role: x.role, name: x.name, createdAt: x.created_at });
  return {
    async create(rec) {
      try {
        const r = await db.query<{ id: string; role: Recipient['role']; name: string; created_at: Date }>(
          'INSERT INTO recipients (id, role, name) VALUES ($1, $2, $3) RETURNING id, role, name, created_at',
          [rec.id, rec.role, rec.name],
        );
        return out(r.rows[0]!);
      } catch (err) {
        if (isUniqueViolation(err)) throw new StorageError(STO_ERR.CONFLICT, `recipient ${rec.id} already exists`);
        throw err;
      }
    },
    async get(id) {
      const r = await db.query<{ id: string; role: Recipient['role']; name: string; created_at: Date }>('SELECT id, role, name, created_at FROM recipients WHERE id = $1', [id]);
      return r.rows[0] ? out(r.rows[0]) : null;
    },
    async list(opts = {}) {
      const r = await db.query<{ id: string; role: Recipient['role']; name: string; created_at: Date }>(
        'SELECT id, role, name, created_at FROM recipients ORDER BY name, id LIMIT $1',
        [opts.limit ?? 1000],
      );
      return r.rows.map(out);
    },
  };
}

export interface GrantHooks {
  /** Called with the grant id once a revocation is committed, before the caller hears of it. */
  onRevoked?: (grantId: string) => void;
}

export function createGrantRepo(db: Db, hooks: GrantHooks = {}): GrantRepo {
  return {
    async create(g) {
      return db.transaction(async (tx) => {
        const period = await currentPeriod(tx, g.vin, g.ownerId);
        const id = await insertGrant(tx, period.id, g, 'owner');
        return (await getGrant(tx, id))!;
      });
    },
    get: (id) => getGrant(db, id),
    async listByOwner(vin, ownerId) {
      const r = await db.query<GrantRow>(`${SELECT_GRANT} WHERE g.vin = $1 AND g.owner_id = $2 ORDER BY g.created_at, g.id`, [vin, ownerId]);
      return r.rows.map(toGrant);
    },
    async listForRecipient(recipientId, vin) {
      const r = await db.query<GrantRow>(
        `${SELECT_GRANT} WHERE g.recipient_id = $1 AND ($2::text IS NULL OR g.vin = $2) AND ${ACTIVE} ORDER BY g.created_at, g.id`,
        [recipientId, vin ?? null],
      );
      return r.rows.map(toGrant);
    },
    async revoke(vin, ownerId, id, actor) {
      const res = await db.transaction(async (tx) => {
        const r = await tx.query<{ active: boolean }>(
          `SELECT (${ACTIVE}) AS active FROM grants g JOIN ownership_periods p ON p.id = g.period_id
            WHERE g.id = $1::uuid AND g.vin = $2 AND g.owner_id = $3 FOR UPDATE OF g`,
          [id, vin, ownerId],
        );
        const row = r.rows[0];
        if (!row) return 'not_found' as const;
        if (!row.active) return 'not_active' as const;
        await tx.query('UPDATE grants SET revoked_at = clock_timestamp() WHERE id = $1::uuid', [id]);
        await tx.query(`INSERT INTO grant_events (grant_id, kind, actor) VALUES ($1, 'withdrawn', $2)`, [id, actor]);
        // Delivered on COMMIT only; other processes cut their live readers off on it.
        await tx.query('SELECT pg_notify($1, $2)', [GRANT_CHANNEL, id]);
        return 'revoked' as const;
      });
      if (res === 'revoked') hooks.onRevoked?.(id);
      return res;
    },
    async events(id) {
      const r = await db.query<{ at: Date; kind: GrantEvent['kind']; actor: string }>('SELECT at, kind, actor FROM grant_events WHERE grant_id = $1::uuid ORDER BY at, id', [id]);
      return r.rows.map((x) => ({ at: x.at, kind: x.kind, actor: x.actor }));
    },
    disclose: (d) => insertGrantDisclosure(db, d),
    discloseSession: (d) => fileGrantDisclosure(db, d),
    async settleSession(id, sent) {
      // What was sent lies inside the range filed at the start (the grant's windows).
      await db.query(
        `UPDATE disclosures SET range_from = $2, range_to = $3 WHERE id = $1::int8 AND grant_id IS NOT NULL`,
        [id, sent?.from ?? null, sent?.to ?? null],
      );
    },
  };
}

export function createCheckinRepo(db: Db): CheckinRepo {
  return {
    async create(c) {
      return db.transaction(async (tx) => {
        const period = await currentPeriod(tx, c.vin, c.ownerId);
        const dataFrom = c.dataFrom ?? period.from;
        const r = await tx.query<{ expires_at: Date }>(
          `INSERT INTO checkin_codes (code_hash, vin, owner_id, period_id, recipient_id, visit_hours, data_from, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp() + $8 * interval '1 second') RETURNING expires_at`,
          [c.codeHash, c.vin, c.ownerId, period.id, c.recipientId, c.visitHours, dataFrom, c.ttlSeconds],
        );
        return { expiresAt: r.rows[0]!.expires_at, dataFrom };
      });
    },
    async redeem(codeHash, recipientId, purpose) {
      return db.transaction(async (tx) => {
        const r = await tx.query<{ vin: string; owner_id: string; period_id: number; visit_hours: number; data_from: Date; open: boolean }>(
          `UPDATE checkin_codes c SET redeemed_at = clock_timestamp()
             FROM ownership_periods p
            WHERE c.code_hash = $1 AND p.id = c.period_id AND c.redeemed_at IS NULL AND c.expires_at > clock_timestamp()
              AND (c.recipient_id IS NULL OR c.recipient_id = $2)
           RETURNING c.vin, c.owner_id, c.period_id, c.visit_hours, c.data_from, p.ended_at IS NULL AS open`,
          [codeHash, recipientId],
        );
        const code = r.rows[0];
        if (!code) return null;
        if (!code.open) throw new StorageError(STO_ERR.NOT_FOUND, 'the vehicle changed hands since the code was made');
        const id = await insertGrant(
          tx,
          code.period_id,
          {
            vin: code.vin,
            ownerId: code.owner_id,
            recipientId,
            categories: ['consumption'],
            fields: null,
            access: ['history'],
            purpose,
            dataFrom: code.data_from,
            expiresAt: { afterMs: code.visit_hours * 3_600_000 },
            actor: `customer:${code.owner_id} (check-in code redeemed by workshop:${recipientId})`,
          },
          'checkin',
        );
        await tx.query('UPDATE checkin_codes SET grant_id = $2 WHERE code_hash = $1', [codeHash, id]);
        return getGrant(tx, id);
      }).catch((err: unknown) => {
        // The transaction rolled back: the code stays unused, like any code that fits no vehicle.
        if (isStorageError(err, STO_ERR.NOT_FOUND)) return null;
        throw err;
      });
    },
  };
}
