// stream/cursor.ts: the cursor as text (encodeCursor) and as bytes (cursorWriter, what
// the streams write) are the same, and decode back to the position.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cursorWriter, decodeCursor, encodeCursor } from '../../stream/cursor.ts';

const VIN = 'WCURSOR0000000001';

describe('stream cursors', () => {
  it('cursorWriter writes exactly encodeCursor, which decodes back (with and without a shard)', () => {
    const out = Buffer.alloc(128, 0x23);
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.nat({ max: 2 ** 31 }), fc.option(fc.nat({ max: 1295 }), { nil: undefined }), fc.nat({ max: 40 }), (tx, ord, shard, at) => {
        const end = cursorWriter(VIN, shard)(out, at, { tx, ord });
        const text = encodeCursor(VIN, { tx, ord }, undefined, shard);
        expect(out.toString('latin1', at, end)).toBe(text);
        expect(decodeCursor(VIN, text)).toEqual(shard === undefined ? { tx, ord } : { tx, ord, shard });
      }),
      { numRuns: 500 },
    );
  });

  it('refuses another vehicle\'s cursor and malformed text', () => {
    const c = encodeCursor(VIN, { tx: 123_456, ord: 7 });
    expect(decodeCursor('WCURSOR0000000002', c)).toBeNull();
    for (const bad of ['', '1', '2.1.1.abcdef', `${c}x`, '1.-1.1.abcdef']) expect(decodeCursor(VIN, bad)).toBeNull();
  });
});
