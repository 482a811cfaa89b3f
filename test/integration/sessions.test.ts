// Sessions that end (README "Sign-in", "Sessions and revocation"): short access tokens and
// rotating refresh tokens from the embedded provider, sign-out that ends the session, one
// revocation of a subject that reaches minted, embedded and external tokens on every
// instance, streams that end with their token (expiry, revocation) and resume with a
// fresh one exactly once, access tokens that must say they are (typ at+jwt), and a
// principal that is (issuer, subject). Two gateway processes share one database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway, FULL_TECHNICAL } from '../helpers/gateway.ts';
import { mintToken } from '../helpers/grants.ts';
import { freePort } from '../../devkit/spawn.ts';
import { openSse, type SseClient } from '../helpers/sse.ts';
import { TEST_REDIRECT_URI, refreshWith, signInWithCode, signOut, startExternalIdp, type ExternalIdp } from '../helpers/oidc.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let a: RunningGateway;
let b: RunningGateway;
let idp: ExternalIdp;
const AUD = 'urn:cardata-gateway:api';

beforeAll(async () => {
  db = await createTestDatabase();
  idp = await startExternalIdp();
  // One issuer for both instances, as behind a balancer: PUBLIC_URL names it.
  const portA = await freePort();
  const env = {
    PUBLIC_URL: `http://127.0.0.1:${portA}`,
    JWT_KEYS: 'k1:sessions-test-key-0123456789abcdef0123456',
    OIDC_ISSUER: idp.issuer,
    OIDC_EMBEDDED: 'on',
    OIDC_ACCESS_TOKEN_TTL_S: '60',
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
const base = (gw: RunningGateway) => `http://127.0.0.1:${gw.httpPort}`;
const topic = (vin: string) => `v1/vehicles/${vin}/telemetry`;
const ended = (s: SseClient) => s.events.find((e) => e.event === 'end');
const endOf = (s: SseClient) => JSON.parse(ended(s)!.data) as { reason: string; resumeFrom: string | null };

async function account(role = 'customer') {
  const username = uniq('person');
  const password = 'a long enough password';
  expect((await api(a, 'POST', '/v1/admin/accounts', { username, password, role })).status).toBe(201);
  return { username, password, subject: username };
}

describe('the embedded provider: short access, rotating refresh, sign-out', () => {
  it('access tokens live OIDC_ACCESS_TOKEN_TTL_S and carry typ at+jwt and sid; the portal gets a refresh token without offline_access', async () => {
    const p = await account();
    const s = await signInWithCode(base(a), p);
    expect(s.expiresIn).toBeLessThanOrEqual(60);
    expect(s.expiresIn).toBeGreaterThan(50);
    const [h, body] = s.accessToken.split('.').slice(0, 2).map((x) => JSON.parse(Buffer.from(x, 'base64url').toString()) as Record<string, unknown>);
    expect(h!.typ).toBe('at+jwt');
    expect(typeof body!.sid).toBe('string');
    expect(s.refreshToken).toBeTruthy();
    expect((await api(b, 'GET', '/v1/vehicles', undefined, s.accessToken)).status).toBe(200);
  });

  it('a refresh gives a new access and refresh token; the spent refresh token is refused, and its reuse ends the whole family', async () => {
    const p = await account();
    const s = await signInWithCode(base(a), p);
    const r1 = await refreshWith(base(a), s.refreshToken!);
    expect(r1.status).toBe(200);
    expect(r1.body.refresh_token).toBeTruthy();
    expect(r1.body.refresh_token).not.toBe(s.refreshToken);
    expect((await api(a, 'GET', '/v1/vehicles', undefined, r1.body.access_token)).status).toBe(200);
    // The spent one again: refused, and the one it was exchanged for dies with it.
    const again = await refreshWith(base(b), s.refreshToken!);
    expect(again).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect((await refreshWith(base(a), r1.body.refresh_token!)).body.error).toBe('invalid_grant');
  });

  it('bad refresh tokens get invalid_grant and cost no one else their session', async () => {
    const p = await account();
    const s = await signInWithCode(base(a), p);
    for (const bad of ['', 'not-a-token', `${s.refreshToken!}x`, s.accessToken]) {
      const r = await refreshWith(base(a), bad);
      expect(r.status, bad).toBe(400);
      expect(['invalid_grant', 'invalid_request']).toContain(r.body.error);
    }
    expect((await refreshWith(base(a), s.refreshToken!, 'another-client')).status).toBeGreaterThanOrEqual(400);
    expect((await refreshWith(base(a), s.refreshToken!)).status).toBe(200);
  });

  it('sign-out ends the session: its refresh token and its access tokens are refused, on both instances', async () => {
    const p = await account();
    const s = await signInWithCode(base(a), p);
    const r1 = await refreshWith(base(a), s.refreshToken!);
    expect(r1.status).toBe(200);
    expect(await signOut(base(a), { ...s, refreshToken: r1.body.refresh_token })).toBeLessThan(400);
    expect((await refreshWith(base(a), r1.body.refresh_token!)).body.error).toBe('invalid_grant');
    expect((await api(a, 'GET', '/v1/vehicles', undefined, s.accessToken)).body.code).toBe('API_ERR_TOKEN_REVOKED');
    await expectWithin(1000, async () => (await api(b, 'GET', '/v1/vehicles', undefined, r1.body.access_token)).body.code === 'API_ERR_TOKEN_REVOKED');
    // A new sign-in is a new session.
    const again = await signInWithCode(base(a), p);
    expect((await api(b, 'GET', '/v1/vehicles', undefined, again.accessToken)).status).toBe(200);
  });

  it('"no, stay signed in" on the sign-out page keeps the session: its access tokens stay valid, the next sign-in works', async () => {
    const p = await account();
    const s = await signInWithCode(base(a), p);
    expect(await signOut(base(a), s, 'cardata-portal', false)).toBeLessThan(400);
    await new Promise((r) => setTimeout(r, 300));
    expect((await api(b, 'GET', '/v1/vehicles', undefined, s.accessToken)).status).toBe(200);
    const again = await signInWithCode(base(a), p);
    expect((await api(b, 'GET', '/v1/vehicles', undefined, again.accessToken)).status).toBe(200);
  });

  it('a new password ends the sessions before it: access and refresh tokens refused on both instances; the new password signs in', async () => {
    const p = await account();
    const s = await signInWithCode(base(a), p);
    const password = 'the new long password';
    expect((await api(b, 'PUT', `/v1/admin/accounts/${p.username}/password`, { password })).status).toBe(204);
    expect((await api(b, 'GET', '/v1/vehicles', undefined, s.accessToken)).body.code).toBe('API_ERR_TOKEN_REVOKED');
    await expectWithin(1000, async () => (await api(a, 'GET', '/v1/vehicles', undefined, s.accessToken)).body.code === 'API_ERR_TOKEN_REVOKED');
    expect((await refreshWith(base(a), s.refreshToken!)).body.error).toBe('invalid_grant');
    await new Promise((r) => setTimeout(r, 1100)); // iat counts in seconds
    const again = await signInWithCode(base(a), { username: p.username, password });
    expect((await api(b, 'GET', '/v1/vehicles', undefined, again.accessToken)).status).toBe(200);
  });

  it('deleting the account refuses its access and refresh tokens at once, on both instances', async () => {
    const p = await account();
    const s = await signInWithCode(base(a), p);
    expect((await api(a, 'DELETE', `/v1/admin/accounts/${p.username}`)).status).toBe(204);
    expect((await api(a, 'GET', '/v1/vehicles', undefined, s.accessToken)).body.code).toBe('API_ERR_TOKEN_REVOKED');
    await expectWithin(1000, async () => (await api(b, 'GET', '/v1/vehicles', undefined, s.accessToken)).body.code === 'API_ERR_TOKEN_REVOKED');
    expect((await refreshWith(base(b), s.refreshToken!)).body.error).toBe('invalid_grant');
  });
});

describe('POST /v1/admin/revocations', () => {
  it('refuses every token of the subject issued before it, minted and external, on both instances; later ones work; the same subject at another issuer is another person', async () => {
    const subject = uniq('revoked');
    const minted = await mintToken(a, 'customer', subject);
    const ext = await idp.sign({ iss: idp.issuer, aud: AUD, sub: subject, cardata_role: 'customer', iat: Math.floor(Date.now() / 1000) - 5, exp: Math.floor(Date.now() / 1000) + 600 });
    expect((await api(b, 'GET', '/v1/vehicles', undefined, ext)).status).toBe(200);
    // At the external issuer only: the minted token of the same subject is someone else's.
    expect((await api(a, 'POST', '/v1/admin/revocations', { subject, issuer: idp.issuer })).status).toBe(204);
    expect((await api(a, 'GET', '/v1/vehicles', undefined, ext)).body.code).toBe('API_ERR_TOKEN_REVOKED');
    expect((await api(a, 'GET', '/v1/vehicles', undefined, minted)).status).toBe(200);
    // Everywhere.
    expect((await api(a, 'POST', '/v1/admin/revocations', { subject })).status).toBe(204);
    expect((await api(a, 'GET', '/v1/vehicles', undefined, minted)).body.code).toBe('API_ERR_TOKEN_REVOKED');
    await expectWithin(1000, async () => (await api(b, 'GET', '/v1/vehicles', undefined, minted)).body.code === 'API_ERR_TOKEN_REVOKED');
    // Issued after it (the next second: iat counts in seconds): accepted.
    await new Promise((r) => setTimeout(r, 1100));
    expect((await api(b, 'GET', '/v1/vehicles', undefined, await mintToken(b, 'customer', subject))).status).toBe(200);
  });

  it('bad input: an untrusted issuer or no subject is refused (400); an unknown subject is a recorded no-op (204); no admin token 401', async () => {
    expect((await api(a, 'POST', '/v1/admin/revocations', { subject: 'x', issuer: 'https://nobody.example' })).body.code).toBe('API_ERR_VALIDATION');
    expect((await api(a, 'POST', '/v1/admin/revocations', {})).body.code).toBe('API_ERR_VALIDATION');
    expect((await api(a, 'POST', '/v1/admin/revocations', { subject: uniq('never-seen') })).status).toBe(204);
    expect((await api(a, 'POST', '/v1/admin/revocations', { subject: 'x' }, null)).status).toBe(401);
  });
});

describe('access tokens must say they are', () => {
  it('an external token without typ at+jwt (an ID token, say) is refused with API_ERR_TOKEN_TYPE', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: idp.issuer, aud: AUD, sub: uniq('typ'), cardata_role: 'customer', iat: now, exp: now + 600 };
    expect((await api(a, 'GET', '/v1/vehicles', undefined, await idp.sign(claims, { header: { typ: 'JWT' } }))).body.code).toBe('API_ERR_TOKEN_TYPE');
    expect((await api(a, 'GET', '/v1/vehicles', undefined, await idp.sign(claims, { header: { typ: 'application/at+jwt' } }))).status).toBe(200);
  });
});

describe('a principal is (issuer, subject)', () => {
  it('with OIDC_SUBJECT_PREFIX, an external subject equal to an account\'s subject is not that account\'s owner', async () => {
    const c = await startTestGateway(db.url, { JWT_KEYS: 'k1:sessions-test-key-0123456789abcdef0123456', OIDC_ISSUER: idp.issuer, OIDC_EMBEDDED: 'on', OIDC_SUBJECT_PREFIX: 'ext:', OIDC_PORTAL_REDIRECT_URIS: TEST_REDIRECT_URI });
    try {
      const p = await account();
      const { vin } = await provision(c, undefined, p.subject);
      const { vin: extVin } = await provision(c, undefined, `ext:${p.subject}`);
      const now = Math.floor(Date.now() / 1000);
      const ext = await idp.sign({ iss: idp.issuer, aud: AUD, sub: p.subject, cardata_role: 'customer', iat: now, exp: now + 600 });
      const embedded = (await signInWithCode(`http://127.0.0.1:${c.httpPort}`, p)).accessToken;
      expect((await api(c, 'GET', `/v1/vehicles/${vin}/consent`, undefined, embedded)).status).toBe(200);
      expect((await api(c, 'GET', `/v1/vehicles/${vin}/consent`, undefined, ext)).status).toBe(404);
      expect((await api(c, 'GET', `/v1/vehicles/${extVin}/consent`, undefined, ext)).status).toBe(200);
      expect((await api(c, 'GET', `/v1/vehicles/${extVin}/consent`, undefined, embedded)).status).toBe(404);
    } finally {
      await c.close();
    }
  });
});

describe('open streams end with their token', () => {
  it('expiry: event end token_expired at the expiry; a fresh token resumes from resumeFrom with every record once', async () => {
    const owner = uniq('owner');
    const { vin, secret } = await provision(a, undefined, owner);
    const short = await mintToken(a, 'customer', owner, 3);
    const s1 = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, short);
    expect(s1.status).toBe(200);
    const c = await connectVehicle(a, vin, secret);
    const t0 = Date.now();
    await publish(c, topic(vin), encodeBatch(vin, [record(1, t0, { technical: FULL_TECHNICAL }), record(2, t0 + 1, { technical: FULL_TECHNICAL })]));
    await s1.until((ev) => ev.some((e) => e.event === 'end'), 6000);
    const e1 = endOf(s1);
    expect(e1.reason).toBe('token_expired');
    expect(e1.resumeFrom).toBeTruthy();
    const firstSeqs = s1.records().map((r) => r.data.seq as number);
    // Sent while nobody listens, then resumed with a fresh token.
    await publish(c, topic(vin), encodeBatch(vin, [record(3, t0 + 2, { technical: FULL_TECHNICAL })]));
    const s2 = await openSse(a.httpPort, `/v1/vehicles/${vin}/stream`, await mintToken(a, 'customer', owner), { 'last-event-id': e1.resumeFrom! });
    await publish(c, topic(vin), encodeBatch(vin, [record(4, t0 + 3, { technical: FULL_TECHNICAL })]));
    await s2.until((ev) => ev.filter((e) => e.event === 'record').length >= 4 - firstSeqs.length, 5000);
    const all = [...firstSeqs, ...s2.records().map((r) => r.data.seq as number)];
    expect(all).toEqual([1, 2, 3, 4]);
    s2.close();
    await c.endAsync();
  });

  it('revocation (minted jti, subject, sign-out): token_revoked within a second, on the other instance too', async () => {
    const owner = uniq('owner');
    const { vin } = await provision(a, undefined, owner);
    const mintedRes = await api(a, 'POST', '/v1/admin/tokens', { role: 'customer', subject: owner });
    const byJti = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, mintedRes.body.token);
    const bySubject = await openSse(a.httpPort, `/v1/vehicles/${vin}/stream`, await mintToken(a, 'customer', owner));
    expect([byJti.status, bySubject.status]).toEqual([200, 200]);
    let t = Date.now();
    expect((await api(a, 'DELETE', `/v1/admin/tokens/${mintedRes.body.jti}`)).status).toBe(204);
    await byJti.until((ev) => ev.some((e) => e.event === 'end'), 1000);
    expect(endOf(byJti).reason).toBe('token_revoked');
    expect(ended(byJti)!.at - t).toBeLessThan(1000);
    expect(bySubject.isEnded).toBe(false);
    t = Date.now();
    expect((await api(b, 'POST', '/v1/admin/revocations', { subject: owner })).status).toBe(204);
    await bySubject.until((ev) => ev.some((e) => e.event === 'end'), 1000);
    expect(endOf(bySubject).reason).toBe('token_revoked');
    expect(ended(bySubject)!.at - t).toBeLessThan(1000);

    // Sign-out: the stream opened with the session's access token, on the other instance.
    const p = await account();
    const { vin: vin2 } = await provision(a, undefined, p.subject);
    const s = await signInWithCode(base(a), p);
    const bySession = await openSse(b.httpPort, `/v1/vehicles/${vin2}/stream`, s.accessToken);
    expect(bySession.status).toBe(200);
    t = Date.now();
    await signOut(base(a), s);
    await bySession.until((ev) => ev.some((e) => e.event === 'end'), 1000);
    expect(endOf(bySession).reason).toBe('token_revoked');
    expect(ended(bySession)!.at - t).toBeLessThan(1000);
  });
});

async function expectWithin(ms: number, cond: () => Promise<boolean>): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (await cond()) return;
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
