// gateway/validate.ts: record validation with exact reason codes, and Long conversion.
import { describe, expect, it } from 'vitest';
import Long from 'long';
import { RANGES, longToNumber, validateRecord } from '../../gateway/validate.ts';
import { GW_ERR } from '../../gateway/errors.ts';
import type { ITelemetryRecord } from '../../proto/index.ts';
import { GROUPS } from '../../proto/fields.ts';

const NOW = 1_750_000_000_000; // 2025-06-15
const SKEW = 5 * 60_000;
const AGE = 30 * 24 * 3_600_000;
const limits = { maxClockSkewMs: SKEW, maxRecordAgeMs: AGE };

function rec(seq: number | Long | null, t: number | Long | null, groups: Partial<Pick<ITelemetryRecord, 'technical' | 'consumption' | 'location'>> = {}): ITelemetryRecord {
  // Plain numbers are not what the generated types say (Long), but validateRecord takes
  // them too (LongLike), so they are tested as well.
  return { seq: seq as Long | null, recordedAtMs: t as Long | null, ...groups };
}

describe('validateRecord', () => {
  const ok: [string, ITelemetryRecord, number, number][] = [
    ['plain numbers', rec(1, NOW), 1, NOW],
    ['Long values', rec(Long.fromNumber(42, true), Long.fromNumber(NOW - 1000)), 42, NOW - 1000],
    ['exactly the max clock skew ahead', rec(1, NOW + SKEW), 1, NOW + SKEW],
    ['exactly the max record age old', rec(1, NOW - AGE), 1, NOW - AGE],
    ['largest safe seq', rec(Long.fromNumber(Number.MAX_SAFE_INTEGER, true), NOW), Number.MAX_SAFE_INTEGER, NOW],
    ['every group at its bounds', rec(3, NOW, {
      technical: { speedKmh: 500, fuelLevelPct: 0, outsideTempC: -80, coolantTempC: 200 },
      consumption: { totalFuelConsumedL: 0, totalGridEnergyIntoBatteryKwh: 100_000_000 },
      location: { latitude: -90, longitude: 180, headingDeg: 360, altitudeM: -1000 },
    }), 3, NOW],
    ['seq 0 (proto3 default, the first of most counters)', rec(0, NOW), 0, NOW],
    ['seq missing (null): 0 on the wire', rec(null, NOW), 0, NOW],
    ['seq 2^53 - 1', rec(Long.fromString('9007199254740991', true), NOW), 9007199254740991, NOW],
    ['empty groups', rec(4, NOW, { technical: {}, consumption: {}, location: {} }), 4, NOW],
    ['null fields are absent, not zero', rec(5, NOW, { technical: { speedKmh: null }, location: { latitude: null } }), 5, NOW],
  ];
  it.each(ok)('accepts %s', (_name, r, seq, t) => {
    expect(validateRecord(r, NOW, limits)).toEqual({ ok: true, seq, recordedAtMs: t });
  });

  const bad: [string, ITelemetryRecord, string][] = [
    ['seq negative', rec(-3, NOW), GW_ERR.BAD_SEQ],
    ['seq 2^53', rec(Long.fromString('9007199254740992', true), NOW), GW_ERR.BAD_SEQ],
    ['seq 2^64-1', rec(Long.MAX_UNSIGNED_VALUE, NOW), GW_ERR.BAD_SEQ],
    ['1 ms beyond the clock skew', rec(1, NOW + SKEW + 1), GW_ERR.RECORDED_IN_FUTURE],
    ['10 minutes in the future', rec(1, NOW + 10 * 60_000), GW_ERR.RECORDED_IN_FUTURE],
    ['recorded_at beyond 2^53', rec(1, Long.fromString('9007199254740993')), GW_ERR.RECORDED_IN_FUTURE],
    // GW_ERR documents TOO_OLD as "older than MAX_RECORD_AGE_MS (or before 2000)": an
    // int64 far before 2000 is old, not in the future.
    ['recorded_at below -(2^53) (int64 min)', rec(1, Long.MIN_VALUE), GW_ERR.RECORDED_TOO_OLD],
    ['recorded_at -(2^53) - 1', rec(1, Long.fromString('-9007199254740993')), GW_ERR.RECORDED_TOO_OLD],
    ['1 ms older than the max age', rec(1, NOW - AGE - 1), GW_ERR.RECORDED_TOO_OLD],
    ['40 days old', rec(1, NOW - 40 * 86_400_000), GW_ERR.RECORDED_TOO_OLD],
    ['recorded_at missing (0, 1970)', rec(1, null), GW_ERR.RECORDED_TOO_OLD],
    ['before 2000 even within the age limit', rec(1, 946_684_799_999), GW_ERR.RECORDED_TOO_OLD],
    ['NaN speed', rec(1, NOW, { technical: { speedKmh: NaN } }), GW_ERR.NOT_FINITE],
    ['Infinity counter', rec(1, NOW, { consumption: { totalDistanceKm: Infinity } }), GW_ERR.NOT_FINITE],
    ['-Infinity altitude', rec(1, NOW, { location: { altitudeM: -Infinity } }), GW_ERR.NOT_FINITE],
    ['speed 9999', rec(1, NOW, { technical: { speedKmh: 9999 } }), GW_ERR.OUT_OF_RANGE],
    ['speed just above 500', rec(1, NOW, { technical: { speedKmh: 500.000001 } }), GW_ERR.OUT_OF_RANGE],
    ['negative speed', rec(1, NOW, { technical: { speedKmh: -0.1 } }), GW_ERR.OUT_OF_RANGE],
    ['latitude 91', rec(1, NOW, { location: { latitude: 91 } }), GW_ERR.OUT_OF_RANGE],
    ['longitude -180.5', rec(1, NOW, { location: { longitude: -180.5 } }), GW_ERR.OUT_OF_RANGE],
    ['fuel level 101 %', rec(1, NOW, { technical: { fuelLevelPct: 101 } }), GW_ERR.OUT_OF_RANGE],
    ['negative OBFCM counter', rec(1, NOW, { consumption: { totalFuelConsumedL: -1 } }), GW_ERR.OUT_OF_RANGE],
    // first reason found wins: seq before time before values
    ['seq 2^53 and in the future and NaN', rec(Long.fromString('9007199254740992', true), NOW + 3_600_000, { technical: { speedKmh: NaN } }), GW_ERR.BAD_SEQ],
    ['too old and out of range', rec(1, NOW - 40 * 86_400_000, { technical: { speedKmh: 9999 } }), GW_ERR.RECORDED_TOO_OLD],
  ];
  it.each(bad)('refuses %s', (_name, r, reason) => {
    const v = validateRecord(r, NOW, limits);
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.reason).toBe(reason);
    expect(v.detail.length).toBeGreaterThan(0);
  });

  it('names the offending field in the detail', () => {
    const v = validateRecord(rec(1, NOW, { location: { latitude: 91 } }), NOW, limits);
    expect(v).toEqual({ ok: false, reason: GW_ERR.OUT_OF_RANGE, detail: expect.stringContaining('location.latitude=91') });
  });

  it('a clock skew of 0 accepts now and refuses now + 1 ms', () => {
    const l0 = { maxClockSkewMs: 0, maxRecordAgeMs: AGE };
    expect(validateRecord(rec(1, NOW), NOW, l0).ok).toBe(true);
    expect(validateRecord(rec(1, NOW + 1), NOW, l0)).toMatchObject({ ok: false, reason: GW_ERR.RECORDED_IN_FUTURE });
  });

  it('every range bound is inclusive, one step outside is refused', () => {
    for (const group of GROUPS) {
      for (const [field, [min, max]] of Object.entries(RANGES[group])) {
        for (const v of [min, max]) expect(validateRecord(rec(1, NOW, { [group]: { [field]: v } }), NOW, limits).ok, `${group}.${field}=${v}`).toBe(true);
        for (const v of [min - 0.5, max + 0.5]) {
          expect(validateRecord(rec(1, NOW, { [group]: { [field]: v } }), NOW, limits), `${group}.${field}=${v}`).toMatchObject({ ok: false, reason: GW_ERR.OUT_OF_RANGE });
        }
      }
    }
  });
});

describe('longToNumber', () => {
  const table: [string, Parameters<typeof longToNumber>[0], number | null][] = [
    ['null → 0', null, 0],
    ['undefined → 0', undefined, 0],
    ['small number', 42, 42],
    ['negative number', -7, -7],
    ['MAX_SAFE_INTEGER number', Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    ['2^53 number → null', 2 ** 53, null],
    ['fraction → null', 1.5, null],
    ['NaN → null', NaN, null],
    ['unsigned Long 2^53-1', Long.fromString('9007199254740991', true), Number.MAX_SAFE_INTEGER],
    ['unsigned Long 2^53 → null', Long.fromString('9007199254740992', true), null],
    ['unsigned Long 2^53+1 → null', Long.fromString('9007199254740993', true), null],
    ['unsigned Long 2^64-1 → null', Long.MAX_UNSIGNED_VALUE, null],
    ['signed Long -(2^53) → null', Long.fromString('-9007199254740992'), null],
    ['signed Long min → null', Long.MIN_VALUE, null],
    ['signed Long 1.7e12', Long.fromNumber(1_700_000_000_000), 1_700_000_000_000],
  ];
  it.each(table)('%s', (_n, input, expected) => {
    expect(longToNumber(input)).toBe(expected);
  });
});
