// Nothing secret in logs (issue 23, finding 7): a real gateway, logging at trace level
// through the gateway's own logger (app/logger.ts) into lines this test reads, goes
// through a person's whole session (sign-in with Authorization Code + PKCE, the API, a
// refresh, a live stream, sign-out with the ID token as hint, a failed sign-in) beside a
// vehicle (provisioned, connected, refused with a wrong secret), minted tokens, a recipient's
// service client (client credentials) and a device flow's codes. Then
// every line is scanned: no JWT-shaped string, no admin token, no key, no vehicle secret,
// no password, no authorization code, no PKCE verifier, no refresh token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, testVin, tryConnect } from '../helpers/gateway.ts';
import { mintToken } from '../helpers/grants.ts';
import { openSse } from '../helpers/sse.ts';
import { CookieJar } from '../helpers/oidc.ts';
import { loadConfig } from '../../config/index.ts';
import { createLogger, startGateway, type RunningGateway } from '../../app/gateway.ts';

const JWT_KEYS = 'logk1:log-secrets-test-signing-key-0123456789abcdef';
const JWT_SHAPED = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/;

let db: TestDatabase;
let gw: RunningGateway;
let base: string;
const lines: string[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(l);
      cb();
    },
  });
  const config = loadConfig({
    DATABASE_URL: db.url,
    MQTT_HOST: '127.0.0.1',
    MQTT_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    ADMIN_TOKEN,
    JWT_KEYS,
    STREAM_KEEPALIVE_MS: '1000',
    AUTH_FAILURES_MAX: '100000',
    AUTH_FAILURES_PER_VIN_MAX: '100000',
  });
  gw = await startGateway(config, createLogger('trace', sink));
  base = `http://127.0.0.1:${gw.httpPort}`;
}, 120_000);
afterAll(async () => {
  for (const c of clients) c.end(true);
  await gw?.close();
  await db?.drop();
});

/** Authorization Code + PKCE as the portal does it; everything secret it saw on the way. */
async function signIn(username: string, password: string, wrongPasswordFirst: string) {
  const jar = new CookieJar();
  const go = async (url: string, init: RequestInit = {}) => {
    const res = await fetch(new URL(url, base), { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: jar.header() } });
    jar.take(res);
    return res;
  };
  const redirectUri = `${base}/portal/callback`;
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(12).toString('hex');
  const q = new URLSearchParams({
    client_id: 'cardata-portal',
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid cardata',
    state,
    nonce: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  let res = await go(`/oidc/auth?${q.toString()}`);
  let code: string | null = null;
  let failedOnce = false;
  for (let hop = 0; hop < 14 && code === null; hop++) {
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      if (location.startsWith(redirectUri)) {
        const back = new URL(location).searchParams;
        expect(back.get('state')).toBe(state);
        code = back.get('code');
        // The browser lands on the portal with the code in its address.
        await (await go(location)).body?.cancel();
        break;
      }
      res = await go(location);
      continue;
    }
    const html = await res.text();
    const action = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    if (!action) throw new Error(`sign-in stopped at HTTP ${res.status}: ${html.slice(0, 300)}`);
    // First a wrong password (401, the form again), then the right one.
    const pw = failedOnce ? password : wrongPasswordFirst;
    res = await go(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password: pw }).toString() });
    if (!failedOnce) {
      expect(res.status).toBe(401);
      failedOnce = true;
    }
  }
  expect(code).toBeTruthy();
  const tok = await fetch(`${base}/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: code!, redirect_uri: redirectUri, client_id: 'cardata-portal', code_verifier: verifier }).toString(),
  });
  const body = (await tok.json()) as { access_token: string; id_token: string; refresh_token?: string };
  expect(tok.status, JSON.stringify(body)).toBe(200);
  return { code: code!, verifier, state, jar, accessToken: body.access_token, idToken: body.id_token, refreshToken: body.refresh_token };
}

describe('log lines', () => {
  it('carry no token, ID token hint, code, password or secret through a whole session', async () => {
    const owner = `log-owner-${process.pid}`;
    const password = `log-password-${randomBytes(9).toString('hex')}`;
    const wrongPassword = `wrong-password-${randomBytes(9).toString('hex')}`;
    const wrongSecret = randomBytes(32).toString('base64url');
    const secrets: Record<string, string> = { adminToken: ADMIN_TOKEN, jwtKey: JWT_KEYS.split(':')[1]!, password, wrongPassword, wrongSecret };

    // A vehicle: provisioned (its secret), connected, and once refused with a wrong secret.
    const { vin, secret } = await provision(gw, testVin(), owner);
    secrets.vehicleSecret = secret;
    const rotated = await api(gw, 'POST', `/v1/admin/vehicles/${vin}/secret`);
    expect(rotated.status).toBe(200);
    const vehicleSecret = (secrets.vehicleSecret2 = (rotated.body as { secret: string }).secret);
    expect(await tryConnect(gw, { clientId: vin, username: vin, password: wrongSecret })).not.toBeNull();
    const car = await connectVehicle(gw, vin, vehicleSecret);
    clients.push(car);

    // Minted tokens, used (one by mistake in the query string, as a careless client might).
    const minted = await mintToken(gw, 'customer', owner);
    expect((await api(gw, 'GET', '/v1/vehicles', undefined, minted)).status).toBe(200);
    expect((await api(gw, 'GET', `/v1/vehicles?access_token=${minted}`, undefined, null)).status).toBeGreaterThanOrEqual(400);

    // A person: an account, a failed sign-in, a sign-in, the API, a refresh.
    const account = await api(gw, 'POST', '/v1/admin/accounts', { username: owner, password, role: 'customer', subject: owner });
    expect(account.status, JSON.stringify(account.body)).toBe(201);
    const s = await signIn(owner, password, wrongPassword);
    Object.assign(secrets, { code: s.code, verifier: s.verifier, state: s.state });
    expect((await api(gw, 'GET', `/v1/vehicles/${vin}/consent`, undefined, s.accessToken)).status).toBe(200);
    // The portal gets a refresh token (identity/provider.ts issueRefreshToken): one refresh, rotated.
    expect(s.refreshToken).toBeTruthy();
    secrets.refreshToken = s.refreshToken!;
    const r = await fetch(`${base}/oidc/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: s.refreshToken!, client_id: 'cardata-portal' }).toString(),
    });
    const refreshed = (await r.json()) as { access_token?: string; refresh_token?: string };
    expect(r.status, JSON.stringify(refreshed)).toBe(200);
    secrets.refreshToken2 = refreshed.refresh_token!;
    // A spent refresh token again: refused (and logged as whatever the provider logs).
    expect((await fetch(`${base}/oidc/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: s.refreshToken!, client_id: 'cardata-portal' }).toString() })).status).toBe(400);

    // A live stream with the refreshed access token: one record, then closed.
    const sse = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, refreshed.access_token ?? s.accessToken);
    expect(sse.status).toBe(200);
    await publish(car, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, Date.now() - 1000, { technical: FULL_TECHNICAL })]));
    await sse.until((ev) => ev.some((e) => e.event === 'record'), 10_000);
    sse.close();

    // Sign-out as the browser does it: the ID token as hint in the address, then the confirmation.
    const end = await fetch(`${base}/oidc/session/end?${new URLSearchParams({ client_id: 'cardata-portal', id_token_hint: s.idToken, post_logout_redirect_uri: `${base}/portal/callback` }).toString()}`, {
      headers: { cookie: s.jar.header() },
      redirect: 'manual',
    });
    const html = await end.text();
    expect(end.status, html).toBe(200);
    const action = /<form id="op\.logoutForm" method="post" action="([^"]+)"/.exec(html)?.[1];
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    expect(action && xsrf).toBeTruthy();
    secrets.xsrf = xsrf!;
    const done = await fetch(new URL(action!, base), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: s.jar.header() }, body: new URLSearchParams({ xsrf: xsrf!, logout: 'yes' }).toString(), redirect: 'manual' });
    await done.body?.cancel();
    expect(done.status).toBeLessThan(400);
    // The ended session's token, refused (its error logged, not its token).
    expect((await api(gw, 'GET', '/v1/vehicles', undefined, s.accessToken)).status).toBe(401);

    // A recipient's service client (README "Service clients"): its secret shown once, used in
    // the Authorization header and in the body, once wrong; then deleted.
    const recipient = `log-recipient-${process.pid}`;
    expect((await api(gw, 'POST', '/v1/admin/recipients', { id: recipient, role: 'third_party', name: 'Log Insurer' })).status).toBe(201);
    const client = (await api(gw, 'POST', `/v1/admin/recipients/${recipient}/clients`)).body as { clientId: string; clientSecret: string };
    secrets.clientSecret = client.clientSecret;
    const tokenAt = (form: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${base}/oidc/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() });
    const basicAuth = { authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}` };
    expect((await tokenAt({ grant_type: 'client_credentials' }, basicAuth)).status).toBe(200);
    const viaPost = (await (await tokenAt({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret })).json()) as { access_token: string };
    expect((await api(gw, 'GET', '/v1/grants', undefined, viaPost.access_token)).status).toBe(200);
    expect((await tokenAt({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: wrongSecret })).status).toBe(401);
    expect((await api(gw, 'DELETE', `/v1/admin/recipients/${recipient}/clients/${client.clientId}`)).status).toBe(204);
    // A device flow begun (README "Device sign-in (CLI)"): its codes, polled and typed into the page's address.
    const deviceAuth = await fetch(`${base}/oidc/device/auth`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: 'cardata-cli', scope: 'openid cardata' }).toString() });
    const device = (await deviceAuth.json()) as { device_code: string; user_code: string; verification_uri_complete: string };
    Object.assign(secrets, { deviceCode: device.device_code, userCode: device.user_code });
    expect((await tokenAt({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: device.device_code, client_id: 'cardata-cli' })).status).toBe(400);
    await (await fetch(device.verification_uri_complete)).body?.cancel();

    // Every line written: none holds anything secret.
    await new Promise((res) => setTimeout(res, 200));
    const found: string[] = [];
    for (const line of lines) {
      if (JWT_SHAPED.test(line)) found.push(`JWT-shaped: ${line}`);
      for (const [name, value] of Object.entries(secrets)) if (value && line.includes(value)) found.push(`${name}: ${line}`);
    }
    console.log(`log-secrets: ${lines.length} log lines scanned for JWT-shaped strings and ${Object.keys(secrets).length} known secrets; ${found.length} leaks`);
    expect(found).toEqual([]);
    // And the lines still tell an operator what happened: the sign-out request, its hint withheld.
    const endLine = lines.find((l) => l.includes('/oidc/session/end?'));
    expect(endLine).toMatch(/id_token_hint=\[redacted\]/);
    expect(endLine).toMatch(/client_id=cardata-portal/);
    expect(lines.some((l) => l.includes('"event":"sign_in_failed"'))).toBe(true);
    expect(lines.some((l) => l.includes('"event":"signed_out"'))).toBe(true);
    expect(lines.length).toBeGreaterThan(30);
  });
});
