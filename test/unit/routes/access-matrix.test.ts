// The HTTP access matrix, without a database: every route the app registers × the callers
// and fixture states that decide its answer, through app.inject() on in-memory ports
// (test/unit/fakes/api-*.ts). Authentication is the real one (minted JWTs, the real
// authenticator), so the cells pin the whole path: token → role → ownership / grant →
// restriction → answer. One table: (route, caller, state) → (status, problem code).
//
// Every protected route gets the same authentication cells (no token, expired, tampered,
// another key's, revoked, the admin token for a JWT route or a JWT for an admin route) and
// a 403 for each role it is not open to; the route's own cells follow in CELLS. A route
// the app registers that this file does not list fails the coverage test: a new route
// cannot come without its access rules. And a refused request changes nothing: the fake
// world is compared before and after every refusal.
//
// test/integration/access-matrix.test.ts keeps the same matrix against the real database
// (and MQTT); the stream happy paths beyond the first bytes are pinned by
// test/unit/routes/stream.test.ts and the integration stream tests.
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../../identity/tokens.ts';
import { ADMIN_TOKEN, createApiHarness, type ApiHarness } from '../fakes/api-app.ts';
import { encodeCursor } from '../../../stream/cursor.ts';
import { FAKE_WEBHOOK_ID } from '../fakes/webhooks.ts';

// ---------------------------------------------------------------------------
// Fixture: three vehicles, recipients, grants in every state, check-in codes, data.

const VIN_A = 'WBA00000000000001';
const VIN_B = 'WBA00000000000002';
/** Transferred from OWNER_C_OLD to OWNER_C: the old owner's grant has ended. */
const VIN_C = 'WBA00000000000003';
/** Never provisioned. */
const VIN_U = 'WBA0000000000000U';
const OWNER_A = 'owner-a';
const OWNER_B = 'owner-b';
const OWNER_C_OLD = 'owner-c-old';
const OWNER_C = 'owner-c';
const WS = 'ws-1';
const WS2 = 'ws-2';
const TP = 'tp-1';
const TP2 = 'tp-2';

/** Grants (UUIDs, fixed for the run). */
const G = {
  /** TP on A: every category, history and stream, active. */
  tp: randomUUID(),
  /** TP on A: technical, history only. */
  tpHistory: randomUUID(),
  /** TP on A: technical, stream only. */
  tpStream: randomUUID(),
  tpRevoked: randomUUID(),
  tpExpired: randomUUID(),
  /** TP on C, made by the previous owner: ended by the transfer. */
  tpEnded: randomUUID(),
  /** WS on A: consumption, history (a visit). */
  ws: randomUUID(),
  /** WS2 on A: technical only (no consumption). */
  ws2Technical: randomUUID(),
  /** OWNER_B's grant on B to TP. */
  onB: randomUUID(),
  /** No such grant. */
  unknown: randomUUID(),
};

const hashOf = (code: string) => createHash('sha256').update(code).digest();
const CODE = { ok: 'ABCDE-FGHJK', used: 'BCDEF-GHJKM', expired: 'CDEFG-HJKMN', forWs2: 'DEFGH-JKMNP' };

const H = 3_600_000;
const DAY = 24 * H;
const CONSUMPTION = { totalFuelConsumedL: 812.5, totalDistanceKm: 15000 };

async function fixture(h: ApiHarness, state: State): Promise<void> {
  const w = h.world;
  w.reset();
  h.revokedSubjects.length = 0;
  const now = Date.now();
  w.vehicle(VIN_A, OWNER_A);
  w.vehicle(VIN_B, OWNER_B);
  w.vehicle(VIN_C, OWNER_C_OLD);
  w.recipient(WS, 'workshop', 'Garage One');
  w.recipient(WS2, 'workshop', 'Garage Two');
  w.recipient(TP, 'third_party', 'Insurer');
  w.recipient(TP2, 'third_party', 'Fleet app');
  w.grant(G.tp, { vin: VIN_A, recipientId: TP });
  w.grant(G.tpHistory, { vin: VIN_A, recipientId: TP, categories: ['technical'], access: ['history'] });
  w.grant(G.tpStream, { vin: VIN_A, recipientId: TP, categories: ['technical'], access: ['stream'] });
  w.grant(G.tpRevoked, { vin: VIN_A, recipientId: TP, revokedAt: new Date(now - H) });
  w.grant(G.tpExpired, { vin: VIN_A, recipientId: TP, createdAt: new Date(now - 10 * DAY), expiresAt: new Date(now - DAY) });
  w.grant(G.tpEnded, { vin: VIN_C, recipientId: TP });
  w.grant(G.ws, { vin: VIN_A, recipientId: WS, categories: ['consumption'], access: ['history'], origin: 'checkin' });
  w.grant(G.ws2Technical, { vin: VIN_A, recipientId: WS2, categories: ['technical'], access: ['history'] });
  w.grant(G.onB, { vin: VIN_B, recipientId: TP });
  w.consent(VIN_C, { location: false });
  await w.transfer(VIN_C, OWNER_C);
  w.code(hashOf(CODE.ok.replace('-', '')), { vin: VIN_A });
  w.code(hashOf(CODE.used.replace('-', '')), { vin: VIN_A, redeemed: true });
  w.code(hashOf(CODE.expired.replace('-', '')), { vin: VIN_A, expiresAt: new Date(now - 1000) });
  w.code(hashOf(CODE.forWs2.replace('-', '')), { vin: VIN_A, recipientId: WS2 });
  for (const [seq, ago] of [[1, 3 * H], [2, 2 * H], [3, H]] as const) {
    w.record({ vin: VIN_A, seq, recordedAt: new Date(now - ago), technical: { speedKmh: 40 + seq }, consumption: { ...CONSUMPTION, totalDistanceKm: 15000 + seq }, location: { latitude: 48.1, longitude: 11.5 } });
  }
  w.obfcm({ vin: VIN_A, recordedAt: new Date(now - H), values: CONSUMPTION });
  w.account('alice', 'owner-a', 'customer');
  w.minted(MINTED_JTI, 'customer', 'someone');
  // The revoked caller's token (minted, then revoked).
  w.minted(callers.revokedJti, 'customer', OWNER_A, true);
  if (state === 'restricted') w.consent(VIN_A, { restricted: true });
  if (state === 'location refused') w.consent(VIN_A, { location: false });
  if (state === 'database down') w.fail('rights.currentOwner');
}

const MINTED_JTI = randomUUID();

// ---------------------------------------------------------------------------
// Callers.

const _CALLERS = [
  'none', 'expired', 'tampered', 'foreign key', 'revoked', 'admin',
  'owner A', 'owner B', 'owner C', 'previous owner C', 'stranger',
  'workshop', 'workshop 2', 'unregistered workshop', 'third party', 'third party 2', 'third party named ws-1', 'authority',
] as const;
type Caller = (typeof _CALLERS)[number];
const callers = { token: {} as Record<Caller, string | null>, revokedJti: '' };

/** A caller of each role that is not the route's (for the 403 cells). */
const OF_ROLE: Record<Role, Caller> = { customer: 'stranger', workshop: 'workshop', third_party: 'third party', authority: 'authority' };

type State = 'base' | 'restricted' | 'location refused' | 'database down';

// ---------------------------------------------------------------------------
// Routes: who they are open to, and a request that the allowed caller gets answered.

type Guard = 'public' | 'admin' | readonly Role[];
interface Req {
  method: string;
  url: string;
  body?: unknown;
  headers?: Record<string, string>;
}
interface RouteSpec {
  guard: Guard;
  /** The request of the authentication cells (and the default of the route's cells). */
  req: Req;
  /** Server-Sent Events: a 200 never ends by itself. */
  sse?: boolean;
}

const CUSTOMER: readonly Role[] = ['customer'];
const WORKSHOP: readonly Role[] = ['workshop'];
const RECIPIENT: readonly Role[] = ['workshop', 'third_party'];
const AUTHORITY: readonly Role[] = ['authority'];
const SIGNED_IN: readonly Role[] = ['customer', 'workshop', 'third_party', 'authority'];
const OIDC_METHODS = ['DELETE', 'GET', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE'];

/** Where the versioned asset URLs name the hash of the files (known once the app is built). */
const VERSION = '{version}';
let version = '';

const ROUTES: Record<string, RouteSpec> = (() => {
  const get = (url: string): Req => ({ method: 'GET', url });
  return {
    'GET /healthz': { guard: 'public', req: get('/healthz') },
    'GET /readyz': { guard: 'public', req: get('/readyz') },
    'GET /metrics': { guard: 'public', req: get('/metrics') },
    'GET /v1/catalogue': { guard: 'public', req: get('/v1/catalogue') },
    'GET /v1/data-description': { guard: 'public', req: get('/v1/data-description') },
    'GET /docs': { guard: 'public', req: get('/docs') },
    'HEAD /docs/': { guard: 'public', req: { method: 'HEAD', url: '/docs/' } },
    'GET /docs/json': { guard: 'public', req: get('/docs/json') },
    'GET /docs/yaml': { guard: 'public', req: get('/docs/yaml') },
    'GET /docs/static/index.html': { guard: 'public', req: get('/docs/static/index.html') },
    'GET /docs/static/swagger-initializer.js': { guard: 'public', req: get('/docs/static/swagger-initializer.js') },
    'GET /docs/static/*': { guard: 'public', req: get('/docs/static/swagger-ui.css') },
    'GET /': { guard: 'public', req: get('/') },
    'GET /portal/callback': { guard: 'public', req: get('/portal/callback?code=x&state=y') },
    'GET /portal/config.json': { guard: 'public', req: get('/portal/config.json') },
    'GET /web/*': { guard: 'public', req: get('/web/app.js') },
    [`GET /web/${VERSION}/*`]: { guard: 'public', req: get(`/web/${VERSION}/app.js`) },
    'GET /vendor/:name': { guard: 'public', req: get('/vendor/preact.mjs') },
    [`GET /vendor/${VERSION}/:name`]: { guard: 'public', req: get(`/vendor/${VERSION}/preact.mjs`) },
    ...Object.fromEntries(OIDC_METHODS.flatMap((m) => [
      // QUERY carries a body by definition: fastify wants its content type.
      [`${m} /oidc`, { guard: 'public', req: { method: m, url: '/oidc', ...(m === 'QUERY' ? { body: 'q', headers: { 'content-type': 'text/plain' } } : {}) } }],
      [`${m} /oidc/*`, { guard: 'public', req: { method: m, url: '/oidc/token', ...(m === 'QUERY' ? { body: 'q', headers: { 'content-type': 'text/plain' } } : {}) } }],
    ])),
    'GET /oidc/interaction/:uid': { guard: 'public', req: get('/oidc/interaction/known') },
    'POST /oidc/interaction/:uid/login': {
      guard: 'public',
      req: { method: 'POST', url: '/oidc/interaction/known/login', body: 'username=alice&password=correct+horse+battery', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
    },
    'POST /oidc/interaction/:uid/abort': { guard: 'public', req: { method: 'POST', url: '/oidc/interaction/known/abort', body: 'lang=en', headers: { 'content-type': 'application/x-www-form-urlencoded' } } },

    'POST /v1/admin/vehicles': { guard: 'admin', req: { method: 'POST', url: '/v1/admin/vehicles', body: { vin: 'WBA00000000000009', ownerId: 'new-owner' } } },
    'POST /v1/admin/vehicles/:vin/secret': { guard: 'admin', req: { method: 'POST', url: `/v1/admin/vehicles/${VIN_A}/secret` } },
    'POST /v1/admin/vehicles/:vin/transfer': { guard: 'admin', req: { method: 'POST', url: `/v1/admin/vehicles/${VIN_A}/transfer`, body: { newOwnerId: 'next-owner' } } },
    'POST /v1/admin/tokens': { guard: 'admin', req: { method: 'POST', url: '/v1/admin/tokens', body: { role: 'customer', subject: 'minted-one' } } },
    'DELETE /v1/admin/tokens/:jti': { guard: 'admin', req: { method: 'DELETE', url: `/v1/admin/tokens/${MINTED_JTI}` } },
    'POST /v1/admin/accounts': { guard: 'admin', req: { method: 'POST', url: '/v1/admin/accounts', body: { username: 'bob', password: 'twelve chars long', role: 'customer' } } },
    'GET /v1/admin/accounts': { guard: 'admin', req: get('/v1/admin/accounts') },
    'DELETE /v1/admin/accounts/:username': { guard: 'admin', req: { method: 'DELETE', url: '/v1/admin/accounts/alice' } },
    'PUT /v1/admin/accounts/:username/password': { guard: 'admin', req: { method: 'PUT', url: '/v1/admin/accounts/alice/password', body: { password: 'a new password of length' } } },
    'POST /v1/admin/revocations': { guard: 'admin', req: { method: 'POST', url: '/v1/admin/revocations', body: { subject: 'alice' } } },
    'POST /v1/admin/keys/rotate': { guard: 'admin', req: { method: 'POST', url: '/v1/admin/keys/rotate' } },
    'POST /v1/admin/recipients': { guard: 'admin', req: { method: 'POST', url: '/v1/admin/recipients', body: { id: 'ws-9', role: 'workshop', name: 'Garage Nine' } } },
    'POST /v1/admin/recipients/:id/clients': { guard: 'admin', req: { method: 'POST', url: `/v1/admin/recipients/${WS}/clients` } },
    'GET /v1/admin/recipients/:id/clients': { guard: 'admin', req: get(`/v1/admin/recipients/${WS}/clients`) },
    'DELETE /v1/admin/recipients/:id/clients/:clientId': { guard: 'admin', req: { method: 'DELETE', url: `/v1/admin/recipients/${WS}/clients/svc_unknown` } },

    'GET /v1/vehicles/:vin/consent': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/consent`) },
    'PUT /v1/vehicles/:vin/consent': { guard: CUSTOMER, req: { method: 'PUT', url: `/v1/vehicles/${VIN_A}/consent`, body: { location: false, co2Sharing: true } } },
    'GET /v1/vehicles/:vin/consent/history': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/consent/history`) },
    'PUT /v1/vehicles/:vin/restriction': { guard: CUSTOMER, req: { method: 'PUT', url: `/v1/vehicles/${VIN_A}/restriction`, body: { restricted: true } } },
    'DELETE /v1/vehicles/:vin/data': { guard: CUSTOMER, req: { method: 'DELETE', url: `/v1/vehicles/${VIN_A}/data` } },
    'GET /v1/vehicles/:vin/cardata': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/cardata`) },
    'GET /v1/vehicles/:vin/location/latest': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/location/latest`) },
    'GET /v1/vehicles/:vin/disclosures': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/disclosures`) },
    'GET /v1/vehicles': { guard: CUSTOMER, req: get('/v1/vehicles') },
    'GET /v1/vehicles/:vin/latest': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/latest`) },
    'GET /v1/vehicles/:vin/status': { guard: ['customer', 'workshop', 'third_party'], req: get(`/v1/vehicles/${VIN_A}/status`) },
    'GET /v1/vehicles/:vin/series': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/series`) },
    'GET /v1/vehicles/:vin/stream': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/stream`), sse: true },
    'POST /v1/vehicles/:vin/grants': {
      guard: CUSTOMER,
      req: { method: 'POST', url: `/v1/vehicles/${VIN_A}/grants`, body: { recipientId: TP2, categories: ['technical', 'location'], purpose: 'usage-based insurance' } },
    },
    'GET /v1/vehicles/:vin/grants': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/grants`) },
    'DELETE /v1/vehicles/:vin/grants/:id': { guard: CUSTOMER, req: { method: 'DELETE', url: `/v1/vehicles/${VIN_A}/grants/${G.tp}` } },
    'GET /v1/vehicles/:vin/grants/:id/receipt': { guard: CUSTOMER, req: get(`/v1/vehicles/${VIN_A}/grants/${G.tp}/receipt`) },
    'POST /v1/vehicles/:vin/checkin-codes': { guard: CUSTOMER, req: { method: 'POST', url: `/v1/vehicles/${VIN_A}/checkin-codes`, body: { visitHours: 4 } } },

    'GET /v1/workshop/vehicles/:vin/consumption': { guard: WORKSHOP, req: get(`/v1/workshop/vehicles/${VIN_A}/consumption`) },
    'POST /v1/workshop/checkins': { guard: WORKSHOP, req: { method: 'POST', url: '/v1/workshop/checkins', body: { code: CODE.ok } } },
    'GET /v1/reports/obfcm': { guard: AUTHORITY, req: get('/v1/reports/obfcm') },
    'GET /v1/recipients': { guard: SIGNED_IN, req: get('/v1/recipients') },
    'GET /v1/grants': { guard: RECIPIENT, req: get('/v1/grants') },
    'GET /v1/grants/:id/cardata': { guard: RECIPIENT, req: get(`/v1/grants/${G.tp}/cardata`) },
    'GET /v1/grants/:id/stream': { guard: RECIPIENT, req: get(`/v1/grants/${G.tp}/stream`), sse: true },
    'POST /v1/webhooks': { guard: RECIPIENT, req: { method: 'POST', url: '/v1/webhooks', body: { url: 'https://hooks.example/in', grantIds: [G.tp] } } },
    'GET /v1/webhooks': { guard: RECIPIENT, req: get('/v1/webhooks') },
    'GET /v1/webhooks/:id': { guard: RECIPIENT, req: get(`/v1/webhooks/${FAKE_WEBHOOK_ID}`) },
    'DELETE /v1/webhooks/:id': { guard: RECIPIENT, req: { method: 'DELETE', url: `/v1/webhooks/${FAKE_WEBHOOK_ID}` } },
    'POST /v1/webhooks/:id/replay': { guard: RECIPIENT, req: { method: 'POST', url: `/v1/webhooks/${FAKE_WEBHOOK_ID}/replay`, body: { from: new Date(Date.now() - 3_600_000).toISOString() } } },
  };
})();

// ---------------------------------------------------------------------------
// The route-specific cells.

interface Res {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
  json(): any;
}
interface Cell {
  route: string;
  caller: Caller;
  state?: State;
  /** Changes to the route's request. */
  req?: Partial<Req>;
  status: number;
  /** The problem+json code of a refusal. */
  code?: string;
  /** What else the answer (and the world after it) must show. */
  check?: (r: Res, h: ApiHarness) => void | Promise<void>;
  /** Why, when the cell is not obvious. */
  why?: string;
}

const ndjsonLines = (r: Res) => r.body.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const disclosuresOf = (h: ApiHarness, grantId: string) => h.world.state.disclosures.filter((d) => d.grantId === grantId);

const CELLS: Cell[] = [
  // --- public
  { route: 'GET /healthz', caller: 'none', status: 200, check: (r) => expect(r.json()).toEqual({ status: 'ok' }) },
  { route: 'GET /readyz', caller: 'none', status: 200, check: (r) => expect(r.json()).toEqual({ status: 'ready', broker: true, database: true }) },
  { route: 'GET /metrics', caller: 'none', status: 200, check: (r) => expect(r.body).toContain('up 1') },
  { route: 'GET /v1/catalogue', caller: 'none', status: 200, check: (r) => expect(r.json().fields.length).toBeGreaterThan(10) },
  { route: 'GET /v1/catalogue', caller: 'expired', status: 200, why: 'public: a bad token is not even looked at' },
  { route: 'GET /v1/data-description', caller: 'none', status: 200, check: (r) => expect(r.json().categories.map((c: { category: string }) => c.category)).toContain('location') },
  { route: 'GET /v1/data-description', caller: 'expired', status: 200, why: 'public: a bad token is not even looked at' },
  { route: 'GET /docs', caller: 'none', status: 200 },
  { route: 'HEAD /docs/', caller: 'none', status: 200 },
  { route: 'GET /docs/json', caller: 'none', status: 200, check: (r) => expect(Object.keys(r.json().paths)).toContain('/v1/vehicles/{vin}/consent') },
  { route: 'GET /docs/yaml', caller: 'none', status: 200 },
  { route: 'GET /docs/static/index.html', caller: 'none', status: 302 },
  { route: 'GET /docs/static/swagger-initializer.js', caller: 'none', status: 200 },
  { route: 'GET /docs/static/*', caller: 'none', status: 200 },
  { route: 'GET /', caller: 'none', status: 200, check: (r) => expect(r.headers['content-type']).toMatch(/^text\/html/) },
  { route: 'GET /portal/callback', caller: 'none', status: 200 },
  { route: 'GET /portal/config.json', caller: 'none', status: 200, check: (r) => expect(r.json().oidc.clientId).toBe('cardata-portal') },
  { route: 'GET /web/*', caller: 'none', status: 200 },
  { route: 'GET /web/*', caller: 'none', req: { url: '/web/../package.json' }, status: 404, code: 'API_ERR_NOT_FOUND', why: 'only the listed files, no path reaches the disk' },
  { route: 'GET /vendor/:name', caller: 'none', status: 200 },
  { route: 'GET /vendor/:name', caller: 'none', req: { url: '/vendor/fastify.js' }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /oidc/interaction/:uid', caller: 'none', status: 200, check: (r) => expect(r.body).toContain('name="password"') },
  { route: 'GET /oidc/interaction/:uid', caller: 'none', req: { url: '/oidc/interaction/gone' }, status: 400, why: 'an expired sign-in session: the expired page' },
  { route: 'GET /oidc/interaction/:uid', caller: 'none', req: { url: '/oidc/interaction/consented' }, status: 303 },
  { route: 'GET /oidc/interaction/:uid', caller: 'none', req: { url: '/oidc/interaction/known?lang=xx' }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'POST /oidc/interaction/:uid/login', caller: 'none', status: 303, check: (r) => expect(r.headers.location).toBe('/oidc/auth/next') },
  { route: 'POST /oidc/interaction/:uid/login', caller: 'none', req: { body: 'username=alice&password=wrong' }, status: 401, check: (r) => expect(r.headers['content-type']).toMatch(/^text\/html/) },
  { route: 'POST /oidc/interaction/:uid/login', caller: 'none', req: { url: '/oidc/interaction/gone/login' }, status: 400 },
  { route: 'POST /oidc/interaction/:uid/abort', caller: 'none', status: 303, check: (r) => expect(r.headers.location).toBe('/oidc/auth/aborted') },
  { route: 'POST /oidc/interaction/:uid/abort', caller: 'none', req: { url: '/oidc/interaction/gone/abort' }, status: 400 },

  // --- admin
  { route: 'POST /v1/admin/vehicles', caller: 'admin', status: 201, check: (r, h) => (expect(r.json().secret).toMatch(/\S{16,}/), expect(h.world.state.vehicles.get('WBA00000000000009')?.ownerId).toBe('new-owner')) },
  { route: 'POST /v1/admin/vehicles', caller: 'admin', req: { body: { vin: VIN_A, ownerId: 'x' } }, status: 409, code: 'API_ERR_CONFLICT' },
  { route: 'POST /v1/admin/vehicles', caller: 'admin', req: { body: { vin: 'WBA0000000000000I', ownerId: 'x' } }, status: 400, code: 'API_ERR_INVALID_VIN' },
  { route: 'POST /v1/admin/vehicles/:vin/secret', caller: 'admin', status: 200, check: (r, h) => (expect(r.json().vin).toBe(VIN_A), expect(h.rotated).toContain(VIN_A)) },
  { route: 'POST /v1/admin/vehicles/:vin/secret', caller: 'admin', req: { url: `/v1/admin/vehicles/${VIN_U}/secret` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  {
    route: 'POST /v1/admin/vehicles/:vin/transfer',
    caller: 'admin',
    status: 200,
    check: async (r, h) => {
      expect(r.json().ownerId).toBe('next-owner');
      // The previous owner's grants end with their period.
      expect((await h.stores.grants.get(G.tp))?.periodEndedAt).toBeInstanceOf(Date);
    },
  },
  { route: 'POST /v1/admin/vehicles/:vin/transfer', caller: 'admin', req: { url: `/v1/admin/vehicles/${VIN_U}/transfer` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/admin/vehicles/:vin/transfer', caller: 'admin', req: { body: { newOwnerId: OWNER_A } }, status: 409, code: 'API_ERR_CONFLICT', why: 'already the owner' },
  {
    route: 'POST /v1/admin/tokens',
    caller: 'admin',
    status: 201,
    check: async (r, h) => {
      const { token, jti } = r.json();
      expect(h.world.state.minted.get(jti)).toMatchObject({ role: 'customer', subject: 'minted-one' });
      // The minted token is accepted by the customer routes.
      expect((await h.app.inject({ method: 'GET', url: '/v1/vehicles', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
    },
  },
  { route: 'POST /v1/admin/tokens', caller: 'admin', req: { body: { role: 'customer', subject: 'x', ttlSeconds: 3601 } }, status: 400, code: 'API_ERR_VALIDATION', why: 'over TOKEN_TTL_S' },
  { route: 'POST /v1/admin/tokens', caller: 'admin', req: { body: { role: 'admin', subject: 'x' } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'DELETE /v1/admin/tokens/:jti', caller: 'admin', status: 204, check: (_r, h) => (expect(h.world.state.minted.get(MINTED_JTI)?.revoked).toBe(true), expect(h.revokedHere).toContain(MINTED_JTI)) },
  { route: 'DELETE /v1/admin/tokens/:jti', caller: 'admin', req: { url: `/v1/admin/tokens/${G.unknown}` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'DELETE /v1/admin/tokens/:jti', caller: 'admin', req: { url: '/v1/admin/tokens/not-a-uuid' }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'POST /v1/admin/accounts', caller: 'admin', status: 201, check: (r) => expect(r.json()).toMatchObject({ username: 'bob', subject: 'bob', role: 'customer' }) },
  { route: 'POST /v1/admin/accounts', caller: 'admin', req: { body: { username: 'alice', password: 'twelve chars long', role: 'customer' } }, status: 409, code: 'API_ERR_CONFLICT' },
  { route: 'POST /v1/admin/accounts', caller: 'admin', req: { body: { username: 'carol', password: 'short', role: 'customer' } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'GET /v1/admin/accounts', caller: 'admin', status: 200, check: (r) => expect(r.json().accounts).toEqual([expect.objectContaining({ username: 'alice' })]) },
  {
    route: 'DELETE /v1/admin/accounts/:username',
    caller: 'admin',
    status: 204,
    check: (_r, h) => (expect(h.world.state.accounts.has('alice')).toBe(false), expect(h.revokedSubjects).toEqual([{ issuer: 'https://idp.example', subject: 'owner-a', before: expect.any(Number) }])),
  },
  {
    route: 'PUT /v1/admin/accounts/:username/password',
    caller: 'admin',
    status: 204,
    check: (_r, h) => (expect(h.world.state.accounts.get('alice')?.passwordHash).toMatch(/^scrypt\$/), expect(h.revokedSubjects).toEqual([{ issuer: 'https://idp.example', subject: 'owner-a', before: expect.any(Number) }])),
  },
  { route: 'PUT /v1/admin/accounts/:username/password', caller: 'admin', req: { url: '/v1/admin/accounts/nobody/password' }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'PUT /v1/admin/accounts/:username/password', caller: 'admin', req: { body: { password: 'short' } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'POST /v1/admin/revocations', caller: 'admin', status: 204, check: (_r, h) => expect(h.revokedSubjects).toEqual([{ issuer: null, subject: 'alice', before: expect.any(Number) }]) },
  {
    route: 'POST /v1/admin/revocations',
    caller: 'admin',
    req: { body: { subject: 'nobody-known', issuer: 'https://idp.example' } },
    status: 204,
    why: 'an unknown subject is recorded all the same',
    check: (_r, h) => expect(h.revokedSubjects).toEqual([{ issuer: 'https://idp.example', subject: 'nobody-known', before: expect.any(Number) }]),
  },
  { route: 'POST /v1/admin/revocations', caller: 'admin', req: { body: { subject: 'alice', issuer: 'https://untrusted.example' } }, status: 400, code: 'API_ERR_VALIDATION', why: 'not a trusted issuer' },
  { route: 'POST /v1/admin/revocations', caller: 'admin', req: { body: { issuer: 'https://idp.example' } }, status: 400, code: 'API_ERR_VALIDATION', why: 'no subject' },
  { route: 'DELETE /v1/admin/accounts/:username', caller: 'admin', req: { url: '/v1/admin/accounts/nobody' }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/admin/keys/rotate', caller: 'admin', status: 200, check: (r) => expect(r.json()).toEqual({ kid: 'kid-new', verifying: ['kid-new', 'kid-old'] }) },
  { route: 'POST /v1/admin/recipients', caller: 'admin', status: 201, check: (r) => expect(r.json()).toMatchObject({ id: 'ws-9', role: 'workshop' }) },
  { route: 'POST /v1/admin/recipients', caller: 'admin', req: { body: { id: WS, role: 'workshop', name: 'again' } }, status: 409, code: 'API_ERR_CONFLICT' },
  { route: 'POST /v1/admin/recipients', caller: 'admin', req: { body: { id: 'x', role: 'authority', name: 'x' } }, status: 400, code: 'API_ERR_VALIDATION' },
  {
    route: 'POST /v1/admin/recipients/:id/clients',
    caller: 'admin',
    status: 201,
    check: (r, h) => {
      const b = r.json() as { clientId: string; clientSecret: string; authMethod: string };
      expect(b).toMatchObject({ recipientId: WS, authMethod: 'client_secret_basic' });
      expect(b.clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(r.headers['cache-control']).toBe('no-store');
      // Stored hashed: the secret itself is nowhere in the store.
      const stored = h.serviceClients.clients.get(b.clientId);
      expect(stored?.secretHash).toMatch(/^scrypt\$/);
      expect(JSON.stringify(stored)).not.toContain(b.clientSecret);
    },
  },
  { route: 'POST /v1/admin/recipients/:id/clients', caller: 'admin', req: { url: '/v1/admin/recipients/nobody-here/clients' }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/admin/recipients/:id/clients', caller: 'admin', req: { body: { jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } } }, status: 400, code: 'API_ERR_VALIDATION', why: 'a symmetric key' },
  { route: 'POST /v1/admin/recipients/:id/clients', caller: 'admin', req: { body: { jwks: { keys: [] } } }, status: 400, code: 'API_ERR_VALIDATION', why: 'no key' },
  { route: 'POST /v1/admin/recipients/:id/clients', caller: 'admin', req: { body: { secret: 'mine' } }, status: 400, code: 'API_ERR_VALIDATION', why: 'an unknown field' },
  {
    route: 'GET /v1/admin/recipients/:id/clients',
    caller: 'admin',
    status: 200,
    // Listed without any secret or hash.
    check: (r) => (expect(r.json().clients).toContainEqual({ clientId: 'svc_seeded', recipientId: WS, authMethod: 'client_secret_basic', createdAt: new Date(0).toISOString() }), expect(r.body).not.toContain('scrypt')),
  },
  { route: 'GET /v1/admin/recipients/:id/clients', caller: 'admin', req: { url: '/v1/admin/recipients/nobody-here/clients' }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'DELETE /v1/admin/recipients/:id/clients/:clientId', caller: 'admin', status: 404, code: 'API_ERR_NOT_FOUND', why: 'no such client' },
  {
    route: 'DELETE /v1/admin/recipients/:id/clients/:clientId',
    caller: 'admin',
    req: { url: `/v1/admin/recipients/${WS}/clients/svc_seeded` },
    status: 204,
    check: (_r, h) => (expect(h.serviceClients.removed).toEqual(['svc_seeded']), expect(h.serviceClients.clients.has('svc_seeded')).toBe(false)),
  },
  { route: 'DELETE /v1/admin/recipients/:id/clients/:clientId', caller: 'admin', req: { url: '/v1/admin/recipients/nobody-here/clients/svc_x' }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'DELETE /v1/admin/recipients/:id/clients/:clientId', caller: 'admin', req: { url: `/v1/admin/recipients/${WS}/clients/not%20a%20client` }, status: 400, code: 'API_ERR_VALIDATION' },

  // --- the owner's routes: owner 2xx; another customer, an unknown VIN, the previous owner: 404
  ...ownerCells('GET /v1/vehicles/:vin/consent', 200, (r) => expect(r.json()).toMatchObject({ vin: VIN_A, location: true, co2Sharing: true, restricted: false })),
  { route: 'GET /v1/vehicles/:vin/consent', caller: 'owner A', state: 'restricted', status: 200, check: (r) => expect(r.json().restricted).toBe(true) },
  { route: 'GET /v1/vehicles/:vin/consent', caller: 'owner A', state: 'database down', status: 503, code: 'API_ERR_UNAVAILABLE' },
  { route: 'GET /v1/vehicles/:vin/consent', caller: 'owner A', req: { url: '/v1/vehicles/not-a-vin/consent' }, status: 400, code: 'API_ERR_INVALID_VIN' },
  { route: 'GET /v1/vehicles/:vin/consent', caller: 'stranger', req: { url: '/v1/vehicles/not-a-vin/consent' }, status: 400, code: 'API_ERR_INVALID_VIN', why: 'validation before ownership (the role is checked first)' },
  ...ownerCells('PUT /v1/vehicles/:vin/consent', 200, (r, h) => (expect(r.json()).toMatchObject({ location: false, erasedLocationRecords: 0 }), expect(h.world.state.consent.filter((e) => e.vin === VIN_A)).toHaveLength(1))),
  { route: 'PUT /v1/vehicles/:vin/consent', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/consent?eraseHistory=true` }, status: 200, check: (r) => expect(r.json().erasedLocationRecords).toBe(3) },
  { route: 'PUT /v1/vehicles/:vin/consent', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/consent?eraseHistory=true`, body: { location: true, co2Sharing: true } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'PUT /v1/vehicles/:vin/consent', caller: 'owner A', req: { body: { location: false } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'PUT /v1/vehicles/:vin/consent', caller: 'stranger', req: { body: { location: 'no' } }, status: 400, code: 'API_ERR_VALIDATION', why: 'the body is validated before the ownership: it tells nothing of the vehicle' },
  ...ownerCells('GET /v1/vehicles/:vin/consent/history', 200, (r) => expect(r.json().events).toEqual([])),
  {
    route: 'GET /v1/vehicles/:vin/consent/history',
    caller: 'owner C',
    req: { url: `/v1/vehicles/${VIN_C}/consent/history` },
    status: 200,
    why: "the previous owner's choices are not shown to the new owner",
    check: (r) => expect(r.json().events.map((e: { channel: string }) => e.channel)).toEqual(['transfer']),
  },
  ...ownerCells('PUT /v1/vehicles/:vin/restriction', 200, (r) => expect(r.json().restricted).toBe(true)),
  { route: 'PUT /v1/vehicles/:vin/restriction', caller: 'owner A', req: { body: {} }, status: 400, code: 'API_ERR_VALIDATION' },
  ...ownerCells('DELETE /v1/vehicles/:vin/data', 200, (r, h) => (expect(r.json()).toMatchObject({ category: null, telemetryRecordsDeleted: 3 }), expect(h.world.state.erasures).toHaveLength(1))),
  { route: 'DELETE /v1/vehicles/:vin/data', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/data?category=location` }, status: 200, check: (r) => expect(r.json()).toMatchObject({ category: 'location', telemetryRecordsUpdated: 3 }) },
  { route: 'DELETE /v1/vehicles/:vin/data', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/data?category=everything` }, status: 400, code: 'API_ERR_VALIDATION' },
  ...ownerCells('GET /v1/vehicles/:vin/cardata', 200, (r) => (expect(r.headers['content-type']).toMatch(/^application\/x-ndjson/), expect(ndjsonLines(r)).toHaveLength(3))),
  { route: 'GET /v1/vehicles/:vin/cardata', caller: 'owner A', state: 'restricted', status: 200, why: 'a restriction does not limit the owner', check: (r) => expect(ndjsonLines(r)).toHaveLength(3) },
  { route: 'GET /v1/vehicles/:vin/cardata', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/cardata?format=csv&categories=technical` }, status: 200, check: (r) => expect(r.body.trim().split('\n')).toHaveLength(4) },
  { route: 'GET /v1/vehicles/:vin/cardata', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/cardata?format=zip` }, status: 200, check: (r) => expect(r.headers['content-type']).toBe('application/zip') },
  { route: 'GET /v1/vehicles/:vin/cardata', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/cardata?categories=secret` }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'GET /v1/vehicles/:vin/cardata', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/cardata?from=2026-02-01&to=2026-01-01` }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'GET /v1/vehicles/:vin/cardata', caller: 'owner C', req: { url: `/v1/vehicles/${VIN_C}/cardata` }, status: 200, check: (r) => expect(r.body).toBe(''), why: "nothing of the previous owner's period" },
  ...ownerCells('GET /v1/vehicles/:vin/location/latest', 200, (r) => expect(r.json()).toMatchObject({ vin: VIN_A, seq: 3, location: { latitude: 48.1 } })),
  { route: 'GET /v1/vehicles/:vin/location/latest', caller: 'owner B', req: { url: `/v1/vehicles/${VIN_B}/location/latest` }, status: 404, code: 'API_ERR_NOT_FOUND', why: 'no stored position' },
  ...ownerCells('GET /v1/vehicles/:vin/disclosures', 200, (r) => expect(r.json()).toEqual({ vin: VIN_A, disclosures: [] })),
  { route: 'GET /v1/vehicles', caller: 'owner A', status: 200, check: (r) => expect(r.json().vehicles.map((v: { vin: string }) => v.vin)).toEqual([VIN_A]) },
  { route: 'GET /v1/vehicles', caller: 'stranger', status: 200, check: (r) => expect(r.json()).toEqual({ vehicles: [] }) },
  { route: 'GET /v1/vehicles', caller: 'previous owner C', status: 200, check: (r) => expect(r.json()).toEqual({ vehicles: [] }) },
  ...ownerCells('GET /v1/vehicles/:vin/latest', 200, (r) => expect(r.json().record).toMatchObject({ seq: 3, technical: { speedKmh: 43 } })),
  { route: 'GET /v1/vehicles/:vin/latest', caller: 'owner B', req: { url: `/v1/vehicles/${VIN_B}/latest` }, status: 200, check: (r) => expect(r.json()).toEqual({ vin: VIN_B, record: null, fields: {} }) },
  { route: 'GET /v1/vehicles/:vin/latest', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/latest?categories=nope` }, status: 400, code: 'API_ERR_VALIDATION' },
  ...ownerCells('GET /v1/vehicles/:vin/status', 200, (r) => expect(r.json()).toMatchObject({ vin: VIN_A, online: false, since: null, lastSeenAt: null, lastRecordAt: expect.any(String) })),
  { route: 'GET /v1/vehicles/:vin/status', caller: 'owner A', req: { url: '/v1/vehicles/not-a-vin/status' }, status: 400, code: 'API_ERR_INVALID_VIN' },
  { route: 'GET /v1/vehicles/:vin/status', caller: 'workshop', status: 404, code: 'API_ERR_NOT_FOUND', why: 'its grant does not cover connectivity' },
  { route: 'GET /v1/vehicles/:vin/status', caller: 'third party', status: 404, code: 'API_ERR_NOT_FOUND', why: 'its grant does not cover connectivity' },
  ...ownerCells('GET /v1/vehicles/:vin/series', 200, (r) => (expect(r.json().count.reduce((a: number, b: number) => a + b, 0)).toBe(3), expect(r.json().bucket).toBe('1h'))),
  { route: 'GET /v1/vehicles/:vin/series', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/series?bucket=1s` }, status: 400, code: 'API_ERR_VALIDATION', why: 'more than 5000 buckets' },
  { route: 'GET /v1/vehicles/:vin/series', caller: 'stranger', req: { url: `/v1/vehicles/${VIN_A}/series?bucket=1s` }, status: 400, code: 'API_ERR_VALIDATION', why: 'the query is checked before the ownership (no look-up for a bad query)' },
  { route: 'GET /v1/vehicles/:vin/series', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/series?fields=technical.nope` }, status: 400, code: 'API_ERR_VALIDATION' },

  // --- live CarData of the owner (SSE: the first bytes of a 200; the refusals in full)
  ...ownerCells('GET /v1/vehicles/:vin/stream', 200),
  { route: 'GET /v1/vehicles/:vin/stream', caller: 'owner A', state: 'restricted', status: 200, why: "a restriction leaves the owner's stream as it is" },
  { route: 'GET /v1/vehicles/:vin/stream', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/stream?after=garbage` }, status: 400, code: 'API_ERR_INVALID_CURSOR' },
  { route: 'GET /v1/vehicles/:vin/stream', caller: 'owner A', req: { headers: { 'last-event-id': encodeCursor(VIN_B, { tx: 50, ord: 1 }) } }, status: 400, code: 'API_ERR_INVALID_CURSOR', why: "another vehicle's cursor" },
  { route: 'GET /v1/vehicles/:vin/stream', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/stream?after=${encodeCursor(VIN_A, { tx: 5, ord: 1 })}` }, status: 410, code: 'API_ERR_CURSOR_EXPIRED', why: 'below the trimmed log (positions.trimmed = 10)' },
  { route: 'GET /v1/vehicles/:vin/stream', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/stream?after=${encodeCursor(VIN_A, { tx: 50, ord: 1 })}` }, status: 200 },
  { route: 'GET /v1/vehicles/:vin/stream', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/stream?from=2000-01-01` }, status: 400, code: 'API_ERR_VALIDATION', why: 'beyond the stream log' },
  { route: 'GET /v1/vehicles/:vin/stream', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/stream?bogus=1` }, status: 400, code: 'API_ERR_VALIDATION' },

  // --- the owner's grants
  ...ownerCells('POST /v1/vehicles/:vin/grants', 201, (r, h) => (expect(r.json()).toMatchObject({ recipientId: TP2, status: 'active', origin: 'owner', categories: ['technical', 'location'] }), expect(h.world.state.grants.size).toBe(10))),
  { route: 'POST /v1/vehicles/:vin/grants', caller: 'owner A', req: { body: { recipientId: 'nobody', categories: ['technical'], purpose: 'x' } }, status: 400, code: 'API_ERR_UNKNOWN_RECIPIENT' },
  { route: 'POST /v1/vehicles/:vin/grants', caller: 'owner A', req: { body: { recipientId: TP, categories: ['dreams'], purpose: 'x' } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'POST /v1/vehicles/:vin/grants', caller: 'owner A', req: { body: { recipientId: TP, categories: ['technical'], purpose: 'x', expiresAt: '2000-01-01' } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'POST /v1/vehicles/:vin/grants', caller: 'owner A', req: { body: { recipientId: TP, categories: ['technical'], purpose: 'x', access: ['write'] } }, status: 400, code: 'API_ERR_VALIDATION' },
  ...ownerCells('GET /v1/vehicles/:vin/grants', 200, (r) => {
    const status = Object.fromEntries(r.json().grants.map((g: { id: string; status: string }) => [g.id, g.status]));
    expect(status).toEqual({ [G.tp]: 'active', [G.tpHistory]: 'active', [G.tpStream]: 'active', [G.tpRevoked]: 'revoked', [G.tpExpired]: 'expired', [G.ws]: 'active', [G.ws2Technical]: 'active' });
  }),
  { route: 'GET /v1/vehicles/:vin/grants', caller: 'previous owner C', req: { url: `/v1/vehicles/${VIN_C}/grants` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/vehicles/:vin/grants', caller: 'owner C', req: { url: `/v1/vehicles/${VIN_C}/grants` }, status: 200, check: (r) => expect(r.json().grants).toEqual([]), why: "the previous owner's grants are not the new owner's" },
  ...ownerCells('DELETE /v1/vehicles/:vin/grants/:id', 204, (_r, h) => expect(h.world.state.grants.get(G.tp)?.revokedAt).toBeInstanceOf(Date)),
  { route: 'DELETE /v1/vehicles/:vin/grants/:id', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/grants/${G.tpRevoked}` }, status: 409, code: 'API_ERR_CONFLICT' },
  { route: 'DELETE /v1/vehicles/:vin/grants/:id', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/grants/${G.tpExpired}` }, status: 409, code: 'API_ERR_CONFLICT' },
  { route: 'DELETE /v1/vehicles/:vin/grants/:id', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/grants/${G.onB}` }, status: 404, code: 'API_ERR_NOT_FOUND', why: "another vehicle's grant" },
  { route: 'DELETE /v1/vehicles/:vin/grants/:id', caller: 'owner B', req: { url: `/v1/vehicles/${VIN_B}/grants/${G.tp}` }, status: 404, code: 'API_ERR_NOT_FOUND', why: "a grant of A on B's path" },
  { route: 'DELETE /v1/vehicles/:vin/grants/:id', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/grants/${G.unknown}` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'DELETE /v1/vehicles/:vin/grants/:id', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/grants/42` }, status: 400, code: 'API_ERR_INVALID_ID' },
  { route: 'DELETE /v1/vehicles/:vin/grants/:id', caller: 'owner C', req: { url: `/v1/vehicles/${VIN_C}/grants/${G.tpEnded}` }, status: 404, code: 'API_ERR_NOT_FOUND', why: "the previous owner's grant" },
  ...ownerCells('GET /v1/vehicles/:vin/grants/:id/receipt', 200, (r) => expect(r.json()).toMatchObject({ recordId: G.tp, status: 'active', events: [{ type: 'given' }] })),
  {
    route: 'GET /v1/vehicles/:vin/grants/:id/receipt',
    caller: 'owner A',
    req: { url: `/v1/vehicles/${VIN_A}/grants/${G.tpRevoked}/receipt` },
    status: 200,
    check: (r) => expect(r.json()).toMatchObject({ status: 'revoked', events: [{ type: 'given' }, { type: 'withdrawn' }] }),
  },
  { route: 'GET /v1/vehicles/:vin/grants/:id/receipt', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/grants/${G.tpExpired}/receipt` }, status: 200, check: (r) => expect(r.json().events.at(-1).type).toBe('expired') },
  { route: 'GET /v1/vehicles/:vin/grants/:id/receipt', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/grants/${G.onB}/receipt` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/vehicles/:vin/grants/:id/receipt', caller: 'owner A', req: { url: `/v1/vehicles/${VIN_A}/grants/${G.unknown}/receipt` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  ...ownerCells('POST /v1/vehicles/:vin/checkin-codes', 201, (r, h) => (expect(r.json().code).toMatch(/^[A-Z2-9]{5}-[A-Z2-9]{5}$/), expect(h.world.state.codes.size).toBe(5))),
  { route: 'POST /v1/vehicles/:vin/checkin-codes', caller: 'owner A', req: { body: { visitHours: 4, recipientId: WS } }, status: 201, check: (r) => expect(r.json().recipientId).toBe(WS) },
  { route: 'POST /v1/vehicles/:vin/checkin-codes', caller: 'owner A', req: { body: { visitHours: 4, recipientId: TP } }, status: 400, code: 'API_ERR_UNKNOWN_RECIPIENT', why: 'a third party is not a workshop' },
  { route: 'POST /v1/vehicles/:vin/checkin-codes', caller: 'owner A', req: { body: { visitHours: 73 } }, status: 400, code: 'API_ERR_VALIDATION', why: 'over WORKSHOP_VISIT_MAX_HOURS' },

  // --- workshops
  { route: 'POST /v1/workshop/checkins', caller: 'workshop', status: 201, check: (r) => expect(r.json()).toMatchObject({ vin: VIN_A, recipientId: WS, categories: ['consumption'], access: ['history'], origin: 'checkin', status: 'active' }) },
  { route: 'POST /v1/workshop/checkins', caller: 'workshop', req: { body: { code: 'abcde fghjk' } }, status: 201, why: 'spelt loosely: case, spaces' },
  { route: 'POST /v1/workshop/checkins', caller: 'workshop', req: { body: { code: CODE.used } }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/workshop/checkins', caller: 'workshop', req: { body: { code: CODE.expired } }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/workshop/checkins', caller: 'workshop', req: { body: { code: CODE.forWs2 } }, status: 404, code: 'API_ERR_NOT_FOUND', why: "another workshop's code" },
  { route: 'POST /v1/workshop/checkins', caller: 'workshop 2', req: { body: { code: CODE.forWs2 } }, status: 201 },
  { route: 'POST /v1/workshop/checkins', caller: 'workshop', req: { body: { code: 'ZZZZZ-ZZZZZ' } }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/workshop/checkins', caller: 'workshop', req: { body: { code: 'short' } }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/workshop/checkins', caller: 'unregistered workshop', status: 403, code: 'API_ERR_FORBIDDEN' },
  { route: 'POST /v1/workshop/checkins', caller: 'workshop', req: { body: {} }, status: 400, code: 'API_ERR_VALIDATION' },
  {
    route: 'GET /v1/workshop/vehicles/:vin/consumption',
    caller: 'workshop',
    status: 200,
    check: (r, h) => {
      expect(r.json()).toMatchObject({ vin: VIN_A, latest: { consumption: { totalDistanceKm: 15003 } }, truncated: false });
      expect(r.json().history).toHaveLength(3);
      expect(disclosuresOf(h, G.ws)).toHaveLength(1);
    },
  },
  { route: 'GET /v1/workshop/vehicles/:vin/consumption', caller: 'workshop', state: 'restricted', status: 403, code: 'API_ERR_RESTRICTED' },
  { route: 'GET /v1/workshop/vehicles/:vin/consumption', caller: 'workshop', req: { url: `/v1/workshop/vehicles/${VIN_B}/consumption` }, status: 404, code: 'API_ERR_NOT_FOUND', why: 'no grant on B' },
  { route: 'GET /v1/workshop/vehicles/:vin/consumption', caller: 'workshop', req: { url: `/v1/workshop/vehicles/${VIN_U}/consumption` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/workshop/vehicles/:vin/consumption', caller: 'workshop 2', status: 404, code: 'API_ERR_NOT_FOUND', why: 'its grant does not cover consumption' },
  { route: 'GET /v1/workshop/vehicles/:vin/consumption', caller: 'unregistered workshop', status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/workshop/vehicles/:vin/consumption', caller: 'workshop', req: { url: `/v1/workshop/vehicles/${VIN_A}/consumption?from=2026-02-01&to=2026-01-01` }, status: 400, code: 'API_ERR_VALIDATION' },

  // --- the authority
  { route: 'GET /v1/reports/obfcm', caller: 'authority', status: 200, check: (r) => (expect(r.headers['content-type']).toMatch(/^text\/csv/), expect(r.body.trim().split('\n')).toHaveLength(2)) },
  { route: 'GET /v1/reports/obfcm', caller: 'authority', state: 'restricted', status: 200, check: (r) => expect(r.body.trim().split('\n')).toHaveLength(1), why: 'a restricted vehicle is left out of the report' },
  { route: 'GET /v1/reports/obfcm', caller: 'authority', req: { url: '/v1/reports/obfcm?from=2024-01-01&to=2026-01-01' }, status: 400, code: 'API_ERR_RANGE_TOO_LONG' },
  { route: 'GET /v1/reports/obfcm', caller: 'authority', req: { url: '/v1/reports/obfcm?from=2026-01-02&to=2026-01-01' }, status: 400, code: 'API_ERR_VALIDATION' },

  // --- recipients
  ...(['owner A', 'workshop', 'third party', 'authority'] as const).map(
    (c): Cell => ({ route: 'GET /v1/recipients', caller: c, status: 200, check: (r) => expect(r.json().recipients.map((x: { id: string }) => x.id)).toEqual([TP2, WS, WS2, TP]) }),
  ),
  { route: 'GET /v1/grants', caller: 'third party', status: 200, check: (r) => expect(r.json().grants.map((g: { id: string }) => g.id).sort()).toEqual([G.tp, G.tpHistory, G.tpStream, G.onB].sort()) },
  { route: 'GET /v1/grants', caller: 'workshop', status: 200, check: (r) => expect(r.json().grants.map((g: { id: string }) => g.id)).toEqual([G.ws]) },
  { route: 'GET /v1/grants', caller: 'third party 2', status: 200, check: (r) => expect(r.json()).toEqual({ grants: [] }) },
  { route: 'GET /v1/grants', caller: 'third party named ws-1', status: 200, check: (r) => expect(r.json()).toEqual({ grants: [] }), why: "the workshop's grants are not a third party's of the same name" },

  // --- reads through a grant
  {
    route: 'GET /v1/grants/:id/cardata',
    caller: 'third party',
    status: 200,
    check: (r, h) => {
      expect(ndjsonLines(r)).toHaveLength(3);
      expect(disclosuresOf(h, G.tp)).toEqual([expect.objectContaining({ role: 'third_party', subject: TP, ownerId: OWNER_A, endpoint: 'GET /v1/grants/{id}/cardata' })]);
    },
  },
  {
    route: 'GET /v1/grants/:id/cardata',
    caller: 'third party',
    req: { url: `/v1/grants/${G.tpHistory}/cardata` },
    status: 200,
    check: (r) => expect(Object.keys(ndjsonLines(r)[0]).sort()).toEqual(['recordedAt', 'seq', 'technical', 'vin']),
    why: "the grant's categories only",
  },
  { route: 'GET /v1/grants/:id/cardata', caller: 'workshop', req: { url: `/v1/grants/${G.ws}/cardata?format=csv` }, status: 200 },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party', state: 'restricted', status: 403, code: 'API_ERR_RESTRICTED' },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party', req: { url: `/v1/grants/${G.tpStream}/cardata` }, status: 403, code: 'API_ERR_FORBIDDEN', why: 'stream access only' },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party', req: { url: `/v1/grants/${G.tpRevoked}/cardata` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party', req: { url: `/v1/grants/${G.tpExpired}/cardata` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party', req: { url: `/v1/grants/${G.tpEnded}/cardata` }, status: 404, code: 'API_ERR_NOT_FOUND', why: 'ended by the transfer' },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party', req: { url: `/v1/grants/${G.unknown}/cardata` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party', req: { url: '/v1/grants/nope/cardata' }, status: 400, code: 'API_ERR_INVALID_ID' },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party 2', status: 404, code: 'API_ERR_NOT_FOUND', why: "another recipient's grant" },
  { route: 'GET /v1/grants/:id/cardata', caller: 'workshop', status: 404, code: 'API_ERR_NOT_FOUND', why: "a third party's grant" },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party named ws-1', req: { url: `/v1/grants/${G.ws}/cardata` }, status: 404, code: 'API_ERR_NOT_FOUND', why: 'subject matches, role does not' },
  { route: 'GET /v1/grants/:id/cardata', caller: 'third party', req: { url: `/v1/grants/${G.tp}/cardata?from=2026-02-01&to=2026-01-01` }, status: 400, code: 'API_ERR_VALIDATION' },

  // --- live CarData through a grant
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', status: 200, check: (_r, h) => expect(disclosuresOf(h, G.tp)).toHaveLength(1) },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', req: { url: `/v1/grants/${G.tpStream}/stream` }, status: 200 },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', state: 'restricted', status: 403, code: 'API_ERR_RESTRICTED' },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', req: { url: `/v1/grants/${G.tpHistory}/stream` }, status: 403, code: 'API_ERR_FORBIDDEN', why: 'history access only' },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', req: { url: `/v1/grants/${G.tpRevoked}/stream` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', req: { url: `/v1/grants/${G.tpExpired}/stream` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', req: { url: `/v1/grants/${G.tpEnded}/stream` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', req: { url: `/v1/grants/${G.unknown}/stream` }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party 2', status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/grants/:id/stream', caller: 'workshop', req: { url: `/v1/grants/${G.ws}/stream` }, status: 403, code: 'API_ERR_FORBIDDEN', why: 'a visit grant is history only' },
  { route: 'GET /v1/grants/:id/stream', caller: 'third party', req: { url: `/v1/grants/${G.tp}/stream?after=garbage` }, status: 400, code: 'API_ERR_INVALID_CURSOR' },

  // --- recipients' webhooks (the service is a fake: test/unit/fakes/webhooks.ts; the delivery: test/integration/webhooks.test.ts)
  { route: 'POST /v1/webhooks', caller: 'third party', status: 201, check: (r) => (expect(r.json()).toMatchObject({ grantIds: [G.tp], status: 'active' }), expect(r.json().secret).toMatch(/^whsec_/)) },
  { route: 'POST /v1/webhooks', caller: 'third party', req: { body: { url: 'https://hooks.example/in' } }, status: 201, check: (r) => expect(r.json().grantIds).toBeNull(), why: 'every grant, present and future' },
  { route: 'POST /v1/webhooks', caller: 'third party 2', status: 404, code: 'API_ERR_NOT_FOUND', why: "another recipient's grant" },
  { route: 'POST /v1/webhooks', caller: 'workshop', status: 404, code: 'API_ERR_NOT_FOUND', why: "a third party's grant is not a workshop's" },
  { route: 'POST /v1/webhooks', caller: 'third party', req: { body: { url: 'https://hooks.example/in', grantIds: [G.unknown] } }, status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/webhooks', caller: 'third party', req: { body: { url: 'http://10.0.0.1/in' } }, status: 400, code: 'API_ERR_WEBHOOK_URL' },
  { route: 'POST /v1/webhooks', caller: 'third party', req: { body: { url: 'https://hooks.example/in', events: ['everything'] } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'POST /v1/webhooks', caller: 'third party', req: { body: { url: 'https://hooks.example/in', grantIds: ['x'] } }, status: 400, code: 'API_ERR_VALIDATION' },
  { route: 'GET /v1/webhooks', caller: 'third party', status: 200, check: (r) => expect(r.json().webhooks.map((w: { id: string }) => w.id)).toEqual([FAKE_WEBHOOK_ID]) },
  { route: 'GET /v1/webhooks', caller: 'third party 2', status: 200, check: (r) => expect(r.json()).toEqual({ webhooks: [] }) },
  { route: 'GET /v1/webhooks/:id', caller: 'third party', status: 200, check: (r) => expect(r.json().backlog).toEqual({ records: 0, oldestUndeliveredAt: null }) },
  { route: 'GET /v1/webhooks/:id', caller: 'third party 2', status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'GET /v1/webhooks/:id', caller: 'third party', req: { url: '/v1/webhooks/nope' }, status: 400, code: 'API_ERR_INVALID_ID' },
  { route: 'DELETE /v1/webhooks/:id', caller: 'third party', status: 204 },
  { route: 'DELETE /v1/webhooks/:id', caller: 'third party 2', status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/webhooks/:id/replay', caller: 'third party', status: 202, check: (r) => expect(r.json().grants).toBe(1) },
  { route: 'POST /v1/webhooks/:id/replay', caller: 'third party 2', status: 404, code: 'API_ERR_NOT_FOUND' },
  { route: 'POST /v1/webhooks/:id/replay', caller: 'third party', req: { body: { from: '2000-01-01' } }, status: 400, code: 'API_ERR_VALIDATION', why: 'beyond the stream log' },
];

/** The owner's route: the owner gets `ok`; another customer, the previous owner, and anyone on an unknown VIN get 404. */
function ownerCells(route: string, ok: number, check?: Cell['check']): Cell[] {
  const spec = ROUTES[route]!;
  const onVin = (vin: string): Partial<Req> => ({ url: spec.req.url.replace(VIN_A, vin) });
  const nf = { status: 404, code: 'API_ERR_NOT_FOUND' };
  return [
    { route, caller: 'owner A', status: ok, ...(check ? { check } : {}) },
    { route, caller: 'owner B', ...nf, why: 'another customer' },
    { route, caller: 'stranger', req: onVin(VIN_U), ...nf, why: 'an unknown VIN: the same answer' },
    { route, caller: 'owner A', req: onVin(VIN_U), ...nf },
    { route, caller: 'previous owner C', req: onVin(VIN_C), ...nf, why: 'the owner before the transfer' },
  ];
}

/** Each protected route's authentication cells and a 403 for every role it is not open to. */
function authCells(route: string, spec: RouteSpec): Cell[] {
  if (spec.guard === 'public') return [];
  const unauthorized = { status: 401, code: 'API_ERR_UNAUTHORIZED' };
  if (spec.guard === 'admin') {
    return [
      { route, caller: 'none', ...unauthorized },
      { route, caller: 'owner A', ...unauthorized, why: 'a valid API token is not the admin token' },
      { route, caller: 'authority', ...unauthorized },
      { route, caller: 'expired', ...unauthorized },
    ];
  }
  const invalid = { status: 401, code: 'API_ERR_TOKEN_INVALID' };
  const roles = spec.guard;
  return [
    { route, caller: 'none', ...unauthorized },
    { route, caller: 'expired', status: 401, code: 'API_ERR_TOKEN_EXPIRED' },
    { route, caller: 'tampered', ...invalid },
    { route, caller: 'foreign key', ...invalid },
    { route, caller: 'revoked', status: 401, code: 'API_ERR_TOKEN_REVOKED' },
    { route, caller: 'admin', ...invalid, why: 'the admin token is no API token' },
    ...(Object.keys(OF_ROLE) as Role[]).filter((r) => !roles.includes(r)).map((r): Cell => ({ route, caller: OF_ROLE[r], status: 403, code: 'API_ERR_FORBIDDEN' })),
  ];
}

// ---------------------------------------------------------------------------
// Running the cells.

let h: ApiHarness;

beforeAll(async () => {
  h = await createApiHarness();
  version = h.routes.map((r) => /^GET \/web\/([0-9a-f]{12})\/\*$/.exec(r)?.[1]).find(Boolean) ?? '';
  const t = callers.token;
  t.none = null;
  t.admin = ADMIN_TOKEN;
  t.expired = await h.expiredToken('customer', OWNER_A);
  t.tampered = await h.tamperedToken('customer', 'stranger', OWNER_A);
  t['foreign key'] = await h.foreignToken('customer', OWNER_A);
  const revoked = await h.token('customer', OWNER_A);
  callers.revokedJti = JSON.parse(Buffer.from(revoked.split('.')[1]!, 'base64url').toString('utf8')).jti;
  t.revoked = revoked;
  t['owner A'] = await h.token('customer', OWNER_A);
  t['owner B'] = await h.token('customer', OWNER_B);
  t['owner C'] = await h.token('customer', OWNER_C);
  t['previous owner C'] = await h.token('customer', OWNER_C_OLD);
  t.stranger = await h.token('customer', 'stranger');
  t.workshop = await h.token('workshop', WS);
  t['workshop 2'] = await h.token('workshop', WS2);
  t['unregistered workshop'] = await h.token('workshop', 'ws-unknown');
  t['third party'] = await h.token('third_party', TP);
  t['third party 2'] = await h.token('third_party', TP2);
  t['third party named ws-1'] = await h.token('third_party', WS);
  t.authority = await h.token('authority', 'gov-1');
});

afterAll(async () => {
  await h?.app.close();
});

/** The world, comparable: a refused request must leave it as it was. */
function snapshot(): string {
  return JSON.stringify(h.world.state, (_k, v: unknown) => (v instanceof Map ? [...v.entries()] : v instanceof Set ? [...v] : v));
}

async function send(spec: RouteSpec, cell: Cell): Promise<Res> {
  const req = { ...spec.req, ...cell.req, headers: { ...spec.req.headers, ...cell.req?.headers } };
  const token = callers.token[cell.caller];
  const headers: Record<string, string> = { ...req.headers, ...(token !== null ? { authorization: `Bearer ${token}` } : {}) };
  const opts = { method: req.method as 'GET', url: req.url.replace(VERSION, version), headers, ...(req.body !== undefined ? { payload: req.body as string } : {}) };
  if (!spec.sse) {
    const r = await h.app.inject(opts);
    return { status: r.statusCode, headers: r.headers, body: r.body, json: () => r.json() };
  }
  // An event stream answers 200 and never ends: the head and the first bytes, then the
  // client goes away. A refusal ends like any answer.
  const r = await h.app.inject({ ...opts, payloadAsStream: true });
  const stream = r.stream();
  stream.on('error', () => {});
  if (r.statusCode === 200) {
    let timer: NodeJS.Timeout | undefined;
    const first = await new Promise<string>((resolve) => {
      stream.once('data', (c: Buffer) => resolve(c.toString('utf8')));
      timer = setTimeout(() => resolve('(nothing within 2 s)'), 2000);
    }).finally(() => clearTimeout(timer));
    r.raw.res.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    return { status: 200, headers: r.headers, body: first, json: () => JSON.parse(first) };
  }
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks).toString('utf8');
  return { status: r.statusCode, headers: r.headers, body, json: () => JSON.parse(body) };
}

/** The table: every route's authentication cells, a plain 200 for a public route without cells of its own, then CELLS. */
const TABLE: Cell[] = [
  ...Object.entries(ROUTES).flatMap(([r, s]) => [
    ...authCells(r, s),
    ...(s.guard === 'public' && !CELLS.some((c) => c.route === r) ? [{ route: r, caller: 'none' as const, status: 200 }] : []),
  ]),
  ...CELLS,
];

const label = (c: Cell) => `${c.route} as ${c.caller}${c.state ? ` (${c.state})` : ''}${c.req?.url ? ` [${c.req.url.replace(/^\/v1\//, '')}]` : ''}${c.req?.body !== undefined ? ` ${JSON.stringify(c.req.body).slice(0, 60)}` : ''}${c.req?.headers ? ` ${JSON.stringify(c.req.headers).slice(0, 40)}` : ''}`;

describe('HTTP access matrix (app.inject, in-memory ports)', () => {
  it('covers every route the app registers, and lists no route it does not', () => {
    expect(version).toMatch(/^[0-9a-f]{12}$/);
    const registered = h.routes.map((r) => r.replace(`/${version}/`, `/${VERSION}/`));
    const listed = Object.keys(ROUTES).sort();
    expect(registered.filter((r) => !listed.includes(r)), 'routes without access rules in this matrix').toEqual([]);
    expect(listed.filter((r) => !registered.includes(r)), 'matrix routes the app does not register').toEqual([]);
    for (const r of listed) expect(TABLE.some((c) => c.route === r && c.status < 400), `${r} has no allowed cell`).toBe(true);
    for (const c of CELLS) expect(ROUTES[c.route], c.route).toBeDefined();
  });

  it('HEAD, which fastify adds beside every GET, is refused as its GET is', async () => {
    await fixture(h, 'base');
    const refused: string[] = [];
    for (const [route, spec] of Object.entries(ROUTES)) {
      if (spec.req.method !== 'GET' || spec.guard === 'public') continue;
      const r = await h.app.inject({ method: 'HEAD', url: spec.req.url });
      if (r.statusCode === 401) refused.push(route);
    }
    expect(refused).toEqual(Object.keys(ROUTES).filter((k) => ROUTES[k]!.req.method === 'GET' && ROUTES[k]!.guard !== 'public'));
    expect(refused.length).toBeGreaterThan(15);
  });

  it.each(TABLE.map((c) => [label(c), c] as const))('%s', async (_name, cell) => {
    const spec = ROUTES[cell.route]!;
    await fixture(h, cell.state ?? 'base');
    h.positions.trimmed = 10;
    const before = snapshot();
    const r = await send(spec, cell);
    expect(r.status, r.body.slice(0, 300)).toBe(cell.status);
    if (cell.code) {
      expect(String(r.headers['content-type'])).toMatch(/^application\/problem\+json/);
      expect(r.json()).toMatchObject({ status: cell.status, code: cell.code });
    }
    if (cell.status >= 400) expect(snapshot(), 'a refused request changed the world').toBe(before);
    if (spec.sse && cell.status === 200) {
      expect(r.headers['content-type']).toBe('text/event-stream');
      expect(r.body).toMatch(/^: keep-alive\n\n/);
      // The client went away: its session is closed and released.
      expect(h.feed.subs.size).toBe(0);
    }
    await cell.check?.(r, h);
  });
});
