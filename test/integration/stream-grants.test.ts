// A recipient's live stream through a grant (issue 13 on issue 12's grants): projection to
// the grant's categories, refusals, one disclosure per stream session, and revocation,
// restriction, location opt-out and transfer in force on open streams within a second,
// across two instances.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient } from '../helpers/grants.ts';
import { openSse } from '../helpers/sse.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let a: RunningGateway;
let b: RunningGateway;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { JWT_KEYS: 'k1:stream-grant-test-key-0123456789abcdef0123', STREAM_KEEPALIVE_MS: '1000' };
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

/** A vehicle of `owner`, a third party with a grant on it (on gateway A), the third party's token. Records must be measured after the grant's creation (its default dataFrom). */
async function setup(body: Record<string, unknown> = {}) {
  const owner = uniq('owner');
  const { vin, secret } = await provision(a, undefined, owner);
  const ownerTok = await mintToken(a, 'customer', owner);
  const rid = uniq('tp');
  const tpTok = await registerRecipient(a, rid, 'third_party');
  const grant = await createGrant(a, vin, ownerTok, { recipientId: rid, categories: ['technical', 'location'], ...body });
  return { vin, secret, owner, ownerTok, rid, tpTok, grant };
}

describe('grant stream', () => {
  it('streams the grant\'s categories only, as export lines of those categories; one disclosure per session, narrowed at its end to what it sent', async () => {
    const s0 = await setup();
    // Served by gateway B; the vehicle sends to gateway A.
    const s = await openSse(b.httpPort, `/v1/grants/${s0.grant.id}/stream`, s0.tpTok);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('text/event-stream');
    // Filed before any data flows, with the range the session may send: the grant's window.
    const before = (await api(a, 'GET', `/v1/vehicles/${s0.vin}/disclosures`, undefined, s0.ownerTok)).body.disclosures.filter((x: any) => x.endpoint === 'GET /v1/grants/{id}/stream');
    expect(before).toHaveLength(1);
    expect(before[0]).toMatchObject({ from: s0.grant.dataFrom, to: s0.grant.expiresAt, grantId: s0.grant.id });
    const c = await connectVehicle(a, s0.vin, s0.secret);
    // The first record sent is measured after the second (commit order is not measurement order).
    const t0 = Date.now();
    await publish(c, topic(s0.vin), encodeBatch(s0.vin, [full(1, t0 + 40), full(2, t0 + 10), full(3, t0 + 25)]));
    await c.endAsync();
    await s.until((ev) => ev.filter((e) => e.event === 'record').length >= 3);
    const recs = s.records();
    expect(recs.map((r) => r.data.seq)).toEqual([1, 2, 3]);
    for (const r of recs) expect(Object.keys(r.data)).toEqual(['vin', 'seq', 'recordedAt', 'receivedAt', 'technical', 'location']);
    // The same line the grant's own NDJSON export gives.
    const res = await fetch(`http://127.0.0.1:${a.httpPort}/v1/grants/${s0.grant.id}/cardata?format=ndjson`, { headers: { authorization: `Bearer ${s0.tpTok}` } });
    const lines = (await res.text()).trim().split('\n');
    // (The export is in measurement order, the stream in commit order: the same lines.)
    expect(lines).toHaveLength(3);
    expect(s.events.filter((e) => e.event === 'record').map((e) => e.data).sort()).toEqual([...lines].sort());
    s.close();
    // Once the session has ended: the same one disclosure, now with the measurement times it did send.
    const sent = { from: new Date(t0 + 10).toISOString(), to: new Date(t0 + 40).toISOString() };
    let streams: any[] = [];
    for (let k = 0; k < 50; k++) {
      const d = await api(a, 'GET', `/v1/vehicles/${s0.vin}/disclosures`, undefined, s0.ownerTok);
      streams = d.body.disclosures.filter((x: any) => x.endpoint === 'GET /v1/grants/{id}/stream');
      if (streams[0]?.from === sent.from) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(streams).toHaveLength(1);
    expect(streams[0]).toMatchObject({ subject: s0.rid, categories: ['technical', 'location'], grantId: s0.grant.id, ...sent });
  });

  it('a session that sent nothing leaves its disclosure without a range; a session ended by the server is narrowed too', async () => {
    const s0 = await setup();
    type Listed = { endpoint: string; from: string | null; to: string | null };
    const list = async () =>
      ((await api(a, 'GET', `/v1/vehicles/${s0.vin}/disclosures`, undefined, s0.ownerTok)).body.disclosures as Listed[]).filter((x) => x.endpoint === 'GET /v1/grants/{id}/stream');
    const until = async (ok: (ds: Listed[]) => boolean): Promise<Listed[]> => {
      let ds: Listed[] = [];
      for (let k = 0; k < 50; k++) {
        ds = await list();
        if (ok(ds)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      return ds;
    };
    const quiet = await openSse(b.httpPort, `/v1/grants/${s0.grant.id}/stream`, s0.tpTok);
    expect(quiet.status).toBe(200);
    expect((await list())[0]).toMatchObject({ from: s0.grant.dataFrom, to: s0.grant.expiresAt });
    quiet.close();
    const one = await until((ds) => ds[0]?.from === null);
    expect(one).toHaveLength(1);
    expect(one[0]).toMatchObject({ from: null, to: null, grantId: s0.grant.id });
    // A second session sends one record, then the owner revokes the grant: the server ends it.
    const s = await openSse(b.httpPort, `/v1/grants/${s0.grant.id}/stream`, s0.tpTok);
    const c = await connectVehicle(a, s0.vin, s0.secret);
    const t = Date.now();
    await publish(c, topic(s0.vin), encodeBatch(s0.vin, [full(1, t)]));
    await c.endAsync();
    await s.until((ev) => ev.some((e) => e.event === 'record'));
    expect((await api(a, 'DELETE', `/v1/vehicles/${s0.vin}/grants/${s0.grant.id}`, undefined, s0.ownerTok)).status).toBeLessThan(300);
    await s.until((ev) => ev.some((e) => e.event === 'end'), 2000);
    const at = new Date(t).toISOString();
    const two = await until((ds) => ds.length === 2 && ds.some((d) => d.from === at));
    expect(two).toHaveLength(2);
    expect(two.find((d) => d.from !== null)).toMatchObject({ from: at, to: at });
    s.close();
  });

  it('refuses: another recipient or unknown grant 404, history-only grant 403, restricted 403, the owner 403 (role), bad cursor 400', async () => {
    const s0 = await setup();
    const other = await registerRecipient(a, uniq('tp'), 'third_party');
    expect((await openSse(a.httpPort, `/v1/grants/${s0.grant.id}/stream`, other)).status).toBe(404);
    expect((await openSse(a.httpPort, `/v1/grants/00000000-0000-4000-8000-000000000000/stream`, s0.tpTok)).status).toBe(404);
    expect((await openSse(a.httpPort, `/v1/grants/not-a-uuid/stream`, s0.tpTok)).status).toBe(400);
    expect((await openSse(a.httpPort, `/v1/grants/${s0.grant.id}/stream`, s0.ownerTok)).status).toBe(403);
    expect((await openSse(a.httpPort, `/v1/grants/${s0.grant.id}/stream?after=nonsense`, s0.tpTok)).status).toBe(400);
    const h = await createGrant(a, s0.vin, s0.ownerTok, { recipientId: s0.rid, categories: ['technical'], access: ['history'] });
    const r403 = await openSse(a.httpPort, `/v1/grants/${h.id}/stream`, s0.tpTok);
    expect(r403.status).toBe(403);
    expect(JSON.parse(r403.body).code).toBe('API_ERR_FORBIDDEN');
    expect((await api(a, 'PUT', `/v1/vehicles/${s0.vin}/restriction`, { restricted: true }, s0.ownerTok)).status).toBe(200);
    const rr = await openSse(a.httpPort, `/v1/grants/${s0.grant.id}/stream`, s0.tpTok);
    expect(rr.status).toBe(403);
    expect(JSON.parse(rr.body).code).toBe('API_ERR_RESTRICTED');
  });

  for (const [what, act, reason] of [
    ['revocation', (x: Awaited<ReturnType<typeof setup>>) => api(a, 'DELETE', `/v1/vehicles/${x.vin}/grants/${x.grant.id}`, undefined, x.ownerTok), 'revoked'],
    ['restriction', (x: Awaited<ReturnType<typeof setup>>) => api(a, 'PUT', `/v1/vehicles/${x.vin}/restriction`, { restricted: true }, x.ownerTok), 'restricted'],
    ['transfer', (x: Awaited<ReturnType<typeof setup>>) => api(a, 'POST', `/v1/admin/vehicles/${x.vin}/transfer`, { newOwnerId: uniq('next') }), 'ended'],
  ] as const) {
    it(`a ${what} through gateway A ends the grant's open stream on gateway B within a second`, async () => {
      const s0 = await setup();
      const s = await openSse(b.httpPort, `/v1/grants/${s0.grant.id}/stream`, s0.tpTok);
      await new Promise((r) => setTimeout(r, 200));
      const r = await act(s0);
      expect(r.status).toBeLessThan(300);
      const t = Date.now();
      await s.until((ev) => ev.some((e) => e.event === 'end'), 1000);
      const end = s.events.find((e) => e.event === 'end')!;
      expect(end.at - t).toBeLessThan(1000);
      expect(JSON.parse(end.data).reason).toBe(reason);
    });
  }

  it('expiry ends the stream within a second', async () => {
    const s0 = await setup({ expiresAt: new Date(Date.now() + 2500).toISOString() });
    const s = await openSse(b.httpPort, `/v1/grants/${s0.grant.id}/stream`, s0.tpTok);
    expect(s.status).toBe(200);
    await s.until((ev) => ev.some((e) => e.event === 'end'), 5000);
    const end = s.events.find((e) => e.event === 'end')!;
    expect(JSON.parse(end.data).reason).toBe('expired');
    expect(end.at - new Date(s0.grant.expiresAt).getTime()).toBeLessThan(1000);
  });

  it('a location opt-out: no position on the open grant stream from then on', async () => {
    const s0 = await setup();
    const s = await openSse(b.httpPort, `/v1/grants/${s0.grant.id}/stream`, s0.tpTok);
    const c = await connectVehicle(a, s0.vin, s0.secret);
    await publish(c, topic(s0.vin), encodeBatch(s0.vin, [full(1, Date.now())]));
    await s.until((ev) => ev.some((e) => e.event === 'record'));
    expect(s.records()[0]!.data.location).toEqual(FULL_LOCATION);
    expect((await api(a, 'PUT', `/v1/vehicles/${s0.vin}/consent`, { location: false, co2Sharing: true }, s0.ownerTok)).status).toBe(200);
    await publish(c, topic(s0.vin), encodeBatch(s0.vin, [full(2, Date.now()), full(3, Date.now() + 1)]));
    await c.endAsync();
    await s.until((ev) => ev.filter((e) => e.event === 'record').length >= 3);
    for (const r of s.records().slice(1)) expect(r.data.location).toBeNull();
    s.close();
  });
});
