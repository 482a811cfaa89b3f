// filters/privacy.ts: which parts of a record each consent state lets through.
import { describe, expect, it } from 'vitest';
import { filterFor, strictest, type ConsentState, type RecordIn } from '../../filters/privacy.ts';

const TECH = { speedKmh: 88.5, odometerKm: 1234 };
const CONS = { totalFuelConsumedL: 812.5, totalDistanceKm: 12345.6 };
const LOC = { latitude: 48.137154, longitude: 11.576124, headingDeg: 271.5 };

const full: RecordIn = { vin: 'WTEST000000000001', seq: 7, recordedAtMs: 1_700_000_000_000, technical: TECH, consumption: CONS, location: LOC };

const st = (location: boolean, co2Sharing: boolean): ConsentState => ({ location, co2Sharing });

describe('filterFor', () => {
  const cases: { state: ConsentState; location: boolean; share: boolean }[] = [
    { state: st(true, true), location: true, share: true },
    { state: st(true, false), location: true, share: false },
    { state: st(false, true), location: false, share: true },
    { state: st(false, false), location: false, share: false },
  ];

  it.each(cases)('state %j on a full record', ({ state, location, share }) => {
    const out = filterFor(state)(full);
    expect(out).toEqual({
      vin: full.vin,
      seq: 7,
      recordedAtMs: full.recordedAtMs,
      technical: TECH,
      consumption: CONS, // the owner's own record keeps the counters under every state
      location: location ? LOC : null,
      shareObfcm: share,
    });
  });

  it.each(cases)('state %j on a record without consumption: never shared', ({ state, location }) => {
    const out = filterFor(state)({ vin: full.vin, seq: 1, recordedAtMs: 1, technical: TECH, location: LOC });
    expect(out.shareObfcm).toBe(false);
    expect(out.consumption).toBeNull();
    expect(out.location).toEqual(location ? LOC : null);
  });

  it('consumption null (not just absent) is not shared either', () => {
    expect(filterFor(st(true, true))({ vin: full.vin, seq: 1, recordedAtMs: 1, consumption: null }).shareObfcm).toBe(false);
  });

  it('absent groups come out as null, not undefined', () => {
    const out = filterFor(st(true, true))({ vin: full.vin, seq: 1, recordedAtMs: 1 });
    expect(out.technical).toBeNull();
    expect(out.consumption).toBeNull();
    expect(out.location).toBeNull();
  });

  it('under a location refusal the position is gone from the output object entirely', () => {
    const out = filterFor(st(false, true))(full);
    expect(JSON.stringify(out)).not.toContain(String(LOC.latitude));
    expect(JSON.stringify(out)).not.toContain(String(LOC.longitude));
  });

  it('returns the same function object for equal states (compiled once)', () => {
    for (const [l, c] of [[true, true], [true, false], [false, true], [false, false]] as const) {
      const a = filterFor({ location: l, co2Sharing: c });
      const b = filterFor({ location: l, co2Sharing: c });
      expect(a).toBe(b);
    }
    // and four different ones for the four states
    const all = new Set([filterFor(st(true, true)), filterFor(st(true, false)), filterFor(st(false, true)), filterFor(st(false, false))]);
    expect(all.size).toBe(4);
  });
});

describe('strictest', () => {
  const T = true;
  const F = false;
  // a.location, a.co2, b.location, b.co2 → location, co2
  const table: [boolean, boolean, boolean, boolean, boolean, boolean][] = [];
  for (const al of [T, F]) for (const ac of [T, F]) for (const bl of [T, F]) for (const bc of [T, F]) table.push([al, ac, bl, bc, al && bl, ac && bc]);

  it.each(table)('a={location:%s, co2:%s} b={location:%s, co2:%s} → location %s co2 %s', (al, ac, bl, bc, l, c) => {
    const r = strictest(st(al, ac), st(bl, bc));
    expect({ location: r.location, co2Sharing: r.co2Sharing }).toEqual({ location: l, co2Sharing: c });
    // combining two unrestricted states never restricts
    expect(r.restricted ?? false).toBe(false);
    // symmetric
    const r2 = strictest(st(bl, bc), st(al, ac));
    expect({ location: r2.location, co2Sharing: r2.co2Sharing }).toEqual({ location: l, co2Sharing: c });
  });

  it('a refusal in either wins, e.g. a location refusal then a CO2 refusal refuses both', () => {
    const r = strictest(st(false, true), st(true, false));
    expect([r.location, r.co2Sharing]).toEqual([false, false]);
    // and the result selects the same filter as the equivalent plain state
    expect(filterFor(r)).toBe(filterFor(st(false, false)));
  });
});
