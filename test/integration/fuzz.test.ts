// Mutation fuzzing of the telemetry payload through the REAL path (MQTT.js → aedes →
// ingest → writer → TimescaleDB): FUZZ_MESSAGES mutated and random payloads from several
// connected vehicles publishing QoS 1 concurrently with a bounded window, interleaved
// with valid batches. Nothing may crash, every message is acknowledged, every valid
// record is stored exactly, and every quarantine reason is a documented one.
//
// The fuzzer is deterministic: payload i of vehicle v depends only on (FUZZ_SEED, v, i)
// and the start time (templates are recorded within the hour before it). FUZZ_SEED=<n>
// and FUZZ_MESSAGES=<n> in the environment run another sequence or another length.
// Half the fleet has opted out of location and CO2 sharing: under fuzzing, no position
// and no shareable reading of theirs may be stored anywhere.
//
// Measured on 2 cores, this file alone: ~6,700-10,700 messages/s, 100k fuzzed + 5k
// valid in 10-16 s (18 s with another test file running beside it).
import { afterAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import Long from 'long';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { ADMIN_TOKEN, api } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { TelemetryBatch, TelemetryRecord, type ITelemetryRecord } from '../../proto/index.ts';
import { RANGES } from '../../gateway/validate.ts';

/** Mutated and random payloads in total (valid batches come on top). */
const FUZZ_MESSAGES = Number(process.env.FUZZ_MESSAGES ?? 100_000);
/** Every VALID_EVERY-th message of a vehicle is a valid batch. */
const VALID_EVERY = 20;
const VEHICLES = 8;
/** QoS 1 publishes in flight per vehicle. */
const WINDOW = 64;
const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_c0de);
/** A message not acknowledged within this time fails the test (with its bytes printed). */
const ACK_TIMEOUT_MS = 30_000;

/** The quarantine reasons of the README contract table. */
const DOCUMENTED_REASONS = [
  'GW_ERR_DECODE',
  'GW_ERR_PAYLOAD_TOO_LARGE',
  'GW_ERR_VIN_MISMATCH',
  'GW_ERR_RECORDED_IN_FUTURE',
  'GW_ERR_RECORDED_TOO_OLD',
  'GW_ERR_BAD_SEQ',
  'GW_ERR_NOT_FINITE',
  'GW_ERR_OUT_OF_RANGE',
  'GW_ERR_STORAGE_REJECTED',
];

// Valid batches live in a seq range and a recorded-time range no fuzzed template uses:
// seqs from 2^50 (8-byte varints; templates use seqs below 10^6), recorded two days ago
// (templates: within the last hour).
const VALID_SEQ_BASE = 2 ** 50;
const VALID_SEQ_PER_VEHICLE = 1_000_000;
const DAY = 86_400_000;

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

// ---------------------------------------------------------------------------
// Seeded PRNG (mulberry32) and helpers.

type Rng = () => number;
function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** A generator for payload `index` of vehicle `v`: independent of scheduling order. */
function rngFor(v: number, index: number): Rng {
  let h = (FUZZ_SEED ^ Math.imul(v + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return mulberry32(h);
}
const int = (r: Rng, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)]!;
const randomBytes = (r: Rng, n: number) => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
};

// ---------------------------------------------------------------------------
// Valid templates.

function randomGroup(r: Rng, ranges: Readonly<Record<string, readonly [number, number]>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, [lo, hi]] of Object.entries(ranges)) {
    if (r() < 0.5) continue;
    const x = r();
    out[k] = x < 0.1 ? lo : x < 0.2 ? hi : lo + r() * (hi - lo);
  }
  return out;
}

function templateRecord(r: Rng, t0: number): ITelemetryRecord {
  const rec: ITelemetryRecord = {
    seq: Long.fromNumber(1 + int(r, 999_999), true),
    recordedAtMs: Long.fromNumber(t0 - int(r, 3_600_000)),
  };
  if (r() < 0.7) rec.technical = randomGroup(r, RANGES.technical);
  if (r() < 0.5) rec.consumption = randomGroup(r, RANGES.consumption);
  if (r() < 0.5) rec.location = randomGroup(r, RANGES.location);
  return rec;
}

function template(r: Rng, vin: string, t0: number): Buffer {
  const n = 1 + int(r, 4);
  const records = Array.from({ length: n }, () => templateRecord(r, t0));
  return Buffer.from(TelemetryBatch.encode({ vin, records }).finish());
}

// ---------------------------------------------------------------------------
// A protobuf wire-format walker: the spans the structure-aware mutators work on.

interface Span {
  start: number;
  end: number;
}
interface Field {
  /** The whole field: tag through value. */
  all: Span;
  tag: Span;
  wireType: number;
  /** The length prefix of a length-delimited field. */
  len?: Span;
}
interface Walk {
  fields: Field[];
  varints: Span[];
}

function readVarint(b: Buffer, pos: number, end: number): number {
  for (let i = 0; i < 10 && pos + i < end; i++) if ((b[pos + i]! & 0x80) === 0) return pos + i + 1;
  return -1;
}

/** Best effort: walks as far as the bytes parse, descending into length-delimited fields. */
function walk(b: Buffer, start = 0, end = b.length, depth = 0, out: Walk = { fields: [], varints: [] }): Walk {
  let p = start;
  while (p < end) {
    const tagEnd = readVarint(b, p, end);
    if (tagEnd < 0) return out;
    const tag = { start: p, end: tagEnd };
    const wireType = b[p]! & 7;
    out.varints.push(tag);
    let q = tagEnd;
    let len: Span | undefined;
    if (wireType === 0) {
      const e = readVarint(b, q, end);
      if (e < 0) return out;
      out.varints.push({ start: q, end: e });
      q = e;
    } else if (wireType === 1) q += 8;
    else if (wireType === 5) q += 4;
    else if (wireType === 2) {
      const e = readVarint(b, q, end);
      if (e < 0) return out;
      len = { start: q, end: e };
      out.varints.push(len);
      let n = 0;
      for (let i = e - 1; i >= q; i--) n = n * 128 + (b[i]! & 0x7f);
      if (e + n > end) return out;
      if (depth < 4) walk(b, e, e + n, depth + 1, out);
      q = e + n;
    } else return out;
    if (q > end) return out;
    const f: Field = { all: { start: p, end: q }, tag, wireType };
    if (len) f.len = len;
    out.fields.push(f);
    p = q;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Mutators.

const splice = (b: Buffer, s: Span, repl: Buffer) => Buffer.concat([b.subarray(0, s.start), repl, b.subarray(s.end)]);

function encodeVarint(n: bigint): Buffer {
  const out: number[] = [];
  do {
    let byte = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) byte |= 0x80;
    out.push(byte);
  } while (n > 0n);
  return Buffer.from(out);
}

type Mutator = (r: Rng, b: Buffer, other: () => Buffer) => Buffer;

const MUTATORS: Record<string, Mutator> = {
  bitFlip(r, b) {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    for (let k = 1 + int(r, 4); k > 0; k--) c[int(r, c.length)]! ^= 1 << int(r, 8);
    return c;
  },
  byteSet(r, b) {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    for (let k = 1 + int(r, 3); k > 0; k--) c[int(r, c.length)] = pick(r, [0x00, 0xff, 0x7f, 0x80, int(r, 256)]);
    return c;
  },
  truncate(r, b) {
    return b.subarray(0, int(r, b.length + 1));
  },
  insert(r, b) {
    const at = int(r, b.length + 1);
    return Buffer.concat([b.subarray(0, at), randomBytes(r, 1 + int(r, 16)), b.subarray(at)]);
  },
  deleteRange(r, b) {
    const at = int(r, b.length + 1);
    return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(r, 8)))]);
  },
  varintCorrupt(r, b) {
    const { varints } = walk(b);
    if (varints.length === 0) return b;
    const s = pick(r, varints);
    const k = int(r, 6);
    if (k === 0) return splice(b, s, Buffer.alloc(10 + int(r, 3), 0xff)); // overlong
    if (k === 1) return splice(b, s, Buffer.from([...b.subarray(s.start, s.end)].map((x) => x | 0x80))); // unterminated
    if (k === 2) return splice(b, s, encodeVarint((1n << 64n) - 1n)); // 2^64-1
    if (k === 3) return splice(b, s, Buffer.from([0])); // zero
    if (k === 4) return splice(b, s, Buffer.concat([Buffer.from([...b.subarray(s.start, s.end)].map((x) => x | 0x80)), Buffer.from([0x00])])); // non-minimal
    return splice(b, s, encodeVarint(BigInt(Math.floor(r() * 2 ** 53)) << BigInt(int(r, 11)))); // random
  },
  lengthSkew(r, b) {
    const withLen = walk(b).fields.filter((f) => f.len);
    if (withLen.length === 0) return b;
    const f = pick(r, withLen);
    let n = 0;
    for (let i = f.len!.end - 1; i >= f.len!.start; i--) n = n * 128 + (b[i]! & 0x7f);
    const m = Math.max(0, n + pick(r, [-2, -1, 1, 2, 100, 2 ** 31, -n]));
    return splice(b, f.len!, encodeVarint(BigInt(m)));
  },
  fieldDuplicate(r, b) {
    const { fields } = walk(b);
    if (fields.length === 0) return b;
    const f = pick(r, fields);
    const copy = Buffer.from(b.subarray(f.all.start, f.all.end));
    // right after itself (same level), or at a random field boundary
    const at = r() < 0.5 ? f.all.end : pick(r, fields).all.start;
    return Buffer.concat([b.subarray(0, at), copy, b.subarray(at)]);
  },
  fieldDelete(r, b) {
    const { fields } = walk(b);
    if (fields.length === 0) return b;
    return splice(b, pick(r, fields).all, Buffer.alloc(0));
  },
  wireTypeSwap(r, b) {
    const { fields } = walk(b);
    if (fields.length === 0) return b;
    const f = pick(r, fields);
    const c = Buffer.from(b);
    c[f.tag.start] = (c[f.tag.start]! & ~7) | int(r, 8);
    return c;
  },
  fieldNumberSwap(r, b) {
    const { fields } = walk(b);
    if (fields.length === 0) return b;
    const f = pick(r, fields);
    const num = pick(r, [0, 1, 2, 3, 4, 5, 6, 15, 16, 19000, 536870911]);
    return splice(b, f.tag, encodeVarint((BigInt(num) << 3n) | BigInt(f.wireType)));
  },
  doubleSpecial(r, b) {
    // a double field's 8 bytes → NaN, ±Infinity, -0, subnormal, huge
    const doubles = walk(b).fields.filter((f) => f.wireType === 1 && f.all.end - f.tag.end === 8);
    if (doubles.length === 0) return b;
    const f = pick(r, doubles);
    const v = pick(r, [NaN, Infinity, -Infinity, -0, 5e-324, 2.2250738585072014e-308, 1e308, -1e308, -1, 1e-300]);
    const c = Buffer.from(b);
    c.writeDoubleLE(v, f.tag.end);
    return c;
  },
  crossover(r, b, other) {
    const o = other();
    return Buffer.concat([b.subarray(0, int(r, b.length + 1)), o.subarray(int(r, o.length + 1))]);
  },
};
const MUTATOR_NAMES = Object.keys(MUTATORS);

/** Hand-made nasties, besides uniformly random bytes. */
function randomPayload(r: Rng): Buffer {
  const k = int(r, 10);
  if (k === 0) return Buffer.alloc(0);
  if (k === 1) return Buffer.alloc(1 + int(r, 4000), 0x0b); // nested start-group bomb
  if (k === 2) return Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]); // records of length 2^32-1
  if (k === 3) return Buffer.concat(Array.from({ length: 1 + int(r, 500) }, () => Buffer.from([0x12, 0x00]))); // many empty records
  if (k === 4) return Buffer.alloc(1 + int(r, 64), 0xff);
  if (k === 5) return Buffer.from(pick(r, ['{"vin":"x","records":[]}', 'null', '\u0000', 'GET / HTTP/1.1\r\n\r\n', '\ufeff\ud800']), 'utf8');
  const n = pick(r, [1, 2, 3, 8, 16, 64, 256, 1024, 4096]);
  return randomBytes(r, 1 + int(r, n));
}

function fuzzPayload(r: Rng, vin: string, t0: number): Buffer {
  if (r() < 0.1) return randomPayload(r);
  let b = template(r, vin, t0);
  const other = () => template(r, vin, t0);
  for (let k = 1 + int(r, 3); k > 0; k--) b = MUTATORS[pick(r, MUTATOR_NAMES)]!(r, b, other);
  return b;
}

// ---------------------------------------------------------------------------

interface Fleet {
  vin: string;
  client: MqttClient;
  closed: boolean;
}

/** Odd vehicles have opted out of location processing and CO2 sharing. */
const optedOut = (v: number) => v % 2 === 1;

/** Deterministic VINs: the database is this file's own. */
const vinOf = (v: number) => `WFUZZ${String(v).padStart(12, '0')}`;

function pub(c: Fleet, topic: string, payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (c.closed) return reject(new Error(`${c.vin}: connection closed`));
    const timer = setTimeout(() => reject(new Error(`no PUBACK within ${ACK_TIMEOUT_MS} ms for payload ${payload.toString('hex')}`)), ACK_TIMEOUT_MS);
    c.client.publish(topic, payload, { qos: 1 }, (err) => {
      clearTimeout(timer);
      if (err) reject(new Error(`${c.vin}: ${err.message} (payload ${payload.toString('hex')})`));
      else resolve();
    });
  });
}

describe(`fuzz: ${FUZZ_MESSAGES} mutated/random payloads (seed ${FUZZ_SEED}) from ${VEHICLES} vehicles, window ${WINDOW}`, () => {
  it(
    'nothing crashes, every message is acknowledged, valid records stored exactly, quarantine reasons documented',
    async () => {
      const fleet: Fleet[] = [];
      for (let v = 0; v < VEHICLES; v++) {
        const vin = vinOf(v);
        const r = await api(gw, 'POST', '/v1/admin/vehicles', { vin, ownerId: `fuzz-owner-${v}` }, ADMIN_TOKEN);
        expect(r.status).toBe(201);
        if (optedOut(v)) {
          // Half the fleet refuses location processing and CO2 sharing, before connecting.
          const tok = await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: `fuzz-owner-${v}` }, ADMIN_TOKEN);
          expect(tok.status).toBe(201);
          const c = await api(gw, 'PUT', `/v1/vehicles/${vin}/consent`, { location: false, co2Sharing: false }, tok.body.token as string);
          expect(c.status).toBe(200);
        }
        const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, {
          clientId: vin,
          username: vin,
          password: r.body.secret as string,
          protocolVersion: 4,
          reconnectPeriod: 0,
          connectTimeout: 5000,
        });
        clients.push(client);
        const f: Fleet = { vin, client, closed: false };
        client.on('close', () => (f.closed = true));
        fleet.push(f);
      }

      const t0 = Date.now();
      const validT0 = t0 - 2 * DAY;
      // Message indexes per vehicle: fuzzed ones split FUZZ_MESSAGES evenly, a valid one every VALID_EVERY.
      const fuzzPer = (v: number) => Math.floor(FUZZ_MESSAGES / VEHICLES) + (v < FUZZ_MESSAGES % VEHICLES ? 1 : 0);
      const isValid = (i: number) => i % VALID_EVERY === VALID_EVERY - 1;
      const validSeqs = new Map<string, { seq: number; ms: number; speed: number }[]>();
      let fuzzAcked = 0;
      let validAcked = 0;
      let fuzzBytes = 0;

      const started = performance.now();
      await Promise.all(
        fleet.map(async (f, v) => {
          const topic = `v1/vehicles/${f.vin}/telemetry`;
          const expected: { seq: number; ms: number; speed: number }[] = [];
          validSeqs.set(f.vin, expected);
          let fuzzLeft = fuzzPer(v);
          let next = 0;
          let k = 0; // valid batches sent by this vehicle
          const lane = async () => {
            while (fuzzLeft > 0) {
              const i = next++;
              if (isValid(i)) {
                const base = VALID_SEQ_BASE + v * VALID_SEQ_PER_VEHICLE + 2 * k;
                const ms = validT0 + 2 * k;
                k++;
                const recs = [0, 1].map((j) => ({ seq: base + j, ms: ms + j, speed: (base + j) % 500 }));
                const payload = Buffer.from(
                  TelemetryBatch.encode({
                    vin: f.vin,
                    records: recs.map((x) => ({ seq: Long.fromNumber(x.seq, true), recordedAtMs: Long.fromNumber(x.ms), technical: { speedKmh: x.speed } })),
                  }).finish(),
                );
                await pub(f, topic, payload);
                expected.push(...recs);
                validAcked++;
              } else {
                fuzzLeft--;
                const payload = fuzzPayload(rngFor(v, i), f.vin, t0);
                fuzzBytes += payload.length;
                await pub(f, topic, payload);
                fuzzAcked++;
              }
            }
          };
          await Promise.all(Array.from({ length: WINDOW }, lane));
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const total = fuzzAcked + validAcked;
      console.log(
        `fuzz: ${total} messages (${fuzzAcked} fuzzed, ${validAcked} valid, ${(fuzzBytes / 1e6).toFixed(1)} MB fuzzed) in ${seconds.toFixed(1)} s = ${Math.round(total / seconds)} msg/s`,
      );

      // Every message acknowledged.
      expect(fuzzAcked).toBe(FUZZ_MESSAGES);
      expect(validAcked).toBe([...validSeqs.values()].reduce((n, xs) => n + xs.length / 2, 0));

      // No crash: the gateway answers, and every vehicle is still connected on the same connection.
      const ready = await fetch(`http://127.0.0.1:${gw.httpPort}/readyz`);
      expect(ready.status).toBe(200);
      for (const f of fleet) {
        expect(f.closed, f.vin).toBe(false);
        expect(f.client.connected, f.vin).toBe(true);
      }
      // … and still takes valid data on those connections.
      for (const [v, f] of fleet.entries()) {
        const seq = VALID_SEQ_BASE + v * VALID_SEQ_PER_VEHICLE + VALID_SEQ_PER_VEHICLE - 1;
        const ms = validT0 + VALID_SEQ_PER_VEHICLE - 1;
        await pub(f, `v1/vehicles/${f.vin}/telemetry`, Buffer.from(TelemetryBatch.encode({ vin: f.vin, records: [{ seq: Long.fromNumber(seq, true), recordedAtMs: Long.fromNumber(ms), technical: { speedKmh: seq % 500 } }] }).finish()));
        validSeqs.get(f.vin)!.push({ seq, ms, speed: seq % 500 });
      }

      // Every valid record stored exactly once, with its time and value; nothing else in the valid range.
      for (const f of fleet) {
        const rows = await db.query<{ seq: string; ms: string; speed: number }>(
          `SELECT seq::text, (extract(epoch FROM recorded_at) * 1000)::bigint::text AS ms, speed_kmh AS speed
             FROM telemetry WHERE vin = $1 AND seq >= $2 ORDER BY seq, recorded_at`,
          [f.vin, VALID_SEQ_BASE],
        );
        const got = rows.map((x) => ({ seq: Number(x.seq), ms: Number(x.ms), speed: x.speed }));
        const want = [...validSeqs.get(f.vin)!].sort((a, b) => a.seq - b.seq);
        expect(got.length, f.vin).toBe(want.length);
        expect(got, f.vin).toEqual(want);
      }

      // Quarantine reasons: only documented ones. Counts per reason, rows (after dedupe) and events (metrics).
      const vins = fleet.map((f) => f.vin);
      const byReason = await db.query<{ reason: string; n: number }>(
        'SELECT reason, count(*)::int AS n FROM quarantine WHERE vin = ANY($1) GROUP BY reason ORDER BY reason',
        [vins],
      );
      const other = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM quarantine WHERE vin IS NULL OR NOT (vin = ANY($1))', [vins]);
      const metricsText = await (await fetch(`http://127.0.0.1:${gw.httpPort}/metrics`)).text();
      const events: Record<string, number> = {};
      for (const m of metricsText.matchAll(/^cardata_records_quarantined_total\{reason="([^"]+)"\} (\d+)/gm)) events[m[1]!] = Number(m[2]);
      const extra = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry WHERE vin = ANY($1) AND seq < $2', [vins, VALID_SEQ_BASE]);
      console.log(
        'fuzz: quarantine per reason (rows after dedupe / events):\n' +
          byReason.map((x) => `  ${x.reason.padEnd(26)} ${String(x.n).padStart(7)} / ${events[x.reason] ?? 0}`).join('\n') +
          `\nfuzz: fuzzed records that decoded and validated (stored under fuzz seqs): ${extra[0]!.n}`,
      );
      expect(other[0]!.n).toBe(0);
      for (const { reason } of byReason) expect(DOCUMENTED_REASONS, reason).toContain(reason);
      for (const reason of Object.keys(events)) expect(DOCUMENTED_REASONS, reason).toContain(reason);
      expect(byReason.length).toBeGreaterThan(3);

      // Privacy under fuzzing: for the opted-out half, no position anywhere, nothing shareable.
      const out = fleet.filter((_, v) => optedOut(v)).map((f) => f.vin);
      const located = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM telemetry WHERE vin = ANY($1)
           AND (has_location OR latitude IS NOT NULL OR longitude IS NOT NULL OR heading_deg IS NOT NULL OR altitude_m IS NOT NULL OR accuracy_m IS NOT NULL)`,
        [out],
      );
      expect(located[0]!.n).toBe(0);
      expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM obfcm_readings WHERE vin = ANY($1)', [out]))[0]!.n).toBe(0);
      const kept = await db.query<{ reason: string; seq: string | null; payload: Buffer | null }>(
        'SELECT reason, seq::text, payload FROM quarantine WHERE vin = ANY($1) AND payload IS NOT NULL',
        [out],
      );
      let recordLevel = 0;
      for (const q of kept) {
        // Message-level refusals (undecodable, other VIN) keep no bytes for these vehicles …
        expect(['GW_ERR_DECODE', 'GW_ERR_VIN_MISMATCH', 'GW_ERR_STORAGE_REJECTED'], q.reason).not.toContain(q.reason);
        // … and a refused record is kept without its location.
        expect(TelemetryRecord.decode(q.payload!).location ?? null, q.reason).toBeNull();
        recordLevel++;
      }
      expect(recordLevel).toBeGreaterThan(0);
    },
    240_000,
  );
});
