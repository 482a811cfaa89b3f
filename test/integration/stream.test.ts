// Live CarData streams (issue 13) through the real path: MQTT vehicles, the gateway, TimescaleDB, SSE over HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway } from '../helpers/gateway.ts';
import { openSse } from '../helpers/sse.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startTestGateway(db.url, { STREAM_KEEPALIVE_MS: '300', STREAM_MAX_PER_CALLER: '3' });
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

async function token(role: string, subject: string, g = gw): Promise<string> {
  const r = await api(g, 'POST', '/v1/admin/tokens', { role, subject });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

function full(seq: number, at: number, i = seq) {
  return record(seq, at, {
    technical: { ...FULL_TECHNICAL, odometerKm: 1000 + i },
    consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 1000 + i },
    location: { ...FULL_LOCATION, latitude: 48 + i / 1000 },
  });
}

async function exportLines(vin: string, tok: string): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/vehicles/${vin}/cardata?format=ndjson`, { headers: { authorization: `Bearer ${tok}` } });
  expect(res.status).toBe(200);
  return (await res.text()).trim().split('\n').filter(Boolean);
}

describe('owner stream', () => {
  it('sends each stored record once, in commit order, as the export line of that record', async () => {
    const { vin, secret } = await provision(gw, undefined, 'alice');
    const tok = await token('customer', 'alice');
    const s = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, tok);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('text/event-stream');
    const c = await connectVehicle(gw, vin, secret);
    const t0 = Date.now() - 60_000;
    // Three messages, the third with a record measured before the others (late).
    await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [full(1, t0), full(2, t0 + 1000)]));
    await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [full(3, t0 + 2000), full(4, t0 + 3000)]));
    await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [full(5, t0 - 5000)]));
    // A resend of the first message stores nothing new and must not be streamed again.
    await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [full(1, t0), full(2, t0 + 1000)]));
    await c.endAsync();
    await s.until((ev) => ev.filter((e) => e.event === 'record').length >= 5);
    await new Promise((r) => setTimeout(r, 300));
    const recs = s.records();
    expect(recs.map((r) => r.data.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(recs.map((r) => r.id)).size).toBe(5);
    // Exactly the export's lines (same field names, same numbers).
    const lines = await exportLines(vin, tok);
    const bySeq = new Map(lines.map((l) => [JSON.parse(l).seq as number, l]));
    for (const e of s.events.filter((x) => x.event === 'record')) expect(e.data).toBe(bySeq.get(JSON.parse(e.data).seq));
    expect(recs[0]!.data).toEqual({
      vin,
      seq: 1,
      recordedAt: new Date(t0).toISOString(),
      receivedAt: expect.any(String),
      technical: { ...FULL_TECHNICAL, odometerKm: 1001 },
      consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 1001 },
      location: { ...FULL_LOCATION, latitude: 48.001 },
    });
    // Keep-alive comments (every 300 ms in this test).
    expect(s.comments.filter((x) => x.text === 'keep-alive').length).toBeGreaterThanOrEqual(1);
    s.close();
  });

  it('sends a keep-alive comment at the configured interval', async () => {
    const { vin } = await provision(gw, undefined, 'kim');
    const s = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, await token('customer', 'kim'));
    await new Promise((r) => setTimeout(r, 1000));
    const ka = s.comments.filter((x) => x.text === 'keep-alive');
    expect(ka.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < ka.length; i++) expect(ka[i]!.at - ka[i - 1]!.at).toBeLessThan(600);
    // Open streams are counted in the metrics.
    const m = await (await fetch(`http://127.0.0.1:${gw.httpPort}/metrics`)).text();
    expect(Number(/^cardata_stream_open (\d+)$/m.exec(m)?.[1])).toBeGreaterThanOrEqual(1);
    s.close();
  });

  it('refuses: no token 401, other owner or unknown VIN 404, bad cursor 400, foreign cursor 400, too many 429', async () => {
    const { vin, secret } = await provision(gw, undefined, 'bob');
    const other = await provision(gw, undefined, 'carol');
    const bob = await token('customer', 'bob');
    const carol = await token('customer', 'carol');
    const r401 = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, null);
    expect(r401.status).toBe(401);
    const r404 = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, carol);
    expect(r404.status).toBe(404);
    expect(JSON.parse(r404.body).code).toBe('API_ERR_NOT_FOUND');
    const unknown = await openSse(gw.httpPort, `/v1/vehicles/WAAAAAAAAAAAAAAA1/stream`, bob);
    expect(unknown.status).toBe(404);
    for (const bad of ['x', '1.abc', '1.zz.zz.AAAAAA', "1.1.1.' OR 1=1", '9'.repeat(90)]) {
      const r = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream?after=${encodeURIComponent(bad)}`, bob);
      expect(r.status, bad).toBe(400);
      expect(r.headers['content-type']).toContain('application/problem+json');
      expect(JSON.parse(r.body).code).toBe('API_ERR_INVALID_CURSOR');
      const h = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, bob, { 'last-event-id': bad });
      expect(h.status).toBe(400);
    }
    // A real cursor of carol's vehicle is refused on bob's.
    const cs = await openSse(gw.httpPort, `/v1/vehicles/${other.vin}/stream`, carol);
    const oc = await connectVehicle(gw, other.vin, other.secret);
    await publish(oc, `v1/vehicles/${other.vin}/telemetry`, encodeBatch(other.vin, [full(1, Date.now() - 1000)]));
    await oc.endAsync();
    await cs.until((ev) => ev.some((e) => e.event === 'record'));
    const foreign = cs.records()[0]!.id;
    cs.close();
    const rf = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream?after=${foreign}`, bob);
    expect(rf.status).toBe(400);
    const badFrom = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream?from=yesterday`, bob);
    expect(badFrom.status).toBe(400);
    const old = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream?from=2001-01-01T00:00:00Z`, bob);
    expect(old.status).toBe(400);
    // Three streams per caller in this test; the fourth is refused, a closed one frees its place.
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, bob));
    expect(open.map((s) => s.status)).toEqual([200, 200, 200]);
    const r429 = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, bob);
    expect(r429.status).toBe(429);
    expect(JSON.parse(r429.body).code).toBe('API_ERR_TOO_MANY_STREAMS');
    open[0]!.close();
    await new Promise((r) => setTimeout(r, 200));
    const again = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, bob);
    expect(again.status).toBe(200);
    // Each of the open streams is independent: all get the same record.
    const c = await connectVehicle(gw, vin, secret);
    await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [full(7, Date.now() - 500)]));
    await c.endAsync();
    for (const s of [open[1]!, open[2]!, again]) await s.until((ev) => ev.some((e) => e.event === 'record'));
    for (const s of [open[1]!, open[2]!, again]) s.close();
  });
});

describe('on the embedded database (PGlite)', () => {
  it('streams live and resumes from a cursor, with the same lines as the export', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { loadConfig } = await import('../../config/index.ts');
    const { startGateway } = await import('../../app/gateway.ts');
    const dir = mkdtempSync(path.join(tmpdir(), 'cardata-stream-pglite-'));
    const g = await startGateway(
      loadConfig({ DATA_DIR: dir, MQTT_HOST: '127.0.0.1', MQTT_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', ADMIN_TOKEN: 'test-admin-token-0123456789abcdef', LOG_LEVEL: 'silent' }),
    );
    try {
      const { vin, secret } = await provision(g, undefined, 'erin');
      const tok = await token('customer', 'erin', g);
      const s = await openSse(g.httpPort, `/v1/vehicles/${vin}/stream`, tok);
      expect(s.status).toBe(200);
      const c = await connectVehicle(g, vin, secret);
      const t0 = Date.now() - 30_000;
      await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [full(1, t0), full(2, t0 + 1000)]));
      await s.until((ev) => ev.filter((e) => e.event === 'record').length >= 2);
      const first = s.records()[0]!;
      s.close();
      await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [full(3, t0 - 1000)]));
      await c.endAsync();
      const r = await openSse(g.httpPort, `/v1/vehicles/${vin}/stream`, tok, { 'last-event-id': first.id });
      await r.until((ev) => ev.filter((e) => e.event === 'record').length >= 2);
      expect(r.records().map((x) => x.data.seq)).toEqual([2, 3]);
      const res = await fetch(`http://127.0.0.1:${g.httpPort}/v1/vehicles/${vin}/cardata?format=ndjson`, { headers: { authorization: `Bearer ${tok}` } });
      const lines = new Map((await res.text()).trim().split('\n').map((l) => [JSON.parse(l).seq as number, l]));
      for (const e of [...s.events, ...r.events].filter((x) => x.event === 'record')) expect(e.data).toBe(lines.get(JSON.parse(e.data).seq));
      r.close();
    } finally {
      await g.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
