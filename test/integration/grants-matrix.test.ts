// The access matrix of the grant routes (issue 12): every grant route × every identity,
// with the exact status and problem code the contract gives each cell; afterwards, the
// denied cells changed nothing and every allowed read through a grant was disclosed.
// (The identities of tokens from other issuers and revoked tokens belong to the sign-in
// work; an expired minted token and no token are here.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, FULL_CONSUMPTION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient, workshopVisit } from '../helpers/grants.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { createTokenService, parseKeys } from '../../identity/tokens.ts';

const JWT_KEYS = 'gmatrix1:grants-matrix-signing-secret-0123456789abcdef';
const OWNER = 'gm-owner';

const IDENTITIES = ['owner', 'other customer', 'recipient', 'other recipient', 'workshop with grant', 'workshop without grant', 'authority', 'admin', 'none', 'expired token'] as const;
type Identity = (typeof IDENTITIES)[number];

let db: TestDatabase;
let gw: RunningGateway;
let vin = '';
const cred = {} as Record<Identity, string | null>;
/** The recipient's grant G (technical), and grant D that the owner's DELETE revokes. */
let G = '';
let D = '';
/** A fresh check-in code per workshop identity. */
const codes = {} as Record<Identity, string>;
let baseline: Record<string, number>;

const count = async (sql: string, p: unknown[] = []) => (await db.query<{ n: number }>(sql, p))[0]!.n;
async function counts(): Promise<Record<string, number>> {
  return {
    recipients: await count('SELECT count(*)::int AS n FROM recipients'),
    grants: await count('SELECT count(*)::int AS n FROM grants'),
    revoked: await count('SELECT count(*)::int AS n FROM grants WHERE revoked_at IS NOT NULL'),
    codes: await count('SELECT count(*)::int AS n FROM checkin_codes'),
    redeemed: await count('SELECT count(*)::int AS n FROM checkin_codes WHERE redeemed_at IS NOT NULL'),
    grantReads: await count('SELECT count(*)::int AS n FROM disclosures WHERE grant_id IS NOT NULL'),
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startTestGateway(db.url, { JWT_KEYS });
  const v = await provision(gw, undefined, OWNER);
  vin = v.vin;
  const c = await connectVehicle(gw, v.vin, v.secret);
  const t = Date.now() - 60_000;
  await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [1, 2].map((s) => record(s, t + s, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION }))));
  await c.endAsync();
  const owner = await mintToken(gw, 'customer', OWNER);
  Object.assign(cred, {
    owner,
    'other customer': await mintToken(gw, 'customer', 'gm-stranger'),
    recipient: await registerRecipient(gw, 'gm-insurer', 'third_party'),
    'other recipient': await registerRecipient(gw, 'gm-other-service', 'third_party'),
    'workshop with grant': await registerRecipient(gw, 'gm-garage', 'workshop'),
    'workshop without grant': await registerRecipient(gw, 'gm-garage-2', 'workshop'),
    authority: await mintToken(gw, 'authority', 'gm-authority'),
    admin: ADMIN_TOKEN,
    none: null,
    'expired token': (await createTokenService(parseKeys(JWT_KEYS), () => Date.now() - 7_200_000).sign({ role: 'customer', subject: OWNER, ttlSeconds: 3600 })).token,
  } satisfies Record<Identity, string | null>);
  G = (await createGrant(gw, vin, owner, { recipientId: 'gm-insurer', categories: ['technical'], dataFrom: new Date(0).toISOString() })).id;
  D = (await createGrant(gw, vin, owner, { recipientId: 'gm-other-service', categories: ['technical'], access: ['stream'] })).id;
  await workshopVisit(gw, vin, owner, cred['workshop with grant']!);
  for (const id of IDENTITIES) codes[id] = (await api(gw, 'POST', `/v1/vehicles/${vin}/checkin-codes`, { visitHours: 4 }, owner)).body.code as string;
  baseline = await counts();
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

/** Who a route is open to. */
type Who = 'admin' | 'signed-in' | 'owner' | 'recipients' | 'grant G recipient' | 'workshop with grant' | 'registered workshop';
interface Route {
  name: string;
  who: Who;
  ok: number;
  request(id: Identity): { method: string; path: string; body?: unknown };
}

let recipientN = 0;
const ROUTES: Route[] = [
  { name: 'POST /v1/admin/recipients', who: 'admin', ok: 201, request: () => ({ method: 'POST', path: '/v1/admin/recipients', body: { id: `gm-new-${++recipientN}`, role: 'third_party', name: 'New' } }) },
  { name: 'GET /v1/recipients', who: 'signed-in', ok: 200, request: () => ({ method: 'GET', path: '/v1/recipients' }) },
  {
    name: 'POST /v1/vehicles/{A}/grants',
    who: 'owner',
    ok: 201,
    request: () => ({ method: 'POST', path: `/v1/vehicles/${vin}/grants`, body: { recipientId: 'gm-other-service', categories: ['consumption'], purpose: 'matrix' } }),
  },
  {
    // A field-level grant (issue 26): the same cells as any grant.
    name: 'POST /v1/vehicles/{A}/grants (fields)',
    who: 'owner',
    ok: 201,
    request: () => ({ method: 'POST', path: `/v1/vehicles/${vin}/grants`, body: { recipientId: 'gm-other-service', categories: ['technical'], fields: ['technical.speedKmh'], purpose: 'matrix' } }),
  },
  { name: 'GET /v1/vehicles/{A}/grants', who: 'owner', ok: 200, request: () => ({ method: 'GET', path: `/v1/vehicles/${vin}/grants` }) },
  { name: 'GET /v1/vehicles/{A}/grants/{G}/receipt', who: 'owner', ok: 200, request: () => ({ method: 'GET', path: `/v1/vehicles/${vin}/grants/${G}/receipt` }) },
  { name: 'POST /v1/vehicles/{A}/checkin-codes', who: 'owner', ok: 201, request: () => ({ method: 'POST', path: `/v1/vehicles/${vin}/checkin-codes`, body: { visitHours: 1 } }) },
  { name: 'GET /v1/grants', who: 'recipients', ok: 200, request: () => ({ method: 'GET', path: '/v1/grants' }) },
  { name: 'GET /v1/grants/{G}/cardata', who: 'grant G recipient', ok: 200, request: () => ({ method: 'GET', path: `/v1/grants/${G}/cardata?format=csv` }) },
  { name: 'GET /v1/workshop/vehicles/{A}/consumption', who: 'workshop with grant', ok: 200, request: () => ({ method: 'GET', path: `/v1/workshop/vehicles/${vin}/consumption` }) },
  { name: 'GET /v1/vehicles/{A}/disclosures', who: 'owner', ok: 200, request: () => ({ method: 'GET', path: `/v1/vehicles/${vin}/disclosures` }) },
  // Last: these change what the cells above would see.
  { name: 'DELETE /v1/vehicles/{A}/grants/{D}', who: 'owner', ok: 204, request: () => ({ method: 'DELETE', path: `/v1/vehicles/${vin}/grants/${D}` }) },
  { name: 'POST /v1/workshop/checkins', who: 'registered workshop', ok: 201, request: (id) => ({ method: 'POST', path: '/v1/workshop/checkins', body: { code: codes[id] } }) },
];

const ROLE: Record<Identity, string | null> = {
  owner: 'customer',
  'other customer': 'customer',
  recipient: 'third_party',
  'other recipient': 'third_party',
  'workshop with grant': 'workshop',
  'workshop without grant': 'workshop',
  authority: 'authority',
  admin: null,
  none: null,
  'expired token': null,
};

function expected(route: Route, id: Identity): [number, string | null] {
  if (route.who === 'admin') return id === 'admin' ? [route.ok, null] : [401, 'API_ERR_UNAUTHORIZED'];
  if (id === 'expired token') return [401, 'API_ERR_TOKEN_EXPIRED'];
  const role = ROLE[id];
  if (id === 'none') return [401, 'API_ERR_UNAUTHORIZED'];
  // The admin token as a bearer on a non-admin route: a bearer token that is no valid API token.
  if (role === null) return [401, 'API_ERR_TOKEN_INVALID'];
  const ok: [number, null] = [route.ok, null];
  const forbidden: [number, string] = [403, 'API_ERR_FORBIDDEN'];
  const notFound: [number, string] = [404, 'API_ERR_NOT_FOUND'];
  switch (route.who) {
    case 'signed-in':
      return ok;
    case 'owner':
      return role !== 'customer' ? forbidden : id === 'owner' ? ok : notFound;
    case 'recipients':
      return role === 'workshop' || role === 'third_party' ? ok : forbidden;
    case 'grant G recipient':
      return role === 'workshop' || role === 'third_party' ? (id === 'recipient' ? ok : notFound) : forbidden;
    case 'workshop with grant':
      return role !== 'workshop' ? forbidden : id === 'workshop with grant' ? ok : notFound;
    case 'registered workshop':
      return role === 'workshop' ? ok : forbidden;
  }
}

describe('grant routes × identity', () => {
  const cells = ROUTES.flatMap((route) => IDENTITIES.map((id) => [route.name, id, expected(route, id)[0], route] as const));
  it.each(cells)('%s as %s → %i', async (_name, id, status, route) => {
    const [, code] = expected(route, id);
    const { method, path, body } = route.request(id);
    const r = await api(gw, method, path, body, cred[id]);
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    if (code) {
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.body.code).toBe(code);
    }
  });

  it('the denied cells changed nothing; each allowed read through a grant was disclosed once', async () => {
    const now = await counts();
    expect(now).toEqual({
      ...baseline,
      recipients: baseline.recipients! + 1,
      // the owner's two POSTs (whole categories, fields), and the two workshops' check-ins
      grants: baseline.grants! + 4,
      revoked: baseline.revoked! + 1,
      codes: baseline.codes! + 1,
      redeemed: baseline.redeemed! + 2,
      // the recipient's export and the workshop's consumption read
      grantReads: baseline.grantReads! + 2,
    });
    const d = (await api(gw, 'GET', `/v1/vehicles/${vin}/disclosures`, undefined, cred.owner)).body.disclosures as { subject: string; grantId: string | null }[];
    expect(d.map((x) => x.subject)).toEqual(['gm-insurer', 'gm-garage']);
    expect(d[0]!.grantId).toBe(G);
  });
});
