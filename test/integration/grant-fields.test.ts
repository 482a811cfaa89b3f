// Field-level grants (issue 26) through the real path: two gateways on one TimescaleDB
// database, real HTTP, telemetry over real MQTT. A grant naming fields inside its
// categories: its export (NDJSON, CSV, ZIP), its stream (on the instance that wrote the
// rows, from the rows it holds, and on another, read from the database), the workshop's
// consumption read, its receipt, its listings and its disclosures carry those fields and
// none of the other fields of the same categories; bad `fields` get their own 400s and
// change nothing; the database refuses a grant whose fields lie outside its categories.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient } from '../helpers/grants.ts';
import { openSse } from '../helpers/sse.ts';
import { unzip } from '../helpers/zip.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let a: RunningGateway;
let b: RunningGateway;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { JWT_KEYS: 'gf1:grant-fields-test-signing-secret-0123456789', STREAM_KEEPALIVE_MS: '1000' };
  a = await startTestGateway(db.url, env);
  b = await startTestGateway(db.url, env);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
});

let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;
const topic = (vin: string) => `v1/vehicles/${vin}/telemetry`;
const full = (seq: number, at: number) => record(seq, at, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION });
/** The keys every record line carries besides its categories (receivedAt where the gateway records it). */
const RECORD_KEYS = ['vin', 'seq', 'recordedAt', 'receivedAt'];
const FIELDS = ['technical.speedKmh', 'location.latitude', 'location.longitude'];

async function get(g: RunningGateway, p: string, token: string) {
  const res = await fetch(`http://127.0.0.1:${g.httpPort}${p}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, headers: res.headers, buf: Buffer.from(await res.arrayBuffer()) };
}
const ndjsonLines = (text: string) => text.split('\n').filter(Boolean);

/** A line of the grant: exactly the granted fields, of the granted categories, nothing else. */
function expectGrantedOnly(line: Record<string, unknown>) {
  expect(Object.keys(line).filter((k) => !RECORD_KEYS.includes(k))).toEqual(['technical', 'location']);
  expect(line.technical).toEqual({ speedKmh: FULL_TECHNICAL.speedKmh });
  expect(line.location).toEqual({ latitude: FULL_LOCATION.latitude, longitude: FULL_LOCATION.longitude });
}

async function setup(fields: string[] = FIELDS) {
  const owner = uniq('owner');
  const { vin, secret } = await provision(a, undefined, owner);
  const ownerTok = await mintToken(a, 'customer', owner);
  const rid = uniq('tp');
  const tpTok = await registerRecipient(a, rid, 'third_party', 'Usage-based Insurance');
  const grant = await createGrant(a, vin, ownerTok, { recipientId: rid, categories: ['location', 'technical'], fields, purpose: 'pay-as-you-drive: speed and position only', dataFrom: new Date(0).toISOString() });
  return { vin, secret, owner, ownerTok, rid, tpTok, grant };
}

describe('a field-level grant', () => {
  it('is created over HTTP and listed with its fields (owner and recipient); its receipt names them', async () => {
    const s = await setup(['location.longitude', 'technical.speedKmh', 'location.latitude']);
    // Answered in the catalogue's order.
    expect(s.grant).toMatchObject({ categories: ['technical', 'location'], fields: FIELDS, status: 'active' });
    const mine = await api(a, 'GET', `/v1/vehicles/${s.vin}/grants`, undefined, s.ownerTok);
    expect(mine.body.grants).toEqual([expect.objectContaining({ id: s.grant.id, fields: FIELDS })]);
    const theirs = await api(b, 'GET', '/v1/grants', undefined, s.tpTok);
    expect(theirs.body.grants).toEqual([expect.objectContaining({ id: s.grant.id, fields: FIELDS })]);
    const receipt = await api(a, 'GET', `/v1/vehicles/${s.vin}/grants/${s.grant.id}/receipt`, undefined, s.ownerTok);
    expect(receipt.status).toBe(200);
    expect(receipt.body.purposes[0]).toMatchObject({ piiCategories: ['technical', 'location'], piiFields: FIELDS });
    // A grant without fields: whole categories, as before.
    const whole = await createGrant(a, s.vin, s.ownerTok, { recipientId: s.rid, categories: ['technical'] });
    expect(whole.fields).toBeNull();
    expect((await api(a, 'GET', `/v1/vehicles/${s.vin}/grants/${whole.id}/receipt`, undefined, s.ownerTok)).body.purposes[0].piiFields).toBeNull();
  });

  it('export (NDJSON, CSV, ZIP) and stream (both instances) carry only the granted fields; every read is disclosed with them', async () => {
    const s = await setup();
    // Streams open before the records come: A holds the rows it wrote, B reads them from the database.
    const onA = await openSse(a.httpPort, `/v1/grants/${s.grant.id}/stream`, s.tpTok);
    const onB = await openSse(b.httpPort, `/v1/grants/${s.grant.id}/stream`, s.tpTok);
    expect([onA.status, onB.status]).toEqual([200, 200]);
    const c = await connectVehicle(a, s.vin, s.secret);
    const t0 = Date.now() - 5_000;
    await publish(c, topic(s.vin), encodeBatch(s.vin, [full(1, t0), full(2, t0 + 1000), full(3, t0 + 2000)]));
    await c.endAsync();

    const nd = await get(b, `/v1/grants/${s.grant.id}/cardata?format=ndjson`, s.tpTok);
    expect(nd.status).toBe(200);
    const lines = ndjsonLines(nd.buf.toString('utf8'));
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([1, 2, 3]);
    for (const l of lines) expectGrantedOnly(JSON.parse(l));
    // The other fields of the same categories appear nowhere in the answer.
    for (const hidden of ['odometerKm', 'fuelLevelPct', 'headingDeg', 'altitudeM', 'accuracyM', 'totalDistanceKm']) expect(nd.buf.toString()).not.toContain(hidden);

    const csv = await get(a, `/v1/grants/${s.grant.id}/cardata?format=csv`, s.tpTok);
    expect(csv.status).toBe(200);
    const rows = csv.buf.toString('utf8').trim().split('\n');
    const header = rows[0]!.split(',');
    expect(header.filter((h) => !RECORD_KEYS.includes(h))).toEqual(FIELDS);
    expect(rows).toHaveLength(4);
    const speedAt = header.indexOf('technical.speedKmh');
    for (const r of rows.slice(1)) expect(Number(r.split(',')[speedAt])).toBe(FULL_TECHNICAL.speedKmh);

    const zip = await get(a, `/v1/grants/${s.grant.id}/cardata?format=zip`, s.tpTok);
    expect(zip.status).toBe(200);
    const files = unzip(zip.buf);
    expect(ndjsonLines(files.get('records.ndjson')!.toString('utf8'))).toEqual(lines);
    expect(files.get('records.csv')!.toString('utf8').trim().split('\n')[0]).toBe(rows[0]);
    const catalogue = JSON.parse(files.get('catalogue.json')!.toString('utf8')) as { fields: { name: string }[] };
    expect(catalogue.fields.map((f) => f.name).filter((x) => x.includes('.'))).toEqual(FIELDS);
    expect(files.get('README.md')!.toString('utf8')).toContain(`Fields (only these were shared, GDPR Art. 5(1)(c)): ${FIELDS.join(', ')}.`);
    expect(JSON.parse(files.get('grant.json')!.toString('utf8')).fields).toEqual(FIELDS);

    // The streams: the same lines as the export, from held rows (A) and from the database (B).
    for (const sse of [onA, onB]) {
      await sse.until((ev) => ev.filter((e) => e.event === 'record').length >= 3);
      const data = sse.events.filter((e) => e.event === 'record').map((e) => e.data);
      for (const d of data) expectGrantedOnly(JSON.parse(d));
      expect([...data].sort()).toEqual([...lines].sort());
      sse.close();
    }

    // The owner's access log: each read (three exports, two stream sessions) with the fields it carried.
    const d = (await api(a, 'GET', `/v1/vehicles/${s.vin}/disclosures`, undefined, s.ownerTok)).body.disclosures as { endpoint: string; categories: string[]; fields: string[] | null; grantId: string }[];
    expect(d.map((x) => x.endpoint).sort()).toEqual(['GET /v1/grants/{id}/cardata', 'GET /v1/grants/{id}/cardata', 'GET /v1/grants/{id}/cardata', 'GET /v1/grants/{id}/stream', 'GET /v1/grants/{id}/stream']);
    for (const x of d) expect(x).toMatchObject({ grantId: s.grant.id, categories: ['technical', 'location'], fields: FIELDS });
    // The owner's own export still has every field.
    const own = await get(a, `/v1/vehicles/${s.vin}/cardata?format=ndjson`, s.ownerTok);
    const first = JSON.parse(ndjsonLines(own.buf.toString('utf8'))[0]!);
    expect(first.technical).toEqual(FULL_TECHNICAL);
    expect(first.location).toEqual(FULL_LOCATION);
    // Reads by the owner are not disclosures: still five.
    expect((await api(a, 'GET', `/v1/vehicles/${s.vin}/disclosures`, undefined, s.ownerTok)).body.disclosures).toHaveLength(5);
  });

  it('a workshop\'s consumption read through a field-level grant carries only its consumption fields', async () => {
    const owner = uniq('owner');
    const { vin, secret } = await provision(a, undefined, owner);
    const ownerTok = await mintToken(a, 'customer', owner);
    const wid = uniq('garage');
    const wTok = await registerRecipient(a, wid, 'workshop');
    const g = await createGrant(a, vin, ownerTok, { recipientId: wid, categories: ['consumption'], fields: ['consumption.totalDistanceKm'], dataFrom: new Date(0).toISOString() });
    const c = await connectVehicle(a, vin, secret);
    await publish(c, topic(vin), encodeBatch(vin, [full(1, Date.now() - 2000)]));
    await c.endAsync();
    const r = await api(b, 'GET', `/v1/workshop/vehicles/${vin}/consumption`, undefined, wTok);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.latest.consumption).toEqual({ totalDistanceKm: FULL_CONSUMPTION.totalDistanceKm });
    const d = (await api(a, 'GET', `/v1/vehicles/${vin}/disclosures`, undefined, ownerTok)).body.disclosures;
    expect(d).toEqual([expect.objectContaining({ grantId: g.id, fields: ['consumption.totalDistanceKm'] })]);
  });

  it('bad fields: 400 problem+json with their own code, naming the field; nothing is stored', async () => {
    const s = await setup();
    const before = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM grants'))[0]!.n;
    const post = (body: Record<string, unknown>) => api(a, 'POST', `/v1/vehicles/${s.vin}/grants`, { recipientId: s.rid, purpose: 'x', ...body }, s.ownerTok);
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ categories: ['technical'], fields: ['technical.speedKmH'] }, 'API_ERR_UNKNOWN_FIELD', /unknown field "technical\.speedKmH": did you mean "technical\.speedKmh"\?/],
      [{ categories: ['technical'], fields: ['technical.speed', 'technical.odometerKm'] }, 'API_ERR_UNKNOWN_FIELD', /"technical\.speed"/],
      [{ categories: ['technical'], fields: ['speedKmh'] }, 'API_ERR_UNKNOWN_FIELD', /"speedKmh"/],
      [{ categories: ['technical'], fields: ['technical.speedKmh', 'location.latitude'] }, 'API_ERR_FIELD_OUTSIDE_CATEGORIES', /"location\.latitude" is a field of category "location", which the grant does not cover/],
      [{ categories: ['technical', 'location'], fields: ['technical.speedKmh'] }, 'API_ERR_CATEGORY_WITHOUT_FIELDS', /category "location"/],
      // connectivity's catalogue fields are no telemetry columns: that category goes whole
      [{ categories: ['technical', 'connectivity'], fields: ['technical.speedKmh', 'connectivity.reason'] }, 'API_ERR_FIELD_NOT_SELECTABLE', /"connectivity\.reason": the fields of category "connectivity" are shared whole/],
      [{ categories: ['technical'], fields: [] }, 'API_ERR_CATEGORY_WITHOUT_FIELDS', /at least one field/],
      [{ categories: ['technical'], fields: 'technical.speedKmh' }, 'API_ERR_VALIDATION', /fields/],
    ];
    for (const [body, code, detail] of cases) {
      const r = await post(body);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.body.code).toBe(code);
      expect(r.body.detail).toMatch(detail);
    }
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM grants'))[0]!.n).toBe(before);
  });

  it('the database refuses fields outside the grant\'s categories, whatever writes them', async () => {
    const s = await setup();
    await expect(db.query(`UPDATE grants SET fields = ARRAY['consumption.totalDistanceKm'] WHERE id = $1`, [s.grant.id])).rejects.toThrow(/check constraint/);
    await expect(db.query(`UPDATE grants SET fields = ARRAY[]::text[] WHERE id = $1`, [s.grant.id])).rejects.toThrow(/check constraint/);
  });
});
