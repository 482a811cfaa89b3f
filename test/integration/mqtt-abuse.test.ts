// Hostile traffic on the MQTT port over raw TCP (node:net): garbage, malformed CONNECTs,
// packets before CONNECT, a header announcing a 200 MB packet, connection floods,
// slow/half-open connections and repeated failed authentications. The gateway must close
// what it should, buffer nothing it should not, and keep serving honest vehicles.
//
// Abusive connections come from their own loopback addresses (127.0.0.2 and up; Linux
// routes all of 127/8 to lo); honest vehicles connect from 127.0.0.1. The failed-auth
// limiter counts per source address, so each group of abusers is kept apart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import type { MqttClient } from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { connectBody, connectPacket, packet, publishPacket, Raw, remainingLength, sleep, str, subscribePacket, u16, type ConnectOpts } from '../helpers/raw-mqtt.ts';
import { connectVehicle, encodeBatch, provision, publish, record, startTestGateway, testVin } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';

/** MQTT_CONNECT_TIMEOUT_MS of the gateway under test (the default, 10 s, has its own test). */
const CONNECT_TIMEOUT_MS = 2000;
const AUTH_FAILURES_MAX = 10;

let db: TestDatabase;
let gw: RunningGateway;
const clients: MqttClient[] = [];
const raws: Raw[] = [];

const test = gatewayTest({
  MQTT_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
  // The production defaults of the limiter (the helper raises it for the other files).
  AUTH_FAILURES_MAX: String(AUTH_FAILURES_MAX),
  AUTH_FAILURE_WINDOW_MS: '60000',
});
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});
afterAll(async () => {
  for (const r of raws) r.socket.destroy();
  for (const c of clients) c.end(true);
});

/** A raw connection to the gateway under test from `localAddress`, closed after the file. */
async function openRaw(localAddress = '127.0.0.1'): Promise<Raw> {
  const r = await Raw.open(gw.mqttPort!, localAddress);
  raws.push(r);
  return r;
}

const topicOf = (vin: string) => `v1/vehicles/${vin}/telemetry`;
const storedSeqs = async (vin: string) => (await db.query<{ seq: number }>('SELECT seq FROM telemetry WHERE vin = $1 ORDER BY seq', [vin])).map((r) => Number(r.seq));
const storedCount = async (vin: string) =>
  (await db.query<{ n: number }>(
    'SELECT (SELECT count(*) FROM telemetry WHERE vin = $1) + (SELECT count(*) FROM quarantine WHERE vin = $1) AS n',
    [vin],
  ))[0]!.n;

async function refusedMetric(reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gw.httpPort}/metrics`)).text();
  const m = new RegExp(`^cardata_mqtt_refused_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** An honest vehicle: provisioned, connected from 127.0.0.1, publishing. */
async function honest(): Promise<{ vin: string; secret: string; client: MqttClient; seq: number; send(): Promise<number> }> {
  const { vin, secret } = await provision(gw);
  const client = await connectVehicle(gw, vin, secret);
  clients.push(client);
  const h = {
    vin,
    secret,
    client,
    seq: 0,
    /** Publishes one record and resolves with the PUBACK latency, ms. */
    async send() {
      const t0 = performance.now();
      const seq = ++h.seq;
      await publish(client, topicOf(vin), encodeBatch(vin, [record(seq, Date.now(), { technical: { speedKmh: 10 } })]));
      return performance.now() - t0;
    },
  };
  return h;
}

/** A raw CONNECT; resolves with the CONNACK return code, or null when closed without one. */
async function rawConnect(localAddress: string, o: ConnectOpts): Promise<{ code: number | null; raw: Raw }> {
  const r = await openRaw(localAddress);
  r.write(connectPacket(o));
  const p = await r.waitPacket(2, 5000);
  return { code: p ? p.body[1]! : null, raw: r };
}

// ---------------------------------------------------------------------------

describe('garbage on the MQTT port', () => {
  const garbage: [string, Buffer][] = [
    ['1 KiB of random bytes', Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 2654435761) >>> 24))],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: gateway\r\nUser-Agent: curl/8\r\n\r\n')],
    ['a TLS ClientHello', Buffer.concat([Buffer.from('160301020001' + '0001fc0303', 'hex'), Buffer.alloc(64, 0x42)])],
    ['an SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')],
    ['a PROXY protocol header', Buffer.from('PROXY TCP4 203.0.113.1 192.0.2.1 56324 1883\r\n')],
    ['64 zero bytes (reserved packet type 0)', Buffer.alloc(64)],
    ['64 bytes of 0xFF (5-byte Remaining Length)', Buffer.alloc(64, 0xff)],
    ['a CONNACK sent to the server', packet(2, 0, Buffer.from([0, 0]))],
    ['an AUTH packet (MQTT 5 only)', packet(15, 0, Buffer.alloc(0))],
    ['a PINGREQ as first packet', packet(12, 0, Buffer.alloc(0))],
    ['a DISCONNECT as first packet', packet(14, 0, Buffer.alloc(0))],
  ];

  it('each is closed (at the latest after the connect timeout) without a CONNACK, while honest vehicles connect and publish', async () => {
    const h = await honest();
    const conns = await Promise.all(garbage.map(async ([name, bytes], i) => {
      const r = await openRaw(`127.0.0.${20 + i}`);
      r.write(bytes);
      return { name, r };
    }));
    // Honest traffic goes on meanwhile: a new vehicle connects, both publish.
    const h2 = await honest();
    const latencies = [await h.send(), await h2.send()];
    await Promise.all(conns.map(({ r }) => r.closedWithin(CONNECT_TIMEOUT_MS + 4000)));
    const lines: string[] = [];
    for (const { name, r } of conns) {
      lines.push(`  ${name.padEnd(45)} closed after ${r.closedAfterMs === null ? 'NEVER' : `${Math.round(r.closedAfterMs)} ms`}`);
    }
    console.log(`garbage (connect timeout ${CONNECT_TIMEOUT_MS} ms):\n${lines.join('\n')}`);
    for (const { name, r } of conns) {
      expect(r.isClosed, name).toBe(true);
      expect(r.closedAfterMs!, name).toBeLessThan(CONNECT_TIMEOUT_MS + 4000);
      expect(r.connacks(), name).toEqual([]);
    }
    for (const l of latencies) expect(l).toBeLessThan(2000);
    expect(await storedSeqs(h.vin)).toEqual([1]);
    expect(await storedSeqs(h2.vin)).toEqual([1]);
    expect(h.client.connected && h2.client.connected).toBe(true);
    expect((await fetch(`http://127.0.0.1:${gw.httpPort}/readyz`)).status).toBe(200);
  });
});

describe('malformed CONNECT', () => {
  let vin: string;
  let secret: string;
  beforeAll(async () => {
    ({ vin, secret } = await provision(gw));
  });

  const body = () => connectBody({ clientId: vin, username: vin, password: secret });
  const cases: [string, () => Buffer][] = [
    ['protocol name "MQTX"', () => connectPacket({ clientId: vin, username: vin, password: secret, protocolName: 'MQTX' })],
    ['protocol level 0', () => connectPacket({ clientId: vin, username: vin, password: secret, level: 0 })],
    ['protocol level 7', () => connectPacket({ clientId: vin, username: vin, password: secret, level: 7 })],
    ['the reserved connect flag set (MQTT-3.1.2-3)', () => connectPacket({ clientId: vin, username: vin, password: secret, flags: 0x01 })],
    ['a password flag without the username flag (MQTT-3.1.2-22)', () => connectPacket({ clientId: vin, password: secret })],
    ['will QoS 1 without the will flag (MQTT-3.1.2-13)', () => connectPacket({ clientId: vin, username: vin, password: secret, flags: 0x08 })],
    ['will QoS 3 (MQTT-3.1.2-14)', () => connectPacket({ clientId: vin, username: vin, password: secret, rawFlags: 0xc2 | 0x04 | 0x18 })],
    ['a will flag with no will topic/message', () => connectPacket({ clientId: vin, username: vin, password: secret, flags: 0x04 })],
    ['a client id length running past the packet', () => {
      const b = body();
      b.writeUInt16BE(0xffff, 10); // client id length
      return packet(1, 0, b);
    }],
    ['a Remaining Length shorter than its fields', () => packet(1, 0, body().subarray(0, 14))],
    ['a truncated body (Remaining Length longer than sent, then silence)', () => {
      const p = connectPacket({ clientId: vin, username: vin, password: secret });
      return p.subarray(0, p.length - 5);
    }],
    ['a 5-byte Remaining Length', () => Buffer.concat([Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), body()])],
    ['fixed-header flags 0xF on CONNECT (MQTT-2.2.2-2)', () => {
      const p = connectPacket({ clientId: vin, username: vin, password: secret });
      p[0] = 0x1f;
      return p;
    }],
    ['invalid UTF-8 in the client id', () => connectPacket({ clientId: Buffer.from([0xc3, 0x28, 0xed, 0xa0, 0x80]), username: vin, password: secret })],
    ['a NUL in the client id (MQTT-1.5.3-2)', () => connectPacket({ clientId: vin.slice(0, 8) + '\u0000' + vin.slice(9), username: vin, password: secret })],
    ['a 60 KiB client id', () => connectPacket({ clientId: 'W'.repeat(60_000), username: vin, password: secret })],
    ['a 60 KiB password', () => connectPacket({ clientId: vin, username: vin, password: 'x'.repeat(60_000) })],
    ['MQTT 5 (level 5) CONNECT', () => {
      // v5 adds a properties length after keepalive (0 here)
      const b = connectBody({ clientId: vin, username: vin, password: secret, level: 5 });
      return packet(1, 0, Buffer.concat([b.subarray(0, 10), Buffer.from([0]), b.subarray(10)]));
    }],
  ];

  it.each(cases)('%s: never accepted, and the connection is closed', async (name, build) => {
    const r = await openRaw('127.0.0.4');
    r.write(build());
    expect(await r.closedWithin(CONNECT_TIMEOUT_MS + 4000)).toBe(true);
    console.log(`malformed CONNECT, ${name}: CONNACK ${JSON.stringify(r.connacks())}, closed after ${Math.round(r.closedAfterMs!)} ms`);
    // a refusal CONNACK (return code ≠ 0) is allowed before the close; an acceptance is not
    for (const code of r.connacks()) expect(code).not.toBe(0);
  });

  it('a second CONNECT on an accepted connection closes it (MQTT-3.1.0-2); nothing published through it', async () => {
    const r = await openRaw('127.0.0.1');
    r.write(connectPacket({ clientId: vin, username: vin, password: secret }));
    const ack = await r.waitPacket(2);
    expect(ack?.body[1]).toBe(0);
    r.write(connectPacket({ clientId: vin, username: vin, password: secret }));
    r.write(publishPacket(topicOf(vin), encodeBatch(vin, [record(1, Date.now())]), 1));
    expect(await r.closedWithin(2000)).toBe(true);
    expect(r.packets().filter((p) => p.type === 4)).toEqual([]);
    expect(await storedCount(vin)).toBe(0);
  });
});

describe('packets before CONNECT', () => {
  it('a PUBLISH as first packet closes the connection at once; no PUBACK, nothing stored', async () => {
    const { vin } = await provision(gw);
    const r = await openRaw('127.0.0.5');
    r.write(publishPacket(topicOf(vin), encodeBatch(vin, [record(1, Date.now())]), 1));
    expect(await r.closedWithin(1000)).toBe(true);
    expect(r.packets()).toEqual([]);
    await sleep(100);
    expect(await storedCount(vin)).toBe(0);
  });

  it('a SUBSCRIBE as first packet closes the connection at once; no SUBACK', async () => {
    const r = await openRaw('127.0.0.5');
    r.write(subscribePacket('#'));
    expect(await r.closedWithin(1000)).toBe(true);
    expect(r.packets()).toEqual([]);
  });

  it('a refused CONNECT followed at once by a PUBLISH in the same segment: CONNACK 5, closed, nothing stored', async () => {
    const { vin } = await provision(gw);
    const r = await openRaw('127.0.0.5');
    r.write(Buffer.concat([connectPacket({ clientId: vin, username: vin, password: 'wrong-secret' }), publishPacket(topicOf(vin), encodeBatch(vin, [record(1, Date.now())]), 1)]));
    expect(await r.closedWithin(2000)).toBe(true);
    expect(r.connacks()).toEqual([5]);
    expect(r.packets().filter((p) => p.type === 4)).toEqual([]);
    await sleep(100);
    expect(await storedCount(vin)).toBe(0);
  });

  it('(control) an accepted CONNECT followed at once by a PUBLISH in the same segment is legal: CONNACK 0, PUBACK, stored', async () => {
    const { vin, secret } = await provision(gw);
    const r = await openRaw('127.0.0.1');
    r.write(Buffer.concat([connectPacket({ clientId: vin, username: vin, password: secret }), publishPacket(topicOf(vin), encodeBatch(vin, [record(1, Date.now())]), 1, 7)]));
    const puback = await r.waitPacket(4, 3000);
    expect(r.connacks()).toEqual([0]);
    expect(puback?.body.readUInt16BE(0)).toBe(7);
    expect(await storedSeqs(vin)).toEqual([1]);
    r.socket.destroy();
  });
});

describe('a header announcing a 200 MB packet', () => {
  const ANNOUNCED = 200 * 1024 * 1024;

  /** Streams up to `max` bytes of body after the header until the server closes; returns what the socket took. */
  async function stream(r: Raw, max: number): Promise<number> {
    const chunk = Buffer.alloc(1024 * 1024, 0x41);
    let sent = 0;
    while (sent < max && !r.isClosed && !r.socket.destroyed) {
      const ok = r.socket.write(chunk);
      sent += chunk.length;
      if (!ok) {
        const drained = await Promise.race([new Promise<boolean>((res) => r.socket.once('drain', () => res(true))), r.closed.then(() => false), sleep(2000).then(() => false)]);
        if (!drained) break;
      }
    }
    return sent;
  }

  it('before CONNECT: closed immediately, not buffered (RSS does not grow), honest vehicles unaffected', async () => {
    const h = await honest();
    const rss0 = process.memoryUsage().rss;
    const r = await openRaw('127.0.0.6');
    const t0 = performance.now();
    r.write(Buffer.concat([Buffer.from([0x10]), remainingLength(ANNOUNCED)]));
    const sent = await stream(r, 128 * 1024 * 1024);
    expect(await r.closedWithin(1000)).toBe(true);
    const ms = performance.now() - t0;
    const grown = process.memoryUsage().rss - rss0;
    console.log(`200 MB CONNECT header: closed after ${Math.round(ms)} ms; the client had written ${(sent / 1e6).toFixed(0)} MB into its socket; RSS +${(grown / 1e6).toFixed(1)} MB`);
    expect(ms).toBeLessThan(1000);
    expect(sent).toBeLessThan(64 * 1024 * 1024);
    expect(grown).toBeLessThan(64 * 1024 * 1024);
    expect(r.connacks()).toEqual([]);
    await h.send();
    expect(h.client.connected).toBe(true);
  });

  it('after CONNECT (a PUBLISH header): closed immediately, counted as GW_ERR_PACKET_TOO_LARGE, nothing stored', async () => {
    const { vin, secret } = await provision(gw);
    const before = await refusedMetric('GW_ERR_PACKET_TOO_LARGE');
    const r = await openRaw('127.0.0.1');
    r.write(connectPacket({ clientId: vin, username: vin, password: secret }));
    expect((await r.waitPacket(2))?.body[1]).toBe(0);
    const rss0 = process.memoryUsage().rss;
    r.write(Buffer.concat([Buffer.from([0x32]), remainingLength(ANNOUNCED), str(topicOf(vin)), u16(1)]));
    const sent = await stream(r, 128 * 1024 * 1024);
    expect(await r.closedWithin(1000)).toBe(true);
    expect(sent).toBeLessThan(64 * 1024 * 1024);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(64 * 1024 * 1024);
    expect(r.packets().filter((p) => p.type === 4)).toEqual([]);
    expect(await refusedMetric('GW_ERR_PACKET_TOO_LARGE')).toBe(before + 1);
    expect(await storedCount(vin)).toBe(0);
  });
});

describe('connection floods and slow connections', () => {
  it(`500 idle connections, 20 half CONNECTs and 5 byte-a-time CONNECTs are all closed after MQTT_CONNECT_TIMEOUT_MS (${CONNECT_TIMEOUT_MS} ms); honest vehicles keep connecting and publishing`, async () => {
    const steady = await honest();
    const { vin: slowVin, secret: slowSecret } = await provision(gw);
    const half = connectPacket({ clientId: slowVin, username: slowVin, password: slowSecret });

    const t0 = performance.now();
    const flood = await Promise.all(Array.from({ length: 500 }, () => openRaw('127.0.0.7')));
    const openMs = performance.now() - t0;
    const halfOpen = await Promise.all(Array.from({ length: 20 }, async () => {
      const r = await openRaw('127.0.0.8');
      r.write(half.subarray(0, Math.floor(half.length / 2)));
      return r;
    }));
    const drip = await Promise.all(Array.from({ length: 5 }, () => openRaw('127.0.0.9')));
    let dripping = true;
    const dripper = (async () => {
      // one byte every 100 ms: the whole CONNECT would take longer than the timeout
      for (let i = 0; dripping && i < half.length; i++) {
        for (const r of drip) r.write(half.subarray(i, i + 1));
        await sleep(100);
      }
    })();

    // Honest traffic during the flood: the steady vehicle publishes, new vehicles connect and publish.
    const latencies: number[] = [];
    const connectMs: number[] = [];
    const fresh: string[] = [];
    const deadline = performance.now() + CONNECT_TIMEOUT_MS + 500;
    while (performance.now() < deadline) {
      latencies.push(await steady.send());
      const c0 = performance.now();
      const h = await honest();
      connectMs.push(performance.now() - c0);
      latencies.push(await h.send());
      fresh.push(h.vin);
      await h.client.endAsync();
      await sleep(150);
    }
    const all = [...flood, ...halfOpen, ...drip];
    await Promise.all(all.map((r) => r.closedWithin(CONNECT_TIMEOUT_MS + 4000)));
    dripping = false;
    await dripper;

    const stats = (rs: Raw[]) => {
      const t = rs.map((r) => r.closedAfterMs ?? Infinity).sort((a, b) => a - b);
      return `min ${Math.round(t[0]!)} / median ${Math.round(t[t.length >> 1]!)} / max ${Math.round(t[t.length - 1]!)} ms`;
    };
    console.log(
      `flood: 500 connections opened in ${Math.round(openMs)} ms; closed after: idle ${stats(flood)}; half CONNECT ${stats(halfOpen)}; drip ${stats(drip)}\n` +
        `flood: honest PUBACK latency max ${Math.round(Math.max(...latencies))} ms over ${latencies.length} publishes; honest CONNECT+provision max ${Math.round(Math.max(...connectMs))} ms over ${connectMs.length}`,
    );
    for (const r of all) {
      expect(r.isClosed).toBe(true);
      expect(r.closedAfterMs!).toBeGreaterThanOrEqual(CONNECT_TIMEOUT_MS - 50);
      expect(r.closedAfterMs!).toBeLessThan(CONNECT_TIMEOUT_MS + 4000);
      expect(r.connacks()).toEqual([]);
    }
    // generous bounds (the suite runs two files at once on two cores); typical: tens of ms
    expect(Math.max(...latencies)).toBeLessThan(2000);
    expect(Math.max(...connectMs)).toBeLessThan(3000);
    expect(await storedSeqs(steady.vin)).toEqual(Array.from({ length: steady.seq }, (_, i) => i + 1));
    for (const v of fresh) expect(await storedSeqs(v)).toEqual([1]);
    expect(steady.client.connected).toBe(true);
    // the vehicle whose CONNECT was sent in halves was never connected, and can connect now
    const ok = await connectVehicle(gw, slowVin, slowSecret);
    clients.push(ok);
    expect(ok.connected).toBe(true);
  }, 40_000);

  it('an authenticated vehicle that goes silent is closed after 1.5 × its keep-alive (MQTT-3.1.2-24)', async () => {
    const { vin, secret } = await provision(gw);
    const r = await openRaw('127.0.0.1');
    r.write(connectPacket({ clientId: vin, username: vin, password: secret, keepalive: 1 }));
    expect((await r.waitPacket(2))?.body[1]).toBe(0);
    expect(await r.closedWithin(4000)).toBe(true);
    expect(r.closedAfterMs!).toBeGreaterThanOrEqual(1400);
  });

  it('without MQTT_CONNECT_TIMEOUT_MS the connect timeout is 10 s', async () => {
    const db2 = await createTestDatabase();
    const gw2 = await startTestGateway(db2.url);
    try {
      const s = net.connect({ host: '127.0.0.1', port: gw2.mqttPort!, localAddress: '127.0.0.10' });
      const r = new Raw(s);
      raws.push(r);
      await new Promise((res) => s.once('connect', res));
      expect(await r.closedWithin(14_000)).toBe(true);
      console.log(`default connect timeout: idle connection closed after ${Math.round(r.closedAfterMs!)} ms`);
      expect(r.closedAfterMs!).toBeGreaterThanOrEqual(9_900);
      expect(r.closedAfterMs!).toBeLessThan(12_500);
    } finally {
      await gw2.close();
      await db2.drop();
    }
  }, 30_000);
});

describe(`repeated failed authentications (AUTH_FAILURES_MAX ${AUTH_FAILURES_MAX})`, () => {
  it(`after ${AUTH_FAILURES_MAX} failed CONNECTs from one address, that address gets CONNACK 5 unchecked, even with the right secret; other addresses are unaffected`, async () => {
    // Failures spread over distinct VINs so that only the per-address count reaches the limit.
    const targets = await Promise.all(Array.from({ length: AUTH_FAILURES_MAX }, () => provision(gw)));
    const victim = await provision(gw);
    const t0 = performance.now();
    for (const t of targets) {
      const { code, raw } = await rawConnect('127.0.0.2', { clientId: t.vin, username: t.vin, password: t.secret.slice(0, -2) + 'xx' });
      expect(code).toBe(5);
      await raw.closedWithin(1000);
    }
    const perFailure = (performance.now() - t0) / AUTH_FAILURES_MAX;
    const badCreds = await refusedMetric('GW_ERR_BAD_CREDENTIALS');
    // Now even the right secret of an untouched vehicle is refused from that address …
    const right = await rawConnect('127.0.0.2', { clientId: victim.vin, username: victim.vin, password: victim.secret });
    expect(right.code).toBe(5);
    // … and a wrong one is not checked either (no further bad-credentials refusal counted).
    const wrong = await rawConnect('127.0.0.2', { clientId: targets[0]!.vin, username: targets[0]!.vin, password: 'wrong' });
    expect(wrong.code).toBe(5);
    expect(await refusedMetric('GW_ERR_BAD_CREDENTIALS')).toBe(badCreds);
    // Another address is not affected: the same vehicle connects from 127.0.0.1.
    const fine = await rawConnect('127.0.0.1', { clientId: victim.vin, username: victim.vin, password: victim.secret });
    expect(fine.code).toBe(0);
    fine.raw.socket.destroy();
    console.log(`failed auth: ${perFailure.toFixed(1)} ms per refused CONNECT (sequential); locked after ${AUTH_FAILURES_MAX}`);
  });

  it(`${AUTH_FAILURES_MAX} failed CONNECTs for one VIN from many addresses do not lock that vehicle out`, async () => {
    // Counting per VIN would let anyone who knows a VIN keep the car from reconnecting.
    const v = await honest();
    for (let i = 0; i < AUTH_FAILURES_MAX; i++) {
      const { code, raw } = await rawConnect(`127.0.1.${i + 1}`, { clientId: v.vin, username: v.vin, password: `guess-${i}` });
      expect(code).toBe(5);
      raw.socket.destroy();
    }
    expect(v.client.connected).toBe(true);
    await v.send();
    expect(await storedSeqs(v.vin)).toEqual([1]);
    const again = await rawConnect('127.0.0.1', { clientId: v.vin, username: v.vin, password: v.secret });
    expect(again.code).toBe(0);
    again.raw.socket.destroy();
  });

  it('the lock ends after AUTH_FAILURE_WINDOW_MS: then the right secret connects again', async () => {
    const db2 = await createTestDatabase();
    const gw2 = await startTestGateway(db2.url, { AUTH_FAILURES_MAX: '3', AUTH_FAILURE_WINDOW_MS: '1000' });
    try {
      const p = async (vin: string, secret: string) => {
        const s = net.connect({ host: '127.0.0.1', port: gw2.mqttPort!, localAddress: '127.0.0.11' });
        const r = new Raw(s);
        raws.push(r);
        await new Promise((res) => s.once('connect', res));
        r.write(connectPacket({ clientId: vin, username: vin, password: secret }));
        const ack = await r.waitPacket(2, 3000);
        s.destroy();
        return ack ? ack.body[1]! : null;
      };
      const vehicles: { vin: string; secret: string }[] = [];
      for (let i = 0; i < 4; i++) {
        const vin = testVin();
        const res = await fetch(`http://127.0.0.1:${gw2.httpPort}/v1/admin/vehicles`, {
          method: 'POST',
          headers: { authorization: `Bearer ${gw2.adminToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ vin, ownerId: 'o' }),
        });
        vehicles.push((await res.json()) as { vin: string; secret: string });
      }
      for (const v of vehicles.slice(0, 3)) expect(await p(v.vin, 'wrong')).toBe(5);
      const ok = vehicles[3]!;
      expect(await p(ok.vin, ok.secret)).toBe(5);
      await sleep(1200);
      expect(await p(ok.vin, ok.secret)).toBe(0);
    } finally {
      await gw2.close();
      await db2.drop();
    }
  });
});
