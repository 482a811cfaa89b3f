// Connectivity across two gateway processes on one TimescaleDB database behind a real
// HAProxy (the shipped deploy/haproxy/haproxy.cfg), everything on loopback; the fault is a
// real SIGKILL. Checked: a vehicle connected on both instances at once stays online when
// the older connection ends (its disconnect closes only its own row, whichever arrives
// last); a killed instance's vehicle is offline until it reconnects to the survivor, then
// online; the owner's stream on the surviving instance sends each change as event: status.
import { afterAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import mqtt, { MqttClient } from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, testVin } from '../helpers/gateway.ts';
import { freePort, killAllGateways, sleep, spawnGateway, waitReady, type GatewayProcess } from '../helpers/proc.ts';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.ts';
import { openSse } from '../helpers/sse.ts';

let db: TestDatabase | null = null;
let lb: Haproxy | null = null;
const clients: MqttClient[] = [];

afterAll(async () => {
  for (const c of clients) c.end(true);
  lb?.stop();
  killAllGateways();
  await db?.drop().catch(() => {});
});

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function call(port: number, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

describe('connectivity with two gateways behind HAProxy (real processes)', () => {
  it('online across a reconnect to the other instance whatever the order of events; kill -9: offline until it reconnects elsewhere, then online', async () => {
    db = await createTestDatabase();
    const ports = new Set<number>();
    while (ports.size < 8) ports.add(await freePort());
    const [lbMqtt, lbMqtts, lbHttp, m1, h1, m2, h2, dead] = [...ports] as [number, number, number, number, number, number, number, number];
    const env = (name: string, mqttPort: number, httpPort: number) => ({
      DATABASE_URL: db!.url,
      MQTT_PORT: String(mqttPort),
      HTTP_PORT: String(httpPort),
      ADMIN_TOKEN,
      INSTANCE_ID: name,
      JWT_KEYS: 'k1:connectivity-test-signing-key-0123456789abcdef',
      MQTT_PROXY_PROTOCOL: 'true',
      HTTP_TRUST_PROXY: '127.0.0.1',
      SECRET_SCRYPT_COST: '1024',
      LOG_LEVEL: 'warn',
    });
    const gws: GatewayProcess[] = [spawnGateway(env('gw1', m1, h1)), spawnGateway(env('gw2', m2, h2))];
    await Promise.all(gws.map((g) => waitReady(g, 60_000)));
    // The third server of the shipped configuration points at a closed port: always down.
    lb = await startHaproxy(
      { LB_BIND: '127.0.0.1', LB_MQTT_PORT: String(lbMqtt), LB_MQTTS_PORT: String(lbMqtts), LB_HTTP_PORT: String(lbHttp), LB_CHECK_INTERVAL: '500ms', LB_MAXCONN: '2000', GW_MAXCONN: '1000', GW1_HOST: '127.0.0.1', GW1_MQTT_PORT: String(m1), GW1_HTTP_PORT: String(h1), GW2_HOST: '127.0.0.1', GW2_MQTT_PORT: String(m2), GW2_HTTP_PORT: String(h2), GW3_HOST: '127.0.0.1', GW3_MQTT_PORT: String(dead), GW3_HTTP_PORT: String(dead) },
      [lbMqtt, lbHttp],
    );
    const vin = testVin();
    const prov = await call(h1, 'POST', '/v1/admin/vehicles', ADMIN_TOKEN, { vin, ownerId: 'nina' });
    expect(prov.status).toBe(201);
    const secret = prov.json.secret as string;
    const tok = (await call(h1, 'POST', '/v1/admin/tokens', ADMIN_TOKEN, { role: 'customer', subject: 'nina' })).json.token as string;
    const status = async (port: number) => {
      const r = await call(port, 'GET', `/v1/vehicles/${vin}/status`, tok);
      expect(r.status).toBe(200);
      return r.json as { online: boolean; since: string | null; lastSeenAt: string | null };
    };
    const openRows = () =>
      db!.query<{ name: string; session: string }>(
        `SELECT i.name, c.session FROM vehicle_connections c JOIN gateway_instances i ON i.key = c.instance_key WHERE c.vin = $1 AND c.disconnected_at IS NULL ORDER BY c.id`,
        [vin],
      );
    const opts = { clientId: vin, username: vin, password: secret, protocolVersion: 4 as const, connectTimeout: 5000 };
    /** Through HAProxy (leastconn picks the instance). */
    const connect = (reconnectPeriod = 0) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${lbMqtt}`, { ...opts, reconnectPeriod });
      c.on('error', () => {});
      clients.push(c);
      return c;
    };
    /** Straight to one instance, with the PROXY protocol header HAProxy would send (MQTT_PROXY_PROTOCOL=true). */
    const connectTo = (mqttPort: number) => {
      const c = new MqttClient(() => {
        const s = net.connect({ host: '127.0.0.1', port: mqttPort });
        s.write(`PROXY TCP4 127.0.0.1 127.0.0.1 40000 ${mqttPort}\r\n`);
        return s;
      }, { ...opts, reconnectPeriod: 0 });
      c.on('error', () => {});
      clients.push(c);
      return c;
    };

    // The owner's stream, on each instance directly: each sends the status changes it learns of.
    const streams = await Promise.all([h1, h2].map((h) => openSse(h, `/v1/vehicles/${vin}/stream`, tok)));
    const statusEvents = (i: number) => streams[i]!.events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data) as { online: boolean });

    // 1. Connected through HAProxy to one instance (the older connection, on the instance
    // that will survive), then to the other one: two open rows.
    await sleep(1500); // HAProxy's health checks (500 ms, rise 2) see both instances up
    const b = connect(300);
    const firstRow = await until('first connection', async () => {
      const r = await openRows();
      return r.length === 1 ? r[0] : null;
    });
    const a = connectTo(firstRow.name === 'gw1' ? m2 : m1);
    const both = await until('a connection on each instance', async () => {
      const r = await openRows();
      return r.length === 2 && new Set(r.map((x) => x.name)).size === 2 ? r : null;
    });
    // `second` holds b (through HAProxy), `first` holds a (the direct one): a closes first.
    const second = both.find((r) => r.name === firstRow.name)!;
    const first = both.find((r) => r.name !== firstRow.name)!;
    expect((await status(h1)).online).toBe(true);
    // 2. The older connection ends after the vehicle is connected elsewhere: still online.
    await a.endAsync();
    await until('the first connection closed', async () => (await openRows()).length === 1);
    expect((await openRows())[0]!.name).toBe(second.name);
    for (const h of [h1, h2]) expect((await status(h)).online).toBe(true);

    // 3. kill -9 of the instance holding the vehicle: offline (its rows closed as instance_lost) until it reconnects.
    const victim = gws[second.name === 'gw1' ? 0 : 1]!;
    const survivorHttp = second.name === 'gw1' ? h2 : h1;
    const survivorIndex = second.name === 'gw1' ? 1 : 0;
    const before = statusEvents(survivorIndex).length;
    // Let the vehicle not reconnect at once, so that the offline state is observable.
    b.options.reconnectPeriod = 3000;
    victim.signal('SIGKILL');
    const off = await until('offline after the kill', async () => {
      const st = await status(survivorHttp);
      return st.online ? null : st;
    });
    expect(off.since).not.toBeNull();
    // Offline as soon as the killed process's database session is gone (status asks who is
    // alive); the survivor's sweep then closes its rows for good.
    await until('the killed instance\'s row closed as instance_lost', async () => (await db!.query(`SELECT 1 FROM vehicle_connections WHERE vin = $1 AND reason = 'instance_lost'`, [vin])).length >= 1);
    // 4. The client reconnects through HAProxy to the survivor: online again.
    const back = await until('online again on the survivor', async () => {
      const st = await status(survivorHttp);
      return st.online ? st : null;
    }, 30_000);
    expect(Date.parse(back.since!)).toBeGreaterThanOrEqual(Date.parse(off.since!));
    expect((await openRows()).map((r) => r.name)).toEqual([first.name]);
    // The survivor's stream told of each change: online (at start) → offline → online.
    await until('status events on the surviving stream', async () => statusEvents(survivorIndex).slice(before).map((x) => x.online).join() === 'false,true');
    expect(statusEvents(survivorIndex).slice(0, before).at(-1)?.online).toBe(true);
    for (const s of streams) s.close();
    b.end(true);
  }, 180_000);
});
