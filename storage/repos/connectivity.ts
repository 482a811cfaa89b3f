// Connectivity (migration 012): each vehicle's MQTT connections, one row per connection,
// keyed by the session id the instance holding it gave it; and the instances themselves.
//
// Correct with many instances behind a load balancer, whatever order events arrive in:
// - a connect and its disconnect are upserts of the same row (by session), so either
//   order leaves it closed; a disconnect closes only its own row;
// - online = an open row on a live instance exists: a vehicle that reconnected to instance
//   B is online even while A has not yet noticed the old socket went;
// - an instance is alive while its connectivity LISTEN connection is open (that backend's
//   application_name ends in "-connectivity:<key>"): a process killed with -9 loses its
//   sockets, PostgreSQL ends its backends, and from then on its open rows count as closed;
//   every instance's sweep closes them (`instance_lost`) and announces the change.
// - flapping costs bounded storage: a session shorter than SHORT_MS that ends within
//   FOLD_WINDOW_MS of the vehicle's previous short row is folded into that row.
import type { Db, Queryable } from '../driver/db.ts';
import type { ConnectionRecord, ConnectivityStatus, ConnectivityStore, ConnectivityWindow, DisconnectReason } from '../../proto/connectivity.ts';
import { insertGrantDisclosure } from './grants.ts';
import type { GrantDisclosure } from '../../proto/grants.ts';
import { STO_ERR, StorageError } from '../errors.ts';

/** NOTIFY channel of connectivity changes; payload: the VIN. */
export const CONNECTIVITY_CHANNEL = 'vehicle_connectivity';
/** The suffix of the liveness connection's application_name: `<name>-connectivity:<key>`. */
export const LIVENESS_ROLE = 'connectivity';
/** A session shorter than this is "short" (may be folded into the vehicle's previous short row), ms. */
export const SHORT_MS = 10_000;
/** A short session folds into the previous short row when that ended less than this before, ms. */
export const FOLD_WINDOW_MS = 60_000;
/** Advisory lock class of a vehicle's connectivity writes (with hashtext(vin)). */
const LOCK_CLASS = 26_012;

export interface ConnectionEvent {
  session: string;
  vin: string;
  connectedAt: Date;
}

export interface ConnectivityRepo extends ConnectivityStore {
  /** Registers this process as an instance; its key (the liveness connection names it). */
  register(name: string): Promise<number>;
  /** The key register() gave (null before). */
  readonly instanceKey: number | null;
  connected(e: ConnectionEvent): Promise<void>;
  disconnected(e: ConnectionEvent & { at: Date; reason: DisconnectReason }): Promise<void>;
  /** A failed login for a provisioned VIN: a zero-length row (folded like a short session). */
  refused(vin: string, at: Date): Promise<void>;
  /** Opens again the rows of sessions this instance still holds (after its liveness connection was lost and back). */
  reopen(sessions: readonly ConnectionEvent[]): Promise<void>;
  /** Keys of the instances alive now. */
  aliveKeys(): Promise<number[]>;
  /** Closes the open rows of dead instances (`instance_lost`) and announces each vehicle; the VINs. */
  sweep(): Promise<string[]>;
  /** status() through a grant: the disclosure is filed (and the grant re-checked) in the same transaction; rejects NOT_FOUND when the grant no longer holds. */
  statusDisclosed(vin: string, windows: readonly ConnectivityWindow[], disclosure: GrantDisclosure): Promise<ConnectivityStatus>;
  /** Deletes the rows overlapping the windows (erasure); how many. */
  erase(q: Queryable, vin: string, windows: readonly ConnectivityWindow[]): Promise<number>;
  /** Retention: rows of contracts ended `afterContractDays` ago, and rows older than `maxAgeDays` (0: off). */
  retention(afterContractDays: number, maxAgeDays: number): Promise<number>;
}

export interface ConnectivityRepoOptions {
  /**
   * The database serves this process only (the embedded PGlite): it is the one instance,
   * whatever rows earlier runs left open. Default false.
   */
  single?: boolean;
  /** With `single`: this process's instance key when another repo registered it (the API's repo reads what the ingest's recorded). */
  ownKey?: () => number | null;
}

/** Rows overlapping one of the windows: `$first`.. as (from, to) pairs. */
function overlap(windows: readonly ConnectivityWindow[], first: number): { sql: string; params: unknown[] } {
  if (windows.length === 0) return { sql: 'false', params: [] };
  const parts: string[] = [];
  const params: unknown[] = [];
  let p = first;
  for (const w of windows) {
    parts.push(`((disconnected_at IS NULL OR disconnected_at >= $${p}) AND ($${p + 1}::timestamptz IS NULL OR connected_at < $${p + 1}))`);
    params.push(w.from, w.to);
    p += 2;
  }
  return { sql: `(${parts.join(' OR ')})`, params };
}

/** `t` moved into the window that holds it, or the nearest edge of the one it overlaps. */
function clip(t: Date | null, windows: readonly ConnectivityWindow[]): Date | null {
  if (t === null) return null;
  let best: Date | null = null;
  for (const w of windows) {
    let c = t < w.from ? w.from : t;
    if (w.to !== null && c > w.to) c = w.to;
    if (best === null || Math.abs(c.getTime() - t.getTime()) < Math.abs(best.getTime() - t.getTime())) best = c;
  }
  return best;
}

/**
 * Erasure (GDPR Art. 17): deletes the connections of `vin` overlapping the windows, in the
 * caller's transaction; a connection open now stays (the vehicle is online) without its
 * history: it counts from the erasure. Announced like any change. How many rows went.
 */
export async function eraseConnectivity(q: Queryable, vin: string, windows: readonly ConnectivityWindow[]): Promise<number> {
  const w = overlap(windows, 2);
  const n = (await q.query(`DELETE FROM vehicle_connections WHERE vin = $1 AND disconnected_at IS NOT NULL AND ${w.sql}`, [vin, ...w.params])).rowCount;
  await q.query(`UPDATE vehicle_connections SET connected_at = greatest(connected_at, now()), coalesced = 0 WHERE vin = $1 AND disconnected_at IS NULL AND ${w.sql}`, [vin, ...w.params]);
  await q.query('SELECT pg_notify($1, $2)', [CONNECTIVITY_CHANNEL, vin]);
  return n;
}

interface Row {
  connected_at: Date;
  disconnected_at: Date | null;
  reason: DisconnectReason | null;
  coalesced: number;
  instance_key: number;
}

export function createConnectivityRepo(db: Db, opts: ConnectivityRepoOptions = {}): ConnectivityRepo {
  let key: number | null = null;

  async function aliveKeys(q: Queryable = db): Promise<number[]> {
    if (opts.single) {
      const k = key ?? opts.ownKey?.() ?? null;
      return k === null ? [] : [k];
    }
    const r = await q.query<{ k: number }>(
      `SELECT DISTINCT substring(a.application_name FROM '-${LIVENESS_ROLE}:([0-9]+)$')::int AS k FROM pg_stat_get_activity(NULL) a
        WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND a.application_name ~ '-${LIVENESS_ROLE}:[0-9]+$'`,
    );
    return r.rows.map((x) => x.k);
  }

  /** Closes the row of `session` (inserting it closed when its connect was never written), then folds it when short. */
  async function close(tx: Queryable, e: ConnectionEvent & { at: Date; reason: DisconnectReason }, instance: number): Promise<void> {
    await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, e.vin]);
    const r = await tx.query<{ id: number; short: boolean; coalesced: number }>(
      `INSERT INTO vehicle_connections AS c (session, vin, instance_key, connected_at, disconnected_at, reason)
       VALUES ($1::uuid, $2, $3, $4::timestamptz, greatest($4::timestamptz, $5::timestamptz), $6)
       ON CONFLICT (session) DO UPDATE SET disconnected_at = greatest(c.connected_at, EXCLUDED.disconnected_at), reason = EXCLUDED.reason
        WHERE c.disconnected_at IS NULL
       RETURNING id, (disconnected_at - connected_at) < $7 * interval '1 millisecond' AS short, coalesced`,
      [e.session, e.vin, instance, e.connectedAt, e.at, e.reason, SHORT_MS],
    );
    const row = r.rows[0];
    if (!row || !row.short) return;
    // Fold into the vehicle's previous short row when it ended less than FOLD_WINDOW_MS ago.
    const f = await tx.query(
      `WITH p AS (
         SELECT id FROM vehicle_connections
          WHERE vin = $1 AND id <> $2 AND disconnected_at IS NOT NULL AND disconnected_at > $3::timestamptz - $4 * interval '1 millisecond'
            AND (coalesced > 0 OR disconnected_at - connected_at < $5 * interval '1 millisecond')
          ORDER BY disconnected_at DESC LIMIT 1)
       UPDATE vehicle_connections v SET coalesced = v.coalesced + 1 + $6, disconnected_at = greatest(v.disconnected_at, $3::timestamptz), reason = $7
         FROM p WHERE v.id = p.id`,
      [e.vin, row.id, e.at, FOLD_WINDOW_MS, SHORT_MS, row.coalesced, e.reason],
    );
    if (f.rowCount > 0) await tx.query('DELETE FROM vehicle_connections WHERE id = $1', [row.id]);
  }

  const notify = (q: Queryable, vin: string) => q.query('SELECT pg_notify($1, $2)', [CONNECTIVITY_CHANNEL, vin]);
  const mine = (): number => {
    if (key === null) throw new Error('connectivity: register() first');
    return key;
  };

  async function status(q: Queryable, vin: string, windows: readonly ConnectivityWindow[]): Promise<ConnectivityStatus> {
    const alive = await aliveKeys(q);
    const w = overlap(windows, 2);
    // Open rows first (of live instances), then the newest closed ones: enough to decide.
    const r = await q.query<Row>(
      `(SELECT connected_at, disconnected_at, reason, coalesced, instance_key FROM vehicle_connections
         WHERE vin = $1 AND disconnected_at IS NULL AND ${w.sql} ORDER BY connected_at DESC LIMIT 50)
       UNION ALL
       (SELECT connected_at, disconnected_at, reason, coalesced, instance_key FROM vehicle_connections
         WHERE vin = $1 AND disconnected_at IS NOT NULL AND ${w.sql} ORDER BY disconnected_at DESC LIMIT 1)`,
      [vin, ...w.params],
    );
    const now = new Date();
    const inWindow = windows.some((x) => now >= x.from && (x.to === null || now < x.to));
    let openSince: Date | null = null;
    let lastSeen: Date | null = null;
    let lastEnd: Date | null = null;
    for (const row of r.rows) {
      const seen = row.disconnected_at ?? row.connected_at;
      if (lastSeen === null || seen > lastSeen) lastSeen = seen;
      if (row.disconnected_at === null && alive.includes(row.instance_key)) {
        if (openSince === null || row.connected_at > openSince) openSince = row.connected_at;
      } else {
        // A closed row, or an open one of a dead instance (the sweep closes it soon).
        const end = row.disconnected_at ?? row.connected_at;
        if (lastEnd === null || end > lastEnd) lastEnd = end;
      }
    }
    const online = openSince !== null && inWindow;
    return { vin, online, since: clip(online ? openSince : lastEnd, windows), lastSeenAt: clip(lastSeen, windows) };
  }

  const repo: ConnectivityRepo = {
    get instanceKey() {
      return key;
    },
    async register(name) {
      const r = await db.query<{ key: number }>('INSERT INTO gateway_instances (name) VALUES ($1) RETURNING key', [name.slice(0, 200)]);
      key = r.rows[0]!.key;
      return key;
    },
    async connected(e) {
      const k = mine();
      await db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, e.vin]);
        // This instance holds one connection per VIN (a takeover closes the old one): a row
        // of this instance still open for the VIN is the one taken over, whatever its
        // disconnect's fate (written later, or lost with the database).
        await tx.query(
          `UPDATE vehicle_connections SET disconnected_at = greatest(connected_at, $3::timestamptz), reason = 'taken_over'
            WHERE vin = $1 AND instance_key = $2 AND disconnected_at IS NULL AND session <> $4::uuid`,
          [e.vin, k, e.connectedAt, e.session],
        );
        await tx.query(
          `INSERT INTO vehicle_connections (session, vin, instance_key, connected_at) VALUES ($1::uuid, $2, $3, $4) ON CONFLICT (session) DO NOTHING`,
          [e.session, e.vin, k, e.connectedAt],
        );
        await notify(tx, e.vin);
      });
    },
    async disconnected(e) {
      const k = mine();
      await db.transaction(async (tx) => {
        await close(tx, e, k);
        await notify(tx, e.vin);
      });
    },
    async refused(vin, at) {
      const k = mine();
      await db.transaction(async (tx) => {
        await close(tx, { session: crypto.randomUUID(), vin, connectedAt: at, at, reason: 'refused' }, k);
      });
    },
    async reopen(sessions) {
      if (sessions.length === 0) return;
      const k = mine();
      await db.query(
        `INSERT INTO vehicle_connections AS c (session, vin, instance_key, connected_at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[])
         ON CONFLICT (session) DO UPDATE SET disconnected_at = NULL, reason = NULL WHERE c.reason = 'instance_lost'`,
        [sessions.map((s) => s.session), sessions.map((s) => s.vin), sessions.map(() => k), sessions.map((s) => s.connectedAt)],
      );
      for (const vin of new Set(sessions.map((s) => s.vin))) await notify(db, vin);
    },
    aliveKeys: () => aliveKeys(),
    async sweep() {
      return db.transaction(async (tx) => {
        const alive = await aliveKeys(tx);
        const r = await tx.query<{ vin: string }>(
          `UPDATE vehicle_connections SET disconnected_at = greatest(connected_at, now()), reason = 'instance_lost'
            WHERE disconnected_at IS NULL AND NOT (instance_key = ANY($1::int[])) RETURNING vin`,
          [alive],
        );
        const vins = [...new Set(r.rows.map((x) => x.vin))];
        for (const vin of vins) await notify(tx, vin);
        // Instances gone for a day leave their name behind no longer (their rows keep the key).
        await tx.query(`DELETE FROM gateway_instances WHERE NOT (key = ANY($1::int[])) AND started_at < now() - interval '1 day'`, [alive]);
        return vins;
      });
    },
    status: (vin, windows) => status(db, vin, windows),
    async statusDisclosed(vin, windows, d) {
      return db.transaction(async (tx) => {
        if (!(await insertGrantDisclosure(tx, d))) throw new StorageError(STO_ERR.NOT_FOUND, 'the grant is no longer active, or processing is restricted');
        return status(tx, vin, windows);
      });
    },
    async connections(vin, windows) {
      const w = overlap(windows, 2);
      const r = await db.query<Row>(
        `SELECT connected_at, disconnected_at, reason, coalesced, instance_key FROM vehicle_connections WHERE vin = $1 AND ${w.sql} ORDER BY connected_at, id`,
        [vin, ...w.params],
      );
      return r.rows.map(
        (x): ConnectionRecord => ({ vin, connectedAt: clip(x.connected_at, windows)!, disconnectedAt: clip(x.disconnected_at, windows), reason: x.reason, coalesced: x.coalesced }),
      );
    },
    erase: eraseConnectivity,
    async retention(afterContractDays, maxAgeDays) {
      let n = (
        await db.query(
          `DELETE FROM vehicle_connections c USING (SELECT vin, max(ended_at) AS until FROM ownership_periods
                   WHERE ended_at IS NOT NULL AND ended_at < now() - $1 * interval '1 day' GROUP BY vin) e
            WHERE c.vin = e.vin AND c.disconnected_at IS NOT NULL AND c.connected_at < e.until`,
          [Math.floor(afterContractDays)],
        )
      ).rowCount;
      if (maxAgeDays > 0) {
        n += (await db.query(`DELETE FROM vehicle_connections WHERE disconnected_at < now() - $1 * interval '1 day'`, [Math.floor(maxAgeDays)])).rowCount;
      }
      return n;
    },
  };
  return repo;
}
