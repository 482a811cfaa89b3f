// Issue 23 item 6: an owner's consent change, restriction or erasure racing a transfer of
// the vehicle. The route checks ownership before the store's transaction; the store checks
// it again inside, under the vehicle's row lock the transfer takes too, so the two run one
// after the other and whichever comes second sees the first.
//
// The interleaving is forced, not hoped for: the test holds a lock the transfer needs
// after it has locked the vehicle's row (SHARE on consent_events, which its reset event
// is inserted into), waits until pg_stat_activity shows the transfer and then each of the
// old owner's requests blocked on it, and only then lets go. Everything runs through the
// real gateway (HTTP, MQTT, TimescaleDB).
import { afterAll, describe, expect } from 'vitest';
import pg from 'pg';
import type { MqttClient } from 'mqtt';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, testVin, waitFor } from '../helpers/gateway.ts';
import { mintToken } from '../helpers/grants.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const test = gatewayTest({ JWT_KEYS: 'itest1:consent-transfer-race-signing-secret-0123' });

let db: TestDatabase;
let gw: RunningGateway;
/** The test's own connection, for the locks that hold a request halfway. */
let locker: pg.Client;
test.beforeAll(async ({ db: d, gw: g }) => {
  db = d;
  gw = g;
  locker = new pg.Client({ connectionString: db.url });
  await locker.connect();
});
afterAll(async () => {
  await locker?.end();
});

interface Car {
  vin: string;
  client: MqttClient;
  seq: number;
}

async function car(owner: string): Promise<Car> {
  const { vin, secret } = await provision(gw, testVin(), owner);
  return { vin, client: await connectVehicle(gw, vin, secret), seq: 0 };
}

/** Publishes one record with a position, measured at `at`; resolves on PUBACK (stored). */
async function send(c: Car, at: number): Promise<number> {
  const seq = ++c.seq;
  await publish(c.client, `v1/vehicles/${c.vin}/telemetry`, encodeBatch(c.vin, [record(seq, at, { technical: FULL_TECHNICAL, location: FULL_LOCATION })]));
  return seq;
}

async function hasPosition(vin: string, seq: number): Promise<boolean> {
  const rows = await db.query<{ has_location: boolean; latitude: number | null }>('SELECT has_location, latitude FROM telemetry WHERE vin = $1 AND seq = $2', [vin, seq]);
  expect(rows, `telemetry row seq ${seq}`).toHaveLength(1);
  return rows[0]!.has_location && rows[0]!.latitude === FULL_LOCATION.latitude;
}

/** Backends of this database waiting for a lock, running a statement that matches `like`. */
async function waitingOn(like: string): Promise<number> {
  const r = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query ILIKE $1`,
    [like],
  );
  return r[0]!.n;
}

const consentEvents = (vin: string) =>
  db.query<{ owner_id: string; actor: string; channel: string; location_allowed: boolean; restricted: boolean; erased_location_history: boolean; effective_at: Date }>(
    'SELECT owner_id, actor, channel, location_allowed, restricted, erased_location_history, effective_at FROM consent_events WHERE vin = $1 ORDER BY effective_at, id',
    [vin],
  );

describe('consent, restriction and erasure racing a transfer (issue 23, item 6)', () => {
  test('asked for before the transfer, run after it: refused (404), the new owner’s positions and consent untouched', async () => {
    const oldOwner = `race-old-${testVin().slice(-6)}`;
    const newOwner = `race-new-${testVin().slice(-6)}`;
    const c = await car(oldOwner);
    const oldToken = await mintToken(gw, 'customer', oldOwner);
    const newToken = await mintToken(gw, 'customer', newOwner);
    try {
      // The old owner's position, and one measured two minutes ahead (within
      // MAX_CLOCK_SKEW_MS): the transfer below comes before it, so it is the new owner's.
      const mine = await send(c, Date.now() - 5_000);
      const theirs = await send(c, Date.now() + 120_000);
      expect(await hasPosition(c.vin, mine)).toBe(true);
      expect(await hasPosition(c.vin, theirs)).toBe(true);

      // The transfer locks the vehicle's row, then waits at its reset event.
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE consent_events IN SHARE MODE');
      const transfer = api(gw, 'POST', `/v1/admin/vehicles/${c.vin}/transfer`, { newOwnerId: newOwner });
      await waitFor(async () => (await waitingOn('INSERT INTO consent_events%')) === 1);
      // The old owner is still the owner as far as any check before a transaction can
      // tell (the transfer has not committed): each request passes the route's check and
      // waits inside its transaction for the vehicle's row.
      const base = `/v1/vehicles/${c.vin}`;
      const consent = api(gw, 'PUT', `${base}/consent?eraseHistory=true`, { location: false, co2Sharing: false }, oldToken);
      await waitFor(async () => (await waitingOn('%FROM vehicles%FOR UPDATE%')) === 1);
      const restriction = api(gw, 'PUT', `${base}/restriction`, { restricted: true }, oldToken);
      await waitFor(async () => (await waitingOn('%FROM vehicles%FOR UPDATE%')) === 2);
      const erasure = api(gw, 'DELETE', `${base}/data`, undefined, oldToken);
      await waitFor(async () => (await waitingOn('%FROM vehicles%FOR UPDATE%')) === 3);
      await locker.query('COMMIT');

      const t = await transfer;
      expect(t.status, JSON.stringify(t.body)).toBe(200);
      const transferredAt = Date.parse(t.body.since as string);
      for (const [what, r] of [
        ['consent with eraseHistory', await consent],
        ['restriction', await restriction],
        ['erasure', await erasure],
      ] as const) {
        expect(r.status, `${what}: ${JSON.stringify(r.body)}`).toBe(404);
        expect(r.body, what).toMatchObject({ status: 404, code: 'API_ERR_NOT_FOUND' });
      }

      // The new owner's position is intact; so is the old owner's (no erasure ran).
      expect(await hasPosition(c.vin, theirs), 'the new owner’s position').toBe(true);
      expect(await hasPosition(c.vin, mine), 'the old owner’s position').toBe(true);
      expect(await db.query('SELECT 1 FROM erasure_log WHERE vin = $1', [c.vin])).toHaveLength(0);
      // The new owner's period holds the transfer's reset and nothing the old owner asked for.
      const newPeriod = (await consentEvents(c.vin)).filter((e) => e.effective_at.getTime() >= transferredAt);
      expect(newPeriod.map((e) => ({ owner: e.owner_id, channel: e.channel, location: e.location_allowed, restricted: e.restricted }))).toEqual([
        { owner: newOwner, channel: 'transfer', location: true, restricted: false },
      ]);
      const state = await api(gw, 'GET', `${base}/consent`, undefined, newToken);
      expect(state.status).toBe(200);
      expect(state.body).toMatchObject({ location: true, co2Sharing: true, restricted: false });
      // And the car's next position is the new owner's, stored as the defaults allow.
      expect(await hasPosition(c.vin, await send(c, Date.now()))).toBe(true);
      // The old owner asks again: the ordinary answer to a non-owner.
      const again = await api(gw, 'PUT', `${base}/consent`, { location: false, co2Sharing: false }, oldToken);
      expect(again.status).toBe(404);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await c.client.endAsync();
    }
  });

  test('asked for before the transfer and run before it: done for the old owner, then the transfer resets', async () => {
    const oldOwner = `race-old-${testVin().slice(-6)}`;
    const newOwner = `race-new-${testVin().slice(-6)}`;
    const c = await car(oldOwner);
    const oldToken = await mintToken(gw, 'customer', oldOwner);
    try {
      const mine = await send(c, Date.now() - 5_000);
      expect(await hasPosition(c.vin, mine)).toBe(true);
      // The test holds the vehicle's row: the consent change queues for it first, the
      // transfer behind it.
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM vehicles WHERE vin = $1 FOR UPDATE', [c.vin]);
      const consent = api(gw, 'PUT', `/v1/vehicles/${c.vin}/consent?eraseHistory=true`, { location: false, co2Sharing: true }, oldToken);
      await waitFor(async () => (await waitingOn('%FROM vehicles%FOR UPDATE%')) === 1);
      const transfer = api(gw, 'POST', `/v1/admin/vehicles/${c.vin}/transfer`, { newOwnerId: newOwner });
      await waitFor(async () => (await waitingOn('%FROM vehicles%FOR UPDATE%')) === 2);
      await locker.query('COMMIT');

      const r = await consent;
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body).toMatchObject({ location: false, co2Sharing: true, erasedLocationRecords: 1 });
      const t = await transfer;
      expect(t.status, JSON.stringify(t.body)).toBe(200);
      expect(await hasPosition(c.vin, mine)).toBe(false);
      const events = await consentEvents(c.vin);
      expect(events.map((e) => ({ owner: e.owner_id, channel: e.channel, location: e.location_allowed, erased: e.erased_location_history }))).toEqual([
        { owner: oldOwner, channel: 'api', location: false, erased: true },
        { owner: newOwner, channel: 'transfer', location: true, erased: false },
      ]);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await c.client.endAsync();
    }
  });
});
