// MQTT identity rules through real MQTT.js clients: who may connect, where a vehicle may
// publish, what it may subscribe to, and that it never sees another vehicle's data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { connectVehicle, encodeBatch, provision, publish, record, testVin, tryConnect } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;
const clients: MqttClient[] = [];

const test = gatewayTest();
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});
afterAll(async () => {
  for (const c of clients) c.end(true);
});

const telemetryTopic = (vin: string) => `v1/vehicles/${vin}/telemetry`;

async function vehicle(): Promise<{ vin: string; secret: string; client: MqttClient }> {
  const { vin, secret } = await provision(gw);
  const client = await connectVehicle(gw, vin, secret);
  clients.push(client);
  return { vin, secret, client };
}

const storedCount = async (vin: string) =>
  (await db.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM telemetry WHERE vin = $1) + (SELECT count(*) FROM obfcm_readings WHERE vin = $1) + (SELECT count(*) FROM quarantine WHERE vin = $1) AS n`,
    [vin],
  ))[0]!.n;

/** Resolves true when the client's connection closes within ms, false otherwise. */
function closed(client: MqttClient, ms: number): Promise<boolean> {
  if (client.disconnected || (!client.connected && !client.reconnecting)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      client.off('close', onClose);
      resolve(false);
    }, ms);
    const onClose = () => {
      clearTimeout(t);
      resolve(true);
    };
    client.once('close', onClose);
  });
}

/**
 * The SUBACK return codes for one filter. This MQTT.js rejects subscribeAsync on a 0x80
 * return code, with the SUBACK packet attached to the error.
 */
async function granted(client: MqttClient, filter: string, qos: 0 | 1): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filter, { qos })).map((g) => g.qos);
  } catch (err) {
    const g = (err as { packet?: { granted?: unknown } }).packet?.granted;
    if (Array.isArray(g)) return g.map((x) => (typeof x === 'number' ? x : (x as { qos: number }).qos));
    throw err;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('CONNECT', () => {
  let vin: string;
  let secret: string;
  let other: { vin: string; secret: string };

  beforeAll(async () => {
    ({ vin, secret } = await provision(gw));
    other = await provision(gw);
  });

  it('the right credentials connect (control)', async () => {
    expect(await tryConnect(gw, { clientId: vin, username: vin, password: secret })).toBeNull();
  });

  const refusals: [string, () => Record<string, unknown>][] = [
    ['a wrong secret', () => ({ clientId: vin, username: vin, password: secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A') })],
    ["another vehicle's secret", () => ({ clientId: vin, username: vin, password: other.secret })],
    ['an unknown VIN', () => {
      const u = testVin();
      return { clientId: u, username: u, password: secret };
    }],
    ['clientId ≠ username (both provisioned, password of the username)', () => ({ clientId: vin, username: other.vin, password: other.secret })],
    ['clientId ≠ username (password of the clientId)', () => ({ clientId: vin, username: other.vin, password: secret })],
    // (MQTT 3.1.1 forbids a password without a username: MQTT.js cannot send one.)
    ['neither username nor password', () => ({ clientId: vin })],
    ['no password', () => ({ clientId: vin, username: vin })],
    ['an empty password', () => ({ clientId: vin, username: vin, password: '' })],
    ['an invalid VIN as client id', () => ({ clientId: 'not-a-vin', username: 'not-a-vin', password: secret })],
    ['a lowercase VIN as client id', () => ({ clientId: vin.toLowerCase(), username: vin.toLowerCase(), password: secret })],
    ['a VIN with I as client id', () => ({ clientId: 'WTESTI' + vin.slice(6), username: 'WTESTI' + vin.slice(6), password: secret })],
  ];
  it.each(refusals)('refuses %s with CONNACK code 5', async (_name, opts) => {
    const r = await tryConnect(gw, opts());
    expect(r).not.toBeNull();
    expect(r!.code).toBe(5);
  });
});

describe('PUBLISH outside the own telemetry topic', () => {
  const topics: [string, (own: string, other: string) => string][] = [
    ["another VIN's telemetry topic", (_own, other) => telemetryTopic(other)],
    ['v1/vehicles/{own}/other', (own) => `v1/vehicles/${own}/other`],
    ['foo/bar', () => 'foo/bar'],
    ['v1/vehicles/{own}/telemetry/extra', (own) => `v1/vehicles/${own}/telemetry/extra`],
  ];

  it.each(topics)('to %s: the gateway closes the connection and stores nothing for either VIN', async (_name, topicOf) => {
    const a = await vehicle();
    const b = await vehicle();
    const topic = topicOf(a.vin, b.vin);
    const t = Date.now();
    // A batch that would be valid for either vehicle on its own topic.
    for (const [vin, qos] of [[b.vin, 1], [a.vin, 0]] as const) {
      a.client.publish(topic, encodeBatch(vin, [record(1, t, { technical: { speedKmh: 10 } })]), { qos }, () => {});
    }
    expect(await closed(a.client, 3000)).toBe(true);
    expect(a.client.connected).toBe(false);
    await sleep(100);
    expect(await storedCount(a.vin)).toBe(0);
    expect(await storedCount(b.vin)).toBe(0);
    // b is untouched and still works
    expect(b.client.connected).toBe(true);
    await publish(b.client, telemetryTopic(b.vin), encodeBatch(b.vin, [record(1, t)]));
    expect(await storedCount(b.vin)).toBe(1);
  });

  it('its own telemetry topic is accepted on the same kind of connection (control)', async () => {
    const a = await vehicle();
    await publish(a.client, telemetryTopic(a.vin), encodeBatch(a.vin, [record(1, Date.now())]));
    expect(await storedCount(a.vin)).toBe(1);
    expect(a.client.connected).toBe(true);
  });
});

describe('SUBSCRIBE', () => {
  // Vehicles have no downlink (issue 17): every filter, their own topics included, gets
  // 0x80, so the broker keeps no subscription and no queue of deliveries for them.
  it('grants 0x80 to every filter, its own v1/vehicles/{own}/ included, keeping the connection', async () => {
    const a = await vehicle();
    const b = await vehicle();
    const table: [string, 0 | 1, number][] = [
      ['#', 1, 128],
      ['+/#', 0, 128],
      ['v1/#', 1, 128],
      ['v1/vehicles/#', 1, 128],
      ['v1/vehicles/+/telemetry', 1, 128],
      ['v1/vehicles/+/#', 0, 128],
      [`v1/vehicles/${b.vin}/#`, 1, 128],
      [`v1/vehicles/${b.vin}/telemetry`, 0, 128],
      [`+/vehicles/${a.vin}/#`, 1, 128],
      [`$share/g/v1/vehicles/${a.vin}/#`, 1, 128],
      [`v1/vehicles/${a.vin}/#`, 1, 128],
      [`v1/vehicles/${a.vin}/#`, 0, 128],
      [`v1/vehicles/${a.vin}/commands`, 1, 128],
      [`v1/vehicles/${a.vin}/commands`, 0, 128],
      [`v1/vehicles/${a.vin}/telemetry`, 1, 128],
    ];
    for (const [filter, qos, grantedQos] of table) {
      expect(await granted(a.client, filter, qos), filter).toEqual([grantedQos]);
      expect(a.client.connected, filter).toBe(true);
    }
  });

  it("a vehicle that asked for its own v1/vehicles/{own}/# and '#' receives nothing: neither another vehicle's telemetry nor its own", async () => {
    const a = await vehicle();
    const b = await vehicle();
    const received: string[] = [];
    a.client.on('message', (topic) => received.push(topic));
    expect(await granted(a.client, `v1/vehicles/${a.vin}/#`, 1)).toEqual([128]);
    expect(await granted(a.client, '#', 1)).toEqual([128]);
    const t = Date.now();
    await publish(b.client, telemetryTopic(b.vin), encodeBatch(b.vin, [record(1, t)]));
    await publish(a.client, telemetryTopic(a.vin), encodeBatch(a.vin, [record(1, t)]));
    await sleep(300);
    expect(received).toEqual([]);
    // control: both publishes were stored
    expect(await storedCount(a.vin)).toBe(1);
    expect(await storedCount(b.vin)).toBe(1);
  });
});
