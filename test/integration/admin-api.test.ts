// The HTTP API through real HTTP: provisioning, its refusals as problem+json with stable
// codes, authentication of the admin routes, health and readiness.
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { ADMIN_TOKEN, api, connectVehicle, encodeBatch, publish, record, testVin } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;

const test = gatewayTest();
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});

const vehicleCount = async (vin: string) => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM vehicles WHERE vin = $1', [vin]))[0]!.n;
const totalVehicles = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM vehicles'))[0]!.n;

function expectProblem(r: { status: number; body: any; headers: Headers }, status: number, code: string): void {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, code });
  expect(typeof r.body.title).toBe('string');
  expect(typeof r.body.detail).toBe('string');
  expect(typeof r.body.type).toBe('string');
}

describe('POST /v1/admin/vehicles', () => {
  it('201 with exactly {vin, secret}; only a scrypt hash is stored; the secret works for MQTT', async () => {
    const vin = testVin();
    const r = await api(gw, 'POST', '/v1/admin/vehicles', { vin, ownerId: 'owner-42' });
    expect(r.status).toBe(201);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(Object.keys(r.body).sort()).toEqual(['secret', 'vin']);
    expect(r.body.vin).toBe(vin);
    const secret = r.body.secret as string;
    expect(typeof secret).toBe('string');
    expect(secret.length).toBeGreaterThanOrEqual(32);

    const rows = await db.query<{ vin: string; owner_id: string; secret_hash: string }>('SELECT vin, owner_id, secret_hash FROM vehicles WHERE vin = $1', [vin]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.owner_id).toBe('owner-42');
    expect(rows[0]!.secret_hash.startsWith('scrypt$')).toBe(true);
    expect(rows[0]!.secret_hash).not.toContain(secret);
    expect(rows[0]!.secret_hash).not.toContain(Buffer.from(secret).toString('base64'));

    const client = await connectVehicle(gw, vin, secret);
    expect(client.connected).toBe(true);
    await publish(client, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, Date.now())]));
    expect(await db.query('SELECT seq FROM telemetry WHERE vin = $1', [vin])).toEqual([{ seq: 1 }]);
    await client.endAsync();
  });

  it('gives every vehicle a different secret', async () => {
    const a = await api(gw, 'POST', '/v1/admin/vehicles', { vin: testVin(), ownerId: 'o' });
    const b = await api(gw, 'POST', '/v1/admin/vehicles', { vin: testVin(), ownerId: 'o' });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(a.body.secret).not.toBe(b.body.secret);
  });

  const V = testVin();
  const invalidVins: [string, unknown][] = [
    ['contains I', 'WTESTI' + V.slice(6)],
    ['contains O', 'WTESTO' + V.slice(6)],
    ['contains Q', 'WTESTQ' + V.slice(6)],
    ['16 characters', V.slice(0, 16)],
    ['18 characters', V + '1'],
    ['lowercase', V.toLowerCase()],
    ['empty', ''],
    ['path traversal', '../../etc/passwd'],
    ['SQL-looking', "1' OR '1'='1"],
    ['17 chars with a quote', "WTEST0000000000'1"],
    ['trailing newline', V + '\n'],
    ['number', 12345678901234568], // a JSON number, beyond 2^53 (the exact double)
  ];
  it.each(invalidVins)('400 API_ERR_INVALID_VIN for a VIN that is %s', async (_name, vin) => {
    const before = await totalVehicles();
    const r = await api(gw, 'POST', '/v1/admin/vehicles', { vin, ownerId: 'owner-1' });
    expectProblem(r, 400, 'API_ERR_INVALID_VIN');
    expect(await totalVehicles()).toBe(before);
  });

  const badBodies: [string, string | object][] = [
    ['missing ownerId', { vin: testVin() }],
    ['empty ownerId', { vin: testVin(), ownerId: '' }],
    ['ownerId with a space', { vin: testVin(), ownerId: 'owner 1' }],
    ['ownerId of 129 characters', { vin: testVin(), ownerId: 'x'.repeat(129) }],
    ['an extra field', { vin: testVin(), ownerId: 'owner-1', secret: 'mine' }],
    ['ownerId a number', { vin: testVin(), ownerId: 42 }],
    ['ownerId null', { vin: testVin(), ownerId: null }],
    ['an array body', JSON.stringify([{ vin: testVin(), ownerId: 'owner-1' }])],
    ['a string body', JSON.stringify('hello')],
    ['a null body', 'null'],
    ['malformed JSON', '{"vin": "' + testVin() + '", "ownerId": '],
    ['trailing garbage after JSON', '{"vin":"' + testVin() + '","ownerId":"o"}x'],
  ];
  it.each(badBodies)('400 API_ERR_VALIDATION for %s', async (_name, body) => {
    const before = await totalVehicles();
    const r = await api(gw, 'POST', '/v1/admin/vehicles', body);
    expectProblem(r, 400, 'API_ERR_VALIDATION');
    expect(await totalVehicles()).toBe(before);
  });

  it('400 API_ERR_VALIDATION for an empty body', async () => {
    const r = await api(gw, 'POST', '/v1/admin/vehicles', '', ADMIN_TOKEN, { 'content-type': 'application/json' });
    expectProblem(r, 400, 'API_ERR_VALIDATION');
  });

  it('415 for a body that is not JSON', async () => {
    const vin = testVin();
    const r = await api(gw, 'POST', '/v1/admin/vehicles', `vin=${vin}&ownerId=o`, ADMIN_TOKEN, { 'content-type': 'application/x-www-form-urlencoded' });
    expectProblem(r, 415, 'API_ERR_UNSUPPORTED_MEDIA_TYPE');
    expect(await vehicleCount(vin)).toBe(0);
  });

  const unauthorized: [string, string | null, Record<string, string>][] = [
    ['no token', null, {}],
    ['a wrong token', 'wrong-token-0123456789abcdef', {}],
    ['the token with one character changed', ADMIN_TOKEN.slice(0, -1) + 'X', {}],
    ['the token as a prefix', ADMIN_TOKEN.slice(0, 16), {}],
    ['the Basic scheme', null, { authorization: 'Basic ' + Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64') }],
    ['the token without a scheme', null, { authorization: ADMIN_TOKEN }],
    ['an empty bearer', null, { authorization: 'Bearer ' }],
  ];
  it.each(unauthorized)('401 API_ERR_UNAUTHORIZED with %s, and nothing provisioned', async (_name, token, headers) => {
    const vin = testVin();
    const r = await api(gw, 'POST', '/v1/admin/vehicles', { vin, ownerId: 'owner-1' }, token, headers);
    expectProblem(r, 401, 'API_ERR_UNAUTHORIZED');
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await vehicleCount(vin)).toBe(0);
  });

  it('401 before the body is even validated', async () => {
    const r = await api(gw, 'POST', '/v1/admin/vehicles', { vin: 'bad' }, null);
    expectProblem(r, 401, 'API_ERR_UNAUTHORIZED');
  });

  // The route matcher decodes percent-escapes in the path; the authentication must hold for
  // every spelling of an admin route that reaches the handler.
  it.each(['/v1/%61dmin/vehicles', '/%761/admin/vehicles', '/v1/admin/%76ehicles'])('401 for the percent-encoded admin path %s without a token', async (path) => {
    const vin = testVin();
    const r = await api(gw, 'POST', path, { vin, ownerId: 'attacker' }, null);
    expect(r.status, JSON.stringify(r.body)).not.toBe(201);
    expect([401, 404]).toContain(r.status);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await vehicleCount(vin)).toBe(0);
  });

  it('409 API_ERR_CONFLICT for a VIN already provisioned; the first secret keeps working', async () => {
    const vin = testVin();
    const first = await api(gw, 'POST', '/v1/admin/vehicles', { vin, ownerId: 'owner-1' });
    expect(first.status).toBe(201);
    const hash = (await db.query<{ secret_hash: string }>('SELECT secret_hash FROM vehicles WHERE vin = $1', [vin]))[0]!.secret_hash;
    const again = await api(gw, 'POST', '/v1/admin/vehicles', { vin, ownerId: 'owner-2' });
    expectProblem(again, 409, 'API_ERR_CONFLICT');
    expect(again.body.secret).toBeUndefined();
    const rows = await db.query<{ owner_id: string; secret_hash: string }>('SELECT owner_id, secret_hash FROM vehicles WHERE vin = $1', [vin]);
    expect(rows).toEqual([{ owner_id: 'owner-1', secret_hash: hash }]);
    const c = await connectVehicle(gw, vin, first.body.secret);
    expect(c.connected).toBe(true);
    await c.endAsync();
  });

  it('413 API_ERR_BODY_TOO_LARGE for a body over 64 KiB', async () => {
    const vin = testVin();
    const body = JSON.stringify({ vin, ownerId: 'o', pad: 'x'.repeat(70 * 1024) });
    expect(Buffer.byteLength(body)).toBeGreaterThan(65_536);
    const r = await api(gw, 'POST', '/v1/admin/vehicles', body);
    expectProblem(r, 413, 'API_ERR_BODY_TOO_LARGE');
    expect(await vehicleCount(vin)).toBe(0);
  });
});

describe('health', () => {
  it('GET /healthz → 200 {status: ok}, no token needed', async () => {
    const r = await api(gw, 'GET', '/healthz', undefined, null);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: 'ok' });
  });

  it('GET /readyz → 200 {status: ready, broker: true, database: true}', async () => {
    const r = await api(gw, 'GET', '/readyz', undefined, null);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: 'ready', broker: true, database: true });
  });
});

describe('unknown routes', () => {
  it.each([
    ['GET', '/nope'],
    ['GET', '/v1/admin/nope'],
    ['DELETE', '/v1/admin/vehicles'],
    ['GET', '/v1/admin/vehicles/../../etc/passwd'],
  ])('%s %s → 404 problem+json API_ERR_NOT_FOUND', async (method, path) => {
    const r = await api(gw, method, path, undefined, ADMIN_TOKEN);
    expectProblem(r, 404, 'API_ERR_NOT_FOUND');
  });
});
