// The owner's consent API through the real path: bearer tokens minted by the admin API,
// consent and restriction changed over HTTP, their effect checked on telemetry sent over
// MQTT and stored in TimescaleDB — including on a second gateway instance that learns of
// the change only through NOTIFY.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import {
  ADMIN_TOKEN,
  FULL_CONSUMPTION,
  FULL_LOCATION,
  FULL_TECHNICAL,
  api,
  connectVehicle,
  encodeBatch,
  provision,
  publish,
  record,
  startTestGateway,
  testVin,
} from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { createTokenService, parseKeys } from '../../identity/tokens.ts';

const JWT_KEYS = 'itest1:consent-api-test-signing-secret-0123456789';

let db: TestDatabase;
let gw: RunningGateway;
/** A second instance on the same database: same keys, its own consent cache. */
let gwB: RunningGateway;

const test = gatewayTest({ JWT_KEYS });
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
  gwB = await startTestGateway(db.url, { JWT_KEYS });
});
afterAll(async () => {
  await gwB?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Res = { status: number; body: any; headers: Headers };

function expectProblem(r: Res, status: number, code: string): void {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, code });
}

async function mint(role: 'customer' | 'workshop' | 'authority', subject: string, ttlSeconds?: number): Promise<string> {
  const r = await api(gw, 'POST', '/v1/admin/tokens', ttlSeconds === undefined ? { role, subject } : { role, subject, ttlSeconds });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.token as string;
}

interface Vehicle {
  vin: string;
  secret: string;
  owner: string;
  token: string;
  client: MqttClient;
  topic: string;
  seq: number;
}

async function vehicle(owner = `owner-${Math.random().toString(36).slice(2, 10)}`, on: RunningGateway = gw): Promise<Vehicle> {
  const { vin, secret } = await provision(gw, testVin(), owner);
  const client = await connectVehicle(on, vin, secret);
  return { vin, secret, owner, token: await mint('customer', owner), client, topic: `v1/vehicles/${vin}/telemetry`, seq: 0 };
}

const FULL = { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION };

/** Publishes one full record (all three groups) measured at `at`; resolves once durable. */
async function send(v: Vehicle, at = Date.now(), client = v.client): Promise<number> {
  const seq = ++v.seq;
  await publish(client, v.topic, encodeBatch(v.vin, [record(seq, at, FULL)]));
  return seq;
}

interface Stored {
  row: Record<string, any>;
  shared: boolean;
}
async function stored(vin: string, seq: number): Promise<Stored> {
  const rows = await db.query<Record<string, any>>('SELECT * FROM telemetry WHERE vin = $1 AND seq = $2', [vin, seq]);
  expect(rows, `telemetry row seq ${seq}`).toHaveLength(1);
  const obf = await db.query('SELECT 1 FROM obfcm_readings WHERE vin = $1 AND seq = $2', [vin, seq]);
  return { row: rows[0]!, shared: obf.length === 1 };
}

const LOCATION_COLUMNS = ['latitude', 'longitude', 'heading_deg', 'altitude_m', 'accuracy_m'];
const hasNoLocation = (s: Stored) => LOCATION_COLUMNS.every((c) => s.row[c] === null) && s.row.has_location === false;
const hasLocation = (s: Stored) => s.row.latitude === FULL_LOCATION.latitude && s.row.has_location === true;

/**
 * Publishes a record measured now every 50 ms (up to 1 s) until one is stored the way
 * `check` expects; then checks that the next few are too. Returns how long it took.
 */
async function untilInForce(v: Vehicle, check: (s: Stored) => boolean, client = v.client, from = Date.now()): Promise<number> {
  let ms = -1;
  while (Date.now() - from <= 1000) {
    const seq = await send(v, Date.now(), client);
    if (check(await stored(v.vin, seq))) {
      ms = Date.now() - from;
      break;
    }
    await sleep(50);
  }
  expect(ms, 'the change was not in force within 1000 ms').toBeGreaterThanOrEqual(0);
  for (let i = 0; i < 5; i++) {
    const seq = await send(v, Date.now(), client);
    const s = await stored(v.vin, seq);
    expect(check(s), `record ${seq} sent after the change was in force: ${JSON.stringify(s)}`).toBe(true);
    await sleep(10);
  }
  return ms;
}

const consentEvents = (vin: string) => db.query<Record<string, any>>('SELECT * FROM consent_events WHERE vin = $1 ORDER BY effective_at, id', [vin]);

describe('POST /v1/admin/tokens', () => {
  it('201 {token, expiresAt}; ttlSeconds honoured, default from TOKEN_TTL_S; not cached', async () => {
    const t0 = Date.now();
    const r = await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'tok-1', ttlSeconds: 120 });
    expect(r.status).toBe(201);
    expect(Object.keys(r.body).sort()).toEqual(['expiresAt', 'jti', 'token']);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body.token.split('.')).toHaveLength(3);
    const exp = Date.parse(r.body.expiresAt);
    expect(exp).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000 + 120_000);
    expect(exp).toBeLessThanOrEqual(Date.now() + 120_000);
    const d = await api(gw, 'POST', '/v1/admin/tokens', { role: 'workshop', subject: 'garage-1' });
    expect(d.status).toBe(201);
    expect(Math.abs(Date.parse(d.body.expiresAt) - (Date.now() + 3600_000))).toBeLessThan(5000);
  });

  it('refuses callers without the admin token, and malformed bodies', async () => {
    const customer = await mint('customer', 'tok-2');
    expectProblem(await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'x' }, null), 401, 'API_ERR_UNAUTHORIZED');
    expectProblem(await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'x' }, customer), 401, 'API_ERR_UNAUTHORIZED');
    expectProblem(await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'x' }, ADMIN_TOKEN + 'x'), 401, 'API_ERR_UNAUTHORIZED');
    for (const body of [
      { role: 'admin', subject: 'x' },
      { role: 'customer' },
      { role: 'customer', subject: '' },
      { role: 'customer', subject: 'has space' },
      { role: 'customer', subject: 'x', ttlSeconds: 0 },
      { role: 'customer', subject: 'x', ttlSeconds: 1.5 },
      { role: 'customer', subject: 'x', ttlSeconds: '60' },
      { role: 'customer', subject: 'x', ttlSeconds: 31 * 24 * 3600 },
      { role: 'customer', subject: 'x', extra: 1 },
    ]) {
      expectProblem(await api(gw, 'POST', '/v1/admin/tokens', body), 400, 'API_ERR_VALIDATION');
    }
  });
});

describe('authentication and access on the owner routes', () => {
  let v: Vehicle;
  const routes = (vin: string): [string, string, unknown?][] => [
    ['GET', `/v1/vehicles/${vin}/consent`],
    ['PUT', `/v1/vehicles/${vin}/consent`, { location: false, co2Sharing: false }],
    ['PUT', `/v1/vehicles/${vin}/consent?eraseHistory=true`, { location: false, co2Sharing: false }],
    ['GET', `/v1/vehicles/${vin}/consent/history`],
    ['PUT', `/v1/vehicles/${vin}/restriction`, { restricted: true }],
    ['DELETE', `/v1/vehicles/${vin}/data`],
  ];
  beforeAll(async () => {
    v = await vehicle('access-owner');
    await send(v);
  });
  afterAll(async () => {
    await v.client.endAsync();
  });

  async function unchanged(): Promise<void> {
    expect(await consentEvents(v.vin)).toHaveLength(0);
    const s = await stored(v.vin, 1);
    expect(hasLocation(s)).toBe(true);
  }

  it('no token → 401', async () => {
    for (const [m, p, b] of routes(v.vin)) expectProblem(await api(gw, m, p, b, null), 401, 'API_ERR_UNAUTHORIZED');
    for (const [m, p, b] of routes(v.vin)) expectProblem(await api(gw, m, p, b, null, { authorization: 'Basic Zm9vOmJhcg==' }), 401, 'API_ERR_UNAUTHORIZED');
    await unchanged();
  });

  it('workshop and authority tokens → 403 on every owner route', async () => {
    for (const role of ['workshop', 'authority'] as const) {
      // even with the owner's id as subject
      const t = await mint(role, v.owner);
      for (const [m, p, b] of routes(v.vin)) expectProblem(await api(gw, m, p, b, t), 403, 'API_ERR_FORBIDDEN');
    }
    await unchanged();
  });

  it('a customer who is not the owner → 404, the same answer as for an unknown VIN', async () => {
    const other = await mint('customer', 'someone-else');
    const unknown = testVin();
    for (const [i, [m, p, b]] of routes(v.vin).entries()) {
      const r = await api(gw, m, p, b, other);
      expectProblem(r, 404, 'API_ERR_NOT_FOUND');
      const [, pu, bu] = routes(unknown)[i]!;
      const u = await api(gw, m, pu, bu, other);
      expectProblem(u, 404, 'API_ERR_NOT_FOUND');
      expect(Object.keys(r.body).sort()).toEqual(Object.keys(u.body).sort());
      expect(r.body.title).toBe(u.body.title);
      expect(r.body.detail.replace(v.vin, 'VIN')).toBe(u.body.detail.replace(unknown, 'VIN'));
    }
    // the owner's own token on an unknown VIN: 404 too
    expectProblem(await api(gw, 'GET', `/v1/vehicles/${unknown}/consent`, undefined, v.token), 404, 'API_ERR_NOT_FOUND');
    await unchanged();
  });

  it('an expired token → 401 API_ERR_TOKEN_EXPIRED (minted with ttlSeconds 2, and one signed in the past)', async () => {
    // exp is in whole seconds: a token of ttlSeconds n is valid for between n-1 and n seconds
    // (with n = 1 it may already be expired by the first request).
    const short = await mint('customer', v.owner, 2);
    expect((await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, short)).status).toBe(200);
    const past = await createTokenService(parseKeys(JWT_KEYS), () => Date.now() - 7200_000).sign({ role: 'customer', subject: v.owner, ttlSeconds: 3600 });
    expectProblem(await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, past.token), 401, 'API_ERR_TOKEN_EXPIRED');
    await sleep(3100);
    for (const [m, p, b] of routes(v.vin)) expectProblem(await api(gw, m, p, b, short), 401, 'API_ERR_TOKEN_EXPIRED');
    await unchanged();
  });

  it('tampered tokens → 401 with the specific code: payload changed, signature changed, alg none, unknown kid', async () => {
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const dec = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;
    const mallory = await mint('customer', 'mallory');
    const [h, b, s] = mallory.split('.') as [string, string, string];
    const asOwner = `${h}.${enc({ ...dec(b), sub: v.owner })}.${s}`;
    const sigChanged = `${h}.${b}.${(s[0] === 'A' ? 'B' : 'A') + s.slice(1)}`;
    const algNone = `${enc({ alg: 'none', typ: 'JWT', kid: dec(h).kid })}.${enc({ ...dec(b), sub: v.owner })}.`;
    const unknownKid = (await createTokenService(parseKeys('rogue:another-secret-of-at-least-32-bytes!!'), Date.now).sign({ role: 'customer', subject: v.owner, ttlSeconds: 600 })).token;
    const otherSecretSameKid = (await createTokenService(parseKeys('itest1:another-secret-of-at-least-32-bytes!!'), Date.now).sign({ role: 'customer', subject: v.owner, ttlSeconds: 600 })).token;
    const cases: Record<string, [string, string]> = {
      asOwner: [asOwner, 'API_ERR_TOKEN_INVALID'],
      sigChanged: [sigChanged, 'API_ERR_TOKEN_INVALID'],
      algNone: [algNone, 'API_ERR_TOKEN_ALGORITHM'],
      unknownKid: [unknownKid, 'API_ERR_TOKEN_INVALID'],
      otherSecretSameKid: [otherSecretSameKid, 'API_ERR_TOKEN_INVALID'],
      garbage: ['not-a-token', 'API_ERR_TOKEN_INVALID'],
      twoParts: [`${h}.${b}`, 'API_ERR_TOKEN_INVALID'],
    };
    for (const [name, [t, code]] of Object.entries(cases)) {
      for (const [m, p, body] of routes(v.vin)) {
        const r = await api(gw, m, p, body, t);
        expect(r.status, `${name} ${m} ${p}`).toBe(401);
        expectProblem(r, 401, code);
      }
    }
    await unchanged();
  });

  it('a token minted by one instance works on another with the same JWT_KEYS', async () => {
    const r = await api(gwB, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, v.token);
    expect(r.status).toBe(200);
  });
});

describe('GET/PUT /v1/vehicles/{vin}/consent', () => {
  it('a new vehicle has the defaults, in force since its ownership began', async () => {
    const v = await vehicle();
    const r = await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, v.token);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    const [own] = await db.query<{ started_at: Date }>('SELECT started_at FROM ownership_periods WHERE vin = $1', [v.vin]);
    expect(r.body).toEqual({ vin: v.vin, location: true, co2Sharing: true, restricted: false, since: own!.started_at.toISOString() });
    await v.client.endAsync();
  });

  it('PUT changes it: 200 with the new state, since and erasedLocationRecords 0; GET shows the same', async () => {
    const v = await vehicle();
    const before = Date.now();
    const r = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: true }, v.token);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ vin: v.vin, location: false, co2Sharing: true, restricted: false, erasedLocationRecords: 0 });
    expect(Object.keys(r.body).sort()).toEqual(['co2Sharing', 'erasedLocationRecords', 'location', 'restricted', 'since', 'vin']);
    expect(Math.abs(Date.parse(r.body.since) - before)).toBeLessThan(5000);
    const g = await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, v.token);
    expect(g.body).toEqual({ vin: v.vin, location: false, co2Sharing: true, restricted: false, since: r.body.since });
    const r2 = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: true, co2Sharing: false }, v.token);
    expect(r2.body).toMatchObject({ location: true, co2Sharing: false, restricted: false });
    expect(Date.parse(r2.body.since)).toBeGreaterThanOrEqual(Date.parse(r.body.since));
    expect((await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, v.token)).body).toMatchObject({ location: true, co2Sharing: false });
    await v.client.endAsync();
  });

  it('a consent change leaves the restriction as it was', async () => {
    const v = await vehicle();
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true }, v.token)).status).toBe(200);
    const r = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: false }, v.token);
    expect(r.body).toMatchObject({ location: false, co2Sharing: false, restricted: true });
    await v.client.endAsync();
  });

  it('validation: non-boolean values, missing or extra fields, not an object → 400, nothing recorded', async () => {
    const v = await vehicle();
    const p = `/v1/vehicles/${v.vin}/consent`;
    const bodies: unknown[] = [
      { location: 'false', co2Sharing: true },
      { location: false, co2Sharing: 'true' },
      { location: 0, co2Sharing: true },
      { location: null, co2Sharing: true },
      { location: false },
      { co2Sharing: false },
      {},
      { location: false, co2Sharing: true, restricted: true },
      { location: false, co2Sharing: true, extra: 1 },
      [false, true],
      'false',
    ];
    for (const b of bodies) expectProblem(await api(gw, 'PUT', p, b, v.token), 400, 'API_ERR_VALIDATION');
    expect((await api(gw, 'PUT', p, '{"location": false,', v.token)).status).toBe(400);
    expectProblem(await api(gw, 'PUT', `${p}?eraseHistory=yes`, { location: false, co2Sharing: true }, v.token), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'PUT', `${p}?erase=true`, { location: false, co2Sharing: true }, v.token), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: 'true' }, v.token), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true, location: false }, v.token), 400, 'API_ERR_VALIDATION');
    expect(await consentEvents(v.vin)).toHaveLength(0);
    expect((await api(gw, 'GET', p, undefined, v.token)).body).toMatchObject({ location: true, co2Sharing: true, restricted: false });
    await v.client.endAsync();
  });

  it('a bad VIN in the path → 400 API_ERR_INVALID_VIN on every owner route', async () => {
    const t = await mint('customer', 'bad-vin-owner');
    const V = testVin();
    for (const bad of [V.toLowerCase(), V.slice(0, 16), V + '1', 'WTESTI' + V.slice(6), 'WTESTO' + V.slice(6), 'WTESTQ' + V.slice(6), encodeURIComponent("1' OR '1'='1")]) {
      for (const [m, p, b] of [
        ['GET', `/v1/vehicles/${bad}/consent`],
        ['PUT', `/v1/vehicles/${bad}/consent`, { location: false, co2Sharing: false }],
        ['GET', `/v1/vehicles/${bad}/consent/history`],
        ['PUT', `/v1/vehicles/${bad}/restriction`, { restricted: true }],
        ['DELETE', `/v1/vehicles/${bad}/data`],
      ] as [string, string, unknown?][]) {
        expectProblem(await api(gw, m, p, b, t), 400, 'API_ERR_INVALID_VIN');
      }
    }
  });
});

describe('GET /v1/vehicles/{vin}/consent/history', () => {
  it('lists the owner\'s changes oldest first with previous values, actor customer:<id>, channel api', async () => {
    const v = await vehicle('hist-owner');
    const p = `/v1/vehicles/${v.vin}/consent`;
    const empty = await api(gw, 'GET', `${p}/history`, undefined, v.token);
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual({ vin: v.vin, events: [] });
    const a = await api(gw, 'PUT', p, { location: false, co2Sharing: true }, v.token);
    const b = await api(gw, 'PUT', p, { location: false, co2Sharing: false }, v.token);
    const c = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true }, v.token);
    const d = await api(gw, 'PUT', p, { location: true, co2Sharing: true }, v.token);
    for (const r of [a, b, c, d]) expect(r.status).toBe(200);
    const h = await api(gw, 'GET', `${p}/history`, undefined, v.token);
    expect(h.status).toBe(200);
    const base = { actor: 'customer:hist-owner', channel: 'api', erasedLocationHistory: false };
    expect(h.body).toEqual({
      vin: v.vin,
      events: [
        { ...base, at: a.body.since, location: false, co2Sharing: true, restricted: false, previous: { location: true, co2Sharing: true, restricted: false } },
        { ...base, at: b.body.since, location: false, co2Sharing: false, restricted: false, previous: { location: false, co2Sharing: true, restricted: false } },
        { ...base, at: c.body.since, location: false, co2Sharing: false, restricted: true, previous: { location: false, co2Sharing: false, restricted: false } },
        { ...base, at: d.body.since, location: true, co2Sharing: true, restricted: true, previous: { location: false, co2Sharing: false, restricted: true } },
      ],
    });
    const ats = (h.body.events as { at: string }[]).map((e) => Date.parse(e.at));
    expect([...ats].sort((x, y) => x - y)).toEqual(ats);
    await v.client.endAsync();
  });

  it('shows only the requesting owner\'s events (not a previous owner\'s)', async () => {
    const v = await vehicle('hist-first');
    await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: false }, v.token);
    await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true }, v.token);
    expect((await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: 'hist-second' })).status).toBe(200);
    const t2 = await mint('customer', 'hist-second');
    const r = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: true, co2Sharing: false }, t2);
    expect(r.status).toBe(200);
    const h = await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent/history`, undefined, t2);
    expect(h.status).toBe(200);
    const events = h.body.events as Record<string, any>[];
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events.some((e) => e.actor === 'customer:hist-first')).toBe(false);
    expect(events.at(-1)).toMatchObject({ actor: 'customer:hist-second', channel: 'api', location: true, co2Sharing: false, restricted: false });
    expect(events.at(-1)!.previous).toEqual({ location: true, co2Sharing: true, restricted: false });
    // The first owner's choices (location and CO2 refused, restricted) are theirs: no
    // event shown to the second owner may reveal them, not even as "previous".
    expect(JSON.stringify(events), JSON.stringify(events)).not.toMatch(/"restricted":true/);
    for (const e of events.slice(0, -1)) {
      expect(e.previous === null || (e.previous.location && e.previous.co2Sharing && !e.previous.restricted), JSON.stringify(e)).toBe(true);
    }
    await v.client.endAsync();
  });
});

describe('PUT consent ?eraseHistory=true', () => {
  it('erases the stored positions of the current ownership period in the same change; technical and consumption values stay', async () => {
    const v = await vehicle('erase-first');
    const early = await send(v);
    await sleep(50);
    expect((await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: 'erase-second' })).status).toBe(200);
    await sleep(50);
    const t2 = await mint('customer', 'erase-second');
    const mine = [await send(v), await send(v), await send(v)];
    // one record without a location group at all: not counted
    const techOnly = ++v.seq;
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(techOnly, Date.now(), { technical: FULL_TECHNICAL })]));
    for (const s of mine) expect(hasLocation(await stored(v.vin, s))).toBe(true);

    const r = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent?eraseHistory=true`, { location: false, co2Sharing: true }, t2);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ vin: v.vin, location: false, co2Sharing: true, restricted: false, erasedLocationRecords: 3 });
    for (const s of mine) {
      const row = await stored(v.vin, s);
      expect(hasNoLocation(row), JSON.stringify(row.row)).toBe(true);
      expect(row.row.speed_kmh).toBe(FULL_TECHNICAL.speedKmh);
      expect(row.row.odometer_km).toBe(FULL_TECHNICAL.odometerKm);
      expect(row.row.has_technical).toBe(true);
      expect(row.row.total_fuel_consumed_l).toBe(FULL_CONSUMPTION.totalFuelConsumedL);
      expect(row.row.has_consumption).toBe(true);
      expect(row.shared).toBe(true);
    }
    // the previous owner's period is not theirs to erase
    expect(hasLocation(await stored(v.vin, early))).toBe(true);
    const n = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM telemetry t JOIN ownership_periods o ON o.vin = t.vin AND o.ended_at IS NULL
        WHERE t.vin = $1 AND t.recorded_at >= o.started_at AND (t.latitude IS NOT NULL OR t.longitude IS NOT NULL OR t.has_location)`,
      [v.vin],
    );
    expect(n[0]!.n).toBe(0);

    const h = await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent/history`, undefined, t2);
    expect(h.body.events.at(-1)).toMatchObject({ location: false, erasedLocationHistory: true, actor: 'customer:erase-second' });
    await v.client.endAsync();
  });

  it('with location true → 400, nothing changed or erased', async () => {
    const v = await vehicle();
    const s = await send(v);
    expectProblem(await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent?eraseHistory=true`, { location: true, co2Sharing: true }, v.token), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent?eraseHistory=true`, { location: true, co2Sharing: false }, v.token), 400, 'API_ERR_VALIDATION');
    expect(await consentEvents(v.vin)).toHaveLength(0);
    expect(hasLocation(await stored(v.vin, s))).toBe(true);
    // eraseHistory=false with an opt-out keeps the stored positions
    const r = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent?eraseHistory=false`, { location: false, co2Sharing: true }, v.token);
    expect(r.body).toMatchObject({ location: false, erasedLocationRecords: 0 });
    expect(hasLocation(await stored(v.vin, s))).toBe(true);
    await v.client.endAsync();
  });
});

describe('consent in force within a second on every gateway instance', () => {
  it('a change through gateway A filters what gateway B stores within 1000 ms', async () => {
    const v = await vehicle('two-gw', gwB);
    // B has loaded (and cached) the consent: the first record keeps everything
    const first = await send(v);
    const s0 = await stored(v.vin, first);
    expect(hasLocation(s0) && s0.shared).toBe(true);

    const r = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: false }, v.token);
    expect(r.status).toBe(200);
    const ms = await untilInForce(v, (s) => hasNoLocation(s) && !s.shared);
    expect(ms).toBeLessThanOrEqual(1000);

    // and back: opting in again through A reaches B too
    const back = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: true, co2Sharing: true }, v.token);
    expect(back.status).toBe(200);
    await sleep(20);
    const ms2 = await untilInForce(v, (s) => hasLocation(s) && s.shared);
    expect(ms2).toBeLessThanOrEqual(1000);
    await v.client.endAsync();
  });

  it('a restriction set through gateway B stops B and A from sharing', async () => {
    const v = await vehicle('two-gw-r', gw);
    const onB = await connectVehicle(gwB, v.vin, v.secret, { clientId: v.vin });
    // (the same client id on B is a different broker: both connections stay)
    const r = await api(gwB, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true }, v.token);
    expect(r.status).toBe(200);
    expect(await untilInForce(v, (s) => hasLocation(s) && !s.shared)).toBeLessThanOrEqual(1000);
    expect(await untilInForce(v, (s) => hasLocation(s) && !s.shared, onB)).toBeLessThanOrEqual(1000);
    await onB.endAsync();
    await v.client.endAsync();
  });
});

describe('the stricter of the consent at recorded time and now', () => {
  it('a record measured during an opt-out, processed after opting back in: stored without location and not shared', async () => {
    const v = await vehicle();
    const before = Date.now() - 100;
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: false }, v.token)).status).toBe(200);
    await sleep(30);
    const during = Date.now();
    await sleep(30);
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: true, co2Sharing: true }, v.token)).status).toBe(200);
    await sleep(20);
    // wait until the opt-in is in force for records measured now
    await untilInForce(v, (s) => hasLocation(s) && s.shared);
    const sDuring = await send(v, during);
    const sBefore = await send(v, before);
    const d = await stored(v.vin, sDuring);
    expect(hasNoLocation(d), JSON.stringify(d.row)).toBe(true);
    expect(d.shared).toBe(false);
    expect(d.row.speed_kmh).toBe(FULL_TECHNICAL.speedKmh);
    expect(d.row.total_fuel_consumed_l).toBe(FULL_CONSUMPTION.totalFuelConsumedL);
    const b = await stored(v.vin, sBefore);
    expect(hasLocation(b) && b.shared).toBe(true);
    await v.client.endAsync();
  });

  it('a record measured while allowed, processed after an opt-out: stored without location and not shared', async () => {
    const v = await vehicle();
    const allowedAt = Date.now();
    await sleep(30);
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: false }, v.token)).status).toBe(200);
    await untilInForce(v, (s) => hasNoLocation(s) && !s.shared);
    const s = await stored(v.vin, await send(v, allowedAt));
    expect(hasNoLocation(s), JSON.stringify(s.row)).toBe(true);
    expect(s.shared).toBe(false);
    expect(s.row.speed_kmh).toBe(FULL_TECHNICAL.speedKmh);
    await v.client.endAsync();
  });
});

describe('PUT /v1/vehicles/{vin}/restriction', () => {
  it('restricted: telemetry still stored, nothing new in obfcm_readings; restricted:false restores', async () => {
    const v = await vehicle();
    const s0 = await stored(v.vin, await send(v));
    expect(s0.shared).toBe(true);
    const r = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true }, v.token);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ vin: v.vin, location: true, co2Sharing: true, restricted: true });
    expect(Object.keys(r.body).sort()).toEqual(['co2Sharing', 'location', 'restricted', 'since', 'vin']);
    expect((await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, v.token)).body).toMatchObject({ restricted: true, since: r.body.since });
    await untilInForce(v, (s) => !s.shared && hasLocation(s) && s.row.total_fuel_consumed_l === FULL_CONSUMPTION.totalFuelConsumedL);
    // the row shared before the restriction stays
    expect((await stored(v.vin, 1)).shared).toBe(true);

    const u = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: false }, v.token);
    expect(u.body).toMatchObject({ restricted: false, location: true, co2Sharing: true });
    await sleep(20);
    await untilInForce(v, (s) => s.shared && hasLocation(s));
    await v.client.endAsync();
  });
});
