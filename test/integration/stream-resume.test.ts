// Live streams: resume without gap or duplicate (QoS 1 vehicles, late records, two writer
// connections committing concurrently), two gateway instances on one database, consent,
// transfer and restriction on open streams, and a consumer that does not read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway } from '../helpers/gateway.ts';
import { openSse, type SseClient } from '../helpers/sse.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let a: RunningGateway;
let b: RunningGateway;

beforeAll(async () => {
  db = await createTestDatabase();
  // Two instances on one database, tokens valid on both; the second with a small stream buffer.
  const env = { JWT_KEYS: 'k1:stream-test-key-0123456789abcdef0123456789', STREAM_KEEPALIVE_MS: '1000' };
  a = await startTestGateway(db.url, env);
  b = await startTestGateway(db.url, { ...env, STREAM_BUFFER_BYTES: '65536' });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
});

async function token(subject: string, g = a): Promise<string> {
  const r = await api(g, 'POST', '/v1/admin/tokens', { role: 'customer', subject });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

const topic = (vin: string) => `v1/vehicles/${vin}/telemetry`;

/** Seqs of the vehicle's stored rows. */
async function storedSeqs(vin: string): Promise<number[]> {
  const rows = await db.query<{ seq: number }>('SELECT seq::int AS seq FROM telemetry WHERE vin = $1 ORDER BY seq', [vin]);
  return rows.map((r) => r.seq);
}

function seqsOf(s: SseClient): number[] {
  return s.records().map((r) => r.data.seq as number);
}

describe('resume', () => {
  it('delivers every stored record exactly once across reconnects, with late records and concurrent writers', async () => {
    const owner = 'rita';
    const { vin, secret } = await provision(a, undefined, owner);
    const tok = await token(owner);
    // Other vehicles keep both writer connections busy, so this vehicle's messages are
    // committed by concurrent statements, out of transaction-id order now and then.
    const others = await Promise.all(Array.from({ length: 6 }, () => provision(a, undefined, 'noise')));
    const noise: MqttClient[] = await Promise.all(others.map((o) => connectVehicle(a, o.vin, o.secret)));
    let stopNoise = false;
    const noiseDone = Promise.all(
      noise.map(async (c, k) => {
        let seq = 1;
        const inflight = new Set<Promise<void>>();
        while (!stopNoise && seq < 400 * 20) {
          const recs = Array.from({ length: 20 }, () => record(seq, Date.now() - 10_000 + (seq++ % 5000), { technical: { speedKmh: seq % 200 } }));
          const p = publish(c, topic(others[k]!.vin), encodeBatch(others[k]!.vin, recs)).finally(() => inflight.delete(p));
          inflight.add(p);
          if (inflight.size >= 4) await Promise.race(inflight);
        }
        await Promise.all(inflight);
      }),
    );

    const c = await connectVehicle(a, vin, secret, { clean: false });
    const total = 300;
    const base = Date.now() - 120_000;
    // Message i carries 3 records; every 7th message is late (measured before everything sent so far).
    const published = (async () => {
      const inflight = new Set<Promise<void>>();
      for (let i = 0; i < total; i++) {
        const late = i % 7 === 6;
        const recs = [0, 1, 2].map((k) => {
          const seq = i * 3 + k + 1;
          return record(seq, late ? base - 60_000 + seq : base + seq * 10, { technical: { ...FULL_TECHNICAL, odometerKm: seq }, location: FULL_LOCATION });
        });
        const p = publish(c, topic(vin), encodeBatch(vin, recs)).finally(() => inflight.delete(p));
        inflight.add(p);
        if (inflight.size >= 8) await Promise.race(inflight);
        if (i % 25 === 0) await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.all(inflight);
    })();
    let publishing = true;
    void published.finally(() => (publishing = false));

    const got: number[] = [];
    const ids: string[] = [];
    let s = await openSse(a.httpPort, `/v1/vehicles/${vin}/stream?from=${new Date(base - 3_600_000).toISOString()}`, tok);
    expect(s.status).toBe(200);
    // Disconnect after every ~150 records, stay away a little, resume from the last cursor
    // (by Last-Event-ID, then by ?after=, alternately).
    // Each round: what it received, and whether the vehicle was still publishing when it disconnected.
    const rounds: { records: number; vehiclePublishing: boolean }[] = [];
    for (let round = 0; round < 4; round++) {
      await s.until((ev) => ev.filter((e) => e.event === 'record').length >= 150, 20_000).catch(() => {
        throw new Error(`round ${round + 1}: the stream delivered ${seqsOf(s).length} records in 20 s, not the 150 to disconnect after (rounds so far ${JSON.stringify(rounds)})`);
      });
      rounds.push({ records: seqsOf(s).length, vehiclePublishing: publishing });
      s.close();
      got.push(...seqsOf(s));
      ids.push(...s.records().map((r) => r.id));
      await new Promise((r) => setTimeout(r, 100));
      const last = ids[ids.length - 1]!;
      s = round % 2 === 0 ? await openSse(a.httpPort, `/v1/vehicles/${vin}/stream`, tok, { 'last-event-id': last }) : await openSse(a.httpPort, `/v1/vehicles/${vin}/stream?after=${encodeURIComponent(last)}`, tok);
      expect(s.status).toBe(200);
    }
    await published;
    await c.endAsync();
    stopNoise = true;
    await noiseDone;
    await Promise.all(noise.map((n) => n.endAsync()));
    const stored = await storedSeqs(vin);
    expect(stored).toHaveLength(total * 3);
    await s.until((ev) => got.length + ev.filter((e) => e.event === 'record').length >= stored.length, 60_000).catch(async (err: Error) => {
      // What is missing, and where the tail stands, so a failure says which records and why.
      const seen = new Set([...got, ...seqsOf(s)]);
      const missing = stored.filter((q) => !seen.has(q));
      const log = await db.query<{ tx: string; seqs: string }>('SELECT tx::text AS tx, seqs::text AS seqs FROM stream_log WHERE vin = $1 ORDER BY tx', [vin]).catch(() => []);
      const snap = await db.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s').catch(() => []);
      const holding = missing.length ? log.filter((e) => e.seqs.slice(1, -1).split(',').map(Number).some((q) => missing.includes(q))) : [];
      const metrics = await (await fetch(`http://127.0.0.1:${a.httpPort}/metrics`)).text();
      // In the error itself: a CI log may keep only the failure summary.
      throw new Error(
        `${err.message}; ${missing.length} of ${stored.length} records never delivered: seqs ${missing.slice(0, 40).join(',')}; in log entries ${JSON.stringify(holding.slice(0, 10))}; ` +
          `${got.length} before the last stream, cursors ${ids.slice(-3).join(' ')}; snapshot ${snap[0]?.s}; stream metrics: ${metrics
            .split('\n')
            .filter((l) => l.startsWith('cardata_stream'))
            .join(' | ')}`,
      );
    });
    await new Promise((r) => setTimeout(r, 300));
    s.close();
    rounds.push({ records: seqsOf(s).length, vehiclePublishing: publishing });
    got.push(...seqsOf(s));
    console.log(`[stream-resume] per connection: ${JSON.stringify(rounds)}`);
    // The reconnects happened mid-stream: every connection, the last included, delivered
    // records (so each resume had more to send), and the first disconnect came while the
    // vehicle was still publishing (records committed while the consumer was away).
    for (const [k, r] of rounds.entries()) expect(r.records, `records on connection ${k + 1}`).toBeGreaterThan(0);
    expect(rounds[0]!.vehiclePublishing, 'the vehicle was still publishing at the first disconnect').toBe(true);
    ids.push(...s.records().map((r) => r.id));
    // Exactly once: as many events as rows, no seq twice, every stored seq present.
    expect(got.length).toBe(stored.length);
    expect(new Set(got).size).toBe(got.length);
    expect([...got].sort((x, y) => x - y)).toEqual(stored);
    expect(new Set(ids).size).toBe(ids.length);
  }, 180_000);
});

describe('two instances', () => {
  it('a record sent to gateway A reaches a stream served by gateway B', async () => {
    const { vin, secret } = await provision(a, undefined, 'otto');
    const s = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, await token('otto', b));
    const c = await connectVehicle(a, vin, secret);
    const lat: number[] = [];
    for (let i = 1; i <= 20; i++) {
      await publish(c, topic(vin), encodeBatch(vin, [record(i, Date.now() - 1000, { technical: { speedKmh: i } })]));
      const t = Date.now();
      await s.until((ev) => ev.filter((e) => e.event === 'record').length >= i, 5000);
      lat.push(s.events[s.events.length - 1]!.at - t);
    }
    await c.endAsync();
    expect(seqsOf(s)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // Woken by NOTIFY, not by the 1 s safety poll.
    lat.sort((x, y) => x - y);
    expect(lat[10]!).toBeLessThan(500);
    s.close();
  });
});

describe('records from memory and from the database', () => {
  it('a stream on the writing gateway (rows it holds) and one on another (rows it reads) carry the same lines, byte for byte', async () => {
    const { vin, secret } = await provision(a, undefined, 'vera');
    const onA = await openSse(a.httpPort, `/v1/vehicles/${vin}/stream`, await token('vera'));
    const onB = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, await token('vera', b));
    const metric = async (g: RunningGateway, value: string) => {
      const text = await (await fetch(`http://127.0.0.1:${g.httpPort}/metrics`)).text();
      return Number(text.match(new RegExp(`^cardata_stream_tail\\{value="${value}"\\} (\\S+)$`, 'm'))?.[1] ?? NaN);
    };
    const heldBefore = await metric(a, 'records_held');
    const c = await connectVehicle(a, vin, secret);
    const t = Date.now() - 60_000;
    // Every category, some fields absent, zeros and negatives, doubles without a short decimal form,
    // a category sent with no field set, a record with no category.
    const recs = [
      record(1, t + 1, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION }),
      record(2, t + 2, { technical: { speedKmh: 0, outsideTempC: -12.5, fuelLevelPct: 0.1 + 0.2 } }),
      record(3, t + 3, { location: { latitude: -33.86882000000001, longitude: 151.20929 } }),
      record(4, t + 4, { consumption: { totalDistanceKm: 1e6 + 0.1 }, technical: {} }),
      record(5, t + 5, {}),
    ];
    for (const r of recs) await publish(c, topic(vin), encodeBatch(vin, [r]));
    await c.endAsync();
    await onA.until((ev) => ev.filter((e) => e.event === 'record').length >= 5);
    await onB.until((ev) => ev.filter((e) => e.event === 'record').length >= 5);
    const lines = (x: SseClient) => x.events.filter((e) => e.event === 'record').map((e) => e.data);
    expect(lines(onA)).toEqual(lines(onB));
    expect(onA.records().map((r) => r.data.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(onA.records()[0]!.data).toMatchObject({ technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION });
    // A served them from the rows it wrote (as a rule: a read of the tail that falls between
    // a commit and its result reaching the writer reads that entry from the database); B,
    // which wrote none, read them.
    expect(await metric(a, 'records_held')).toBeGreaterThanOrEqual(heldBefore + 1);
    expect(await metric(b, 'records_held')).toBe(0);
    expect(await metric(b, 'records_read')).toBeGreaterThanOrEqual(5);
    onA.close();
    onB.close();
  });
});

describe('changes on open streams', () => {
  it('a transfer made through gateway A ends the previous owner\'s stream on gateway B within a second', async () => {
    const { vin } = await provision(a, undefined, 'paula');
    const s = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, await token('paula', b));
    await new Promise((r) => setTimeout(r, 200));
    const r = await api(a, 'POST', `/v1/admin/vehicles/${vin}/transfer`, { newOwnerId: 'quentin' });
    expect(r.status).toBe(200);
    const t = Date.now();
    await s.until((ev) => ev.some((e) => e.event === 'end'), 1000);
    const end = s.events.find((e) => e.event === 'end')!;
    expect(end.at - t).toBeLessThan(1000);
    expect(JSON.parse(end.data).reason).toBe('ownership_ended');
    // Nothing was sent: the end still names where this live stream started.
    expect(JSON.parse(end.data).resumeFrom).toMatch(/^1\./);
    expect(end.id).toBe(JSON.parse(end.data).resumeFrom);
    await s.ended;
    // And the previous owner cannot open it again.
    const again = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, await token('paula', b));
    expect(again.status).toBe(404);
  });

  it('a location opt-out through gateway A: no position on B\'s open stream from then on, nor in a resumed backlog', async () => {
    const { vin, secret } = await provision(a, undefined, 'sara');
    const tok = await token('sara', b);
    const s = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, tok);
    const c = await connectVehicle(a, vin, secret);
    await publish(c, topic(vin), encodeBatch(vin, [record(1, Date.now() - 5000, { technical: FULL_TECHNICAL, location: FULL_LOCATION })]));
    await s.until((ev) => ev.some((e) => e.event === 'record'));
    const first = s.records()[0]!;
    expect(first.data.location).toEqual(FULL_LOCATION);
    const r = await api(a, 'PUT', `/v1/vehicles/${vin}/consent`, { location: false, co2Sharing: true }, await token('sara'));
    expect(r.status).toBe(200);
    for (let i = 2; i <= 6; i++) await publish(c, topic(vin), encodeBatch(vin, [record(i, Date.now() - 4000 + i, { technical: FULL_TECHNICAL, location: FULL_LOCATION })]));
    await c.endAsync();
    await s.until((ev) => ev.filter((e) => e.event === 'record').length >= 6);
    for (const x of s.records().slice(1)) expect(x.data.location).toBeNull();
    s.close();
    // Record 1 was stored with its position before the opt-out; replayed after it, without.
    const resumed = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream?from=${new Date(Date.now() - 3_600_000).toISOString()}`, tok);
    await resumed.until((ev) => ev.filter((e) => e.event === 'record').length >= 6);
    expect(seqsOf(resumed)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const x of resumed.records()) expect(x.data.location).toBeNull();
    expect(resumed.events.map((e) => e.data).join('')).not.toContain('latitude');
    resumed.close();
  });

  it('a restriction (Art. 18) does not cut the owner\'s own stream: the owner keeps access to their data', async () => {
    const { vin, secret } = await provision(a, undefined, 'tina');
    const s = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, await token('tina', b));
    const r = await api(a, 'PUT', `/v1/vehicles/${vin}/restriction`, { restricted: true }, await token('tina'));
    expect(r.status).toBe(200);
    const c = await connectVehicle(a, vin, secret);
    await publish(c, topic(vin), encodeBatch(vin, [record(1, Date.now() - 1000, { technical: FULL_TECHNICAL })]));
    await c.endAsync();
    await s.until((ev) => ev.some((e) => e.event === 'record'));
    expect(s.isEnded).toBe(false);
    s.close();
  });
});

describe('slow consumer', () => {
  it('is ended with a resume cursor past its buffer, holds bounded memory, does not slow ingest, and resumes exactly', async () => {
    const { vin, secret } = await provision(a, undefined, 'uwe');
    const tok = await token('uwe', b);
    const slow = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, tok);
    slow.pause();
    const fast = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, tok);
    const c = await connectVehicle(a, vin, secret);
    const t0 = Date.now();
    const acks: number[] = [];
    let maxBuffered = 0;
    const n = 60;
    const per = 400;
    for (let i = 0; i < n; i++) {
      const recs = Array.from({ length: per }, (_, k) => record(i * per + k + 1, t0 - 600_000 + i * per + k, { technical: FULL_TECHNICAL, location: FULL_LOCATION }));
      const t = Date.now();
      await publish(c, topic(vin), encodeBatch(vin, recs));
      acks.push(Date.now() - t);
      maxBuffered = Math.max(maxBuffered, b.streams().maxBufferedBytes);
      // Once it has been ended, the consumer reads again (within the server's grace for the end event).
      if ((b.streams().ended.slow_consumer ?? 0) >= 1) slow.resume();
    }
    await c.endAsync();
    const total = n * per;
    // The reading consumer got everything: ingest and its neighbour were not held up.
    await fast.until((ev) => ev.filter((e) => e.event === 'record').length >= total, 60_000);
    acks.sort((x, y) => x - y);
    expect(acks[Math.floor(acks.length * 0.9)]!).toBeLessThan(1000);
    // The stalled stream was ended once its unread bytes passed the 64 KiB bound; what
    // the server held for it stayed near that bound.
    expect(b.streams().ended.slow_consumer ?? 0).toBeGreaterThanOrEqual(1);
    expect(maxBuffered).toBeLessThan(65536 + 600 * 1024);
    slow.resume();
    await slow.ended;
    const end = slow.events[slow.events.length - 1]!;
    expect(end.event).toBe('end');
    const body = JSON.parse(end.data);
    expect(body.reason).toBe('slow_consumer');
    expect(body.resumeFrom).toBe(end.id);
    const before = seqsOf(slow);
    expect(before.length).toBeLessThan(total);
    // Resume from the end event's cursor: the rest, each record once.
    const rest = await openSse(b.httpPort, `/v1/vehicles/${vin}/stream`, tok, { 'last-event-id': body.resumeFrom });
    await rest.until((ev) => before.length + ev.filter((e) => e.event === 'record').length >= total, 60_000);
    await new Promise((r) => setTimeout(r, 200));
    const all = [...before, ...seqsOf(rest)];
    expect(all.length).toBe(total);
    expect([...all].sort((x, y) => x - y)).toEqual(await storedSeqs(vin));
    rest.close();
    fast.close();
  }, 180_000);
});
