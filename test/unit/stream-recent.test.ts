// stream/held-rows.ts: the rows a writer just committed, held for the live tail.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FIELD_COLUMNS, type Group } from '../../proto/fields.ts';
import { createRecentRows, lineOf } from '../../stream/held-rows.ts';
import type { CopyRow } from '../../storage/driver/copy-binary.ts';

const row = (vin: string, seq: number, speedKmh = seq): CopyRow => ({ vin, seq, recordedAtMs: 1_700_000_000_000 + seq, technical: { speedKmh } });
const all = () => true;

describe('createRecentRows', () => {
  it('holds rows by (transaction, vehicle, time, seq), only of the vehicles kept', () => {
    const r = createRecentRows();
    r.put(10, [row('A', 1), row('B', 1)], (v) => v === 'A');
    expect(r.get(10, 'A', 1_700_000_000_001, 1)?.technical).toEqual({ speedKmh: 1 });
    expect(r.get(10, 'B', 1_700_000_000_001, 1)).toBeUndefined();
    // Another transaction's row under the same key is not this one's.
    expect(r.get(11, 'A', 1_700_000_000_001, 1)).toBeUndefined();
    expect(r.rows).toBe(1);
  });

  it('a key sent twice in one batch is not held (which one was stored is the database\'s to say)', () => {
    const r = createRecentRows();
    r.put(10, [row('A', 1, 5), row('A', 1, 6), row('A', 2)], all);
    expect(r.get(10, 'A', 1_700_000_000_001, 1)).toBeUndefined();
    expect(r.get(10, 'A', 1_700_000_000_002, 2)).toBeDefined();
  });

  it('lets go of a vehicle, of transactions below a bound, of the oldest past its size, of everything', () => {
    const r = createRecentRows(4);
    r.put(10, [row('A', 1), row('B', 1)], all);
    r.put(11, [row('A', 2), row('B', 2)], all);
    r.dropVin('A');
    expect(r.rows).toBe(2);
    expect(r.get(11, 'A', 1_700_000_000_002, 2)).toBeUndefined();
    expect(r.get(11, 'B', 1_700_000_000_002, 2)).toBeDefined();
    r.trimBelow(11);
    expect(r.get(10, 'B', 1_700_000_000_001, 1)).toBeUndefined();
    expect(r.rows).toBe(1);
    r.put(12, [row('C', 1), row('C', 2), row('C', 3), row('C', 4)], all);
    // Five held, four allowed: the oldest transaction goes.
    expect(r.rows).toBe(4);
    expect(r.get(11, 'B', 1_700_000_000_002, 2)).toBeUndefined();
    r.clear();
    expect(r.rows).toBe(0);
  });
});

describe('lineOf', () => {
  it('writes the export line: contract order, absent fields left out, categories projected or withheld as null', () => {
    const r: CopyRow = {
      vin: 'WBA00000000000001',
      seq: 7,
      recordedAtMs: Date.UTC(2026, 10, 29, 12, 0, 0, 5),
      // Given out of the contract's order, with one field unset.
      technical: { fuelLevelPct: 0.1 + 0.2, speedKmh: 0, odometerKm: null },
      consumption: null,
      location: { longitude: 11.5, latitude: -33.86882000000001 },
    };
    const stored = Date.UTC(2026, 10, 29, 12, 0, 1, 250);
    expect(lineOf(r, { categories: ['technical', 'consumption', 'location'], nulled: [] }, stored)).toBe(
      '{"vin":"WBA00000000000001","seq":7,"recordedAt":"2026-11-29T12:00:00.005Z","receivedAt":"2026-11-29T12:00:01.250Z","technical":{"speedKmh":0,"fuelLevelPct":0.30000000000000004},"consumption":null,"location":{"latitude":-33.86882000000001,"longitude":11.5}}',
    );
    expect(lineOf(r, { categories: ['technical', 'location'], nulled: ['location'] })).toBe(
      '{"vin":"WBA00000000000001","seq":7,"recordedAt":"2026-11-29T12:00:00.005Z","receivedAt":null,"technical":{"speedKmh":0,"fuelLevelPct":0.30000000000000004},"location":null}',
    );
  });
});

describe('lineOf against JSON.stringify', () => {
  it('gives the text JSON.stringify gives for the same line, for arbitrary rows and projections', () => {
    const GROUPS: Group[] = ['technical', 'consumption', 'location'];
    const groupArb = (g: Group) =>
      fc.option(
        fc.record(Object.fromEntries(FIELD_COLUMNS.filter((c) => c.group === g).map((c) => [c.jsName, fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined })])), { requiredKeys: [] }),
        { nil: null },
      );
    fc.assert(
      fc.property(
        fc.record({ seq: fc.nat(), ms: fc.integer({ min: 0, max: 4_102_444_800_000 }), rx: fc.option(fc.integer({ min: 946_684_800_000, max: 4_102_444_800_000 }), { nil: null }), technical: groupArb('technical'), consumption: groupArb('consumption'), location: groupArb('location') }),
        fc.subarray(GROUPS),
        fc.subarray(GROUPS),
        (x, categories, nulled) => {
          const r: CopyRow = { vin: 'WBA00000000000001', seq: x.seq, recordedAtMs: x.ms, technical: x.technical, consumption: x.consumption, location: x.location };
          const o: Record<string, unknown> = { vin: r.vin, seq: r.seq, recordedAt: new Date(r.recordedAtMs).toISOString(), receivedAt: x.rx === null ? null : new Date(x.rx).toISOString() };
          for (const g of GROUPS) {
            if (!categories.includes(g)) continue;
            const v = r[g];
            if (v == null || nulled.includes(g)) o[g] = null;
            else o[g] = Object.fromEntries(FIELD_COLUMNS.filter((c) => c.group === g && v[c.jsName] != null).map((c) => [c.jsName, v[c.jsName]]));
          }
          expect(lineOf(r, { categories, nulled }, x.rx)).toBe(JSON.stringify(o));
        },
      ),
      { numRuns: 300 },
    );
  });
});
