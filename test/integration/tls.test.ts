// TLS: MQTT over TLS with secrets, mutual TLS with the VIN as certificate CN, HTTPS.
// Certificates are made at run time with openssl: a CA, a server certificate for
// 127.0.0.1, and client certificates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { encodeBatch, provision, publish, record, startTestGateway, testVin } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let dir: string;
let db: TestDatabase;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and a certificate signed by the test CA. */
function issue(name: string, subject: string, ext?: string): { key: string; cert: string } {
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  const args = ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2'];
  if (ext) {
    writeFileSync(path.join(dir, `${name}.ext`), ext);
    args.push('-extfile', `${name}.ext`);
  }
  openssl(...args);
  return { key: path.join(dir, `${name}.key`), cert: path.join(dir, `${name}.crt`) };
}

let server: { key: string; cert: string };
const ca = () => readFileSync(path.join(dir, 'ca.crt'));

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'cardata-tls-'));
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=cardata test CA');
  server = issue('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  db = await createTestDatabase();
}, 60_000);

afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function tlsEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { TLS_CERT_FILE: server.cert, TLS_KEY_FILE: server.key, MQTTS_PORT: '0', ...extra };
}

function connectTls(gw: RunningGateway, opts: mqtt.IClientOptions) {
  return mqtt.connectAsync(`mqtts://127.0.0.1:${gw.mqttsPort}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ca: ca(), ...opts });
}

describe('MQTT over TLS with secrets, and HTTPS', () => {
  let gw: RunningGateway;
  beforeAll(async () => {
    gw = await startTestGateway(db.url, tlsEnv());
  });
  afterAll(async () => gw?.close());

  it('accepts a vehicle with its secret over TLS and stores its data', async () => {
    expect(gw.mqttsPort).toBeGreaterThan(0);
    const base = `https://127.0.0.1:${gw.httpPort}`;
    // provisioning over HTTPS, trusting the test CA
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const vin = testVin();
      const req = https.request(
        `${base}/v1/admin/vehicles`,
        { method: 'POST', ca: ca(), headers: { 'content-type': 'application/json', authorization: 'Bearer test-admin-token-0123456789abcdef' } },
        (r) => {
          let b = '';
          r.on('data', (c) => (b += c)).on('end', () => resolve({ status: r.statusCode ?? 0, body: b }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ vin, ownerId: 'tls-owner' }));
    });
    expect(res.status).toBe(201);
    const { vin, secret } = JSON.parse(res.body) as { vin: string; secret: string };
    const c = await connectTls(gw, { clientId: vin, username: vin, password: secret });
    await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, Date.now(), { technical: { speedKmh: 42 } })]));
    await c.endAsync();
    expect(await db.query('SELECT speed_kmh FROM telemetry WHERE vin = $1', [vin])).toEqual([{ speed_kmh: 42 }]);
  });

  it('refuses a wrong secret over TLS with CONNACK 5', async () => {
    const { vin } = await provision(await plainGateway());
    const err = await connectTls(gw, { clientId: vin, username: vin, password: 'wrong' }).then(
      () => null,
      (e: { code?: number }) => e,
    );
    expect(err?.code).toBe(5);
  });

  it('refuses plain HTTP on the HTTPS port', async () => {
    const r = await fetch(`http://127.0.0.1:${gw.httpPort}/healthz`).then(
      (x) => x.status,
      () => 'failed',
    );
    expect(r === 'failed' || r === 400).toBe(true);
  });
});

let plain: RunningGateway | null = null;
async function plainGateway(): Promise<RunningGateway> {
  plain ??= await startTestGateway(db.url);
  return plain;
}
afterAll(async () => plain?.close());

describe('mutual TLS: the certificate CN is the VIN', () => {
  let gw: RunningGateway;
  let vinA: string;
  let certA: { key: string; cert: string };
  beforeAll(async () => {
    gw = await startTestGateway(db.url, tlsEnv({ TLS_CLIENT_CA_FILE: path.join(dir, 'ca.crt'), MQTT_REQUIRE_CLIENT_CERT: 'true' }));
    vinA = (await provision(await plainGateway())).vin;
    certA = issue('vehicleA', `/CN=${vinA}`);
  });
  afterAll(async () => gw?.close());

  it('authenticates a vehicle by its certificate alone and stores its data', async () => {
    const c = await connectTls(gw, { clientId: vinA, username: vinA, key: readFileSync(certA.key), cert: readFileSync(certA.cert) });
    await publish(c, `v1/vehicles/${vinA}/telemetry`, encodeBatch(vinA, [record(7, Date.now(), { technical: { speedKmh: 7 } })]));
    await c.endAsync();
    expect(await db.query('SELECT seq FROM telemetry WHERE vin = $1', [vinA])).toEqual([{ seq: 7 }]);
  });

  it('refuses a certificate naming another VIN than the username (CONNACK 5)', async () => {
    const { vin: vinB, secret: secretB } = await provision(await plainGateway());
    const err = await connectTls(gw, { clientId: vinB, username: vinB, password: secretB, key: readFileSync(certA.key), cert: readFileSync(certA.cert) }).then(
      () => null,
      (e: { code?: number }) => e,
    );
    expect(err?.code).toBe(5);
  });

  it('refuses a connection without a client certificate when one is required', async () => {
    const { vin, secret } = await provision(await plainGateway());
    const err = await connectTls(gw, { clientId: vin, username: vin, password: secret }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
  });

  it('refuses a certificate from another CA', async () => {
    const other = mkdtempSync(path.join(tmpdir(), 'cardata-ca2-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k', '-out', 'c', '-days', '1', '-subj', `/CN=${vinA}`], { cwd: other, stdio: 'ignore' });
    // With TLS 1.3 the client learns of the refusal after its side of the handshake: wait
    // for the connection to close and check that no CONNACK ever arrived.
    const c = mqtt.connect(`mqtts://127.0.0.1:${gw.mqttsPort}`, {
      protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ca: ca(), clientId: vinA, username: vinA,
      key: readFileSync(path.join(other, 'k')), cert: readFileSync(path.join(other, 'c')),
    });
    c.on('error', () => {});
    let connected = false;
    c.on('connect', () => (connected = true));
    await new Promise<void>((resolve) => {
      c.once('close', () => resolve());
      setTimeout(resolve, 5000);
    });
    c.end(true);
    expect(connected).toBe(false);
    rmSync(other, { recursive: true, force: true });
  });
});

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Resolves true when an MQTT session is established, false when refused at any stage. */
async function connects(gw: RunningGateway, opts: mqtt.IClientOptions): Promise<boolean> {
  const c = mqtt.connect(`mqtts://127.0.0.1:${gw.mqttsPort}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ca: ca(), ...opts });
  c.on('error', () => {});
  const ok = await new Promise<boolean>((resolve) => {
    c.once('connect', () => resolve(true));
    c.once('close', () => resolve(false));
    setTimeout(() => resolve(false), 6000);
  });
  c.end(true);
  return ok;
}

describe('mutual TLS required: no way in by secret (issue 17)', () => {
  let gw: RunningGateway;
  let plainPort: number;
  beforeAll(async () => {
    plainPort = await freePort();
    gw = await startTestGateway(db.url, tlsEnv({ TLS_CLIENT_CA_FILE: path.join(dir, 'ca.crt'), MQTT_REQUIRE_CLIENT_CERT: 'true', MQTT_PORT: String(plainPort) }));
  });
  afterAll(async () => gw?.close());

  it('the plain MQTT port is not opened: a vehicle with its right secret cannot connect there', async () => {
    const { vin, secret } = await provision(await plainGateway());
    expect(gw.mqttPort).toBeNull();
    const err = await mqtt
      .connectAsync(`mqtt://127.0.0.1:${plainPort}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 3000, clientId: vin, username: vin, password: secret })
      .then((c) => (c.end(true), null), (e: NodeJS.ErrnoException) => e);
    expect(err?.code).toBe('ECONNREFUSED');
  });
});

describe('a certificate revocation list, reloaded without restart (TLS_CLIENT_CRL_FILE)', () => {
  let gw: RunningGateway;
  const crl = () => path.join(dir, 'ca.crl');
  const caConf = () => path.join(dir, 'ca.cnf');
  beforeAll(async () => {
    writeFileSync(caConf(), `[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndatabase = ${path.join(dir, 'index.txt')}\ncrlnumber = ${path.join(dir, 'crlnumber')}\ndefault_md = sha256\ndefault_crl_days = 2\ncertificate = ${path.join(dir, 'ca.crt')}\nprivate_key = ${path.join(dir, 'ca.key')}\n`);
    writeFileSync(path.join(dir, 'index.txt'), '');
    writeFileSync(path.join(dir, 'crlnumber'), '01\n');
    openssl('ca', '-config', caConf(), '-gencrl', '-out', crl());
    gw = await startTestGateway(db.url, tlsEnv({ TLS_CLIENT_CA_FILE: path.join(dir, 'ca.crt'), MQTT_REQUIRE_CLIENT_CERT: 'true', TLS_CLIENT_CRL_FILE: crl(), TLS_CRL_CHECK_INTERVAL_MS: '200' }));
  });
  afterAll(async () => gw?.close());

  it('a certificate revoked while the gateway runs is refused from the next handshake on; another keeps working', async () => {
    const a = (await provision(await plainGateway())).vin;
    const b = (await provision(await plainGateway())).vin;
    const ca1 = issue(`crlA${a}`, `/CN=${a}`);
    const cb = issue(`crlB${b}`, `/CN=${b}`);
    const opts = (vin: string, c: { key: string; cert: string }) => ({ clientId: vin, username: vin, key: readFileSync(c.key), cert: readFileSync(c.cert) });
    expect(await connects(gw, opts(a, ca1))).toBe(true);
    openssl('ca', '-config', caConf(), '-revoke', ca1.cert);
    openssl('ca', '-config', caConf(), '-gencrl', '-out', crl());
    await new Promise((r) => setTimeout(r, 800));
    expect(await connects(gw, opts(a, ca1))).toBe(false);
    expect(await connects(gw, opts(b, cb))).toBe(true);
  });
});

describe('a vehicle authenticated by its certificate is not subject to the failed-login limits', () => {
  let gw: RunningGateway;
  beforeAll(async () => {
    gw = await startTestGateway(db.url, tlsEnv({ TLS_CLIENT_CA_FILE: path.join(dir, 'ca.crt'), AUTH_FAILURES_MAX: '3', AUTH_FAILURES_PER_VIN_MAX: '2' }));
  });
  afterAll(async () => gw?.close());

  it('after wrong secrets for its VIN from the same address locked secret logins, its certificate still connects', async () => {
    const { vin, secret } = await provision(await plainGateway());
    const cert = issue(`lim${vin}`, `/CN=${vin}`);
    for (let i = 0; i < 3; i++) expect(await connects(gw, { clientId: vin, username: vin, password: `wrong-${i}` })).toBe(false);
    // Locked for secrets: even the right one is refused unchecked …
    expect(await connects(gw, { clientId: vin, username: vin, password: secret })).toBe(false);
    // … but the certificate authenticates by itself.
    expect(await connects(gw, { clientId: vin, username: vin, key: readFileSync(cert.key), cert: readFileSync(cert.cert) })).toBe(true);
  });
});
