// Recipients' webhooks (migration 014, docs/webhooks.md): the endpoints, their leases,
// backoff and state, and per (endpoint, grant) the delivery cursor over the vehicle's
// stream log. The delivery worker (webhooks/worker.ts) drives these; the API's service
// (webhooks/service.ts) creates, lists and deletes.
import type { Db, Queryable } from '../driver/db.ts';
import type { GrantRecord, RecipientRole } from '../../proto/grants.ts';
import type { NewWebhook, Webhook, WebhookEventKind, WebhookStatus } from '../../proto/webhooks.ts';
import { GRANT_COLUMNS, toGrant, type GrantRow } from './grants.ts';

type WebhookRow = {
  id: string;
  recipient_id: string;
  recipient_role: RecipientRole;
  url: string;
  secret: string;
  grant_ids: string[] | null;
  events: WebhookEventKind[];
  status: WebhookStatus;
  disabled_reason: string | null;
  created_at: Date;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  last_failure: string | null;
  consecutive_failures: number;
  next_attempt_at: Date | null;
};

const WEBHOOK_COLUMNS = `id::text AS id, recipient_id, recipient_role, url, secret, grant_ids::text[] AS grant_ids, events, status, disabled_reason, created_at,
  last_success_at, last_failure_at, last_failure, consecutive_failures, CASE WHEN next_attempt_at > clock_timestamp() THEN next_attempt_at END AS next_attempt_at`;

function toWebhook(x: WebhookRow): Webhook {
  return {
    id: x.id,
    recipientId: x.recipient_id,
    recipientRole: x.recipient_role,
    url: x.url,
    grantIds: x.grant_ids,
    events: x.events,
    status: x.status,
    disabledReason: x.disabled_reason,
    createdAt: x.created_at,
    lastSuccessAt: x.last_success_at,
    lastFailureAt: x.last_failure_at,
    lastFailure: x.last_failure,
    consecutiveFailures: x.consecutive_failures,
    nextAttemptAt: x.next_attempt_at,
  };
}

/** An endpoint as its delivering instance holds it (with the key it signs with). */
export interface LeasedWebhook extends Webhook {
  secret: string;
}

/** One (endpoint, grant) pair still delivered to, with the grant as it stands. */
export interface WebhookGrantState {
  webhookId: string;
  grantId: string;
  vin: string;
  /** The cursor; null: not placed yet. */
  after: { tx: number; ord: number } | null;
  createdSent: boolean;
  pending: { id: string; kind: string; tx: number | null; ord: number | null } | null;
  replay: { fromMs: number; untilTx: number; untilOrd: number } | null;
  grant: GrantRecord;
}

type StateRow = Omit<GrantRow, 'id'> & {
  webhook_id: string;
  grant_id: string;
  vin: string;
  after_tx: number | null;
  after_ord: number;
  created_sent: boolean;
  pending_id: string | null;
  pending_kind: string | null;
  pending_tx: number | null;
  pending_ord: number | null;
  replay_from: Date | null;
  replay_until_tx: number | null;
  replay_until_ord: number | null;
};

function toState(x: StateRow): WebhookGrantState {
  const grant = toGrant({ ...x, id: x.grant_id });
  return {
    webhookId: x.webhook_id,
    grantId: x.grant_id,
    vin: x.vin,
    after: x.after_tx === null ? null : { tx: x.after_tx, ord: x.after_ord },
    createdSent: x.created_sent,
    pending: x.pending_id === null ? null : { id: x.pending_id, kind: x.pending_kind ?? 'records', tx: x.pending_tx, ord: x.pending_ord },
    replay: x.replay_from === null ? null : { fromMs: x.replay_from.getTime(), untilTx: x.replay_until_tx ?? 0, untilOrd: x.replay_until_ord ?? 0 },
    grant,
  };
}


export interface WebhookRepo {
  create(w: NewWebhook & { id: string }): Promise<Webhook>;
  list(recipientId: string, role: RecipientRole): Promise<Webhook[]>;
  get(id: string): Promise<Webhook | null>;
  remove(id: string, recipientId: string, role: RecipientRole): Promise<boolean>;
  /** The pairs of endpoint `id` still delivered to (for its backlog and replay). */
  states(ids: readonly string[]): Promise<WebhookGrantState[]>;
  /** One pair, while still delivered to. */
  stateOf(webhookId: string, grantId: string): Promise<WebhookGrantState | null>;
  /** Sets the replay of one pair (cursor back to `to`, skipping records measured before `fromMs` until it passes where it stood). */
  replay(webhookId: string, grantId: string, to: { tx: number; ord: number }, fromMs: number): Promise<void>;

  // ---- The delivery worker.
  /**
   * Leases for `owner`: renews its own, takes active endpoints whose lease is free or
   * expired (skipping any another instance is delivering to right now), at most `max`
   * in all. Answers the endpoints `owner` holds.
   */
  lease(owner: string, leaseMs: number, max: number): Promise<LeasedWebhook[]>;
  /** Gives up `owner`'s leases (orderly stop): another instance takes them at once. */
  release(owner: string): Promise<void>;
  /** Adds a pair for each grant of an all-grants endpoint that has none yet (grants made since). */
  syncGrants(ids: readonly string[]): Promise<number>;
  /** Places a pair's cursor (the first time). */
  place(webhookId: string, grantId: string, pos: { tx: number; ord: number }): Promise<void>;
  /**
   * Stores the delivery about to be attempted (its id and last position), so a retry repeats
   * it; only while the pair's cursor is still at `from` and nothing is pending (false: the
   * caller's view of the pair is stale, it must look again).
   */
  setPending(webhookId: string, grantId: string, from: { tx: number; ord: number } | null, p: { id: string; kind: string; tx: number | null; ord: number | null }): Promise<boolean>;
  /**
   * Runs `fn` in a transaction holding: the endpoint's row (only while `owner`'s lease on it
   * is valid, else `fn` is not run and null is answered), the vehicle's and the grant's rows
   * FOR SHARE (a revocation, transfer, consent change or erasure waits until it commits).
   */
  underLocks<T>(webhookId: string, owner: string, vin: string, grantId: string, fn: (tx: Queryable) => Promise<T>): Promise<T | null>;
  /** In the delivery's transaction, after the locks: the grant as it stands (or null), the vehicle's ownership periods (oldest first), its consent now. */
  factsIn(tx: Queryable, grantId: string): Promise<{ grant: GrantRecord | null; periods: { ownerId: string; from: Date; to: Date | null }[]; consent: { restricted: boolean; location: boolean } }>;
  /**
   * In the delivery's transaction, after the receiver's 2xx: the cursor moves to `to`, the
   * pending delivery is cleared, and the records' disclosure is filed (one per endpoint,
   * grant and UTC day, widened by each delivery).
   */
  advance(
    tx: Queryable,
    a: {
      webhookId: string;
      grantId: string;
      /** Where the delivery started: the cursor moves only from there (null: no check). */
      from?: { tx: number; ord: number } | null;
      to: { tx: number; ord: number } | null;
      createdSent?: boolean;
      endedSent?: boolean;
      records: number;
    },
    d: { recipientId: string; role: string; categories: readonly string[]; fromMs: number; toMs: number } | null,
  ): Promise<boolean>;
  /** The endpoint answered 2xx. */
  succeeded(webhookId: string): Promise<void>;
  /**
   * A delivery failed: counts it (once per backoff step), waits `delayMs` before the next,
   * disables the endpoint when `disable` is given or its failures have lasted `disableAfterMs`.
   */
  failed(webhookId: string, reason: string, delayFor: (failures: number) => number, disableAfterMs: number, disable: string | null): Promise<{ failures: number; disabled: boolean }>;
  /** Counts of endpoints by state, for metrics. */
  countByState(): Promise<Record<string, number>>;
}

export function createWebhookRepo(db: Db): WebhookRepo {

  const statesWhere = async (q: Queryable, where: string, params: unknown[]): Promise<WebhookGrantState[]> => {
    const r = await q.query<StateRow>(
      `SELECT wg.webhook_id::text AS webhook_id, wg.grant_id::text AS grant_id, wg.vin, wg.after_tx, wg.after_ord, wg.created_sent,
              wg.pending_id, wg.pending_kind, wg.pending_tx, wg.pending_ord, wg.replay_from, wg.replay_until_tx, wg.replay_until_ord, ${GRANT_COLUMNS}
         FROM webhook_grants wg JOIN grants g ON g.id = wg.grant_id JOIN recipients r ON r.id = g.recipient_id JOIN ownership_periods p ON p.id = g.period_id
        WHERE ${where} ORDER BY wg.webhook_id, g.created_at, wg.grant_id`,
      params,
    );
    return r.rows.map(toState);
  };

  return {
    async create(w) {
      return db.transaction(async (tx) => {
        const r = await tx.query<WebhookRow>(
          `INSERT INTO webhooks (id, recipient_id, recipient_role, url, secret, grant_ids, events)
           VALUES ($1::uuid, $2, $3, $4, $5, $6::uuid[], $7) RETURNING ${WEBHOOK_COLUMNS}`,
          [w.id, w.recipientId, w.recipientRole, w.url, w.secret, w.grantIds, w.events],
        );
        // The grants named, or those the recipient holds now (later ones: syncGrants).
        // Their cursors are placed by the worker, at the present.
        await tx.query(
          `INSERT INTO webhook_grants (webhook_id, grant_id, vin, created_sent)
           SELECT $1::uuid, g.id, g.vin, true FROM grants g JOIN ownership_periods p ON p.id = g.period_id JOIN recipients r ON r.id = g.recipient_id
            WHERE g.recipient_id = $2 AND r.role = $3
              AND CASE WHEN $4::uuid[] IS NULL THEN g.revoked_at IS NULL AND g.expires_at > clock_timestamp() AND p.ended_at IS NULL ELSE g.id = ANY($4::uuid[]) END`,
          [w.id, w.recipientId, w.recipientRole, w.grantIds],
        );
        return toWebhook(r.rows[0]!);
      });
    },
    async list(recipientId, role) {
      const r = await db.query<WebhookRow>(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE recipient_id = $1 AND recipient_role = $2 ORDER BY created_at, id`, [recipientId, role]);
      return r.rows.map(toWebhook);
    },
    async get(id) {
      const r = await db.query<WebhookRow>(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1::uuid`, [id]);
      return r.rows[0] ? toWebhook(r.rows[0]) : null;
    },
    async remove(id, recipientId, role) {
      const r = await db.query('DELETE FROM webhooks WHERE id = $1::uuid AND recipient_id = $2 AND recipient_role = $3', [id, recipientId, role]);
      return (r.rowCount ?? 0) > 0;
    },
    states: (ids) => statesWhere(db, 'wg.webhook_id = ANY($1::uuid[]) AND NOT wg.ended_sent', [ids]),
    stateOf: async (webhookId, grantId) => (await statesWhere(db, 'wg.webhook_id = $1::uuid AND wg.grant_id = $2::uuid AND NOT wg.ended_sent', [webhookId, grantId]))[0] ?? null,
    async replay(webhookId, grantId, to, fromMs) {
      // Where the cursor stood stays the end of the replay (a second replay keeps the first's end).
      await db.query(
        `UPDATE webhook_grants SET
            replay_until_tx = CASE WHEN replay_from IS NULL THEN after_tx ELSE replay_until_tx END,
            replay_until_ord = CASE WHEN replay_from IS NULL THEN after_ord ELSE replay_until_ord END,
            replay_from = $5, after_tx = $3, after_ord = $4, pending_id = NULL, pending_kind = NULL, pending_tx = NULL, pending_ord = NULL
          WHERE webhook_id = $1::uuid AND grant_id = $2::uuid AND after_tx IS NOT NULL AND NOT ended_sent`,
        [webhookId, grantId, to.tx, to.ord, new Date(fromMs)],
      );
    },

    async lease(owner, leaseMs, max) {
      // Own leases renewed by a plain UPDATE: it does not wait for this instance's own
      // deliveries, which hold the rows FOR KEY SHARE. Taking another's expired lease needs
      // FOR UPDATE, which that instance's deliveries still running block: SKIP LOCKED
      // passes them over until they have ended (committed or rolled back).
      await db.query(`UPDATE webhooks SET lease_until = clock_timestamp() + $2 * interval '1 millisecond' WHERE lease_owner = $1 AND status = 'active'`, [owner, leaseMs]);
      await db.query(
        `UPDATE webhooks SET lease_owner = $1, lease_until = clock_timestamp() + $2 * interval '1 millisecond'
          WHERE id IN (SELECT id FROM webhooks WHERE status = 'active' AND (lease_owner IS NULL OR lease_until < clock_timestamp()) AND lease_owner IS DISTINCT FROM $1
                        ORDER BY id LIMIT greatest(0, $3 - (SELECT count(*) FROM webhooks WHERE lease_owner = $1 AND status = 'active')) FOR UPDATE SKIP LOCKED)`,
        [owner, leaseMs, max],
      );
      const r = await db.query<WebhookRow>(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE lease_owner = $1 AND status = 'active' AND lease_until > clock_timestamp()`, [owner]);
      return r.rows.map((x) => ({ ...toWebhook(x), secret: x.secret }));
    },
    async release(owner) {
      await db.query('UPDATE webhooks SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1', [owner]);
    },
    async syncGrants(ids) {
      if (ids.length === 0) return 0;
      // Grants made since the endpoint (or active when it was made, which create() added).
      const r = await db.query(
        `INSERT INTO webhook_grants (webhook_id, grant_id, vin)
         SELECT w.id, g.id, g.vin FROM webhooks w JOIN grants g ON g.recipient_id = w.recipient_id JOIN recipients r ON r.id = g.recipient_id AND r.role = w.recipient_role
          WHERE w.id = ANY($1::uuid[]) AND w.grant_ids IS NULL AND g.created_at >= w.created_at
         ON CONFLICT DO NOTHING`,
        [ids],
      );
      return r.rowCount ?? 0;
    },
    async place(webhookId, grantId, pos) {
      await db.query('UPDATE webhook_grants SET after_tx = $3, after_ord = $4 WHERE webhook_id = $1::uuid AND grant_id = $2::uuid AND after_tx IS NULL', [webhookId, grantId, pos.tx, pos.ord]);
    },
    async setPending(webhookId, grantId, from, p) {
      const r = await db.query(
        `UPDATE webhook_grants SET pending_id = $3, pending_kind = $4, pending_tx = $5, pending_ord = $6
          WHERE webhook_id = $1::uuid AND grant_id = $2::uuid AND pending_id IS NULL AND NOT ended_sent
            AND (after_tx, after_ord) IS NOT DISTINCT FROM ($7::int8, $8::int8)`,
        [webhookId, grantId, p.id, p.kind, p.tx, p.ord, from?.tx ?? null, from ? from.ord : 0],
      );
      return (r.rowCount ?? 0) > 0;
    },
    async underLocks(webhookId, owner, vin, grantId, fn) {
      return db.transaction(async (tx) => {
        // One statement. The endpoint FOR KEY SHARE: the lease's renewal (a plain UPDATE) goes
        // on, a takeover (FOR UPDATE) waits. Consent changes, transfers and erasures lock the
        // vehicle FOR UPDATE, a revocation the grant: each waits for this delivery, and answers
        // after it. (No cycle: none of those takes the other row's lock.) The facts are read by
        // the next statement, whose snapshot is taken after the locks are held.
        const r = await tx.query<{ lease: boolean }>(
          `WITH l AS (SELECT 1 FROM webhooks WHERE id = $1::uuid AND lease_owner = $2 AND lease_until > clock_timestamp() AND status = 'active' FOR KEY SHARE),
                v AS (SELECT 1 FROM vehicles WHERE vin = $3 FOR SHARE),
                g AS (SELECT 1 FROM grants WHERE id = $4::uuid FOR SHARE)
           SELECT EXISTS (SELECT 1 FROM l) AS lease, (SELECT count(*) FROM v) + (SELECT count(*) FROM g) AS n`,
          [webhookId, owner, vin, grantId],
        );
        if (!r.rows[0]?.lease) return null;
        return fn(tx);
      });
    },
    async factsIn(tx, grantId) {
      // One statement: the grant, the vehicle's ownership periods (the first from the epoch,
      // as rights.periodsOf answers: data stored before provisioning was the first owner's),
      // and its consent now.
      const r = await tx.query<StateRow & { periods: { o: string; f: string; t: string | null; first: boolean }[]; c_restricted: boolean | null; c_location: boolean | null }>(
        `SELECT $1::text AS webhook_id, g.id::text AS grant_id, g.vin, NULL::int8 AS after_tx, 0::int8 AS after_ord, false AS created_sent,
                NULL AS pending_id, NULL AS pending_kind, NULL::int8 AS pending_tx, NULL::int8 AS pending_ord, NULL::timestamptz AS replay_from, NULL::int8 AS replay_until_tx, NULL::int8 AS replay_until_ord,
                ${GRANT_COLUMNS},
                (SELECT json_agg(json_build_object('o', x.owner_id, 'f', x.started_at, 't', x.ended_at, 'first', x.rn = 1) ORDER BY x.rn)
                   FROM (SELECT owner_id, started_at, ended_at, row_number() OVER (ORDER BY started_at, id) AS rn FROM ownership_periods WHERE vin = g.vin) x) AS periods,
                c.restricted AS c_restricted, c.location_allowed AS c_location
           FROM grants g JOIN recipients r ON r.id = g.recipient_id JOIN ownership_periods p ON p.id = g.period_id
           LEFT JOIN LATERAL (SELECT restricted, location_allowed FROM consent_events WHERE vin = g.vin AND effective_at <= clock_timestamp() ORDER BY effective_at DESC, id DESC LIMIT 1) c ON true
          WHERE g.id = $2::uuid`,
        ['', grantId],
      );
      const x = r.rows[0];
      if (!x) return { grant: null, periods: [], consent: { restricted: false, location: true } };
      return {
        grant: toState(x).grant,
        periods: (x.periods ?? []).map((p) => ({ ownerId: p.o, from: p.first ? new Date(0) : new Date(p.f), to: p.t === null ? null : new Date(p.t) })),
        consent: { restricted: x.c_restricted ?? false, location: x.c_location ?? true },
      };
    },
    async advance(tx, a, d) {
      // One statement: today's disclosure of this endpoint and grant is widened, or a new one
      // filed with the granting owner; the cursor moves (only from where the delivery
      // started: a replay that moved it meanwhile wins) and the pending delivery is cleared.
      // false: the cursor had moved.
      const r = await tx.query(
        `WITH cur AS (
           SELECT disclosure_id, disclosure_day = (clock_timestamp() AT TIME ZONE 'UTC')::date AS today FROM webhook_grants
            WHERE webhook_id = $1::uuid AND grant_id = $2::uuid),
         upd AS (
           UPDATE disclosures d SET range_from = least(d.range_from, $11), range_to = greatest(d.range_to, $12),
                  categories = ARRAY(SELECT DISTINCT c FROM unnest(d.categories || $13::text[]) c ORDER BY c)
            WHERE $10 AND d.id = (SELECT disclosure_id FROM cur WHERE today) RETURNING d.id),
         ins AS (
           INSERT INTO disclosures (vin, role, subject, endpoint, categories, range_from, range_to, owner_id, grant_id)
           SELECT g.vin, $14, $15, $16, $13, $11, $12, g.owner_id, g.id FROM grants g
            WHERE $10 AND g.id = $2::uuid AND NOT EXISTS (SELECT 1 FROM upd) RETURNING id)
         UPDATE webhook_grants SET after_tx = coalesce($3, after_tx), after_ord = coalesce($4, after_ord),
                created_sent = created_sent OR $5, ended_sent = ended_sent OR $6, delivered_records = delivered_records + $7,
                pending_id = NULL, pending_kind = NULL, pending_tx = NULL, pending_ord = NULL,
                replay_from = CASE WHEN replay_from IS NOT NULL AND ($3::int8, $4::int8) >= (replay_until_tx, replay_until_ord) THEN NULL ELSE replay_from END,
                disclosure_id = coalesce((SELECT id FROM upd), (SELECT id FROM ins), disclosure_id),
                disclosure_day = CASE WHEN $10 THEN (clock_timestamp() AT TIME ZONE 'UTC')::date ELSE disclosure_day END
          WHERE webhook_id = $1::uuid AND grant_id = $2::uuid AND ($8::int8 IS NULL OR (after_tx, after_ord) = ($8::int8, $9::int8))`,
        [
          a.webhookId, a.grantId, a.to?.tx ?? null, a.to?.ord ?? null, a.createdSent ?? false, a.endedSent ?? false, a.records,
          a.from?.tx ?? null, a.from?.ord ?? null,
          d !== null, d ? new Date(d.fromMs) : null, d ? new Date(d.toMs) : null, d ? [...d.categories] : null, d?.role ?? null, d?.recipientId ?? null, `webhook ${a.webhookId}`,
        ],
      );
      return (r.rowCount ?? 0) > 0;
    },
    async succeeded(webhookId) {
      await db.query(
        `UPDATE webhooks SET last_success_at = clock_timestamp(), consecutive_failures = 0, failing_since = NULL, next_attempt_at = '-infinity'
          WHERE id = $1::uuid AND (consecutive_failures <> 0 OR last_success_at IS NULL OR last_success_at < clock_timestamp() - interval '1 second')`,
        [webhookId],
      );
    },
    async failed(webhookId, reason, delayFor, disableAfterMs, disable) {
      return db.transaction(async (tx) => {
        const r = await tx.query<{ consecutive_failures: number; waiting: boolean; failing_ms: number | null }>(
          `SELECT consecutive_failures, next_attempt_at > clock_timestamp() AS waiting,
                  (extract(epoch FROM clock_timestamp() - failing_since) * 1000)::float8 AS failing_ms
             FROM webhooks WHERE id = $1::uuid FOR UPDATE`,
          [webhookId],
        );
        const w = r.rows[0];
        if (!w) return { failures: 0, disabled: false };
        // Deliveries of several grants failing together count once: the first sets the wait.
        const failures = w.waiting ? w.consecutive_failures : w.consecutive_failures + 1;
        const reasonDisabled = disable ?? ((w.failing_ms ?? 0) >= disableAfterMs ? `failing for ${Math.round((w.failing_ms ?? 0) / 3_600_000)} h (last: ${reason})` : null);
        await tx.query(
          `UPDATE webhooks SET consecutive_failures = $2, last_failure_at = clock_timestamp(), last_failure = $3, failing_since = coalesce(failing_since, clock_timestamp()),
                  next_attempt_at = CASE WHEN $4 THEN next_attempt_at ELSE clock_timestamp() + $5 * interval '1 millisecond' END,
                  status = CASE WHEN $6::text IS NULL THEN status ELSE 'disabled' END, disabled_reason = coalesce($6, disabled_reason),
                  lease_owner = CASE WHEN $6::text IS NULL THEN lease_owner END, lease_until = CASE WHEN $6::text IS NULL THEN lease_until END
            WHERE id = $1::uuid`,
          [webhookId, failures, reason.slice(0, 500), w.waiting, delayFor(failures), reasonDisabled],
        );
        return { failures, disabled: reasonDisabled !== null };
      });
    },
    async countByState() {
      const r = await db.query<{ state: string; n: number }>(
        `SELECT CASE WHEN status = 'disabled' THEN 'disabled' WHEN consecutive_failures > 0 THEN 'retrying' ELSE 'active' END AS state, count(*)::int AS n FROM webhooks GROUP BY 1`,
      );
      const out: Record<string, number> = { active: 0, retrying: 0, disabled: 0 };
      for (const x of r.rows) out[x.state] = x.n;
      return out;
    },
  };
}

/**
 * Per (vehicle, cursor), on the shard holding the vehicle's stream log: how many records
 * its entries below the horizon `h` hold after the cursor, and the commit (transaction
 * start) time of the oldest of them. In the order of `pairs`.
 */
export async function logBacklog(db: Queryable, pairs: readonly { vin: string; after: { tx: number; ord: number } }[], h: number): Promise<{ records: number; oldestAt: Date | null }[]> {
  if (pairs.length === 0) return [];
  const r = await db.query<{ i: number; n: number; oldest: Date | null }>(
    `SELECT v.i::int AS i, coalesce(sum(x.n), 0)::int8 AS n, min(x.at) AS oldest
       FROM unnest($1::text[], $2::int8[], $3::int8[]) WITH ORDINALITY AS v(vin, atx, aord, i)
       LEFT JOIN LATERAL (
         SELECT cardinality(l.seqs) - CASE WHEN l.tx = v.atx::text::xid8 THEN least(v.aord, cardinality(l.seqs)) ELSE 0 END AS n, l.at
           FROM stream_log l
          WHERE l.vin = v.vin AND l.tx >= v.atx::text::xid8 AND l.tx < $4::text::xid8 AND (l.tx > v.atx::text::xid8 OR cardinality(l.seqs) > v.aord)) x ON true
      GROUP BY v.i ORDER BY v.i`,
    [pairs.map((p) => p.vin), pairs.map((p) => p.after.tx), pairs.map((p) => Math.min(p.after.ord, 2 ** 62)), String(h)],
  );
  return r.rows.map((x) => ({ records: Number(x.n), oldestAt: x.oldest }));
}
