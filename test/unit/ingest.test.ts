// gateway/ingest.ts (createIngest) against a fake TelemetrySink and a fake ConsentSource,
// both as gateway/ports.ts defines them, through the real consent cache: what reaches
// the sink for each kind of message, and when handle() settles (that is when the
// broker sends the PUBACK).
import { describe, expect, it } from 'vitest';
import Long from 'long';
import { createIngest, type IngestLimits } from '../../gateway/ingest.ts';
import { createConsentCache } from '../../gateway/consent-cache.ts';
import type { ConsentPeriodIn, ConsentSource, GatewayMetrics, QuarantineRowOut, TelemetryRowOut, TelemetrySink } from '../../gateway/ports.ts';
import { TelemetryBatch, TelemetryRecord, type ITelemetryRecord } from '../../proto/index.ts';
import { settle, stateOf, until } from './fakes/wait.ts';
import { STO_ERR, StorageError, isStorageError, type StorageErrorCode } from '../../storage/errors.ts';

const VIN = 'WUNIT000000000001';
const OTHER = 'WUNIT000000000002';
const NOW = 1_700_000_000_000;
const LIMITS: IngestLimits = { maxPayloadBytes: 4096, maxRecordsPerMessage: 5, maxClockSkewMs: 60_000, maxRecordAgeMs: 86_400_000 };
const LOCATION = { latitude: 48.1, longitude: 11.6 };
const ALLOW_ALL: ConsentPeriodIn = { sinceMs: 0, location: true, co2Sharing: true, restricted: false };
const NO_LOCATION: ConsentPeriodIn = { sinceMs: 0, location: false, co2Sharing: true, restricted: false };

type Item = { telemetry: readonly TelemetryRowOut[]; quarantine: readonly QuarantineRowOut[] };

/** A TelemetrySink that keeps what it was given; the test decides when writes are durable and whether there is room. */
function fakeSink() {
  const written: Item[] = [];
  const pending: { item: Item; resolve: () => void; reject: (e: Error) => void }[] = [];
  let auto = true;
  let room = true;
  let roomWaiters: (() => void)[] = [];
  let failWith: Error | null = null;
  const sink: TelemetrySink = {
    // The storage port's contract: the sink says which of its errors are refusals.
    isRejected: (err) => isStorageError(err, STO_ERR.REJECTED),
    write(item) {
      return new Promise<void>((resolve, reject) => {
        const p = {
          item,
          resolve: () => {
            written.push(item);
            resolve();
          },
          reject,
        };
        if (failWith) {
          const e = failWith;
          failWith = null;
          reject(e);
        } else if (auto) queueMicrotask(p.resolve);
        else pending.push(p);
      });
    },
    hasRoom: () => room,
    whenRoom: () => (room ? Promise.resolve() : new Promise((r) => roomWaiters.push(r))),
  };
  return {
    sink,
    written,
    telemetry: () => written.flatMap((i) => i.telemetry),
    quarantine: () => written.flatMap((i) => i.quarantine),
    pending,
    /** Writes wait for commit() from now on. */
    hold: () => (auto = false),
    commit() {
      for (const p of pending.splice(0)) p.resolve();
    },
    /** The next write fails with this error. */
    failNext(code: StorageErrorCode, message = 'refused') {
      failWith = new StorageError(code, message);
    },
    setRoom(r: boolean) {
      room = r;
      if (r) {
        for (const f of roomWaiters.splice(0)) f();
        roomWaiters = [];
      }
    },
  };
}

/** A ConsentSource answering from a map; `down` makes it fail as an unreachable database would. */
function fakeConsents(periods: ConsentPeriodIn[] = [ALLOW_ALL]) {
  const state = { periods, down: false, calls: 0 };
  const source: ConsentSource = {
    async timeline() {
      state.calls++;
      if (state.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      return state.periods;
    },
  };
  return { source, state };
}

function fakeMetrics() {
  const counts = { received: 0, stored: 0, quarantined: {} as Record<string, number> };
  const metrics: GatewayMetrics = {
    messageReceived: () => void counts.received++,
    recordsStored: (n) => void (counts.stored += n),
    quarantined: (reason, n) => void (counts.quarantined[reason] = (counts.quarantined[reason] ?? 0) + n),
    refused: () => {},
    pubackLatency: () => {},
    connected: () => {},
    consentCache: () => {},
  };
  return { metrics, counts };
}

function setup(periods: ConsentPeriodIn[] = [ALLOW_ALL]) {
  const s = fakeSink();
  const c = fakeConsents(periods);
  const m = fakeMetrics();
  const consents = createConsentCache({ source: c.source, horizonMs: LIMITS.maxRecordAgeMs, now: () => NOW });
  const ingest = createIngest({ sink: s.sink, consents, limits: LIMITS, metrics: m.metrics, now: () => NOW });
  return { ...s, consents: c, counts: m.counts, ingest };
}

function rec(seq: number, ageMs = 1000, extra: Partial<ITelemetryRecord> = {}): ITelemetryRecord {
  return { seq: Long.fromNumber(seq, true), recordedAtMs: Long.fromNumber(NOW - ageMs), technical: { speedKmh: 42, odometerKm: 1000 + seq }, ...extra };
}
const encode = (vin: string, records: ITelemetryRecord[]) => Buffer.from(TelemetryBatch.encode({ vin, records }).finish());

describe('ingest: valid messages', () => {
  it('QoS 1: settles only once the sink says the rows are durable', async () => {
    const t = setup();
    t.hold();
    const p = t.ingest.handle(VIN, encode(VIN, [rec(1), rec(2)]), 1);
    await until(() => t.pending.length === 1, 'write handed to the sink');
    expect(await stateOf(p)).toBe('pending');
    t.commit();
    await p;
    expect(t.telemetry().map((r) => [r.vin, r.seq, r.recordedAtMs, r.technical?.speedKmh])).toEqual([
      [VIN, 1, NOW - 1000, 42],
      [VIN, 2, NOW - 1000, 42],
    ]);
    expect(t.quarantine()).toEqual([]);
    expect(t.counts).toMatchObject({ received: 1, stored: 2 });
  });

  it('the position is dropped when the owner has refused location processing', async () => {
    const t = setup([NO_LOCATION]);
    await t.ingest.handle(VIN, encode(VIN, [rec(1, 1000, { location: LOCATION })]), 1);
    expect(t.telemetry()).toHaveLength(1);
    expect(t.telemetry()[0]!.location).toBeNull();
    expect(t.telemetry()[0]!.technical?.speedKmh).toBe(42);
  });

  it('the position is kept when location processing is allowed', async () => {
    const t = setup([ALLOW_ALL]);
    await t.ingest.handle(VIN, encode(VIN, [rec(1, 1000, { location: LOCATION })]), 1);
    expect(t.telemetry()[0]!.location).toMatchObject(LOCATION);
  });

  it('QoS 0: settles without waiting for durability while the sink has room, waits for room when it has none', async () => {
    const t = setup();
    t.hold();
    await t.ingest.handle(VIN, encode(VIN, [rec(1)]), 0);
    expect(t.written).toHaveLength(0);
    t.setRoom(false);
    const p = t.ingest.handle(VIN, encode(VIN, [rec(2)]), 0);
    await settle();
    expect(await stateOf(p)).toBe('pending');
    t.setRoom(true);
    await p;
    t.commit();
    await until(() => t.telemetry().length === 2, 'both stored');
  });
});

describe('ingest: bad input is quarantined and acknowledged, valid data around it kept', () => {
  it('a payload that is not a TelemetryBatch: GW_ERR_DECODE, bytes kept while location is allowed', async () => {
    const t = setup([ALLOW_ALL]);
    const junk = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);
    await t.ingest.handle(VIN, junk, 1);
    expect(t.telemetry()).toEqual([]);
    expect(t.quarantine()).toHaveLength(1);
    expect(t.quarantine()[0]).toMatchObject({ vin: VIN, reason: 'GW_ERR_DECODE', payload: junk, payloadBytes: junk.length, seq: null });
  });

  it('undecodable bytes are not kept when the owner refused location processing (they may hold a position)', async () => {
    const t = setup([NO_LOCATION]);
    await t.ingest.handle(VIN, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), 1);
    expect(t.quarantine()[0]).toMatchObject({ reason: 'GW_ERR_DECODE', payload: null, payloadBytes: 5 });
  });

  it('a payload naming another VIN: GW_ERR_VIN_MISMATCH, nothing stored as telemetry', async () => {
    const t = setup();
    await t.ingest.handle(VIN, encode(OTHER, [rec(1)]), 1);
    expect(t.telemetry()).toEqual([]);
    expect(t.quarantine().map((q) => [q.vin, q.reason])).toEqual([[VIN, 'GW_ERR_VIN_MISMATCH']]);
  });

  it('a payload over maxPayloadBytes: GW_ERR_PAYLOAD_TOO_LARGE, without its bytes and without reading consent', async () => {
    const t = setup();
    const big = Buffer.alloc(LIMITS.maxPayloadBytes + 1, 1);
    await t.ingest.handle(VIN, big, 1);
    expect(t.quarantine()).toHaveLength(1);
    expect(t.quarantine()[0]).toMatchObject({ reason: 'GW_ERR_PAYLOAD_TOO_LARGE', payload: null, payloadBytes: big.length });
    expect(t.consents.state.calls).toBe(0);
  });

  it('more records than maxRecordsPerMessage: one GW_ERR_TOO_MANY_RECORDS row for the message, without its bytes', async () => {
    const t = setup();
    await t.ingest.handle(VIN, encode(VIN, Array.from({ length: 6 }, (_, i) => rec(i + 1))), 1);
    expect(t.telemetry()).toEqual([]);
    expect(t.quarantine().map((q) => [q.reason, q.payload])).toEqual([['GW_ERR_TOO_MANY_RECORDS', null]]);
  });

  it('invalid records are quarantined one by one with their reason; the valid ones of the message are stored', async () => {
    const t = setup();
    const future = rec(2, -LIMITS.maxClockSkewMs - 10_000);
    const old = rec(3, LIMITS.maxRecordAgeMs + 10_000);
    // seq 0 is valid (proto3's default); beyond 2^53 a seq cannot be stored exactly.
    const zeroSeq = { ...rec(4), seq: Long.UZERO };
    const hugeSeq = { ...rec(6), seq: Long.fromNumber(2 ** 53, true) };
    const fast = rec(5, 1000, { technical: { speedKmh: 9999 } });
    await t.ingest.handle(VIN, encode(VIN, [rec(1), future, old, zeroSeq, fast]), 1);
    await t.ingest.handle(VIN, encode(VIN, [hugeSeq]), 1);
    expect(t.telemetry().map((r) => r.seq)).toEqual([1, 0]);
    expect(t.quarantine().map((q) => [q.seq, q.reason])).toEqual([
      [2, 'GW_ERR_RECORDED_IN_FUTURE'],
      [3, 'GW_ERR_RECORDED_TOO_OLD'],
      [5, 'GW_ERR_OUT_OF_RANGE'],
      [null, 'GW_ERR_BAD_SEQ'], // not storable exactly, so not stored as a number
    ]);
    expect(t.counts.quarantined).toEqual({ GW_ERR_RECORDED_IN_FUTURE: 1, GW_ERR_RECORDED_TOO_OLD: 1, GW_ERR_BAD_SEQ: 1, GW_ERR_OUT_OF_RANGE: 1 });
  });

  it('a quarantined record keeps no position when location processing is refused', async () => {
    const t = setup([NO_LOCATION]);
    await t.ingest.handle(VIN, encode(VIN, [rec(1, 1000, { location: LOCATION, technical: { speedKmh: 9999 } })]), 1);
    const q = t.quarantine()[0]!;
    expect(q.reason).toBe('GW_ERR_OUT_OF_RANGE');
    const stored = TelemetryRecord.decode(q.payload!);
    expect(stored.location).toBeFalsy();
    expect(stored.technical?.speedKmh).toBe(9999);
  });

  it('the same bad message twice gives the same dedupe key (quarantined once by the store)', async () => {
    const t = setup();
    const junk = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);
    await t.ingest.handle(VIN, junk, 1);
    await t.ingest.handle(VIN, junk, 1);
    const [a, b] = t.quarantine();
    expect(a!.dedupeKey.equals(b!.dedupeKey)).toBe(true);
    await t.ingest.handle(OTHER, junk, 1);
    expect(t.quarantine()[2]!.dedupeKey.equals(a!.dedupeKey)).toBe(false);
  });
});

describe('ingest: storage failures', () => {
  it('rows the store refuses (STO_ERR_REJECTED): the message goes to quarantine as GW_ERR_STORAGE_REJECTED and is acknowledged', async () => {
    const t = setup();
    t.failNext('STO_ERR_REJECTED', 'value out of range');
    await t.ingest.handle(VIN, encode(VIN, [rec(1)]), 1);
    expect(t.telemetry()).toEqual([]);
    expect(t.quarantine().map((q) => [q.vin, q.reason, q.detail])).toEqual([[VIN, 'GW_ERR_STORAGE_REJECTED', 'value out of range']]);
  });

  it('a closed store (STO_ERR_CLOSED): handle() rejects with GW_ERR_SHUTTING_DOWN, so no PUBACK is sent', async () => {
    const t = setup();
    t.failNext('STO_ERR_CLOSED', 'writer closed');
    await expect(t.ingest.handle(VIN, encode(VIN, [rec(1)]), 1)).rejects.toMatchObject({ code: 'GW_ERR_SHUTTING_DOWN' });
    expect(t.written).toEqual([]);
  });

  it('consent unreadable (database down): the message waits, then is filtered with the consent read once it is back', async () => {
    const t = setup([NO_LOCATION]);
    t.consents.state.down = true;
    const p = t.ingest.handle(VIN, encode(VIN, [rec(1, 1000, { location: LOCATION })]), 1);
    await until(() => t.consents.state.calls >= 2, 'consent read retried');
    expect(await stateOf(p)).toBe('pending');
    expect(t.written).toEqual([]);
    t.consents.state.down = false;
    await p;
    expect(t.telemetry()).toHaveLength(1);
    expect(t.telemetry()[0]!.location).toBeNull();
  });

  it('consent unreadable and the gateway closes: the waiting message is refused with GW_ERR_SHUTTING_DOWN', async () => {
    const t = setup();
    t.consents.state.down = true;
    const p = t.ingest.handle(VIN, encode(VIN, [rec(1)]), 1);
    p.catch(() => {});
    await until(() => t.consents.state.calls >= 1, 'consent read tried');
    t.ingest.close();
    await expect(p).rejects.toMatchObject({ code: 'GW_ERR_SHUTTING_DOWN' });
    expect(t.written).toEqual([]);
  });
});
