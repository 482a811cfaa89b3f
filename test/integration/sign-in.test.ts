// Sign-in through the real path: the embedded OpenID Provider under /oidc (Authorization
// Code + PKCE driven over HTTP), an external provider in its own process with its own keys,
// the gateway's own minted tokens and their revocation, and every kind of bad token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, api, provision, startTestGateway, testVin, waitFor } from '../helpers/gateway.ts';
import { SignInFailed, TEST_REDIRECT_URI, signInWithCode, startExternalIdp, type ExternalIdp } from '../helpers/oidc.ts';
import { killAllChildren, runChild } from '../helpers/proc.ts';
import type { RunningGateway } from '../../app/gateway.ts';

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

describe('external OpenID Provider (its own process, its own keys)', () => {
  it('its tokens are accepted where it is trusted, refused (API_ERR_TOKEN_ISSUER) where it is not; the embedded provider\'s tokens work beside it', async () => {
    const route = await ownedVehicle('ext-owner');
    const t = await idp.sign(extClaims());
    const ok = await api(gw, 'GET', route, undefined, t);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expectProblem(await api(gwB, 'GET', route, undefined, t), 401, 'API_ERR_TOKEN_ISSUER');
    // The embedded provider's token on the instance that also trusts the external one.
    const password = await account('ext-owner-login', 'customer', 'ext-owner');
    const e = await signInWithCode(base(gw), { username: 'ext-owner-login', password });
    expect((await api(gw, 'GET', route, undefined, e.accessToken)).status).toBe(200);
    // gwB's own provider is another issuer (its own address): gw does not trust it.
    const own = await signInWithCode(base(gwB), { username: 'ext-owner-login', password });
    expect((await api(gwB, 'GET', route, undefined, own.accessToken)).status).toBe(200);
    expectProblem(await api(gw, 'GET', route, undefined, own.accessToken), 401, 'API_ERR_TOKEN_ISSUER');
  });

  it('subject and role come from the configured claims; a role array with exactly one known role counts', async () => {
    const route = await ownedVehicle('ext-array');
    expect((await api(gw, 'GET', route, undefined, await idp.sign(extClaims({ sub: 'ext-array', cardata_role: ['offline_access', 'customer'] })))).status).toBe(200);
    for (const role of [undefined, 'admin', ['customer', 'authority'], 42]) {
      const t = await idp.sign(extClaims({ sub: 'ext-array', cardata_role: role }));
      expectProblem(await api(gw, 'GET', route, undefined, t), 401, 'API_ERR_TOKEN_CLAIMS');
    }
  });

  it('key rotation at the issuer is picked up: a token with the new key id makes the gateway fetch the JWKS again', async () => {
    const route = await ownedVehicle('ext-rot');
    const oldTok = await idp.sign(extClaims({ sub: 'ext-rot' }));
    expect((await api(gw, 'GET', route, undefined, oldTok)).status).toBe(200);
    const before = (await idp.state()).jwksHits;
    const { kid, retired } = await idp.rotate(true);
    const t = await idp.sign(extClaims({ sub: 'ext-rot' }));
    expect(JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()).kid).toBe(kid);
    expect((await api(gw, 'GET', route, undefined, t)).status).toBe(200);
    expect((await idp.state()).jwksHits).toBeGreaterThan(before);
    // The old key was retired from the JWKS the gateway has just fetched: what it signed
    // (a token accepted a moment ago) is refused now.
    expect(retired).not.toBeNull();
    expectProblem(await api(gw, 'GET', route, undefined, oldTok), 401, 'API_ERR_TOKEN_INVALID');
  });

  it('bad tokens: each refused with 401 and its own code', async () => {
    const route = await ownedVehicle('ext-bad');
    const good = await idp.sign(extClaims({ sub: 'ext-bad' }));
    expect((await api(gw, 'GET', route, undefined, good)).status).toBe(200);
    const [h, p, s] = good.split('.') as [string, string, string];
    const st = await idp.state();
    const pubJwkAsSecret = JSON.stringify(st.publicJwk);
    const hsHead = enc({ alg: 'HS256', typ: 'JWT', kid: st.signing });
    const cases: [string, string, string][] = [
      ['expired', await idp.sign(extClaims({ sub: 'ext-bad', iat: now() - 7200, exp: now() - 3600 })), 'API_ERR_TOKEN_EXPIRED'],
      ['not yet valid (nbf)', await idp.sign(extClaims({ sub: 'ext-bad', nbf: now() + 3600 })), 'API_ERR_TOKEN_NOT_YET_VALID'],
      ['tampered payload', `${h}.${enc({ ...dec(p), sub: 'ext-bad-2', cardata_role: 'authority' })}.${s}`, 'API_ERR_TOKEN_INVALID'],
      ['tampered signature', `${h}.${p}.${(s[0] === 'A' ? 'B' : 'A') + s.slice(1)}`, 'API_ERR_TOKEN_INVALID'],
      ['wrong audience', await idp.sign(extClaims({ sub: 'ext-bad', aud: 'urn:another:api' })), 'API_ERR_TOKEN_AUDIENCE'],
      ['no audience', await idp.sign(extClaims({ sub: 'ext-bad', aud: undefined })), 'API_ERR_TOKEN_AUDIENCE'],
      ['wrong issuer', await idp.sign(extClaims({ sub: 'ext-bad', iss: 'http://127.0.0.1:1/not-trusted' })), 'API_ERR_TOKEN_ISSUER'],
      ['no issuer', await idp.sign(extClaims({ sub: 'ext-bad', iss: undefined })), 'API_ERR_TOKEN_ISSUER'],
      ['HS256 signed with the public key', `${hsHead}.${p}.${createHmac('sha256', pubJwkAsSecret).update(`${hsHead}.${p}`).digest('base64url')}`, 'API_ERR_TOKEN_ALGORITHM'],
      ['alg none', `${enc({ alg: 'none', typ: 'JWT' })}.${p}.`, 'API_ERR_TOKEN_ALGORITHM'],
      ['unknown key id', await idp.sign(extClaims({ sub: 'ext-bad' }), { header: { kid: 'no-such-key' } }), 'API_ERR_TOKEN_INVALID'],
      ['not a JWT', 'not.a.jwt', 'API_ERR_TOKEN_INVALID'],
      ['SQL-looking', "x'OR'1'='1';--", 'API_ERR_TOKEN_INVALID'],
      ['no subject', await idp.sign(extClaims({ sub: undefined })), 'API_ERR_TOKEN_CLAIMS'],
    ];
    for (const [name, token, code] of cases) {
      const r = await api(gw, 'GET', route, undefined, token);
      expect([r.status, r.body.code], name).toEqual([401, code]);
      expect(r.headers.get('content-type'), name).toMatch(/^application\/problem\+json/);
    }
  });

  it('the JWKS endpoint unreachable: 503 API_ERR_IDP_UNAVAILABLE, never an accepted token', async () => {
    const other = await startExternalIdp();
    const gwC = await startTestGateway(db.url, { JWT_KEYS, OIDC_ISSUER: other.issuer, OIDC_FETCH_TIMEOUT_MS: '1000', OIDC_JWKS_COOLDOWN_S: '0' });
    try {
      const route = `/v1/vehicles/${testVin()}/consent`;
      const claims = { iss: other.issuer, aud: AUDIENCE, sub: 'c-owner', cardata_role: 'customer', iat: now(), exp: now() + 600 };
      const first = await other.sign(claims);
      // Known to the gateway (200 or 404 are both "accepted": the VIN is nobody's).
      expectProblem(await api(gwC, 'GET', route, undefined, first), 404, 'API_ERR_NOT_FOUND');
      await other.rotate();
      const fresh = await other.sign(claims);
      await other.stop();
      // A key the gateway has not seen, and the issuer gone: it cannot know, so it does not accept.
      expectProblem(await api(gwC, 'GET', route, undefined, fresh), 503, 'API_ERR_IDP_UNAVAILABLE');
      // Nothing answering on the issuer address at all (discovery itself fails).
      const gwD = await startTestGateway(db.url, { JWT_KEYS, OIDC_ISSUER: other.issuer, OIDC_EMBEDDED: 'off', OIDC_FETCH_TIMEOUT_MS: '1000' });
      try {
        expectProblem(await api(gwD, 'GET', route, undefined, first), 503, 'API_ERR_IDP_UNAVAILABLE');
        // Minted tokens do not depend on the provider.
        const m = await api(gwD, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'c-owner' });
        expectProblem(await api(gwD, 'GET', route, undefined, m.body.token), 404, 'API_ERR_NOT_FOUND');
      } finally {
        await gwD.close();
      }
    } finally {
      await gwC.close();
      await other.stop();
    }
  });
});

describe("the gateway's own minted tokens", () => {
  it('carry iss and jti, are capped at TOKEN_TTL_S (longer: 400), and verify on another instance with the same JWT_KEYS', async () => {
    const route = await ownedVehicle('minted-owner');
    const r = await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'minted-owner', ttlSeconds: 600 });
    expect(r.status).toBe(201);
    const claims = dec(r.body.token.split('.')[1]);
    expect(claims).toMatchObject({ iss: 'cardata-gateway', sub: 'minted-owner', role: 'customer', jti: r.body.jti });
    expect((claims.exp as number) - (claims.iat as number)).toBe(600);
    expect((await api(gwB, 'GET', route, undefined, r.body.token)).status).toBe(200);
    expectProblem(await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'x', ttlSeconds: 3601 }), 400, 'API_ERR_VALIDATION');
    expect((await api(gw, 'POST', '/v1/admin/tokens', { role: 'third_party', subject: 'svc-1' })).status).toBe(201);
  });

  it('revocation: DELETE /v1/admin/tokens/{jti} → 204; refused on this instance at once and on the other within a second; 404 unknown, 400 malformed', async () => {
    const route = await ownedVehicle('revoke-owner');
    const r = await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'revoke-owner' });
    const keep = await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'revoke-owner' });
    expect((await api(gw, 'GET', route, undefined, r.body.token)).status).toBe(200);
    expect((await api(gwB, 'GET', route, undefined, r.body.token)).status).toBe(200);
    const del = await api(gw, 'DELETE', `/v1/admin/tokens/${r.body.jti}`);
    expect(del.status).toBe(204);
    const t0 = Date.now();
    expectProblem(await api(gw, 'GET', route, undefined, r.body.token), 401, 'API_ERR_TOKEN_REVOKED');
    await waitFor(async () => (await api(gwB, 'GET', route, undefined, r.body.token)).status === 401, 1000, 20);
    expect(Date.now() - t0).toBeLessThan(1000);
    expectProblem(await api(gwB, 'GET', route, undefined, r.body.token), 401, 'API_ERR_TOKEN_REVOKED');
    // Only that token: another of the same subject still works.
    expect((await api(gwB, 'GET', route, undefined, keep.body.token)).status).toBe(200);
    expect((await api(gw, 'DELETE', `/v1/admin/tokens/${r.body.jti}`)).status).toBe(204);
    expectProblem(await api(gw, 'DELETE', '/v1/admin/tokens/00000000-0000-4000-8000-000000000000'), 404, 'API_ERR_NOT_FOUND');
    for (const bad of ['not-a-uuid', "1'%20OR%20'1'%3D'1", 'x'.repeat(80)]) expectProblem(await api(gw, 'DELETE', `/v1/admin/tokens/${bad}`), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'DELETE', `/v1/admin/tokens/${keep.body.jti}`, undefined, keep.body.token), 401, 'API_ERR_UNAUTHORIZED');
    // A fresh instance loads the deny list from the database.
    const gwE = await startTestGateway(db.url, { JWT_KEYS, OIDC_EMBEDDED: 'off' });
    try {
      expectProblem(await api(gwE, 'GET', route, undefined, r.body.token), 401, 'API_ERR_TOKEN_REVOKED');
    } finally {
      await gwE.close();
    }
  });

  it('a token signed with a JWT_KEYS key but claiming a lifetime over TOKEN_TTL_S is refused', async () => {
    const { createTokenService, parseKeys } = await import('../../identity/tokens.ts');
    const long = await createTokenService(parseKeys(JWT_KEYS)).sign({ role: 'customer', subject: 'minted-owner', ttlSeconds: 7200 });
    expectProblem(await api(gw, 'GET', await ownedVehicle('long-owner'), undefined, long.token), 401, 'API_ERR_TOKEN_INVALID');
  });

  it('no admin token in the logs or answers: the admin token is no bearer token for the API', async () => {
    expectProblem(await api(gw, 'GET', await ownedVehicle('admin-try'), undefined, ADMIN_TOKEN), 401, 'API_ERR_TOKEN_INVALID');
  });
});

describe('the CLI', () => {
  const cli = (env: Record<string, string>, ...args: string[]) => runChild(process.execPath, ['--import', 'tsx', 'cli/index.ts', ...args], { DATABASE_URL: db.url, JWT_KEYS, ...env }, 60_000);

  it('account creates a person who signs in with the password shown once; revoke-token revokes a minted token on the running gateways', async () => {
    const made = await cli({}, 'account', '--username', 'cli-person', '--role', 'customer', '--subject', 'cli-owner');
    expect(made.code, made.stderr).toBe(0);
    const password = /password \(shown once\): (\S+)/.exec(made.stdout)?.[1];
    expect(password).toBeTypeOf('string');
    const route = await ownedVehicle('cli-owner');
    const t = await signInWithCode(base(gw), { username: 'cli-person', password: password! });
    expect((await api(gw, 'GET', route, undefined, t.accessToken)).status).toBe(200);
    const again = await cli({}, 'account', '--username', 'cli-person', '--role', 'customer');
    expect(again.code).toBe(3);
    expect((await cli({}, 'account', '--username', 'cli-x', '--role', 'root')).code).toBe(2);

    const m = await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: 'cli-owner' });
    expect((await api(gwB, 'GET', route, undefined, m.body.token)).status).toBe(200);
    const rv = await cli({}, 'revoke-token', '--jti', m.body.jti);
    expect(rv.code, rv.stderr).toBe(0);
    // The CLI's NOTIFY reaches both running instances.
    for (const g of [gw, gwB]) await waitFor(async () => (await api(g, 'GET', route, undefined, m.body.token)).body.code === 'API_ERR_TOKEN_REVOKED', 2000, 20);
    expect((await cli({}, 'revoke-token', '--jti', '00000000-0000-4000-8000-000000000000')).code).toBe(4);
    expect((await cli({}, 'revoke-token', '--jti', 'nope')).code).toBe(2);
  }, 240_000);
});
