// putIsoMs (storage/driver/copy-out.ts) writes two times a line (recordedAt, receivedAt) with
// a cache of two days: the text must equal Date#toISOString whatever the order of days.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { putIsoMs } from '../../storage/driver/copy-out.ts';

const write = (ms: number): string => {
  const b = Buffer.alloc(32);
  return b.toString('latin1', 0, putIsoMs(b, 0, ms));
};

describe('putIsoMs', () => {
  it('equals Date#toISOString for any sequence of times (years 0-9999), days repeating or alternating', () => {
    const time = fc.integer({ min: -62_167_219_200_000, max: 253_402_300_799_999 });
    const near = (base: number) => fc.integer({ min: -3 * 86_400_000, max: 3 * 86_400_000 }).map((d) => Math.min(253_402_300_799_999, Math.max(-62_167_219_200_000, base + d)));
    fc.assert(
      fc.property(
        time.chain((base) => fc.array(fc.oneof(time, near(base)), { minLength: 1, maxLength: 40 })),
        (times) => {
          for (const ms of times) expect(write(ms)).toBe(new Date(ms).toISOString());
        },
      ),
      { numRuns: 300 },
    );
  });
});
