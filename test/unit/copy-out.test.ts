// The number and integer writers of the binary-COPY export must print exactly what
// Number#toString prints (the shortest round-trip form), for every finite double.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { putInt, putNumber } from '../../storage/driver/copy-out.ts';

const out = Buffer.alloc(64);
const viaPut = (v: number): string => out.toString('latin1', 0, putNumber(out, 0, v));

describe('putNumber', () => {
  it('prints what String(v) prints, for arbitrary finite doubles', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (v) => viaPut(v) === String(v)),
      { numRuns: 200_000 },
    );
  });

  it('prints what String(v) prints, for decimals of 0 to 9 places (the fast path and its edges)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.integer({ min: 0, max: 9 }), (n, k) => {
        const v = n / 10 ** k;
        return viaPut(v) === String(v);
      }),
      { numRuns: 200_000 },
    );
  });

  it('handles the edges by value', () => {
    const edges = [0, -0, 1, -1, 0.1, 0.5, -0.5, 1e-6, 1e-7, 5e-7, 0.000001, 0.0000015, 123456.654321, 999999999.999999, 1e9, 1e15, 1e21, 5e-324, 1.7976931348623157e308, 2 ** 53, 48.137154, 11.576124, 12.345, 1 / 3, 2 / 3, 0.30000000000000004];
    for (const v of edges) for (const x of [v, -v]) expect(viaPut(x), String(x)).toBe(String(x));
  });
});

describe('putInt', () => {
  it('prints integers of magnitude below 2^53 as String(n) does', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), (n) => out.toString('latin1', 0, putInt(out, 0, n)) === String(n)),
      { numRuns: 100_000 },
    );
    for (const n of [0, 9, 10, 99, 100, 2 ** 31, 2 ** 40, 2 ** 53 - 1]) expect(out.toString('latin1', 0, putInt(out, 0, n))).toBe(String(n));
  });
});
