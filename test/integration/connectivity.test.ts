// Connectivity (issue 26) through the real path: MQTT clients against the gateway's broker,
// TimescaleDB, HTTP: status, the stream's status events, the reasons a connection ends,
// flapping, grants, the ZIP export and erasure. (Two instances and kill -9: connectivity-cluster.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, connectVehicle, provision, startTestGateway, tryConnect, waitFor } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient } from '../helpers/grants.ts';
import { openSse } from '../helpers/sse.ts';
import { rawConnect } from '../helpers/raw-mqtt.ts';
import { unzip } from '../helpers/zip.ts';
import type { RunningGateway } from '../../app/gateway.ts';

/** The owner's access log (GET /v1/vehicles/{vin}/disclosures), as far as these tests read it. */
type DisclosureList = { disclosures: { endpoint: string; subject: string; categories: string[]; grantId: string | null }[] };
/** The disclosures of reads of the vehicle's status. */
const statusReads = (l: DisclosureList) => l.disclosures.filter((x) => x.endpoint === 'GET /v1/vehicles/{vin}/status');

let db: TestDatabase;
let gw: RunningGateway;

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startGw();
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

function startGw(): Promise<RunningGateway> {
  return startTestGateway(db.url, { STREAM_KEEPALIVE_MS: '300' });
}

interface Row {
  session: string;
  connected_at: Date;
  disconnected_at: Date | null;
  reason: string | null;
  coalesced: number;
}
const rowsOf = (vin: string): Promise<Row[]> => db.query<Row>('SELECT session, connected_at, disconnected_at, reason, coalesced FROM vehicle_connections WHERE vin = $1 ORDER BY id', [vin]);

async function status(vin: string, tok: string): Promise<any> {
  const r = await api(gw, 'GET', `/v1/vehicles/${vin}/status`, undefined, tok);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

describe('status and the reasons a connection ends', () => {
  it('online while connected, offline after a clean DISCONNECT; the stream sends each change as event: status', async () => {
    const { vin, secret } = await provision(gw, undefined, 'cara');
    const tok = await mintToken(gw, 'customer', 'cara');
    const never = await status(vin, tok);
    expect(never).toEqual({ vin, online: false, since: null, lastSeenAt: null, lastRecordAt: null });
    const s = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, tok);
    await s.until((ev) => ev.some((e) => e.event === 'status'));
    expect(JSON.parse(s.events.find((e) => e.event === 'status')!.data)).toMatchObject({ vin, online: false, since: null });

    const before = Date.now();
    const c = await connectVehicle(gw, vin, secret);
    const on = await waitFor(async () => {
      const st = await status(vin, tok);
      return st.online ? st : null;
    });
    expect(Date.parse(on.since)).toBeGreaterThanOrEqual(before - 5);
    expect(Date.parse(on.since)).toBeLessThanOrEqual(Date.now());
    await s.until((ev) => ev.filter((e) => e.event === 'status').some((e) => JSON.parse(e.data).online === true));

    await c.endAsync();
    const off = await waitFor(async () => {
      const st = await status(vin, tok);
      return st.online ? null : st;
    });
    expect(Date.parse(off.since)).toBeGreaterThanOrEqual(Date.parse(on.since));
    expect(off.lastSeenAt).toBe(off.since);
    await s.until((ev) => ev.filter((e) => e.event === 'status').length >= 3);
    const statuses = s.events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data));
    expect(statuses.map((x) => x.online)).toEqual([false, true, false]);
    // A status event carries no id: it is no resume point.
    expect(s.events.filter((e) => e.event === 'status').every((e) => e.id === undefined)).toBe(true);
    s.close();
    const rows = await rowsOf(vin);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.reason).toBe('clean');
  });

  it('a takeover on the same instance keeps the vehicle online; the old row ends taken_over', async () => {
    const { vin, secret } = await provision(gw, undefined, 'tom');
    const tok = await mintToken(gw, 'customer', 'tom');
    const a = await connectVehicle(gw, vin, secret, { reconnectPeriod: 0 });
    await waitFor(async () => (await rowsOf(vin)).length === 1);
    const b = await connectVehicle(gw, vin, secret, { reconnectPeriod: 0 });
    await waitFor(async () => (await rowsOf(vin)).some((r) => r.reason === 'taken_over'));
    const st = await status(vin, tok);
    expect(st.online).toBe(true);
    const rows = await rowsOf(vin);
    expect(rows.filter((r) => r.disconnected_at === null)).toHaveLength(1);
    a.end(true);
    await b.endAsync();
    await waitFor(async () => (await rowsOf(vin)).every((r) => r.disconnected_at !== null));
    expect((await status(vin, tok)).online).toBe(false);
  });

  it('records a keep-alive timeout, a lost connection and a refused login', async () => {
    const { vin, secret } = await provision(gw, undefined, 'kai');
    // Keep-alive 1 s and then silence: the broker closes it after 1.5 s (MQTT-3.1.2-24).
    const k = await rawConnect(gw.mqttPort!, '127.0.0.1', { clientId: vin, username: vin, password: secret, keepalive: 1 });
    expect(k.code).toBe(0);
    await waitFor(async () => (await rowsOf(vin)).some((r) => r.reason === 'keepalive_timeout'), 8000);
    // A socket that goes away without DISCONNECT.
    const l = await rawConnect(gw.mqttPort!, '127.0.0.1', { clientId: vin, username: vin, password: secret });
    expect(l.code).toBe(0);
    l.raw.destroy();
    await waitFor(async () => (await rowsOf(vin)).some((r) => r.reason === 'connection_lost'));
    // A wrong secret for this (provisioned) VIN.
    const refused = await tryConnect(gw, { clientId: vin, username: vin, password: 'wrong-secret', reconnectPeriod: 0 });
    expect(refused?.code).toBe(5);
    await waitFor(async () => (await rowsOf(vin)).some((r) => r.reason === 'refused'));
  });

  it('a flapping vehicle costs bounded storage: short sessions fold into one row', async () => {
    const { vin, secret } = await provision(gw, undefined, 'flo');
    const N = 40;
    for (let i = 0; i < N; i++) {
      const c = await connectVehicle(gw, vin, secret, { reconnectPeriod: 0 });
      await c.endAsync();
    }
    // Every session's disconnect is written (folded in or its own row).
    await waitFor(async () => {
      const rows = await rowsOf(vin);
      return rows.every((r) => r.disconnected_at !== null) && rows.reduce((n, r) => n + 1 + r.coalesced, 0) === N;
    }, 20_000);
    const rows = await rowsOf(vin);
    console.log(`flapping: ${N} sessions stored as ${rows.length} row(s), coalesced ${rows.map((r) => r.coalesced).join(', ')}`);
    expect(rows.length).toBeLessThanOrEqual(2);
    expect(rows.at(-1)!.reason).toBe('clean');
  });

  it('status of a vehicle not owned: 404 like the other vehicle routes; no token: 401', async () => {
    const { vin } = await provision(gw, undefined, 'olga');
    const other = await mintToken(gw, 'customer', 'someone-else');
    const r = await api(gw, 'GET', `/v1/vehicles/${vin}/status`, undefined, other);
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('API_ERR_NOT_FOUND');
    expect((await api(gw, 'GET', `/v1/vehicles/${vin}/status`, undefined, null)).status).toBe(401);
    expect((await api(gw, 'GET', `/v1/vehicles/WBA00000000000000/status`, undefined, other)).status).toBe(404);
  });
});

describe('connectivity as a category: grants, export, erasure', () => {
  it('ownership periods bound it: after a transfer the new owner sees none of the previous owner\'s connections', async () => {
    const { vin, secret } = await provision(gw, undefined, 'pia');
    const pia = await mintToken(gw, 'customer', 'pia');
    const c = await connectVehicle(gw, vin, secret, { reconnectPeriod: 0 });
    await c.endAsync();
    await waitFor(async () => (await rowsOf(vin)).some((r) => r.reason === 'clean'));
    const before = await status(vin, pia);
    expect(before.since).not.toBeNull();
    expect((await api(gw, 'POST', `/v1/admin/vehicles/${vin}/transfer`, { newOwnerId: 'quin' })).status).toBe(200);
    const quin = await mintToken(gw, 'customer', 'quin');
    expect(await status(vin, quin)).toMatchObject({ online: false, since: null, lastSeenAt: null });
    // The previous owner no longer reads the vehicle at all.
    expect((await api(gw, 'GET', `/v1/vehicles/${vin}/status`, undefined, pia)).status).toBe(404);
    // Connected under the new owner: theirs.
    const c2 = await connectVehicle(gw, vin, secret, { reconnectPeriod: 0 });
    const on = await waitFor(async () => {
      const st = await status(vin, quin);
      return st.online ? st : null;
    });
    expect(Date.parse(on.since)).toBeGreaterThan(Date.parse(before.since));
    await c2.endAsync();
  });

  it('a grant covering connectivity reads /status, and the read is disclosed to the owner; a grant without it: 404', async () => {
    const { vin, secret } = await provision(gw, undefined, 'gina');
    const owner = await mintToken(gw, 'customer', 'gina');
    const tp = await registerRecipient(gw, 'conn-app', 'third_party');
    const ws = await registerRecipient(gw, 'conn-ws', 'workshop');
    await createGrant(gw, vin, owner, { recipientId: 'conn-ws', categories: ['technical'] });
    expect((await api(gw, 'GET', `/v1/vehicles/${vin}/status`, undefined, ws)).status).toBe(404);
    const grant = await createGrant(gw, vin, owner, { recipientId: 'conn-app', categories: ['connectivity'] });
    expect(grant.categories).toEqual(['connectivity']);
    const c = await connectVehicle(gw, vin, secret);
    await waitFor(async () => (await status(vin, owner)).online);
    const r = await api(gw, 'GET', `/v1/vehicles/${vin}/status`, undefined, tp);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ vin, online: true });
    const d = await api(gw, 'GET', `/v1/vehicles/${vin}/disclosures`, undefined, owner);
    const filed = statusReads(d.body as DisclosureList);
    expect(filed).toHaveLength(1);
    expect(filed[0]).toMatchObject({ subject: 'conn-app', categories: ['connectivity'], grantId: grant.id });
    // A restriction (GDPR Art. 18) suspends it: 403, nothing disclosed; the owner still reads.
    expect((await api(gw, 'PUT', `/v1/vehicles/${vin}/restriction`, { restricted: true }, owner)).status).toBe(200);
    const restricted = await api(gw, 'GET', `/v1/vehicles/${vin}/status`, undefined, tp);
    expect(restricted.status).toBe(403);
    expect(restricted.body.code).toBe('API_ERR_RESTRICTED');
    expect((await status(vin, owner)).online).toBe(true);
    expect((await api(gw, 'PUT', `/v1/vehicles/${vin}/restriction`, { restricted: false }, owner)).status).toBe(200);
    const d2 = await api(gw, 'GET', `/v1/vehicles/${vin}/disclosures`, undefined, owner);
    expect(statusReads(d2.body as DisclosureList)).toHaveLength(1);
    // Revoked: 404, and nothing more disclosed.
    expect((await api(gw, 'DELETE', `/v1/vehicles/${vin}/grants/${grant.id}`, undefined, owner)).status).toBe(204);
    expect((await api(gw, 'GET', `/v1/vehicles/${vin}/status`, undefined, tp)).status).toBe(404);
    await c.endAsync();
  });

  it('the ZIP carries connectivity.ndjson; an erasure removes the connections', async () => {
    const { vin, secret } = await provision(gw, undefined, 'ezra');
    const tok = await mintToken(gw, 'customer', 'ezra');
    for (let i = 0; i < 2; i++) {
      const c = await connectVehicle(gw, vin, secret, { reconnectPeriod: 0 });
      await c.endAsync();
    }
    await waitFor(async () => (await rowsOf(vin)).reduce((n, r) => n + 1 + r.coalesced, 0) === 2 && (await rowsOf(vin)).every((r) => r.reason !== null));
    const res = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/vehicles/${vin}/cardata?format=zip`, { headers: { authorization: `Bearer ${tok}` } });
    expect(res.status).toBe(200);
    const files = unzip(Buffer.from(await res.arrayBuffer()));
    const lines = files.get('connectivity.ndjson')!.toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
    const rows = await rowsOf(vin);
    expect(lines).toEqual(rows.map((r) => ({ vin, connectedAt: r.connected_at.toISOString(), disconnectedAt: r.disconnected_at!.toISOString(), reason: r.reason, coalesced: r.coalesced })));
    // connectivity is a ZIP file: with NDJSON it is refused by name.
    const bad = await api(gw, 'GET', `/v1/vehicles/${vin}/cardata?format=ndjson&categories=connectivity`, undefined, tok);
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('API_ERR_VALIDATION');
    const e = await api(gw, 'DELETE', `/v1/vehicles/${vin}/data?category=connectivity`, undefined, tok);
    expect(e.status).toBe(200);
    expect(e.body.connectionsDeleted).toBe(rows.length);
    expect(await rowsOf(vin)).toEqual([]);
    expect(await status(vin, tok)).toMatchObject({ online: false, since: null, lastSeenAt: null });
  });
});
