// MQTT_PROXY_PROTOCOL=true: behind a load balancer, each MQTT and MQTTS connection starts
// with a PROXY header naming the vehicle's address. Driven here by real MQTT.js clients
// over sockets that send the header first (v1 on MQTT, v2 before the TLS handshake on
// MQTTS), against a gateway with TLS; the failed-authentication limiter must count the
// address in the header, and a connection without a header must be refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MqttClient } from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { encodeBatch, publish, record, startTestGateway, testVin } from '../helpers/gateway.ts';
import { createPgDb } from '../../storage/driver/db.ts';
import { createVehicleRepo } from '../../storage/repos/vehicles.ts';
import { hashSecret, newSecret } from '../../identity/secrets.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let dir: string;
let db: TestDatabase;
let gw: RunningGateway;
let ca: Buffer;

function v1(address: string): Buffer {
  return Buffer.from(`PROXY TCP4 ${address} 127.0.0.1 40000 1883\r\n`, 'latin1');
}
function v2(address: string): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const block = Buffer.alloc(12);
  address.split('.').forEach((o, i) => (block[i] = Number(o)));
  block.set([127, 0, 0, 1], 4);
  block.writeUInt16BE(40000, 8);
  block.writeUInt16BE(8883, 10);
  return Buffer.concat([sig, Buffer.from([0x21, 0x11, 0x00, 12]), block]);
}

type Transport = 'mqtt' | 'mqtts';
/** One CONNECT attempt over a socket that first sends `header` (or nothing); 'ok' or the refusal. */
function attempt(transport: Transport, header: Buffer | null, vin: string, password: string, after?: (c: MqttClient) => Promise<void>): Promise<string> {
  const port = transport === 'mqtt' ? gw.mqttPort! : gw.mqttsPort!;
  const c = new MqttClient(
    () => {
      const raw = net.connect({ host: '127.0.0.1', port });
      if (header) raw.write(header);
      return (transport === 'mqtt' ? raw : tls.connect({ socket: raw, ca, servername: 'localhost' }));
    },
    { clientId: vin, username: vin, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 },
  );
  return new Promise<string>((resolve) => {
    c.once('connect', () => {
      void (after ? after(c) : Promise.resolve()).then(
        () => resolve('ok'),
        (e: Error) => resolve(`after: ${e.message}`),
      );
    });
    c.once('error', (e) => resolve(e.message));
    c.once('close', () => resolve('closed'));
  }).finally(() => c.end(true));
}

const SECRET = newSecret();
async function vehicle(): Promise<string> {
  const vin = testVin();
  const d = createPgDb(db.url, { max: 1 });
  try {
    await createVehicleRepo(d).create({ vin, ownerId: 'proxy-owner', secretHash: await hashSecret(SECRET, 1024) });
  } finally {
    await d.close();
  }
  return vin;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'cardata-proxy-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.crt', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  ca = readFileSync(path.join(dir, 'server.crt'));
  db = await createTestDatabase();
  gw = await startTestGateway(db.url, {
    TLS_CERT_FILE: path.join(dir, 'server.crt'),
    TLS_KEY_FILE: path.join(dir, 'server.key'),
    MQTTS_PORT: '0',
    MQTT_PROXY_PROTOCOL: 'true',
    AUTH_FAILURES_MAX: '2',
    MQTT_CONNECT_TIMEOUT_MS: '2000',
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe.each([
  ['mqtt', 'PROXY v1', v1, '203.0.113.7', '203.0.113.8'],
  ['mqtts', 'PROXY v2 before the TLS handshake', v2, '198.51.100.7', '198.51.100.8'],
] as const)('%s behind a balancer (%s)', (transport, _what, header, attacker, other) => {
  it('stores what a vehicle sends after the header', async () => {
    const vin = await vehicle();
    const r = await attempt(transport, header('192.0.2.1'), vin, SECRET, (c) => publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, Date.now(), { technical: { speedKmh: 61 } })])));
    expect(r).toBe('ok');
    expect(await db.query('SELECT speed_kmh FROM telemetry WHERE vin = $1', [vin])).toEqual([{ speed_kmh: 61 }]);
  });

  it('counts failed authentications per address named in the header, not per connection peer', async () => {
    const vin = await vehicle();
    // Two wrong secrets "from" the attacker's address reach AUTH_FAILURES_MAX (2) …
    expect(await attempt(transport, header(attacker), vin, 'wrong')).toMatch(/Not authorized/);
    expect(await attempt(transport, header(attacker), vin, 'wrong')).toMatch(/Not authorized/);
    // … so that address is refused unchecked, even with the right secret …
    expect(await attempt(transport, header(attacker), vin, SECRET)).toMatch(/Not authorized/);
    // … while the same vehicle from another address (same TCP peer: 127.0.0.1) gets in.
    expect(await attempt(transport, header(other), vin, SECRET)).toBe('ok');
  });

  it('refuses a connection that does not start with a PROXY header', async () => {
    const vin = await vehicle();
    expect(await attempt(transport, null, vin, SECRET)).not.toBe('ok');
  });
});
