// The access matrix: every HTTP route and MQTT topic × every identity, with the exact
// outcome the contract (README "External contract") gives each cell. Exactly the allowed
// cells succeed; the denied ones change nothing.
//
// Identities: vehicle A and B (their MQTT secrets; over HTTP as bearer tokens), the owner
// of A, another customer, a workshop, an authority, the admin token, no credentials, an
// expired token (of A's owner) and a tampered token (another customer's, its subject
// rewritten to A's owner).
import { afterAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { ADMIN_TOKEN, FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, testVin } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { createTokenService, parseKeys } from '../../identity/tokens.ts';
import { registerRecipient, workshopVisit } from '../helpers/grants.ts';

const JWT_KEYS = 'matrix1:access-matrix-signing-secret-0123456789abcdef';
const OWNER_A = 'matrix-owner-a';
const OWNER_B = 'matrix-owner-b';

const IDENTITIES = ['vehicle A', 'vehicle B', 'owner of A', 'other customer', 'workshop', 'authority', 'admin', 'none', 'expired token', 'tampered token'] as const;
type Identity = (typeof IDENTITIES)[number];

let db: TestDatabase;
let gw: RunningGateway;
const A = { vin: '', secret: '' };
const B = { vin: '', secret: '' };
const C = { vin: '' }; // the transfer route's vehicle
/** The bearer token (or MQTT password) of each identity; null: none. */
const cred = {} as Record<Identity, string | null>;
const clients: MqttClient[] = [];
let baseline: { vehicles: number; consentA: number; erasuresA: number; periodsC: number };

async function mint(role: string, subject: string): Promise<string> {
  const r = await api(gw, 'POST', '/v1/admin/tokens', { role, subject });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

const test = gatewayTest({ JWT_KEYS });
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
  Object.assign(A, await provision(gw, undefined, OWNER_A));
  Object.assign(B, await provision(gw, undefined, OWNER_B));
  C.vin = (await provision(gw, undefined, 'matrix-owner-c')).vin;
  // A has data in every group, so the owner's reads (latest location, workshop consumption, report) have something.
  const c = await connectVehicle(gw, A.vin, A.secret);
  const t = Date.now() - 60_000;
  await publish(c, `v1/vehicles/${A.vin}/telemetry`, encodeBatch(A.vin, [1, 2].map((s) => record(s, t + s, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION }))));
  await c.endAsync();

  const stranger = await mint('customer', 'matrix-stranger');
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const [h, b, s] = stranger.split('.') as [string, string, string];
  const tampered = `${h}.${enc({ ...JSON.parse(Buffer.from(b, 'base64url').toString('utf8')), sub: OWNER_A })}.${s}`;
  const expired = (await createTokenService(parseKeys(JWT_KEYS), () => Date.now() - 7_200_000).sign({ role: 'customer', subject: OWNER_A, ttlSeconds: 3600 })).token;
  Object.assign(cred, {
    'vehicle A': A.secret,
    'vehicle B': B.secret,
    'owner of A': await mint('customer', OWNER_A),
    'other customer': stranger,
    // A workshop reads a vehicle's consumption only through the owner's grant (issue 12):
    // this one is registered and was given a visit grant on A below.
    workshop: await registerRecipient(gw, 'matrix-workshop', 'workshop'),
    authority: await mint('authority', 'matrix-authority'),
    admin: ADMIN_TOKEN,
    none: null,
    'expired token': expired,
    'tampered token': tampered,
  } satisfies Record<Identity, string | null>);

  await workshopVisit(gw, A.vin, cred['owner of A']!, cred.workshop!);
  const n = async (sql: string, p: unknown[] = []) => (await db.query<{ n: number }>(sql, p))[0]!.n;
  baseline = {
    vehicles: await n('SELECT count(*)::int AS n FROM vehicles'),
    consentA: await n('SELECT count(*)::int AS n FROM consent_events WHERE vin = $1', [A.vin]),
    erasuresA: await n('SELECT count(*)::int AS n FROM erasure_log WHERE vin = $1', [A.vin]),
    periodsC: await n('SELECT count(*)::int AS n FROM ownership_periods WHERE vin = $1', [C.vin]),
  };
});
afterAll(async () => {
  for (const c of clients) c.end(true);
});

// ---------------------------------------------------------------------------
// HTTP

type Who = 'anyone' | 'admin' | 'owner' | 'workshop' | 'authority';
interface Route {
  name: string;
  who: Who;
  /** The status of the allowed cells. */
  ok: number;
  request(): { method: string; path: string; body?: unknown };
  /** An endless response (SSE): only its status and headers are read. */
  stream?: boolean;
}

let transfers = 0;
const ROUTES: Route[] = [
  { name: 'GET /healthz', who: 'anyone', ok: 200, request: () => ({ method: 'GET', path: '/healthz' }) },
  { name: 'GET /readyz', who: 'anyone', ok: 200, request: () => ({ method: 'GET', path: '/readyz' }) },
  { name: 'GET /metrics', who: 'anyone', ok: 200, request: () => ({ method: 'GET', path: '/metrics' }) },
  { name: 'GET /v1/catalogue', who: 'anyone', ok: 200, request: () => ({ method: 'GET', path: '/v1/catalogue' }) },
  { name: 'GET /v1/data-description', who: 'anyone', ok: 200, request: () => ({ method: 'GET', path: '/v1/data-description' }) },
  { name: 'POST /v1/admin/vehicles', who: 'admin', ok: 201, request: () => ({ method: 'POST', path: '/v1/admin/vehicles', body: { vin: testVin(), ownerId: 'matrix-new' } }) },
  { name: 'POST /v1/admin/tokens', who: 'admin', ok: 201, request: () => ({ method: 'POST', path: '/v1/admin/tokens', body: { role: 'customer', subject: 'matrix-minted' } }) },
  {
    name: 'POST /v1/admin/vehicles/{C}/transfer',
    who: 'admin',
    ok: 200,
    request: () => ({ method: 'POST', path: `/v1/admin/vehicles/${C.vin}/transfer`, body: { newOwnerId: `matrix-next-${++transfers}` } }),
  },
  { name: 'GET /v1/vehicles/{A}/consent', who: 'owner', ok: 200, request: () => ({ method: 'GET', path: `/v1/vehicles/${A.vin}/consent` }) },
  { name: 'PUT /v1/vehicles/{A}/consent', who: 'owner', ok: 200, request: () => ({ method: 'PUT', path: `/v1/vehicles/${A.vin}/consent`, body: { location: true, co2Sharing: true } }) },
  { name: 'GET /v1/vehicles/{A}/consent/history', who: 'owner', ok: 200, request: () => ({ method: 'GET', path: `/v1/vehicles/${A.vin}/consent/history` }) },
  { name: 'PUT /v1/vehicles/{A}/restriction', who: 'owner', ok: 200, request: () => ({ method: 'PUT', path: `/v1/vehicles/${A.vin}/restriction`, body: { restricted: false } }) },
  { name: 'DELETE /v1/vehicles/{A}/data?category=technical', who: 'owner', ok: 200, request: () => ({ method: 'DELETE', path: `/v1/vehicles/${A.vin}/data?category=technical` }) },
  { name: 'GET /v1/vehicles/{A}/cardata', who: 'owner', ok: 200, request: () => ({ method: 'GET', path: `/v1/vehicles/${A.vin}/cardata?format=ndjson` }) },
  { name: 'GET /v1/vehicles/{A}/location/latest', who: 'owner', ok: 200, request: () => ({ method: 'GET', path: `/v1/vehicles/${A.vin}/location/latest` }) },
  { name: 'GET /v1/vehicles/{A}/disclosures', who: 'owner', ok: 200, request: () => ({ method: 'GET', path: `/v1/vehicles/${A.vin}/disclosures` }) },
  { name: 'GET /v1/vehicles/{A}/stream', who: 'owner', ok: 200, stream: true, request: () => ({ method: 'GET', path: `/v1/vehicles/${A.vin}/stream` }) },
  { name: 'GET /v1/workshop/vehicles/{A}/consumption', who: 'workshop', ok: 200, request: () => ({ method: 'GET', path: `/v1/workshop/vehicles/${A.vin}/consumption` }) },
  { name: 'GET /v1/reports/obfcm', who: 'authority', ok: 200, request: () => ({ method: 'GET', path: '/v1/reports/obfcm' }) },
];

/** The contract's answer for one cell: [status, problem code or null]. */
function expected(route: Route, id: Identity): [number, string | null] {
  const unauthorized: [number, string] = [401, 'API_ERR_UNAUTHORIZED'];
  switch (route.who) {
    case 'anyone':
      return [route.ok, null];
    case 'admin':
      // only the admin token; any JWT (even a valid one) is not it
      return id === 'admin' ? [route.ok, null] : unauthorized;
    default: {
      const role: Record<Identity, 'customer' | 'workshop' | 'authority' | null> = {
        'vehicle A': null,
        'vehicle B': null,
        'owner of A': 'customer',
        'other customer': 'customer',
        workshop: 'workshop',
        authority: 'authority',
        admin: null,
        none: null,
        'expired token': null,
        'tampered token': null,
      };
      if (id === 'expired token') return [401, 'API_ERR_TOKEN_EXPIRED'];
      const r = role[id];
      if (id === 'none') return unauthorized;
      // A vehicle secret, the admin token, a tampered JWT: a bearer token that is no valid API token.
      if (r === null) return [401, 'API_ERR_TOKEN_INVALID'];
      if (route.who === 'owner') {
        if (r !== 'customer') return [403, 'API_ERR_FORBIDDEN'];
        return id === 'owner of A' ? [route.ok, null] : [404, 'API_ERR_NOT_FOUND'];
      }
      return r === route.who ? [route.ok, null] : [403, 'API_ERR_FORBIDDEN'];
    }
  }
}

/** Status and headers of an SSE route; the body only when it is a refusal (which ends). */
async function openStream(path: string, token: string | null): Promise<{ status: number; body: any; headers: Headers }> {
  const ac = new AbortController();
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: ac.signal });
  if (res.status === 200) {
    ac.abort();
    return { status: 200, body: null, headers: res.headers };
  }
  return { status: res.status, body: await res.json(), headers: res.headers };
}

const httpCells = ROUTES.flatMap((route) => IDENTITIES.map((id) => [route.name, id, expected(route, id)[0], route] as const));

describe('HTTP: route × identity', () => {
  it.each(httpCells)('%s as %s → %i', async (_name, id, status, route) => {
    const [, code] = expected(route, id);
    const { method, path, body } = route.request();
    const r = route.stream ? await openStream(path, cred[id]) : await api(gw, method, path, body, cred[id]);
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    if (code) {
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.body.code).toBe(code);
    }
  });

  it('the denied cells changed nothing: exactly one provisioning, one transfer, two consent events and one erasure happened', async () => {
    const n = async (sql: string, p: unknown[] = []) => (await db.query<{ n: number }>(sql, p))[0]!.n;
    expect(await n('SELECT count(*)::int AS n FROM vehicles')).toBe(baseline.vehicles + 1);
    expect(await n('SELECT count(*)::int AS n FROM ownership_periods WHERE vin = $1', [C.vin])).toBe(baseline.periodsC + 1);
    expect(await n('SELECT count(*)::int AS n FROM consent_events WHERE vin = $1', [A.vin])).toBe(baseline.consentA + 2);
    expect(await n('SELECT count(*)::int AS n FROM erasure_log WHERE vin = $1', [A.vin])).toBe(baseline.erasuresA + 1);
    expect((await db.query<{ owner_id: string }>('SELECT owner_id FROM vehicles WHERE vin = $1', [A.vin]))[0]!.owner_id).toBe(OWNER_A);
  });
});

// ---------------------------------------------------------------------------
// MQTT

type Action = 'publish to A telemetry' | 'publish to B telemetry' | 'subscribe v1/vehicles/A/#' | 'subscribe v1/vehicles/B/#';
const ACTIONS: Action[] = ['publish to A telemetry', 'publish to B telemetry', 'subscribe v1/vehicles/A/#', 'subscribe v1/vehicles/B/#'];

/** What the contract gives each MQTT cell. */
function mqttExpected(id: Identity, action: Action): string {
  if (id !== 'vehicle A' && id !== 'vehicle B') return 'CONNACK 5';
  const own = id === 'vehicle A' ? 'A' : 'B';
  const target = action.includes(' A') || action.includes('/A/') ? 'A' : 'B';
  if (action.startsWith('publish')) return target === own ? 'acked' : 'connection closed';
  // Vehicles have no downlink (issue 17): every subscription is refused, their own included.
  return 'SUBACK 128';
}

let seq = 100;
/** Connects as the identity (client id = username = the VIN; API tokens as passwords on A's VIN), performs the action. */
async function outcome(id: Identity, action: Action): Promise<string> {
  const vin = id === 'vehicle B' ? B.vin : A.vin;
  const password = cred[id];
  let client: MqttClient;
  try {
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, {
      clientId: vin,
      username: vin,
      ...(password === null ? {} : { password }),
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
  } catch (err) {
    return `CONNACK ${(err as { code?: number }).code}`;
  }
  clients.push(client);
  const target = action.includes(' A') || action.includes('/A/') ? A.vin : B.vin;
  if (action.startsWith('publish')) {
    const s = ++seq;
    const r = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('no answer'), 3000);
      client.once('close', () => {
        clearTimeout(timer);
        resolve('connection closed');
      });
      // a batch valid for the target vehicle
      client.publish(`v1/vehicles/${target}/telemetry`, encodeBatch(target, [record(s, Date.now())]), { qos: 1 }, (err) => {
        clearTimeout(timer);
        resolve(!err ? 'acked' : client.connected ? `error ${err.message}` : 'connection closed');
      });
    });
    if (r === 'acked') {
      // acknowledged means stored, under the publisher's VIN only
      const rows = await db.query('SELECT 1 FROM telemetry WHERE vin = $1 AND seq = $2', [target, s]);
      if (rows.length !== 1) return 'acked but not stored';
    } else {
      await new Promise((res) => setTimeout(res, 100));
      const rows = await db.query('SELECT 1 FROM telemetry WHERE seq = $1', [s]);
      if (rows.length !== 0) return `${r}, but stored`;
    }
    client.end(true);
    return r;
  }
  try {
    const g = await client.subscribeAsync(`v1/vehicles/${target}/#`, { qos: 1 });
    return `SUBACK ${g.map((x) => x.qos).join(',')}`;
  } catch (err) {
    const g = (err as { packet?: { granted?: unknown[] } }).packet?.granted;
    if (Array.isArray(g)) return `SUBACK ${g.map((x) => (typeof x === 'number' ? x : (x as { qos: number }).qos)).join(',')}`;
    return `error ${(err as Error).message}`;
  } finally {
    client.end(true);
  }
}

const mqttCells = IDENTITIES.flatMap((id) => ACTIONS.map((a) => [id, a, mqttExpected(id, a)] as const));

describe('MQTT: identity × topic', () => {
  it.each(mqttCells)('%s: %s → %s', async (id, action, want) => {
    expect(await outcome(id, action)).toBe(want);
  });
});
