// Sign-in through the real path: the embedded OpenID Provider under /oidc (Authorization
// Code + PKCE driven over HTTP), an external provider in its own process with its own keys,
// the gateway's own minted tokens and their revocation, and every kind of bad token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, api, provision, startTestGateway, testVin, waitFor } from '../helpers/gateway.ts';
import { SignInFailed, TEST_REDIRECT_URI, signInWithCode, startExternalIdp, type ExternalIdp } from '../helpers/oidc.ts';
import { killAllChildren } from '../helpers/child.ts';
import type { RunningGateway } from '../../main.ts';

const JWT_KEYS = 'signin1:sign-in-test-signing-secret-0123456789abcdef';
const AUDIENCE = 'urn:cardata-gateway:api';

let db: TestDatabase;
let idp: ExternalIdp;
/** Trusts the external provider and runs the embedded one. */
let gw: RunningGateway;
/** Same database, embedded provider only (the external one is foreign to it). */
let gwB: RunningGateway;

const base = (g: RunningGateway) => `http://127.0.0.1:${g.httpPort}`;
type Res = { status: number; body: any; headers: Headers };

function expectProblem(r: Res, status: number, code: string): void {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, code });
}

const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const dec = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  db = await createTestDatabase();
  idp = await startExternalIdp();
  const common = { JWT_KEYS, OIDC_PORTAL_REDIRECT_URIS: TEST_REDIRECT_URI, OIDC_JWKS_COOLDOWN_S: '0' };
  gw = await startTestGateway(db.url, { ...common, OIDC_ISSUER: idp.issuer, OIDC_EMBEDDED: 'on' });
  gwB = await startTestGateway(db.url, common);
});
afterAll(async () => {
  await gwB?.close();
  await gw?.close();
  await idp?.stop();
  killAllChildren();
  await db?.drop();
});

async function account(username: string, role: string, subject = username, password = `pw-${username}-0123456789`): Promise<string> {
  const r = await api(gw, 'POST', '/v1/admin/accounts', { username, password, role, subject });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect(r.body).toMatchObject({ username, role, subject });
  expect(r.body).not.toHaveProperty('password');
  return password;
}

/** A vehicle owned by `owner` and the route only its owner may read. */
async function ownedVehicle(owner: string): Promise<string> {
  const { vin } = await provision(gw, testVin(), owner);
  return `/v1/vehicles/${vin}/consent`;
}

const extClaims = (over: Record<string, unknown> = {}) => ({ iss: idp.issuer, aud: AUDIENCE, sub: 'ext-owner', cardata_role: 'customer', iat: now(), exp: now() + 600, jti: `ext-${Math.random()}`, ...over });

describe('embedded OpenID Provider (Authorization Code + PKCE)', () => {
  it('serves discovery under /oidc with the S256 PKCE method and the gateway issuer', async () => {
    const r = await api(gw, 'GET', '/oidc/.well-known/openid-configuration', undefined, null);
    expect(r.status).toBe(200);
    expect(r.body.issuer).toBe(`${base(gw)}/oidc`);
    expect(r.body.code_challenge_methods_supported).toEqual(['S256']);
    expect(r.body.jwks_uri).toBe(`${base(gw)}/oidc/jwks`);
    const jwks = await api(gw, 'GET', '/oidc/jwks', undefined, null);
    expect(jwks.body.keys).toHaveLength(1);
    expect(jwks.body.keys[0]).not.toHaveProperty('d'); // public half only
  });

  it('a customer signs in; the access token is a JWT for the API audience with sub and role, and reads their vehicle', async () => {
    const password = await account('alice', 'customer', 'owner-alice');
    const route = await ownedVehicle('owner-alice');
    const t = await signInWithCode(base(gw), { username: 'alice', password });
    const [h, p] = t.accessToken.split('.');
    expect(dec(h!)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    expect(dec(p!)).toMatchObject({ iss: `${base(gw)}/oidc`, aud: AUDIENCE, sub: 'owner-alice', cardata_role: 'customer', client_id: 'cardata-portal' });
    expect(t.idToken).toBeTypeOf('string');
    const ok = await api(gw, 'GET', route, undefined, t.accessToken);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    // Another person's vehicle: as for any customer, 404.
    const other = await ownedVehicle('owner-someone-else');
    expectProblem(await api(gw, 'GET', other, undefined, t.accessToken), 404, 'API_ERR_NOT_FOUND');
  });

  it('the role comes from the account: an authority account reaches the authority report, not a customer route', async () => {
    const password = await account('kba-1', 'authority');
    const t = await signInWithCode(base(gw), { username: 'kba-1', password });
    const from = new Date(Date.now() - 86_400_000).toISOString();
    const r = await fetch(`${base(gw)}/v1/reports/obfcm?from=${from}&to=${new Date().toISOString()}`, { headers: { authorization: `Bearer ${t.accessToken}` } });
    expect(r.status, await r.clone().text()).toBe(200);
    expectProblem(await api(gw, 'GET', await ownedVehicle('kba-1'), undefined, t.accessToken), 403, 'API_ERR_FORBIDDEN');
  });

  it('a workshop and a third party sign in with their roles', async () => {
    for (const role of ['workshop', 'third_party']) {
      const username = `acct-${role}`;
      const password = await account(username, role, `rcpt-${role}`);
      const t = await signInWithCode(base(gw), { username, password });
      expect(dec(t.accessToken.split('.')[1]!)).toMatchObject({ sub: `rcpt-${role}`, cardata_role: role });
      // Verified (not 401): a customer route refuses the role with 403.
      expectProblem(await api(gw, 'GET', await ownedVehicle(`rcpt-${role}`), undefined, t.accessToken), 403, 'API_ERR_FORBIDDEN');
    }
  });

  it('a wrong password or unknown user gets the form again with 401, and no code', async () => {
    await account('bob', 'customer');
    for (const [username, password] of [['bob', 'not-bobs-password-123'], ['nobody', 'whatever-password-1']] as const) {
      const err = await signInWithCode(base(gw), { username, password }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SignInFailed);
      expect((err as SignInFailed).status).toBe(401);
      expect((err as SignInFailed).body).toContain('Unknown username or wrong password');
    }
  });

  it('PKCE is required: an authorization request without a code challenge never yields a code', async () => {
    const password = await account('carol', 'customer');
    const err = await signInWithCode(base(gw), { username: 'carol', password, withoutPkce: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignInFailed);
    expect((err as SignInFailed).location ?? '').toMatch(/error=invalid_request/);
  });

  it('an unregistered redirect URI is refused by the provider', async () => {
    const password = await account('dave', 'customer');
    const err = await signInWithCode(base(gw), { username: 'dave', password, redirectUri: 'http://127.0.0.1:9/evil' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignInFailed);
    expect((err as SignInFailed).status).toBe(400);
  });

  it('the signing key is made once and kept in the database: a second instance publishes the same key', async () => {
    const a = await api(gw, 'GET', '/oidc/jwks', undefined, null);
    const b = await api(gwB, 'GET', '/oidc/jwks', undefined, null);
    expect(b.body.keys.map((k: { kid: string }) => k.kid)).toEqual(a.body.keys.map((k: { kid: string }) => k.kid));
    expect(await db.query("SELECT name FROM oidc_keys ORDER BY name")).toEqual([{ name: 'cookie-keys' }, { name: 'signing-rs256' }]);
  });

  it('accounts: 409 for a taken username or subject, 400 for a bad body or role, 401 without the admin token; passwords stored as scrypt', async () => {
    await account('erin', 'customer', 'subj-erin');
    expectProblem(await api(gw, 'POST', '/v1/admin/accounts', { username: 'erin', password: 'another-password-1', role: 'customer' }), 409, 'API_ERR_CONFLICT');
    expectProblem(await api(gw, 'POST', '/v1/admin/accounts', { username: 'erin2', password: 'another-password-1', role: 'customer', subject: 'subj-erin' }), 409, 'API_ERR_CONFLICT');
    for (const bad of [
      { username: 'x1', password: 'short', role: 'customer' },
      { username: 'x2', password: 'long-enough-password', role: 'admin' },
      { username: 'has space', password: 'long-enough-password', role: 'customer' },
      { username: "x3'; DROP TABLE accounts;--", password: 'long-enough-password', role: 'customer' },
      { username: 'x4', password: 'long-enough-password', role: 'customer', extra: 1 },
    ]) {
      expectProblem(await api(gw, 'POST', '/v1/admin/accounts', bad), 400, 'API_ERR_VALIDATION');
    }
    expectProblem(await api(gw, 'POST', '/v1/admin/accounts', { username: 'x5', password: 'long-enough-password', role: 'customer' }, null), 401, 'API_ERR_UNAUTHORIZED');
    const rows = await db.query<{ password_hash: string }>("SELECT password_hash FROM accounts WHERE username = 'erin'");
    expect(rows[0]!.password_hash).toMatch(/^scrypt\$32768\$8\$3\$/);
    expect(rows[0]!.password_hash).not.toContain('pw-erin');
    const list = await api(gw, 'GET', '/v1/admin/accounts');
    expect(list.body.accounts.map((a: { username: string }) => a.username)).toContain('erin');
    expect(JSON.stringify(list.body)).not.toContain('scrypt');
    expect((await api(gw, 'DELETE', '/v1/admin/accounts/erin')).status).toBe(204);
    expectProblem(await api(gw, 'DELETE', '/v1/admin/accounts/erin'), 404, 'API_ERR_NOT_FOUND');
    const err = await signInWithCode(base(gw), { username: 'erin', password: 'pw-erin-0123456789' }).catch((e: unknown) => e);
    expect((err as SignInFailed).status).toBe(401);
  });
});
