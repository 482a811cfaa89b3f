// Service clients (README "For recipients"): a recipient signs in as itself with OAuth 2.0
// client credentials at the embedded provider (client_secret_basic, client_secret_post,
// private_key_jwt), over real HTTP, and reads what its grants let it read; deleting the
// client ends its tokens and open streams on both instances within a second; an external
// provider's client-credentials tokens map by its claims. Two gateway processes, one database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway, FULL_TECHNICAL } from '../helpers/gateway.ts';
import { createGrant, mintToken } from '../helpers/grants.ts';
import { freePort } from '../../devkit/spawn.ts';
import { openSse } from '../helpers/sse.ts';
import { TEST_REDIRECT_URI, startExternalIdp, type ExternalIdp } from '../helpers/oidc.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let a: RunningGateway;
let b: RunningGateway;
let idp: ExternalIdp;
let issuer: string;
const AUD = 'urn:cardata-gateway:api';

beforeAll(async () => {
  db = await createTestDatabase();
  idp = await startExternalIdp();
  const portA = await freePort();
  issuer = `http://127.0.0.1:${portA}/oidc`;
  const env = {
    PUBLIC_URL: `http://127.0.0.1:${portA}`,
    JWT_KEYS: 'k1:service-clients-test-key-0123456789abcdef',
    OIDC_ISSUER: idp.issuer,
    OIDC_EMBEDDED: 'on',
    OIDC_ACCESS_TOKEN_TTL_S: '120',
    OIDC_PORTAL_REDIRECT_URIS: TEST_REDIRECT_URI,
    STREAM_KEEPALIVE_MS: '1000',
  };
  a = await startTestGateway(db.url, { ...env, HTTP_PORT: String(portA) });
  b = await startTestGateway(db.url, env);
}, 120_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await idp?.stop();
  await db?.drop();
});

let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;
const tokenUrl = (gw: RunningGateway) => `http://127.0.0.1:${gw.httpPort}/oidc/token`;
const claimsOf = (jwt: string) => jwt.split('.').slice(0, 2).map((x) => JSON.parse(Buffer.from(x, 'base64url').toString()) as Record<string, unknown>) as [Record<string, unknown>, Record<string, unknown>];

/** A recipient with a grant (history and stream, technical) on a vehicle with two records. */
async function recipientWithGrant(role: 'third_party' | 'workshop' = 'third_party') {
  const recipient = uniq('svc-recipient');
  expect((await api(a, 'POST', '/v1/admin/recipients', { id: recipient, role, name: `Service ${recipient}` })).status).toBe(201);
  const owner = uniq('owner');
  const { vin, secret } = await provision(a, undefined, owner);
  const ownerToken = await mintToken(a, 'customer', owner);
  const grant = await createGrant(a, vin, ownerToken, { recipientId: recipient, categories: ['technical'], access: ['history', 'stream'], dataFrom: new Date(Date.now() - 3_600_000).toISOString() });
  const car = await connectVehicle(a, vin, secret);
  const t0 = Date.now() - 60_000;
  await publish(car, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, t0, { technical: FULL_TECHNICAL }), record(2, t0 + 1000, { technical: FULL_TECHNICAL })]));
  return { recipient, role, vin, grant: grant as { id: string }, car };
}

async function register(gw: RunningGateway, recipient: string, body?: unknown) {
  const r = await api(gw, 'POST', `/v1/admin/recipients/${recipient}/clients`, body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body as { clientId: string; clientSecret?: string; authMethod: string };
}

async function tokenRequest(gw: RunningGateway, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(tokenUrl(gw), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form) });
  return { status: res.status, body: (await res.json()) as { access_token?: string; token_type?: string; expires_in?: number; error?: string; refresh_token?: string } };
}

const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}` });

/** The token works like a person's: GET /v1/grants lists the grant, its export has the records. */
async function readsThroughGrant(gw: RunningGateway, token: string, s: { recipient: string; role: string; grant: { id: string } }) {
  const [h, c] = claimsOf(token);
  expect(h.typ).toBe('at+jwt');
  expect(c).toMatchObject({ iss: issuer, sub: s.recipient, cardata_role: s.role, aud: AUD });
  const list = await api(gw, 'GET', '/v1/grants', undefined, token);
  expect(list.status, JSON.stringify(list.body)).toBe(200);
  expect((list.body.grants as { id: string }[]).map((g) => g.id)).toContain(s.grant.id);
  const exp = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/grants/${s.grant.id}/cardata`, { headers: { authorization: `Bearer ${token}` } });
  expect(exp.status).toBe(200);
  const lines = (await exp.text()).trim().split('\n').filter(Boolean);
  expect(lines.length).toBe(2);
}

describe('client credentials at the embedded provider', () => {
  it('client_secret_basic: the secret shown once works on either instance; the token reads what the grant allows', async () => {
    const s = await recipientWithGrant();
    const c = await register(a, s.recipient);
    expect(c.authMethod).toBe('client_secret_basic');
    expect(c.clientSecret).toBeTruthy();
    const r = await tokenRequest(b, { grant_type: 'client_credentials' }, basic(c.clientId, c.clientSecret!));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.token_type).toBe('Bearer');
    expect(r.body.expires_in).toBeLessThanOrEqual(120);
    expect(r.body.refresh_token).toBeUndefined();
    expect(claimsOf(r.body.access_token!)[1].sid).toBe(`client:${c.clientId}`);
    await readsThroughGrant(a, r.body.access_token!, s);
    await readsThroughGrant(b, r.body.access_token!, s);
    // Listed without the secret.
    const list = await api(a, 'GET', `/v1/admin/recipients/${s.recipient}/clients`);
    expect(list.body.clients).toEqual([expect.objectContaining({ clientId: c.clientId, authMethod: 'client_secret_basic' })]);
    expect(JSON.stringify(list.body)).not.toContain(c.clientSecret);
    await s.car.endAsync();
  });

  it('client_secret_post: the same client secret in the body', async () => {
    const s = await recipientWithGrant('workshop');
    const c = await register(b, s.recipient, {});
    const r = await tokenRequest(a, { grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret! });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await readsThroughGrant(a, r.body.access_token!, s);
    await s.car.endAsync();
  });

  it('private_key_jwt: a client assertion signed with the registered key (RFC 7523); a replayed or foreign-signed one is refused', async () => {
    const s = await recipientWithGrant();
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const c = await register(a, s.recipient, { jwks: { keys: [jwk] } });
    expect(c).toMatchObject({ authMethod: 'private_key_jwt' });
    expect(c.clientSecret).toBeUndefined();
    const assertion = async (key = privateKey, jti = randomUUID()) =>
      new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(c.clientId).setSubject(c.clientId).setAudience(tokenUrl(a)).setJti(jti).setIssuedAt().setExpirationTime('60s').sign(key);
    const form = (jwt: string) => ({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: jwt });
    const first = await assertion();
    const r = await tokenRequest(a, form(first));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await readsThroughGrant(b, r.body.access_token!, s);
    // The same assertion again (its jti seen): refused.
    expect((await tokenRequest(a, form(first))).body.error).toBe('invalid_client');
    const other = await generateKeyPair('ES256');
    expect((await tokenRequest(a, form(await assertion(other.privateKey)))).body.error).toBe('invalid_client');
    // A secret for this client is no way in.
    expect((await tokenRequest(a, { grant_type: 'client_credentials' }, basic(c.clientId, 'guess'))).body.error).toBe('invalid_client');
    await s.car.endAsync();
  });

  it('bad input: wrong secret, unknown client, another grant type, private keys or a symmetric key registered: each refused with its code', async () => {
    const s = await recipientWithGrant();
    const c = await register(a, s.recipient);
    expect(await tokenRequest(a, { grant_type: 'client_credentials' }, basic(c.clientId, `${c.clientSecret!}x`))).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(await tokenRequest(a, { grant_type: 'client_credentials' }, basic('svc_nobody', c.clientSecret!))).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect((await tokenRequest(a, { grant_type: 'refresh_token', refresh_token: 'x' }, basic(c.clientId, c.clientSecret!))).body).toMatchObject({ error: 'invalid_request', error_description: 'requested grant type is not allowed for this client' });
    // The stored hash is no secret: presenting it fails like any other wrong secret.
    const stored = await db.query<{ secret_hash: string }>('SELECT secret_hash FROM service_clients WHERE client_id = $1', [c.clientId]);
    expect(stored[0]!.secret_hash).toMatch(/^scrypt\$/);
    expect((await tokenRequest(a, { grant_type: 'client_credentials' }, basic(c.clientId, stored[0]!.secret_hash))).body.error).toBe('invalid_client');
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const priv = await exportJWK(privateKey);
    expect((await api(a, 'POST', `/v1/admin/recipients/${s.recipient}/clients`, { jwks: { keys: [priv] } })).body).toMatchObject({ status: 400, code: 'API_ERR_VALIDATION' });
    expect((await api(a, 'POST', `/v1/admin/recipients/${s.recipient}/clients`, { jwks: { keys: [{ kty: 'oct', k: 'AAAA' }] } })).body.code).toBe('API_ERR_VALIDATION');
    expect((await api(a, 'POST', `/v1/admin/recipients/${s.recipient}/clients`, { jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }] } })).body.code).toBe('API_ERR_VALIDATION');
    expect((await api(a, 'POST', '/v1/admin/recipients/nobody-registered/clients')).body).toMatchObject({ status: 404, code: 'API_ERR_NOT_FOUND' });
    expect((await api(a, 'GET', '/v1/admin/recipients/nobody-registered/clients')).body.code).toBe('API_ERR_NOT_FOUND');
    expect((await api(a, 'POST', `/v1/admin/recipients/${s.recipient}/clients`, undefined, null)).status).toBe(401);
    await s.car.endAsync();
  });
});

describe('deleting a service client', () => {
  it('ends its tokens and its open stream on both instances within a second; it gets no new token; the other client of the recipient goes on', async () => {
    const s = await recipientWithGrant();
    const gone = await register(a, s.recipient);
    const kept = await register(a, s.recipient);
    const t1 = (await tokenRequest(a, { grant_type: 'client_credentials' }, basic(gone.clientId, gone.clientSecret!))).body.access_token!;
    const t2 = (await tokenRequest(b, { grant_type: 'client_credentials' }, basic(kept.clientId, kept.clientSecret!))).body.access_token!;
    const stream = await openSse(b.httpPort, `/v1/grants/${s.grant.id}/stream`, t1);
    expect(stream.status).toBe(200);
    const keptStream = await openSse(a.httpPort, `/v1/grants/${s.grant.id}/stream`, t2);
    expect(keptStream.status).toBe(200);
    const t0 = Date.now();
    expect((await api(a, 'DELETE', `/v1/admin/recipients/${s.recipient}/clients/${gone.clientId}`)).status).toBe(204);
    // Here before the answer; there within a second, its stream too.
    expect((await api(a, 'GET', '/v1/grants', undefined, t1)).body.code).toBe('API_ERR_TOKEN_REVOKED');
    await stream.until((ev) => ev.some((e) => e.event === 'end'), 1500);
    const endedMs = Date.now() - t0;
    console.log(`service-clients: the deleted client's stream on the other instance ended ${endedMs} ms after the DELETE was sent`);
    expect(endedMs).toBeLessThan(1000);
    expect(JSON.parse(stream.events.find((e) => e.event === 'end')!.data).reason).toBe('token_revoked');
    expect((await api(b, 'GET', '/v1/grants', undefined, t1)).body).toMatchObject({ status: 401, code: 'API_ERR_TOKEN_REVOKED' });
    expect(await tokenRequest(b, { grant_type: 'client_credentials' }, basic(gone.clientId, gone.clientSecret!))).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    // The recipient's other client is untouched.
    expect((await api(b, 'GET', '/v1/grants', undefined, t2)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(keptStream.events.some((e) => e.event === 'end')).toBe(false);
    keptStream.close();
    const list = await api(b, 'GET', `/v1/admin/recipients/${s.recipient}/clients`);
    expect((list.body.clients as { clientId: string }[]).map((c) => c.clientId)).toEqual([kept.clientId]);
    expect((await api(a, 'DELETE', `/v1/admin/recipients/${s.recipient}/clients/${gone.clientId}`)).body).toMatchObject({ status: 404, code: 'API_ERR_NOT_FOUND' });
    expect((await api(a, 'DELETE', `/v1/admin/recipients/nobody-registered/clients/${kept.clientId}`)).body.code).toBe('API_ERR_NOT_FOUND');
    // Another recipient's path does not reach this client.
    const other = await recipientWithGrant();
    expect((await api(a, 'DELETE', `/v1/admin/recipients/${other.recipient}/clients/${kept.clientId}`)).body.code).toBe('API_ERR_NOT_FOUND');
    expect((await api(b, 'GET', '/v1/grants', undefined, t2)).status).toBe(200);
    await s.car.endAsync();
    await other.car.endAsync();
  });
});

describe('an external provider\'s client-credentials tokens', () => {
  it('map like people\'s: OIDC_SUBJECT_CLAIM names the recipient, OIDC_ROLE_CLAIM its role', async () => {
    const s = await recipientWithGrant();
    const now = Math.floor(Date.now() / 1000);
    // What an external provider issues for grant_type=client_credentials (RFC 9068 §2.2: sub is the client's).
    const token = await idp.sign({ iss: idp.issuer, aud: AUD, sub: s.recipient, client_id: `ext-${s.recipient}`, cardata_role: 'third_party', iat: now, exp: now + 300, jti: randomUUID() });
    const list = await api(b, 'GET', '/v1/grants', undefined, token);
    expect(list.status).toBe(200);
    expect((list.body.grants as { id: string }[]).map((g) => g.id)).toEqual([s.grant.id]);
    // Without the role claim it is no recipient.
    const noRole = await idp.sign({ iss: idp.issuer, aud: AUD, sub: s.recipient, client_id: 'x', iat: now, exp: now + 300 });
    expect((await api(b, 'GET', '/v1/grants', undefined, noRole)).body.code).toBe('API_ERR_TOKEN_CLAIMS');
    await s.car.endAsync();
  });
});
