// Recipients' webhooks (issue 25, docs/webhooks.md) through the real path: real gateways on
// a real TimescaleDB, vehicles over real MQTT, receivers over real HTTP: the README's
// example receiver (docs/examples/webhook-receiver.mjs) as a child process, verifying every
// signature with the standardwebhooks library, and local servers that misbehave.
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway, waitFor } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient } from '../helpers/grants.ts';
import { freePort, killAllChildren, spawnChild, spawnGateway, waitReady, type Child } from '../helpers/proc.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { createAgents, post } from '../../webhooks/send.ts';

let db: TestDatabase;
let gw: RunningGateway;
const ENV = {
  JWT_KEYS: 'k1:webhook-test-key-0123456789abcdef0123456789',
  WEBHOOK_ALLOW_HTTP: 'true',
  // Loopback 127.0.0.1 only: 127.0.0.2 stands for a private address the gateway must not reach.
  WEBHOOK_ALLOW_PRIVATE: '127.0.0.1/32',
  WEBHOOK_RETRY_FIRST_MS: '200',
  WEBHOOK_RETRY_MAX_MS: '1000',
  WEBHOOK_POLL_MS: '50',
  WEBHOOK_LEASE_MS: '3000',
  WEBHOOK_RESPONSE_TIMEOUT_MS: '1500',
  WEBHOOK_CONNECT_TIMEOUT_MS: '1000',
};

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startTestGateway(db.url, ENV);
});
afterAll(async () => {
  killAllChildren();
  await gw?.close();
  await db?.drop();
});

let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;
const topic = (vin: string) => `v1/vehicles/${vin}/telemetry`;

/** A vehicle, its owner, a third party with a grant on it (technical + location, streaming), the tokens. */
async function setup(g: RunningGateway = gw, body: Record<string, unknown> = {}) {
  const owner = uniq('owner');
  const { vin, secret } = await provision(g, undefined, owner);
  const ownerTok = await mintToken(g, 'customer', owner);
  const rid = uniq('tp');
  const tpTok = await registerRecipient(g, rid, 'third_party');
  const grant = await createGrant(g, vin, ownerTok, { recipientId: rid, categories: ['technical', 'location'], access: ['history', 'stream'], ...body });
  return { vin, secret, owner, ownerTok, rid, tpTok, grant };
}

/** Publishes `count` records (seq from `from`), `per` to a message, measured now onwards. */
async function send(g: { mqttPort: number | null }, vin: string, secret: string, from: number, count: number, per = 50): Promise<void> {
  const c = await connectVehicle(g as RunningGateway, vin, secret);
  const t0 = Date.now();
  for (let i = 0; i < count; i += per) {
    const recs = [];
    for (let k = i; k < Math.min(count, i + per); k++) recs.push(record(from + k, t0 + k, { technical: FULL_TECHNICAL, location: FULL_LOCATION }));
    await publish(c, topic(vin), encodeBatch(vin, recs));
  }
  await c.endAsync();
}

/** The example receiver (README) as a child process; its stdout: one line per new delivery. */
async function exampleReceiver(secret: string, port: number): Promise<{ child: Child; deliveries(): { id: string; body: any }[] }> {
  const out = path.join(tmpdir(), `webhook-receiver-${process.pid}-${port}.ndjson`);
  writeFileSync(out, '');
  const child = spawnChild(process.execPath, ['docs/examples/webhook-receiver.mjs'], { WEBHOOK_SECRET: secret, PORT: String(port), HOST: '127.0.0.1', OUT: out });
  await child.waitForOutput(/receiver listening/, 10_000, 'stderr');
  return {
    child,
    deliveries: () =>
      readFileSync(out, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as { id: string; body: any }),
  };
}

type Got = { at: number; id: string; headers: http.IncomingHttpHeaders; raw: string; body: any; verified: boolean };
/** A local receiver whose answer the test decides, verifying each request with the library. */
async function localReceiver(host = '127.0.0.1') {
  const got: Got[] = [];
  let secret: string | null = null;
  let answer: (req: http.IncomingMessage, res: http.ServerResponse, g: Got) => void = (_q, res) => void res.writeHead(200).end('ok');
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const check = (): { body: any; verified: boolean } => {
        try {
          return { body: new Webhook(secret!).verify(raw, req.headers as Record<string, string>), verified: true };
        } catch {
          return { body: null, verified: false };
        }
      };
      const { body, verified } = check();
      const g: Got = { at: Date.now(), id: String(req.headers['webhook-id']), headers: req.headers, raw, body, verified };
      got.push(g);
      answer(req, res, g);
    });
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    url: `http://${host}:${(server.address() as AddressInfo).port}/hook`,
    got,
    setSecret: (s: string) => void (secret = s),
    answer: (f: typeof answer) => void (answer = f),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Every record of `deliveries` (records bodies, first delivery of each id), in delivery order. */
function recordsOf(deliveries: { id: string; body: any }[], grantId?: string): any[] {
  const seen = new Set<string>();
  const out: any[] = [];
  for (const d of deliveries) {
    if (seen.has(d.id)) continue;
    seen.add(d.id);
    if (d.body?.type === 'records' && (!grantId || d.body.grantId === grantId)) out.push(...d.body.records);
  }
  return out;
}

describe('creating webhooks', () => {
  it('refuses addresses that are not the internet, other schemes and credentials, each with API_ERR_WEBHOOK_URL', async () => {
    const s = await setup();
    const bad = [
      'ftp://127.0.0.1/x',
      'http://user:pw@127.0.0.1:1/x',
      'http://127.0.0.2:1/x', // loopback outside the allowed /32
      'http://10.1.2.3/x',
      'http://192.168.1.1/x',
      'http://172.16.0.1/x',
      'http://169.254.169.254/latest/meta-data/',
      'http://100.100.100.200/',
      'http://[::1]:1/x',
      'http://[fd00:ec2::254]/',
      'http://[::ffff:10.0.0.1]/',
      'http://0.0.0.0:1/',
      'not a url',
    ];
    for (const url of bad) {
      const r = await api(gw, 'POST', '/v1/webhooks', { url }, s.tpTok);
      expect({ url, status: r.status, code: r.body.code }).toEqual({ url, status: 400, code: 'API_ERR_WEBHOOK_URL' });
    }
    expect((await api(gw, 'GET', '/v1/webhooks', undefined, s.tpTok)).body.webhooks).toEqual([]);
  });

  it('answers 201 with the secret once; another recipient\'s grant or an unknown one is 404; an owner cannot make one', async () => {
    const s = await setup();
    const other = await setup();
    const r = await api(gw, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook', grantIds: [s.grant.id] }, s.tpTok);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ url: 'http://127.0.0.1:9/hook', grantIds: [s.grant.id], events: ['records', 'grants'], status: 'active' });
    expect(r.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(r.body.secret.slice(6), 'base64')).toHaveLength(24);
    const one = await api(gw, 'GET', `/v1/webhooks/${r.body.id}`, undefined, s.tpTok);
    expect(one.status).toBe(200);
    expect(one.body.secret).toBeUndefined();
    expect(one.body.backlog).toEqual({ records: 0, oldestUndeliveredAt: null });
    expect((await api(gw, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook', grantIds: [other.grant.id] }, s.tpTok)).body.code).toBe('API_ERR_NOT_FOUND');
    expect((await api(gw, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook', grantIds: ['00000000-0000-4000-8000-000000000000'] }, s.tpTok)).status).toBe(404);
    expect((await api(gw, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook' }, s.ownerTok)).status).toBe(403);
    // Another recipient sees neither it nor can delete it.
    expect((await api(gw, 'GET', `/v1/webhooks/${r.body.id}`, undefined, other.tpTok)).status).toBe(404);
    expect((await api(gw, 'DELETE', `/v1/webhooks/${r.body.id}`, undefined, other.tpTok)).status).toBe(404);
    expect((await api(gw, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['nope'] }, s.tpTok)).body.code).toBe('API_ERR_VALIDATION');
    expect((await api(gw, 'DELETE', `/v1/webhooks/${r.body.id}`, undefined, s.tpTok)).status).toBe(204);
    expect((await api(gw, 'GET', `/v1/webhooks/${r.body.id}`, undefined, s.tpTok)).status).toBe(404);
  });
});

describe('the connection', () => {
  it('goes to the address checked, whatever the name would resolve to now (no DNS rebinding)', async () => {
    const rx = await localReceiver();
    rx.setSecret('whsec_' + Buffer.alloc(24).toString('base64'));
    const port = new URL(rx.url).port;
    const agents = createAgents();
    const limits = { connectTimeoutMs: 1000, responseTimeoutMs: 2000, maxResponseBytes: 64 };
    // A name that resolves nowhere (.invalid, RFC 2606): only the pinned lookup can connect it.
    const r = await post({ url: new URL(`http://hooks.example.invalid:${port}/hook`), address: '127.0.0.1', family: 4 }, { 'webhook-id': 'msg_pin' }, '{}', limits, agents.agentFor('pin', false));
    expect(r).toMatchObject({ ok: true, status: 200 });
    expect(rx.got.at(-1)!.headers.host).toBe(`hooks.example.invalid:${port}`);
    agents.close();
    await rx.close();
  });
});

describe('delivery', () => {
  it('delivers every record to the README\'s receiver, signed, at most 100 a delivery, in commit order, with the stream cursor; disclosed to the owner', async () => {
    const s = await setup();
    const port = await freePort();
    const w = (await api(gw, 'POST', '/v1/webhooks', { url: `http://127.0.0.1:${port}/hook` }, s.tpTok)).body;
    const rx = await exampleReceiver(w.secret, port);
    await send(gw, s.vin, s.secret, 1, 250, 60);
    await waitFor(async () => recordsOf(rx.deliveries()).length >= 250, 20_000);
    const ds = rx.deliveries();
    const recs = recordsOf(ds);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    for (const d of ds.filter((x) => x.body.type === 'records')) {
      expect(d.body.records.length).toBeLessThanOrEqual(100);
      expect(d.body).toMatchObject({ grantId: s.grant.id, vin: s.vin });
      expect(d.body.cursor).toMatch(/^1\.[0-9a-z]+\.[0-9a-z]+\.[A-Za-z0-9_-]{6}$/);
      // The grant's categories only: the export's line, projected.
      expect(Object.keys(d.body.records[0]).sort()).toEqual(expect.arrayContaining(['vin', 'seq', 'recordedAt', 'technical', 'location']));
      expect(d.body.records[0].consumption).toBeUndefined();
    }
    // The last cursor resumes the grant's stream after the last record: nothing more to send.
    const last = ds.filter((x) => x.body.type === 'records').at(-1)!.body.cursor;
    const resumed = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/grants/${s.grant.id}/stream?after=${encodeURIComponent(last)}`, { headers: { authorization: `Bearer ${s.tpTok}` } });
    expect(resumed.status).toBe(200);
    await resumed.body?.cancel();
    // A request not signed with the secret is refused by the receiver.
    const forged = await fetch(`http://127.0.0.1:${port}/hook`, { method: 'POST', headers: { 'webhook-id': 'msg_x', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAA' }, body: '{}' });
    expect(forged.status).toBe(400);
    const st = await waitFor(async () => {
      const r = (await api(gw, 'GET', `/v1/webhooks/${w.id}`, undefined, s.tpTok)).body;
      return r.backlog.records === 0 && r.lastSuccessAt ? r : null;
    });
    expect(st).toMatchObject({ status: 'active', consecutiveFailures: 0, backlog: { records: 0, oldestUndeliveredAt: null } });
    // The owner's access log: what the webhook delivered (one disclosure for the day, widened).
    const disc = (await api(gw, 'GET', `/v1/vehicles/${s.vin}/disclosures`, undefined, s.ownerTok)).body.disclosures.filter((x: any) => x.endpoint === `webhook ${w.id}`);
    expect(disc).toHaveLength(1);
    expect(disc[0]).toMatchObject({ subject: s.rid, grantId: s.grant.id, from: recs[0].recordedAt, to: recs.at(-1)!.recordedAt });
    expect([...disc[0].categories].sort()).toEqual(['location', 'technical']);
    // The metrics count what was delivered.
    const metrics = await (await fetch(`http://127.0.0.1:${gw.httpPort}/metrics`)).text();
    expect(Number(/^cardata_webhook_records_delivered_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(250);
    expect(metrics).toMatch(/^cardata_webhook_deliveries_total\{kind="records"\} \d+/m);
    expect(metrics).toMatch(/^cardata_webhook_endpoints\{state="active"\} \d+/m);
    expect(metrics).toMatch(/^cardata_webhook_delivery_latency_seconds_count \d+/m);
    rx.child.killTree();
  });

  it('retries a 500 with the same webhook-id and records; a slow answer, garbage and a redirect (never followed) count as failures; an oversized answer is read no further', async () => {
    const s = await setup();
    const rx = await localReceiver();
    const priv = await localReceiver('127.0.0.2');
    const w = (await api(gw, 'POST', '/v1/webhooks', { url: rx.url, grantIds: [s.grant.id], events: ['records'] }, s.tpTok)).body;
    rx.setSecret(w.secret);
    let calls = 0;
    rx.answer((_q, res) => {
      calls++;
      if (calls === 1) res.writeHead(500).end('down');
      else if (calls === 2) res.writeHead(302, { location: priv.url }).end();
      else if (calls === 3) res.socket?.end('HTTP/1.1 garbage\r\n\r\n');
      else if (calls === 4) setTimeout(() => res.writeHead(200).end(), 2500); // past WEBHOOK_RESPONSE_TIMEOUT_MS
      else res.writeHead(200).end('x'.repeat(2 * 1024 * 1024)); // oversized: the status decides
    });
    await send(gw, s.vin, s.secret, 1, 30, 30);
    await waitFor(async () => calls >= 5, 20_000);
    await waitFor(async () => (await api(gw, 'GET', `/v1/webhooks/${w.id}`, undefined, s.tpTok)).body.backlog.records === 0, 10_000);
    // Every attempt: the same delivery, signed, same id and body.
    expect(rx.got.every((g) => g.verified)).toBe(true);
    expect(new Set(rx.got.slice(0, 5).map((g) => g.id)).size).toBe(1);
    expect(new Set(rx.got.slice(0, 5).map((g) => g.raw)).size).toBe(1);
    expect(rx.got[0]!.body.records.map((r: any) => r.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(priv.got).toEqual([]);
    const st = (await api(gw, 'GET', `/v1/webhooks/${w.id}`, undefined, s.tpTok)).body;
    expect(st).toMatchObject({ status: 'active', consecutiveFailures: 0 });
    expect(st.lastFailure).toMatch(/no answer within/);
    await rx.close();
    await priv.close();
  });

  it('410 Gone disables the endpoint at once, with its reason', async () => {
    const s = await setup();
    const rx = await localReceiver();
    const w = (await api(gw, 'POST', '/v1/webhooks', { url: rx.url, events: ['records'] }, s.tpTok)).body;
    rx.setSecret(w.secret);
    rx.answer((_q, res) => void res.writeHead(410).end());
    await send(gw, s.vin, s.secret, 1, 5, 5);
    const st = await waitFor(async () => {
      const r = (await api(gw, 'GET', `/v1/webhooks/${w.id}`, undefined, s.tpTok)).body;
      return r.status === 'disabled' ? r : null;
    }, 10_000);
    expect(st.disabledReason).toMatch(/410/);
    const before = rx.got.length;
    await send(gw, s.vin, s.secret, 100, 5, 5);
    await new Promise((r) => setTimeout(r, 800));
    expect(rx.got.length).toBe(before);
    await rx.close();
  });

  it('a revocation during a backlog: no record after its answer, then grant.revoked', async () => {
    const s = await setup();
    const rx = await localReceiver();
    const w = (await api(gw, 'POST', '/v1/webhooks', { url: rx.url, grantIds: [s.grant.id] }, s.tpTok)).body;
    rx.setSecret(w.secret);
    // A slow receiver: the backlog grows while it takes each delivery.
    rx.answer((_q, res) => void setTimeout(() => res.writeHead(204).end(), 150));
    await send(gw, s.vin, s.secret, 1, 1500, 100);
    await waitFor(async () => rx.got.filter((g) => g.body?.type === 'records').length >= 2, 10_000);
    const r = await api(gw, 'DELETE', `/v1/vehicles/${s.vin}/grants/${s.grant.id}`, undefined, s.ownerTok);
    expect(r.status).toBe(204);
    const answeredAt = Date.now();
    const ev = await waitFor(async () => rx.got.find((g) => g.body?.type === 'grant.revoked'), 10_000);
    expect(ev.body).toMatchObject({ grantId: s.grant.id, vin: s.vin });
    expect(ev.verified).toBe(true);
    await new Promise((res) => setTimeout(res, 500));
    const recs = rx.got.filter((g) => g.body?.type === 'records');
    // Received (the request's end) before the revocation answered; a backlog was left.
    expect(recs.every((g) => g.at <= answeredAt)).toBe(true);
    expect(recordsOf(rx.got).length).toBeLessThan(1500);
    // Nothing after the event.
    expect(rx.got.at(-1)!.body.type).toBe('grant.revoked');
    await rx.close();
  });

  it('a webhook without grantIds follows grants made later: grant.created, then its records', async () => {
    const owner = uniq('owner');
    const { vin, secret } = await provision(gw, undefined, owner);
    const ownerTok = await mintToken(gw, 'customer', owner);
    const rid = uniq('tp');
    const tpTok = await registerRecipient(gw, rid, 'third_party');
    const rx = await localReceiver();
    const w = (await api(gw, 'POST', '/v1/webhooks', { url: rx.url }, tpTok)).body;
    rx.setSecret(w.secret);
    const grant = await createGrant(gw, vin, ownerTok, { recipientId: rid, categories: ['technical'], access: ['stream'] });
    await waitFor(async () => rx.got.find((g) => g.body?.type === 'grant.created'), 10_000);
    await send(gw, vin, secret, 1, 10, 10);
    await waitFor(async () => recordsOf(rx.got).length >= 10, 10_000);
    expect(rx.got[0]!.body).toMatchObject({ type: 'grant.created', grantId: grant.id, vin, at: grant.createdAt });
    expect(recordsOf(rx.got).map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(recordsOf(rx.got)[0].location).toBeUndefined();
    // Replay: the records measured since then, again, under new ids.
    const rp = await api(gw, 'POST', `/v1/webhooks/${w.id}/replay`, { from: new Date(Date.now() - 60_000).toISOString() }, tpTok);
    expect(rp.status).toBe(202);
    expect(rp.body.grants).toBe(1);
    await waitFor(async () => rx.got.filter((g) => g.body?.type === 'records').flatMap((g) => g.body.records).length >= 20, 10_000);
    expect(rx.got.filter((g) => g.body?.type === 'records').flatMap((g) => g.body.records.map((x: any) => x.seq))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect((await api(gw, 'POST', `/v1/webhooks/${w.id}/replay`, { from: '2000-01-01T00:00:00Z' }, tpTok)).body.code).toBe('API_ERR_VALIDATION');
    await rx.close();
  });
});

describe('terms changed during delivery', () => {
  it('a restriction holds deliveries back until it is lifted; records stored before an opt-out of location go out without it', async () => {
    const s = await setup();
    const rx = await localReceiver();
    const w = (await api(gw, 'POST', '/v1/webhooks', { url: rx.url, grantIds: [s.grant.id], events: ['records'] }, s.tpTok)).body;
    rx.setSecret(w.secret);
    await send(gw, s.vin, s.secret, 1, 5, 5);
    await waitFor(async () => recordsOf(rx.got).length >= 5, 10_000);
    expect(recordsOf(rx.got)[0].location).toMatchObject({ latitude: FULL_LOCATION.latitude });
    expect((await api(gw, 'PUT', `/v1/vehicles/${s.vin}/restriction`, { restricted: true }, s.ownerTok)).status).toBe(200);
    // Stored (a restriction keeps storage, GDPR Art. 18(2)), with their positions: nothing goes out while it lasts.
    await send(gw, s.vin, s.secret, 10, 5, 5);
    await new Promise((r) => setTimeout(r, 1500));
    expect(recordsOf(rx.got).length).toBe(5);
    // The owner refuses location meanwhile, then lifts the restriction.
    expect((await api(gw, 'PUT', `/v1/vehicles/${s.vin}/consent`, { location: false, co2Sharing: true }, s.ownerTok)).status).toBe(200);
    expect((await api(gw, 'PUT', `/v1/vehicles/${s.vin}/restriction`, { restricted: false }, s.ownerTok)).status).toBe(200);
    const later = await waitFor(async () => {
      const r = recordsOf(rx.got).filter((x) => x.seq >= 10);
      return r.length >= 5 ? r : null;
    }, 10_000);
    expect(later.map((r) => r.seq)).toEqual([10, 11, 12, 13, 14]);
    for (const r of later) expect(r.location).toBeNull();
    expect(later[0].technical).toMatchObject({ speedKmh: FULL_TECHNICAL.speedKmh });
    await rx.close();
  });
});

describe('kill -9', () => {
  it('of the delivering instance mid-backlog: every record delivered by the other, none out of order', async () => {
    // A database of its own: the two instances below are the only ones to take leases.
    const own = await createTestDatabase();
    const t0 = Date.now();
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const base = { DATABASE_URL: own.url, ADMIN_TOKEN: 'test-admin-token-0123456789abcdef', LOG_LEVEL: 'warn', ...ENV, WEBHOOK_LEASE_MS: '2000' };
    const g1 = spawnGateway({ ...base, INSTANCE_ID: 'wh-a', HTTP_PORT: String(ports[0]), MQTT_PORT: String(ports[1]) });
    await waitReady(g1);
    const g2 = spawnGateway({ ...base, INSTANCE_ID: 'wh-b', HTTP_PORT: String(ports[2]), MQTT_PORT: String(ports[3]) });
    await waitReady(g2);
    const view = { httpPort: ports[2], mqttPort: ports[3], adminToken: base.ADMIN_TOKEN } as unknown as RunningGateway;
    const s = await setup(view);
    const port = await freePort();
    const w = (await api(view, 'POST', '/v1/webhooks', { url: `http://127.0.0.1:${port}/hook` }, s.tpTok)).body;
    const rx = await exampleReceiver(w.secret, port);
    await send(view, s.vin, s.secret, 1, 3000, 100);
    const holder = await waitFor(async () => {
      const r = await own.query<{ lease_owner: string | null }>('SELECT lease_owner FROM webhooks WHERE id = $1', [w.id]);
      return r[0]?.lease_owner ?? null;
    }, 10_000);
    await waitFor(async () => recordsOf(rx.deliveries()).length >= 200, 20_000);
    const victim = holder === 'wh-a' ? g1 : g2;
    const before = recordsOf(rx.deliveries()).length;
    const tKill = Date.now();
    victim.signal('SIGKILL');
    await victim.exited(10_000);
    await waitFor(async () => recordsOf(rx.deliveries()).length >= 3000, 30_000);
    console.log(`[webhooks] kill -9 of ${holder} with ${3000 - before} of 3000 records undelivered; the rest delivered ${Date.now() - tKill} ms later (lease ${base.WEBHOOK_LEASE_MS} ms); test ${Date.now() - t0} ms`);
    const seqs = recordsOf(rx.deliveries()).map((r) => r.seq);
    expect(seqs).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    const after = await own.query<{ lease_owner: string | null }>('SELECT lease_owner FROM webhooks WHERE id = $1', [w.id]);
    expect(after[0]?.lease_owner).toBe(holder === 'wh-a' ? 'wh-b' : 'wh-a');
    rx.child.killTree();
    g1.killTree();
    g2.killTree();
    await own.drop();
  }, 90_000);
});
