// The benchmark's own measuring tools (bench/lib.ts): the rate estimator, on the shape a
// closed loop's acknowledgements take (bursts, one per writer transaction), and the SSE
// reader of the stream consumers.
import { describe, expect, it } from 'vitest';
import { seqScanner, slopeRate } from '../../bench/lib.ts';

/** 10 ms buckets over `ms`: `burst` events every `periodMs`, spread over 20 ms, the first at `phaseMs`. */
function bursts(ms: number, periodMs: number, burst: number, phaseMs: number): number[] {
  const b = new Array<number>(ms / 10).fill(0);
  for (let t = phaseMs; t < ms; t += periodMs) {
    const i = Math.floor(t / 10);
    if (i < b.length) b[i]! += burst / 2;
    if (i + 1 < b.length) b[i + 1]! += burst / 2;
  }
  return b;
}

describe('slopeRate', () => {
  it('is exact for a steady rate', () => {
    expect(slopeRate(new Array(1000).fill(25), 10)).toBeCloseTo(2500, 6);
  });

  it('gives the rate of bursts within 2 % whatever the phase, where a count over the window is off by a burst', () => {
    // 2,000 events every 0.95 s = 2,105/s, measured over 10 s.
    const truth = 2000 / 0.95;
    let worstCount = 0;
    let worstSlope = 0;
    for (let phase = 0; phase < 950; phase += 10) {
      const b = bursts(10_000, 950, 2000, phase);
      const count = b.reduce((x, y) => x + y, 0) / 10;
      worstCount = Math.max(worstCount, Math.abs(count / truth - 1));
      worstSlope = Math.max(worstSlope, Math.abs(slopeRate(b, 10) / truth - 1));
    }
    expect(worstCount).toBeGreaterThan(0.04);
    expect(worstSlope).toBeLessThan(0.02);
  });

  it('follows a change of rate within the window (the mean slope, not the last burst)', () => {
    const b = [...new Array(500).fill(10), ...new Array(500).fill(30)];
    expect(slopeRate(b, 10)).toBeGreaterThan(1000);
    expect(slopeRate(b, 10)).toBeLessThan(3000);
    expect(slopeRate([], 10)).toBeNaN();
  });
});

describe('seqScanner', () => {
  it('finds every record event\'s seq once, wherever the body is cut into chunks', () => {
    const seqs = [1, 22, 333, 4_000_000_123, 9_007_199_254_740_991];
    const body = Buffer.from(
      ': keep-alive\n\n' + seqs.map((q, i) => `id: 1.a${i}.1.abcdef\nevent: record\ndata: {"vin":"WSCAN000000000001","seq":${q},"recordedAt":"2026-11-29T00:00:00.000Z"}\n\n`).join(''),
      'latin1',
    );
    for (let cut1 = 1; cut1 < body.length; cut1 += 7) {
      for (const cut2 of [cut1 + 1, cut1 + 13, cut1 + 150]) {
        const got: number[] = [];
        const scan = seqScanner((q) => got.push(q));
        for (const [a, b] of [[0, cut1], [cut1, cut2], [cut2, body.length]] as const) if (a < b && a < body.length) scan(body.subarray(a, Math.min(b, body.length)));
        expect(got, `cut at ${cut1}, ${cut2}`).toEqual(seqs);
      }
    }
  });
});
