// Bad input from an authenticated vehicle, through the real path (MQTT.js → aedes →
// ingest → writer → TimescaleDB): every bad message or record is quarantined with its exact
// reason and then acknowledged, the good records around it are stored, and the
// connection stays usable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import {
  FULL_CONSUMPTION,
  FULL_LOCATION,
  FULL_TECHNICAL,
  connectVehicle,
  encodeBatch,
  provision,
  publish,
  record,
  testVin,
} from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { GW_ERR } from '../../gateway/errors.ts';
import Long from 'long';
import { TelemetryBatch, TelemetryRecord, type ITelemetryRecord } from '../../proto/index.ts';

const MAX_PAYLOAD = 4096;
const MAX_PACKET = 16_384;

let db: TestDatabase;
let gw: RunningGateway;
const clients: MqttClient[] = [];

const MAX_RECORDS = 50;

const test = gatewayTest({ MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD), MAX_PACKET_BYTES: String(MAX_PACKET), MAX_RECORDS_PER_MESSAGE: String(MAX_RECORDS) });
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});
afterAll(async () => {
  for (const c of clients) c.end(true);
});

interface QRow {
  id: number;
  vin: string | null;
  reason: string;
  detail: string;
  seq: number | null;
  recorded_at: Date | null;
  payload: Buffer | null;
  payload_bytes: number;
}

const topicOf = (vin: string) => `v1/vehicles/${vin}/telemetry`;
const maxQuarantineId = async () => (await db.query<{ m: number }>('SELECT coalesce(max(id), 0)::int AS m FROM quarantine'))[0]!.m;
const quarantineSince = (id: number) =>
  db.query<QRow>('SELECT id, vin, reason, detail, seq, recorded_at, payload, payload_bytes FROM quarantine WHERE id > $1 ORDER BY id', [id]);
const quarantineOf = (vin: string) =>
  db.query<QRow>('SELECT id, vin, reason, detail, seq, recorded_at, payload, payload_bytes FROM quarantine WHERE vin = $1 ORDER BY id', [vin]);
const storedSeqs = async (vin: string) => (await db.query<{ seq: number }>('SELECT seq FROM telemetry WHERE vin = $1 ORDER BY seq', [vin])).map((r) => r.seq);

async function vehicle(): Promise<{ vin: string; secret: string; client: MqttClient; topic: string }> {
  const { vin, secret } = await provision(gw);
  const client = await connectVehicle(gw, vin, secret);
  clients.push(client);
  return { vin, secret, client, topic: topicOf(vin) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------
// The table: one connected vehicle, each bad message followed by a valid one.

/** What a case sends and what must come of it. */
interface Built {
  payload: Buffer;
  /** seqs of the valid records in the message, which must be stored. */
  good: number[];
}
interface Case {
  name: string;
  reason: string;
  build(vin: string, now: number, nextSeq: () => number): Built;
  /** Message-level refusals: whether the raw bytes are kept (true) or withheld (false). */
  message?: { keepsBytes: boolean };
  /** Record-level refusals: the quarantined record's seq and recorded_at (undefined: not checked). */
  bad?: { seq: number | null; recordedAtMs?: number | null; recSeq?: string };
}

const MIN = 60_000;
const DAY = 86_400_000;
const NOW0 = Date.now();

/** A batch [good, bad, good] for a bad record. */
function mixed(bad: ITelemetryRecord): Case['build'] {
  return (vin, now, nextSeq) => {
    const a = nextSeq();
    const b = nextSeq();
    return {
      payload: encodeBatch(vin, [record(a, now - 2000, { technical: { speedKmh: 50 } }), bad, record(b, now - 1000, { technical: FULL_TECHNICAL, location: FULL_LOCATION })]),
      good: [a, b],
    };
  };
}

/** A valid batch of many records, at least 5000 bytes. */
function largeBatch(vin: string, now: number, nextSeq: () => number): Buffer {
  const recs: ITelemetryRecord[] = [];
  let payload = encodeBatch(vin, recs);
  for (let i = 0; payload.length < 5000 && i < 1000; i++) {
    recs.push(record(nextSeq(), now - 10_000 + i, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION }));
    payload = encodeBatch(vin, recs);
  }
  return payload;
}

const cases: Case[] = [
  {
    name: 'undecodable bytes',
    reason: GW_ERR.DECODE,
    build: () => ({ payload: Buffer.from([0x12, 0x05, 0x01, 0x02, 0x03, 0x04]), good: [] }),
    message: { keepsBytes: true },
  },
  {
    name: 'a truncated valid batch',
    reason: GW_ERR.DECODE,
    build: (vin, now, nextSeq) => {
      const full = encodeBatch(vin, [record(nextSeq(), now, { technical: FULL_TECHNICAL })]);
      return { payload: full.subarray(0, full.length - 3), good: [] };
    },
    message: { keepsBytes: true },
  },
  {
    name: "a batch naming another vehicle's VIN",
    reason: GW_ERR.VIN_MISMATCH,
    build: (_vin, now, nextSeq) => ({ payload: encodeBatch(testVin(), [record(nextSeq(), now, { technical: { speedKmh: 1 } })]), good: [] }),
    message: { keepsBytes: true },
  },
  {
    name: 'a batch with an empty VIN',
    reason: GW_ERR.VIN_MISMATCH,
    build: (_vin, now, nextSeq) => ({ payload: encodeBatch('', [record(nextSeq(), now)]), good: [] }),
    message: { keepsBytes: true },
  },
  {
    name: 'a record 10 minutes in the future',
    reason: GW_ERR.RECORDED_IN_FUTURE,
    build: mixed(record(9001, NOW0 + 10 * MIN, { technical: { speedKmh: 10 } })),
    bad: { seq: 9001, recordedAtMs: NOW0 + 10 * MIN },
  },
  {
    name: 'a record 40 days old',
    reason: GW_ERR.RECORDED_TOO_OLD,
    build: mixed(record(9002, NOW0 - 40 * DAY, { technical: { speedKmh: 10 } })),
    bad: { seq: 9002, recordedAtMs: NOW0 - 40 * DAY },
  },
  {
    name: 'a record measured before timestamptz can hold (recorded_at_ms -1e15, 29 700 BC)',
    reason: GW_ERR.RECORDED_TOO_OLD,
    build: mixed(record(9003, -1e15, { technical: { speedKmh: 10 } })),
    bad: { seq: 9003 },
  },
  {
    name: 'a record far in the future (year ~255 000)',
    reason: GW_ERR.RECORDED_IN_FUTURE,
    build: mixed(record(9004, 8e15, { technical: { speedKmh: 10 } })),
    bad: { seq: 9004, recordedAtMs: 8e15 },
  },
  {
    name: 'a record with seq 2^53 (cannot be stored exactly)',
    reason: GW_ERR.BAD_SEQ,
    build: mixed({ seq: Long.fromString('9007199254740992', true), recordedAtMs: Long.fromNumber(NOW0), technical: { speedKmh: 10 } }),
    bad: { seq: null, recordedAtMs: NOW0, recSeq: '9007199254740992' },
  },
  {
    name: 'a NaN value',
    reason: GW_ERR.NOT_FINITE,
    build: mixed(record(9005, NOW0, { technical: { speedKmh: NaN } })),
    bad: { seq: 9005, recordedAtMs: NOW0 },
  },
  {
    name: 'an infinite value',
    reason: GW_ERR.NOT_FINITE,
    build: mixed(record(9006, NOW0, { consumption: { totalDistanceKm: Infinity } })),
    bad: { seq: 9006, recordedAtMs: NOW0 },
  },
  {
    name: 'speed 9999',
    reason: GW_ERR.OUT_OF_RANGE,
    build: mixed(record(9007, NOW0, { technical: { speedKmh: 9999 } })),
    bad: { seq: 9007, recordedAtMs: NOW0 },
  },
  {
    name: 'latitude 91',
    reason: GW_ERR.OUT_OF_RANGE,
    build: mixed(record(9008, NOW0, { location: { ...FULL_LOCATION, latitude: 91 } })),
    bad: { seq: 9008, recordedAtMs: NOW0 },
  },
  {
    name: `a payload over MAX_PAYLOAD_BYTES (${MAX_PAYLOAD})`,
    reason: GW_ERR.PAYLOAD_TOO_LARGE,
    build: (vin, now, nextSeq) => ({ payload: largeBatch(vin, now, nextSeq), good: [] }),
    message: { keepsBytes: false },
  },
  {
    name: `more records than MAX_RECORDS_PER_MESSAGE (${MAX_RECORDS})`,
    reason: GW_ERR.TOO_MANY_RECORDS,
    build: (vin, now) => ({
      payload: encodeBatch(vin, Array.from({ length: MAX_RECORDS + 1 }, (_, i) => record(50_000 + i, now, { technical: { speedKmh: 1 } }))),
      good: [],
    }),
    message: { keepsBytes: false },
  },
];

describe('one vehicle sending bad input', () => {
  let v: { vin: string; client: MqttClient; topic: string };
  let seq = 0;
  const nextSeq = () => ++seq;
  const expectedSeqs: number[] = [];

  beforeAll(async () => {
    v = await vehicle();
  });

  it.each(cases)('$name → $reason, acknowledged; the rest stored; connection still usable', async (c) => {
    const now = Date.now();
    const fromId = await maxQuarantineId();
    const built = c.build(v.vin, now, nextSeq);
    if (c.reason === GW_ERR.PAYLOAD_TOO_LARGE) {
      expect(built.payload.length).toBeGreaterThanOrEqual(5000);
      expect(built.payload.length).toBeLessThan(MAX_PACKET);
    } else {
      expect(built.payload.length).toBeLessThanOrEqual(MAX_PAYLOAD);
    }

    // The PUBACK arrives (publish() rejects if the connection closes first).
    await publish(v.client, v.topic, built.payload);

    // Exactly one quarantine row, with the exact reason, for this VIN and nothing else.
    const q = await quarantineSince(fromId);
    expect(q.map((r) => [r.vin, r.reason])).toEqual([[v.vin, c.reason]]);
    const row = q[0]!;
    expect(row.detail.length).toBeGreaterThan(0);
    if (c.message) {
      expect(row.seq).toBeNull();
      expect(row.recorded_at).toBeNull();
      expect(row.payload_bytes).toBe(built.payload.length);
      if (c.message.keepsBytes) expect(row.payload!.equals(built.payload)).toBe(true);
      else expect(row.payload).toBeNull();
      if (c.reason === GW_ERR.PAYLOAD_TOO_LARGE) expect(row.detail).toContain(`${built.payload.length} bytes > ${MAX_PAYLOAD}`);
    }
    if (c.bad) {
      expect(row.seq).toBe(c.bad.seq);
      if (c.bad.recordedAtMs !== undefined) expect(row.recorded_at === null ? null : row.recorded_at.getTime()).toBe(c.bad.recordedAtMs);
      // The refused record itself is kept, re-encoded.
      expect(row.payload).not.toBeNull();
      expect(row.payload_bytes).toBe(row.payload!.length);
      const rec = TelemetryRecord.decode(row.payload!);
      expect(String(rec.seq)).toBe(c.bad.recSeq ?? String(c.bad.seq));
    }

    // The valid records of the message are stored, the refused ones are not.
    expectedSeqs.push(...built.good);
    expect(await storedSeqs(v.vin)).toEqual([...expectedSeqs].sort((a, b) => a - b));

    // Still connected, and the next valid publish is stored.
    expect(v.client.connected).toBe(true);
    const next = nextSeq();
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(next, Date.now(), { technical: { speedKmh: 42 } })]));
    expectedSeqs.push(next);
    expect(await storedSeqs(v.vin)).toEqual([...expectedSeqs].sort((a, b) => a - b));
    expect(await quarantineSince(fromId)).toHaveLength(1);
  });

  it('after all of it: the connection is the same one, and nothing was stored for any other VIN', async () => {
    expect(v.client.connected).toBe(true);
    const others = await db.query<{ n: number }>(
      'SELECT (SELECT count(*) FROM telemetry WHERE vin <> $1) + (SELECT count(*) FROM quarantine WHERE vin IS DISTINCT FROM $1) AS n',
      [v.vin],
    );
    expect(Number(others[0]!.n)).toBe(0);
  });
});

describe('seq 0 (proto3\'s default, where most counters start)', () => {
  it('is a valid sequence number: stored, not quarantined, and deduplicated like any other', async () => {
    const v = await vehicle();
    const fromId = await maxQuarantineId();
    const t = Date.now() - 5000;
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(0, t, { technical: { speedKmh: 10 } }), record(1, t + 1, { technical: { speedKmh: 11 } })]));
    // Resent: stored once.
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(0, t, { technical: { speedKmh: 10 } })]));
    expect(await storedSeqs(v.vin)).toEqual([0, 1]);
    expect(await quarantineSince(fromId)).toEqual([]);
  });
});

describe('dedupe', () => {
  it('the same bad message sent twice (and again on a new connection) is quarantined once', async () => {
    const v = await vehicle();
    const t = Date.now();
    const badRecordBatch = encodeBatch(v.vin, [record(1, t, { technical: { speedKmh: 1 } }), record(2, t + 1, { technical: { speedKmh: 9999 } })]);
    const undecodable = Buffer.from([0x0a, 0x80]);
    const mismatch = encodeBatch(testVin(), [record(3, t)]);
    for (let i = 0; i < 2; i++) {
      await publish(v.client, v.topic, badRecordBatch);
      await publish(v.client, v.topic, undecodable);
      await publish(v.client, v.topic, mismatch);
    }
    await v.client.endAsync();
    const again = await connectVehicle(gw, v.vin, v.secret);
    clients.push(again);
    await publish(again, v.topic, badRecordBatch);
    await publish(again, v.topic, undecodable);
    await publish(again, v.topic, mismatch);

    const q = await quarantineOf(v.vin);
    expect(q.map((r) => r.reason).sort()).toEqual([GW_ERR.DECODE, GW_ERR.OUT_OF_RANGE, GW_ERR.VIN_MISMATCH]);
    expect(q.find((r) => r.reason === GW_ERR.OUT_OF_RANGE)!.seq).toBe(2);
    expect(await storedSeqs(v.vin)).toEqual([1]);
  });

  it('two different bad messages with the same reason are both kept', async () => {
    const v = await vehicle();
    await publish(v.client, v.topic, Buffer.from([0x0a, 0x80]));
    await publish(v.client, v.topic, Buffer.from([0x0a, 0x81]));
    const q = await quarantineOf(v.vin);
    expect(q.map((r) => r.reason)).toEqual([GW_ERR.DECODE, GW_ERR.DECODE]);
  });

  it('the same bad record from two vehicles is quarantined for each', async () => {
    const a = await vehicle();
    const b = await vehicle();
    const bad = record(5, Date.now(), { technical: { speedKmh: 9999 } });
    await publish(a.client, a.topic, encodeBatch(a.vin, [bad]));
    await publish(b.client, b.topic, encodeBatch(b.vin, [bad]));
    expect((await quarantineOf(a.vin)).map((r) => r.reason)).toEqual([GW_ERR.OUT_OF_RANGE]);
    expect((await quarantineOf(b.vin)).map((r) => r.reason)).toEqual([GW_ERR.OUT_OF_RANGE]);
  });
});

describe(`MAX_PACKET_BYTES (${MAX_PACKET})`, () => {
  it('a packet larger than MAX_PACKET_BYTES closes the connection; nothing is stored or quarantined', async () => {
    const v = await vehicle();
    const recs: ITelemetryRecord[] = [];
    const t = Date.now();
    for (let i = 1; i <= 200; i++) recs.push(record(i, t - 10_000 + i, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION }));
    const payload = Buffer.from(TelemetryBatch.encode({ vin: v.vin, records: recs }).finish());
    expect(payload.length).toBeGreaterThan(MAX_PACKET);
    let acked = false;
    const closed = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 3000);
      v.client.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    v.client.publish(v.topic, payload, { qos: 1 }, (err) => {
      if (!err) acked = true;
    });
    expect(await closed, 'the gateway should close a connection that sends a packet over MAX_PACKET_BYTES').toBe(true);
    await sleep(100);
    expect(acked).toBe(false);
    expect(await storedSeqs(v.vin)).toEqual([]);
    expect(await quarantineOf(v.vin)).toEqual([]);
  });
});
