// Record validation: identity, time and physical plausibility. A record that fails is
// quarantined with the first reason found; the rest of its batch goes on.
import type { ITelemetryRecord } from '../proto/index.ts';
import { GW_ERR, type GatewayErrorCode } from './errors.ts';
import { FIELD_COLUMNS } from '../proto/fields.ts';

type Range = readonly [min: number, max: number];

/**
 * Physical ranges, generous on purpose: they catch broken sensors and garbage, not
 * unusual driving. Fields without an entry are only checked for being finite.
 */
export const RANGES: Readonly<Record<'technical' | 'consumption' | 'location', Readonly<Record<string, Range>>>> = {
  technical: {
    odometerKm: [0, 5_000_000],
    speedKmh: [0, 500],
    fuelLevelPct: [0, 100],
    batterySocPct: [0, 100],
    engineRpm: [0, 25_000],
    coolantTempC: [-60, 200],
    outsideTempC: [-80, 70],
    auxBatteryVoltageV: [0, 60],
    remainingRangeKm: [0, 10_000],
    engineOilTempC: [-60, 250],
  },
  consumption: {
    totalFuelConsumedL: [0, 10_000_000],
    totalDistanceKm: [0, 5_000_000],
    totalFuelConsumedChargeDepletingL: [0, 10_000_000],
    totalFuelConsumedChargeIncreasingL: [0, 10_000_000],
    totalDistanceChargeDepletingEngineOffKm: [0, 5_000_000],
    totalDistanceChargeDepletingEngineRunningKm: [0, 5_000_000],
    totalDistanceChargeIncreasingKm: [0, 5_000_000],
    totalGridEnergyIntoBatteryKwh: [0, 100_000_000],
  },
  location: {
    latitude: [-90, 90],
    longitude: [-180, 180],
    headingDeg: [0, 360],
    altitudeM: [-1000, 10_000],
    accuracyM: [0, 1_000_000],
  },
};

/** 2000-01-01: no connected car measured anything before it; catches unset clocks. */
const MIN_RECORDED_MS = 946_684_800_000;

export type Validation = { ok: true; seq: number; recordedAtMs: number } | { ok: false; reason: GatewayErrorCode; detail: string };

export interface TimeLimits {
  maxClockSkewMs: number;
  maxRecordAgeMs: number;
}

type LongLike = number | { low: number; high: number; toNumber(): number } | null | undefined;

/** uint64/int64 → number, or null when beyond 2^53 (no silent rounding). */
export function longToNumber(v: LongLike): number | null {
  if (v == null) return 0;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : null;
  const n = v.toNumber();
  return Number.isSafeInteger(n) ? n : null;
}

type Check = readonly [field: string, min: number, max: number];

/** Per group, every field of the contract with its range (±∞ where none is set), built once. */
const CHECKS: Readonly<Record<keyof typeof RANGES, readonly Check[]>> = (() => {
  const out = { technical: [] as Check[], consumption: [] as Check[], location: [] as Check[] };
  for (const f of FIELD_COLUMNS) {
    const r = RANGES[f.group][f.jsName];
    out[f.group].push([f.jsName, r ? r[0] : -Infinity, r ? r[1] : Infinity]);
  }
  return out;
})();

function checkGroup(group: keyof typeof RANGES, values: object | null | undefined): Validation | null {
  if (values == null) return null;
  const v0 = values as Record<string, unknown>;
  const checks = CHECKS[group];
  // An index loop: destructuring each tuple in a for-of showed up as allocation per record.
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]!;
    const key = c[0];
    const min = c[1];
    const max = c[2];
    const v = v0[key];
    if (typeof v !== 'number') continue; // absent (null on the prototype) or not set
    if (v >= min && v <= max) continue; // also false for NaN
    if (!Number.isFinite(v)) return { ok: false, reason: GW_ERR.NOT_FINITE, detail: `${group}.${key} is ${v}` };
    return { ok: false, reason: GW_ERR.OUT_OF_RANGE, detail: `${group}.${key}=${v} outside [${min}, ${max}]` };
  }
  return null;
}

export function validateRecord(r: ITelemetryRecord, nowMs: number, limits: TimeLimits): Validation {
  const seq = longToNumber(r.seq);
  // 0 is a sequence number like any other (proto3's default, where most counters start):
  // the key (vin, recorded_at_ms, seq) stays exact. Beyond 2^53 it could not be stored exactly.
  if (seq === null || seq < 0) return { ok: false, reason: GW_ERR.BAD_SEQ, detail: `seq must be in [0, 2^53), got ${String(r.seq)}` };
  const t = longToNumber(r.recordedAtMs);
  if (t === null) {
    const negative = typeof r.recordedAtMs === 'object' && r.recordedAtMs !== null && (r.recordedAtMs as { high: number }).high < 0;
    return negative
      ? { ok: false, reason: GW_ERR.RECORDED_TOO_OLD, detail: 'recorded_at_ms below -(2^53)' }
      : { ok: false, reason: GW_ERR.RECORDED_IN_FUTURE, detail: 'recorded_at_ms beyond 2^53' };
  }
  if (t > nowMs + limits.maxClockSkewMs) {
    return { ok: false, reason: GW_ERR.RECORDED_IN_FUTURE, detail: `recorded_at_ms ${t} is ${t - nowMs} ms ahead of the gateway clock` };
  }
  if (t < nowMs - limits.maxRecordAgeMs || t < MIN_RECORDED_MS) {
    return { ok: false, reason: GW_ERR.RECORDED_TOO_OLD, detail: `recorded_at_ms ${t} is older than the accepted horizon` };
  }
  return (
    checkGroup('technical', r.technical) ??
    checkGroup('consumption', r.consumption) ??
    checkGroup('location', r.location) ?? { ok: true, seq, recordedAtMs: t }
  );
}
