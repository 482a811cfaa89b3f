// Grants (issue 12) through the real path: two gateways on one TimescaleDB database, real
// HTTP, telemetry over real MQTT. Lifecycle (create → read → revoke → refused, expiry,
// transfer, restriction), the privacy filter winning over a grant, categories projected in
// every format, erasure, workshop visits by check-in code, receipts, disclosures (every
// recipient read listed to the owner, exactly), and bad input changing nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway, waitFor } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient, workshopVisit } from '../helpers/grants.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const JWT_KEYS = 'grants1:grants-test-signing-secret-0123456789abcdef';
let db: TestDatabase;
let gw: RunningGateway;
/** A second instance on the same database; its check-in codes live 1 s. */
let gw2: RunningGateway;

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startTestGateway(db.url, { JWT_KEYS, GRANT_MAX_DAYS: '30' });
  gw2 = await startTestGateway(db.url, { JWT_KEYS, GRANT_MAX_DAYS: '30', CHECKIN_CODE_TTL_S: '1' });
});
afterAll(async () => {
  await gw2?.close();
  await gw?.close();
  await db?.drop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const uniq = (s: string) => `${s}-${++n}-${process.pid}`;

/** A vehicle of `owner` with records measured at `times` (ms), every group present. */
async function vehicle(owner: string, times: number[] = []): Promise<{ vin: string; secret: string; send(times: number[], firstSeq: number): Promise<void> }> {
  const v = await provision(gw, undefined, owner);
  const send = async (ts: number[], firstSeq: number) => {
    const c = await connectVehicle(gw, v.vin, v.secret);
    const recs = ts.map((t, i) =>
      record(firstSeq + i, t, {
        technical: { ...FULL_TECHNICAL, odometerKm: 1000 + firstSeq + i },
        consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 2000 + firstSeq + i },
        location: FULL_LOCATION,
      }),
    );
    await publish(c, `v1/vehicles/${v.vin}/telemetry`, encodeBatch(v.vin, recs));
    await c.endAsync();
  };
  if (times.length) await send(times, 1);
  return { ...v, send };
}

async function raw(g: RunningGateway, p: string, token: string) {
  const res = await fetch(`http://127.0.0.1:${g.httpPort}${p}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, headers: res.headers, buf: Buffer.from(await res.arrayBuffer()) };
}
const lines = (b: Buffer) => b.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
async function ndjson(g: RunningGateway, grantId: string, token: string, q = '') {
  const r = await raw(g, `/v1/grants/${grantId}/cardata?format=ndjson${q}`, token);
  return { status: r.status, lines: r.status === 200 ? lines(r.buf) : [], body: r.status === 200 ? null : JSON.parse(r.buf.toString()) };
}
function expectProblem(r: { status: number; body: any }, status: number, code: string) {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.body.code).toBe(code);
}
const disclosuresOf = async (vin: string, ownerToken: string) => {
  const r = await api(gw, 'GET', `/v1/vehicles/${vin}/disclosures`, undefined, ownerToken);
  expect(r.status).toBe(200);
  return r.body.disclosures as { subject: string; role: string; categories: string[]; grantId: string | null; endpoint: string }[];
};

describe('recipients', () => {
  it('are registered by the admin (201, 409 on a taken id, 400 on a bad body) and listed by name to anyone signed in', async () => {
    const id = uniq('zz-svc');
    const r = await api(gw, 'POST', '/v1/admin/recipients', { id, role: 'third_party', name: 'Zeta Insurance' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ id, role: 'third_party', name: 'Zeta Insurance' });
    expectProblem(await api(gw, 'POST', '/v1/admin/recipients', { id, role: 'workshop', name: 'Other' }), 409, 'API_ERR_CONFLICT');
    for (const body of [
      { id: 'has space', role: 'workshop', name: 'x' },
      { id: uniq('a'), role: 'customer', name: 'x' },
      { id: uniq('a'), role: 'workshop' },
      { id: uniq('a'), role: 'workshop', name: '' },
      { id: uniq('a'), role: 'workshop', name: 'x', extra: 1 },
    ]) {
      expectProblem(await api(gw, 'POST', '/v1/admin/recipients', body), 400, 'API_ERR_VALIDATION');
    }
    const a = uniq('aa-garage');
    await registerRecipient(gw, a, 'workshop', 'Aachen Garage');
    expectProblem(await api(gw, 'POST', '/v1/admin/recipients', { id: uniq('x'), role: 'workshop', name: 'x' }, await mintToken(gw, 'customer', 'c')), 401, 'API_ERR_UNAUTHORIZED');
    for (const role of ['customer', 'workshop', 'authority', 'third_party']) {
      const l = await api(gw, 'GET', '/v1/recipients', undefined, await mintToken(gw, role, uniq('who')));
      expect(l.status).toBe(200);
      const names = (l.body.recipients as { name: string }[]).map((x) => x.name);
      expect(names).toEqual([...names].sort());
      expect(l.body.recipients).toEqual(expect.arrayContaining([{ id: a, role: 'workshop', name: 'Aachen Garage' }, { id, role: 'third_party', name: 'Zeta Insurance' }]));
    }
    expectProblem(await api(gw, 'GET', '/v1/recipients', undefined, null), 401, 'API_ERR_UNAUTHORIZED');
  });
});

describe('grant lifecycle', () => {
  it('create → read (only dataFrom on, only its categories) → revoke → refused at once on both instances; receipt records both', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 120_000;
    const v = await vehicle(owner, [t0, t0 + 1000, t0 + 2000]);
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party', 'Fleet Insights');
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['location', 'technical'], purpose: 'usage-based insurance' });
    expect(g).toMatchObject({ vin: v.vin, recipientId: tpId, categories: ['technical', 'location'], access: ['history', 'stream'], status: 'active', origin: 'owner', revokedAt: null, endedAt: null });
    expect(Date.parse(g.createdAt)).toBeGreaterThan(t0);
    expect(g.dataFrom).toBe(g.createdAt);
    // default expiry: GRANT_MAX_DAYS (30 here) after creation
    expect(Date.parse(g.expiresAt) - Date.parse(g.createdAt)).toBeGreaterThan(30 * 86_400_000 - 5000);
    const after = Math.max(Date.now(), Date.parse(g.createdAt)) + 10;
    await v.send([after, after + 1], 10);

    const listed = await api(gw, 'GET', '/v1/grants', undefined, tp);
    expect(listed.status).toBe(200);
    expect(listed.body.grants.map((x: { id: string }) => x.id)).toEqual([g.id]);
    const read = await ndjson(gw, g.id, tp);
    expect(read.status).toBe(200);
    expect(read.lines.map((l) => l.seq)).toEqual([10, 11]);
    for (const l of read.lines) expect(Object.keys(l).sort()).toEqual(['location', 'receivedAt', 'recordedAt', 'seq', 'technical', 'vin']);
    expect(read.lines[0]!.technical).toEqual({ ...FULL_TECHNICAL, odometerKm: 1010 });
    expect((await ndjson(gw2, g.id, tp)).status).toBe(200);

    expect((await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/grants/${g.id}`, undefined, ot)).status).toBe(204);
    // in force before the answer: here, and on the other instance
    expectProblem(await ndjson(gw, g.id, tp), 404, 'API_ERR_NOT_FOUND');
    expectProblem(await ndjson(gw2, g.id, tp), 404, 'API_ERR_NOT_FOUND');
    expect((await api(gw, 'GET', '/v1/grants', undefined, tp)).body.grants).toEqual([]);
    const mine = await api(gw, 'GET', `/v1/vehicles/${v.vin}/grants`, undefined, ot);
    expect(mine.body.grants).toHaveLength(1);
    expect(mine.body.grants[0]).toMatchObject({ id: g.id, status: 'revoked' });
    expect(mine.body.grants[0].revokedAt).not.toBeNull();
    expectProblem(await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/grants/${g.id}`, undefined, ot), 409, 'API_ERR_CONFLICT');

    const rc = await api(gw, 'GET', `/v1/vehicles/${v.vin}/grants/${g.id}/receipt`, undefined, ot);
    expect(rc.status).toBe(200);
    expect(rc.body).toMatchObject({
      recordId: g.id,
      piiPrincipal: { id: owner },
      recipient: { id: tpId, name: 'Fleet Insights', role: 'third_party' },
      subject: { vin: v.vin },
      status: 'revoked',
      validity: { from: g.createdAt, until: g.expiresAt },
      revocation: { method: `DELETE /v1/vehicles/${v.vin}/grants/${g.id}` },
    });
    expect(rc.body.purposes[0]).toMatchObject({ purpose: 'usage-based insurance', piiCategories: ['technical', 'location'] });
    expect(rc.body.purposes[0].legalBasis).toMatch(/2023\/2854/);
    expect(rc.body.events.map((e: { type: string }) => e.type)).toEqual(['given', 'withdrawn']);
    expect(rc.body.events[1].actor).toBe(`customer:${owner}`);

    // The two reads that happened are disclosed, with the grant; the refused ones are not.
    const d = (await disclosuresOf(v.vin, ot)).filter((x) => x.grantId === g.id);
    expect(d).toHaveLength(2);
    for (const x of d) expect(x).toMatchObject({ role: 'third_party', subject: tpId, categories: ['technical', 'location'], endpoint: 'GET /v1/grants/{id}/cardata' });
  });

  it('dataFrom in the past reaches back, within the owner\'s ownership; from/to narrow it', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 100_000;
    const v = await vehicle(owner, [t0, t0 + 1000, t0 + 2000, t0 + 3000]);
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party');
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['technical'], dataFrom: new Date(t0 + 1000).toISOString() });
    expect((await ndjson(gw, g.id, tp)).lines.map((l) => l.seq)).toEqual([2, 3, 4]);
    const q = `&from=${new Date(t0).toISOString()}&to=${new Date(t0 + 3000).toISOString()}`;
    expect((await ndjson(gw, g.id, tp, q)).lines.map((l) => l.seq)).toEqual([2, 3]);
  });

  it('expires: read before, 404 after, status expired, no longer listed to the recipient', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 10_000;
    const v = await vehicle(owner, [t0]);
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party');
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['consumption'], dataFrom: new Date(t0 - 1).toISOString(), expiresAt: new Date(Date.now() + 1500).toISOString() });
    expect((await ndjson(gw, g.id, tp)).lines).toHaveLength(1);
    await sleep(Math.max(0, Date.parse(g.expiresAt) - Date.now() + 50));
    expectProblem(await ndjson(gw, g.id, tp), 404, 'API_ERR_NOT_FOUND');
    expect((await api(gw, 'GET', `/v1/vehicles/${v.vin}/grants`, undefined, ot)).body.grants[0].status).toBe('expired');
    expect((await api(gw, 'GET', '/v1/grants', undefined, tp)).body.grants).toEqual([]);
    expectProblem(await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/grants/${g.id}`, undefined, ot), 409, 'API_ERR_CONFLICT');
    const rc = await api(gw, 'GET', `/v1/vehicles/${v.vin}/grants/${g.id}/receipt`, undefined, ot);
    expect(rc.body.events.map((e: { type: string }) => e.type)).toEqual(['given', 'expired']);
  });

  it('a transfer ends every grant of the previous owner (announced on grant_changed); the new owner starts with none', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 10_000;
    const v = await vehicle(owner, [t0]);
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party');
    const g1 = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['technical'], dataFrom: new Date(t0 - 1).toISOString() });
    const g2 = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['consumption'] });
    expect((await ndjson(gw, g1.id, tp)).lines).toHaveLength(1);

    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (m) => heard.push(m.payload ?? ''));
    await listener.query('LISTEN grant_changed');
    try {
      const next = uniq('next-owner');
      expect((await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: next })).status).toBe(200);
      expectProblem(await ndjson(gw, g1.id, tp), 404, 'API_ERR_NOT_FOUND');
      expectProblem(await ndjson(gw2, g2.id, tp), 404, 'API_ERR_NOT_FOUND');
      expect((await api(gw, 'GET', '/v1/grants', undefined, tp)).body.grants).toEqual([]);
      await waitFor(async () => heard.length >= 2, 1000);
      expect(heard.sort()).toEqual([g1.id, g2.id].sort());
      const nt = await mintToken(gw, 'customer', next);
      expect((await api(gw, 'GET', `/v1/vehicles/${v.vin}/grants`, undefined, nt)).body.grants).toEqual([]);
      // the previous owner no longer manages the vehicle's grants
      expectProblem(await api(gw, 'GET', `/v1/vehicles/${v.vin}/grants`, undefined, ot), 404, 'API_ERR_NOT_FOUND');
      // a new grant of the new owner never reaches back into the previous owner's period
      const g3 = await createGrant(gw, v.vin, nt, { recipientId: tpId, categories: ['technical'], dataFrom: new Date(t0 - 60_000).toISOString() });
      expect((await ndjson(gw, g3.id, tp)).lines).toEqual([]);
    } finally {
      await listener.end();
    }
  });

  it('a restriction (Art. 18) suspends reads (403 API_ERR_RESTRICTED, nothing disclosed); lifting it resumes them', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 10_000;
    const v = await vehicle(owner, [t0]);
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party');
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['technical'], dataFrom: new Date(t0 - 1).toISOString() });
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true }, ot)).status).toBe(200);
    expectProblem(await ndjson(gw, g.id, tp), 403, 'API_ERR_RESTRICTED');
    expectProblem(await ndjson(gw2, g.id, tp), 403, 'API_ERR_RESTRICTED');
    expect(await disclosuresOf(v.vin, ot)).toEqual([]);
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: false }, ot)).status).toBe(200);
    expect((await ndjson(gw, g.id, tp)).lines).toHaveLength(1);
    expect(await disclosuresOf(v.vin, ot)).toHaveLength(1);
  });

  it('the location opt-out beats a location grant: no position is returned, because none was stored', async () => {
    const owner = uniq('owner');
    const v = await vehicle(owner);
    const ot = await mintToken(gw, 'customer', owner);
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: true }, ot)).status).toBe(200);
    const t = Date.now();
    await v.send([t, t + 1, t + 2], 1);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party');
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['location'], dataFrom: new Date(t - 1000).toISOString() });
    const r = await ndjson(gw, g.id, tp);
    expect(r.lines).toHaveLength(3);
    for (const l of r.lines) expect(l.location).toBeNull();
    const csv = await raw(gw, `/v1/grants/${g.id}/cardata?format=csv`, tp);
    const rows = csv.buf.toString().trim().split(/\r?\n/);
    expect(rows[0]!.split(',').slice(4).every((h) => h.startsWith('location.'))).toBe(true);
    expect(rows.slice(1)).toHaveLength(3);
    for (const x of rows.slice(1)) expect(x).toMatch(/^[^,]+,\d+,[^,]+,[^,]+,,,,,$/);
  });

  it('projects the grant\'s categories in NDJSON, CSV and ZIP', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 10_000;
    const v = await vehicle(owner, [t0, t0 + 1]);
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party');
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['consumption'], dataFrom: new Date(t0 - 1).toISOString() });
    const nd = await ndjson(gw, g.id, tp);
    expect(nd.lines.map((l) => Object.keys(l).sort())).toEqual([['consumption', 'receivedAt', 'recordedAt', 'seq', 'vin'], ['consumption', 'receivedAt', 'recordedAt', 'seq', 'vin']]);
    expect(nd.lines[0]!.consumption).toEqual({ ...FULL_CONSUMPTION, totalDistanceKm: 2001 });
    const csv = await raw(gw, `/v1/grants/${g.id}/cardata?format=csv`, tp);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const header = csv.buf.toString().split(/\r?\n/)[0]!.split(',');
    expect(header.slice(0, 4)).toEqual(['vin', 'seq', 'recordedAt', 'receivedAt']);
    expect(header.slice(4).length).toBe(Object.keys(FULL_CONSUMPTION).length);
    expect(header.slice(4).every((h) => h.startsWith('consumption.'))).toBe(true);
    const zip = await raw(gw, `/v1/grants/${g.id}/cardata?format=zip`, tp);
    expect(zip.status).toBe(200);
    const dir = mkdtempSync(path.join(tmpdir(), 'grant-zip-'));
    writeFileSync(path.join(dir, 'a.zip'), zip.buf);
    execFileSync('python3', ['-c', 'import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])', path.join(dir, 'a.zip'), dir]);
    expect(lines(readFileSync(path.join(dir, 'records.ndjson'))).map((l) => Object.keys(l).sort())).toEqual(nd.lines.map((l) => Object.keys(l).sort()));
    expect(readFileSync(path.join(dir, 'records.csv'), 'utf8').split(/\r?\n/)[0]).toBe(header.join(','));
    const cat = JSON.parse(readFileSync(path.join(dir, 'catalogue.json'), 'utf8')) as { fields: { name: string }[] };
    expect(cat.fields.some((f) => f.name.startsWith('consumption.'))).toBe(true);
    expect(cat.fields.some((f) => f.name.startsWith('location.') || f.name.startsWith('technical.'))).toBe(false);
    expect(JSON.parse(readFileSync(path.join(dir, 'grant.json'), 'utf8'))).toMatchObject({ id: g.id, categories: ['consumption'] });
    // the owner's own consent history and disclosures are not the recipient's to read
    expect(() => readFileSync(path.join(dir, 'consent-history.json'))).toThrow();
    expect(() => readFileSync(path.join(dir, 'disclosures.json'))).toThrow();
    expect((await disclosuresOf(v.vin, ot)).filter((d) => d.grantId === g.id)).toHaveLength(3);
  });

  it('an erasure erases for recipients too', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 10_000;
    const v = await vehicle(owner, [t0, t0 + 1, t0 + 2]);
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party');
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['technical', 'location'], dataFrom: new Date(t0 - 1).toISOString() });
    expect((await ndjson(gw, g.id, tp)).lines).toHaveLength(3);
    expect((await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data?category=location`, undefined, ot)).status).toBe(200);
    const partly = await ndjson(gw, g.id, tp);
    expect(partly.lines).toHaveLength(3);
    for (const l of partly.lines) expect(l.location).toBeNull();
    expect((await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data`, undefined, ot)).status).toBe(200);
    expect((await ndjson(gw, g.id, tp)).lines).toEqual([]);
  });

  it('refuses bad grants with a specific code and changes nothing', async () => {
    const owner = uniq('owner');
    const v = await vehicle(owner);
    const other = await vehicle(uniq('other-owner'));
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    await registerRecipient(gw, tpId, 'third_party');
    const future = new Date(Date.now() + 86_400_000).toISOString();
    const cases: [Record<string, unknown>, number, string][] = [
      [{ recipientId: tpId, categories: ['speed'], purpose: 'x' }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: tpId, categories: [], purpose: 'x' }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: tpId, categories: ['technical'] }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: tpId, categories: ['technical'], purpose: '   ' }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: tpId, categories: ['technical'], purpose: 'x', expiresAt: new Date(Date.now() - 1000).toISOString() }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: tpId, categories: ['technical'], purpose: 'x', expiresAt: new Date(Date.now() + 31 * 86_400_000).toISOString() }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: tpId, categories: ['technical'], purpose: 'x', expiresAt: 'tomorrow' }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: tpId, categories: ['technical'], purpose: 'x', access: ['live'] }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: 'not-registered', categories: ['technical'], purpose: 'x' }, 400, 'API_ERR_UNKNOWN_RECIPIENT'],
      [{ recipientId: owner, categories: ['technical'], purpose: 'x' }, 400, 'API_ERR_UNKNOWN_RECIPIENT'],
      [{ recipientId: "x'OR'1'='1", categories: ['technical'], purpose: 'x', expiresAt: future }, 400, 'API_ERR_UNKNOWN_RECIPIENT'],
      [{ recipientId: "' OR 1=1 --", categories: ['technical'], purpose: 'x' }, 400, 'API_ERR_VALIDATION'],
      [{ recipientId: tpId, categories: ['technical'], purpose: 'x', isAdmin: true }, 400, 'API_ERR_VALIDATION'],
    ];
    const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM grants'))[0]!.n;
    const before = await count();
    for (const [body, status, code] of cases) expectProblem(await api(gw, 'POST', `/v1/vehicles/${v.vin}/grants`, body, ot), status, code);
    // someone else's vehicle: 404, as for an unknown one
    expectProblem(await api(gw, 'POST', `/v1/vehicles/${other.vin}/grants`, { recipientId: tpId, categories: ['technical'], purpose: 'x' }, ot), 404, 'API_ERR_NOT_FOUND');
    expect(await count()).toBe(before);
    // A valid SQL-looking purpose is stored verbatim, not executed.
    const purpose = "'; DROP TABLE grants; --";
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['technical'], purpose });
    expect(g.purpose).toBe(purpose);
    expect(await count()).toBe(before + 1);
  });

  it('refuses malformed, unknown and foreign grant ids with a specific code and changes nothing', async () => {
    const owner = uniq('owner');
    const v = await vehicle(owner);
    const w = await vehicle(owner);
    const ot = await mintToken(gw, 'customer', owner);
    const tpId = uniq('tp');
    const tp = await registerRecipient(gw, tpId, 'third_party');
    const other = await registerRecipient(gw, uniq('tp-other'), 'third_party');
    const g = await createGrant(gw, v.vin, ot, { recipientId: tpId, categories: ['technical'] });
    const unknown = '00000000-0000-4000-8000-000000000000';
    const cases: [string, string, string | null, number, string][] = [
      ['GET', '/v1/grants/not-a-uuid/cardata', tp, 400, 'API_ERR_INVALID_ID'],
      ['GET', `/v1/grants/${encodeURIComponent("1' OR '1'='1")}/cardata`, tp, 400, 'API_ERR_INVALID_ID'],
      ['GET', `/v1/grants/${g.id}x/cardata`, tp, 400, 'API_ERR_INVALID_ID'],
      ['GET', `/v1/grants/${unknown}/cardata`, tp, 404, 'API_ERR_NOT_FOUND'],
      ['GET', `/v1/grants/${g.id}/cardata`, other, 404, 'API_ERR_NOT_FOUND'],
      ['GET', `/v1/grants/${g.id}/cardata?format=xml`, tp, 400, 'API_ERR_VALIDATION'],
      ['GET', `/v1/grants/${g.id}/cardata?from=${encodeURIComponent("' OR 1=1 --")}`, tp, 400, 'API_ERR_VALIDATION'],
      ['GET', `/v1/grants/${g.id}/cardata?categories=location`, tp, 400, 'API_ERR_VALIDATION'],
      ['DELETE', `/v1/vehicles/${v.vin}/grants/not-a-uuid`, ot, 400, 'API_ERR_INVALID_ID'],
      ['DELETE', `/v1/vehicles/${v.vin}/grants/${unknown}`, ot, 404, 'API_ERR_NOT_FOUND'],
      // a grant of another vehicle (of the same owner) named under this one
      ['DELETE', `/v1/vehicles/${w.vin}/grants/${g.id}`, ot, 404, 'API_ERR_NOT_FOUND'],
      ['GET', `/v1/vehicles/${w.vin}/grants/${g.id}/receipt`, ot, 404, 'API_ERR_NOT_FOUND'],
      ['GET', `/v1/vehicles/${v.vin}/grants/${encodeURIComponent('x;DROP TABLE grants')}/receipt`, ot, 400, 'API_ERR_INVALID_ID'],
      // the recipient cannot manage the grant
      ['DELETE', `/v1/vehicles/${v.vin}/grants/${g.id}`, tp, 403, 'API_ERR_FORBIDDEN'],
    ];
    for (const [method, p, tok, status, code] of cases) expectProblem(await api(gw, method, p, undefined, tok), status, code);
    expect((await db.query<{ revoked_at: Date | null }>('SELECT revoked_at FROM grants WHERE id = $1', [g.id]))[0]!.revoked_at).toBeNull();
    expect((await ndjson(gw, g.id, tp)).status).toBe(200);
  });
});

describe('workshop visits: check-in code', () => {
  it('the owner\'s single-use code becomes the workshop\'s consumption grant for the visit; without one, 404', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 10_000;
    const v = await vehicle(owner, [t0, t0 + 1]);
    const ot = await mintToken(gw, 'customer', owner);
    const wsId = uniq('garage');
    const ws = await registerRecipient(gw, wsId, 'workshop', 'Corner Garage');
    const ws2Id = uniq('garage-b');
    const ws2 = await registerRecipient(gw, ws2Id, 'workshop');
    const unregistered = await mintToken(gw, 'workshop', uniq('garage-unregistered'));
    const consumption = (tok: string) => api(gw, 'GET', `/v1/workshop/vehicles/${v.vin}/consumption`, undefined, tok);
    expectProblem(await consumption(ws), 404, 'API_ERR_NOT_FOUND');

    const c = await api(gw, 'POST', `/v1/vehicles/${v.vin}/checkin-codes`, { visitHours: 24 }, ot);
    expect(c.status).toBe(201);
    expect(c.body.code).toMatch(/^[A-HJKMNP-TV-Z2-9]{5}-[A-HJKMNP-TV-Z2-9]{5}$/);
    expect(c.body).toMatchObject({ vin: v.vin, visitHours: 24, recipientId: null });
    expectProblem(await api(gw, 'POST', '/v1/workshop/checkins', { code: c.body.code }, unregistered), 403, 'API_ERR_FORBIDDEN');
    // read out at the counter: case and separators do not matter
    const g = await api(gw, 'POST', '/v1/workshop/checkins', { code: c.body.code.toLowerCase().replace('-', ' ') }, ws);
    expect(g.status).toBe(201);
    expect(g.body).toMatchObject({ vin: v.vin, recipientId: wsId, categories: ['consumption'], access: ['history'], status: 'active', origin: 'checkin' });
    expect(Date.parse(g.body.expiresAt) - Date.parse(g.body.createdAt)).toBe(24 * 3_600_000);
    expectProblem(await api(gw, 'POST', '/v1/workshop/checkins', { code: c.body.code }, ws), 404, 'API_ERR_NOT_FOUND');
    expectProblem(await api(gw, 'POST', '/v1/workshop/checkins', { code: c.body.code }, ws2), 404, 'API_ERR_NOT_FOUND');

    const r = await consumption(ws);
    expect(r.status).toBe(200);
    expect(r.body.history).toHaveLength(2);
    expect(r.body.latest.consumption).toEqual({ ...FULL_CONSUMPTION, totalDistanceKm: 2002 });
    expect(JSON.stringify(r.body)).not.toMatch(/latitude|odometer/);
    expectProblem(await consumption(ws2), 404, 'API_ERR_NOT_FOUND');
    // the visit's grant reads through the grant route too, consumption only
    const nd = await ndjson(gw, g.body.id, ws);
    expect(nd.lines.map((l) => Object.keys(l).sort())).toEqual([['consumption', 'receivedAt', 'recordedAt', 'seq', 'vin'], ['consumption', 'receivedAt', 'recordedAt', 'seq', 'vin']]);

    // listed to the owner, revocable like any grant
    const mine = await api(gw, 'GET', `/v1/vehicles/${v.vin}/grants`, undefined, ot);
    expect(mine.body.grants.map((x: { id: string; origin: string }) => [x.id, x.origin])).toEqual([[g.body.id, 'checkin']]);
    const rc = await api(gw, 'GET', `/v1/vehicles/${v.vin}/grants/${g.body.id}/receipt`, undefined, ot);
    expect(rc.body.origin).toMatch(/check-in code/);
    expect((await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/grants/${g.body.id}`, undefined, ot)).status).toBe(204);
    expectProblem(await consumption(ws), 404, 'API_ERR_NOT_FOUND');

    const d = (await disclosuresOf(v.vin, ot)).filter((x) => x.grantId === g.body.id);
    expect(d.map((x) => [x.subject, x.endpoint, x.categories])).toEqual([
      [wsId, 'GET /v1/workshop/vehicles/{vin}/consumption', ['consumption']],
      [wsId, 'GET /v1/grants/{id}/cardata', ['consumption']],
    ]);
  });

  it('a code naming a workshop is for that workshop only; codes expire; bad codes and bodies are refused', async () => {
    const owner = uniq('owner');
    const v = await vehicle(owner, [Date.now() - 5000]);
    const ot = await mintToken(gw, 'customer', owner);
    const aId = uniq('garage-a');
    const a = await registerRecipient(gw, aId, 'workshop');
    const bId = uniq('garage-b');
    const b = await registerRecipient(gw, bId, 'workshop');
    const tpId = uniq('tp');
    await registerRecipient(gw, tpId, 'third_party');
    const c = await api(gw, 'POST', `/v1/vehicles/${v.vin}/checkin-codes`, { recipientId: bId, visitHours: 2 }, ot);
    expect(c.status).toBe(201);
    expectProblem(await api(gw, 'POST', '/v1/workshop/checkins', { code: c.body.code }, a), 404, 'API_ERR_NOT_FOUND');
    const g = await api(gw, 'POST', '/v1/workshop/checkins', { code: c.body.code }, b);
    expect(g.status).toBe(201);
    expect(Date.parse(g.body.expiresAt) - Date.parse(g.body.createdAt)).toBe(2 * 3_600_000);

    // gw2's codes live 1 s
    const short = await api(gw2, 'POST', `/v1/vehicles/${v.vin}/checkin-codes`, { visitHours: 1 }, ot);
    expect(short.status).toBe(201);
    await sleep(Math.max(0, Date.parse(short.body.expiresAt) - Date.now() + 50));
    expectProblem(await api(gw2, 'POST', '/v1/workshop/checkins', { code: short.body.code }, a), 404, 'API_ERR_NOT_FOUND');

    const codesBefore = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM checkin_codes'))[0]!.n;
    for (const [body, code] of [
      [{ recipientId: tpId, visitHours: 1 }, 'API_ERR_UNKNOWN_RECIPIENT'],
      [{ recipientId: 'nobody', visitHours: 1 }, 'API_ERR_UNKNOWN_RECIPIENT'],
      [{}, 'API_ERR_VALIDATION'],
      [{ visitHours: 0 }, 'API_ERR_VALIDATION'],
      [{ visitHours: 73 }, 'API_ERR_VALIDATION'],
      [{ visitHours: '2' }, 'API_ERR_VALIDATION'],
      [{ visitHours: 1, dataFrom: "'; DROP TABLE checkin_codes; --" }, 'API_ERR_VALIDATION'],
      [{ visitHours: 1, zzz: 1 }, 'API_ERR_VALIDATION'],
    ] as const) {
      expectProblem(await api(gw, 'POST', `/v1/vehicles/${v.vin}/checkin-codes`, body, ot), 400, code);
    }
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM checkin_codes'))[0]!.n).toBe(codesBefore);
    for (const code of ["' OR 1=1 --", 'AAAAA-AAAAA', '', 'x'.repeat(33)]) {
      const r = await api(gw, 'POST', '/v1/workshop/checkins', { code }, a);
      expect([400, 404]).toContain(r.status);
      expect(r.body.code).toMatch(/^API_ERR_(VALIDATION|NOT_FOUND)$/);
    }
    expectProblem(await api(gw, 'POST', '/v1/workshop/checkins', { code: c.body.code }, ot), 403, 'API_ERR_FORBIDDEN');
  });
});

describe('disclosures', () => {
  it('list every recipient read, exactly: one per read that returned data, none for refused ones', async () => {
    const owner = uniq('owner');
    const t0 = Date.now() - 10_000;
    const v = await vehicle(owner, [t0, t0 + 1, t0 + 2]);
    const ot = await mintToken(gw, 'customer', owner);
    const aId = uniq('tp-a');
    const a = await registerRecipient(gw, aId, 'third_party');
    const bId = uniq('tp-b');
    const b = await registerRecipient(gw, bId, 'third_party');
    const wId = uniq('garage');
    const w = await registerRecipient(gw, wId, 'workshop');
    const ga = await createGrant(gw, v.vin, ot, { recipientId: aId, categories: ['technical'], dataFrom: new Date(t0 - 1).toISOString() });
    const gb = await createGrant(gw, v.vin, ot, { recipientId: bId, categories: ['location', 'consumption'], dataFrom: new Date(t0 - 1).toISOString(), access: ['history'] });
    await workshopVisit(gw, v.vin, ot, w);
    const reads: [RunningGateway, string, string][] = [
      [gw, `/v1/grants/${ga.id}/cardata?format=ndjson`, a],
      [gw2, `/v1/grants/${ga.id}/cardata?format=csv`, a],
      [gw, `/v1/grants/${gb.id}/cardata?format=zip`, b],
      [gw2, `/v1/grants/${gb.id}/cardata?format=ndjson&from=${new Date(t0 + 1).toISOString()}`, b],
      [gw, `/v1/workshop/vehicles/${v.vin}/consumption`, w],
      [gw2, `/v1/workshop/vehicles/${v.vin}/consumption`, w],
      [gw, `/v1/grants/${ga.id}/cardata?format=ndjson`, a],
    ];
    for (const [g, p, tok] of reads) expect((await raw(g, p, tok)).status).toBe(200);
    // refused: another's grant, wrong workshop, the owner's own reads
    expect((await raw(gw, `/v1/grants/${ga.id}/cardata`, b)).status).toBe(404);
    expect((await raw(gw, `/v1/grants/${gb.id}/cardata`, w)).status).toBe(404);
    expect((await raw(gw, `/v1/vehicles/${v.vin}/cardata`, ot)).status).toBe(200);
    const d = await disclosuresOf(v.vin, ot);
    expect(d.map((x) => [x.subject, x.grantId === null ? null : x.grantId === ga.id ? 'a' : x.grantId === gb.id ? 'b' : 'visit', x.categories])).toEqual([
      [aId, 'a', ['technical']],
      [aId, 'a', ['technical']],
      [bId, 'b', ['consumption', 'location']],
      [bId, 'b', ['consumption', 'location']],
      [wId, 'visit', ['consumption']],
      [wId, 'visit', ['consumption']],
      [aId, 'a', ['technical']],
    ]);
    // another owner sees none of them
    const other = await vehicle(uniq('owner-x'));
    expect(await disclosuresOf(other.vin, await mintToken(gw, 'customer', (await db.query<{ owner_id: string }>('SELECT owner_id FROM vehicles WHERE vin = $1', [other.vin]))[0]!.owner_id))).toEqual([]);
  });
});
