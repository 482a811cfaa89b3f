// The benchmark's own measuring tools (bench/lib.ts): the rate estimator, on the shape a
// closed loop's acknowledgements take (bursts, one per writer transaction), and the SSE
// reader of the stream consumers.
import { describe, expect, it } from 'vitest';
import { OpenLoopSchedule, latencySummary, seqScanner, slopeRate } from '../../bench/lib.ts';

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

/**
 * A simulated open-loop run on a 1 ms clock: `msgsPerSec`, at most `window` messages in flight,
 * each acknowledged `serviceMs` after it is sent, except that nothing is acknowledged during
 * [stallFrom, stallTo) (those acks all come at stallTo); the load generator itself does not
 * run during [lgStallFrom, lgStallTo). `corrected`: OpenLoopSchedule (latency from the
 * scheduled time, waiting messages queued); otherwise the old way (a due message finding the
 * window full is skipped, latency from the actual send).
 */
function simulate(o: { corrected: boolean; msgsPerSec?: number; window: number; serviceMs?: number; endMs?: number; stallFrom?: number; stallTo?: number; lgStallFrom?: number; lgStallTo?: number; maxQueued?: number }) {
  const rate = o.msgsPerSec ?? 1000;
  const end = o.endMs ?? 1000;
  const service = o.serviceMs ?? 2;
  const ackTime = (sent: number) => {
    const t = sent + service;
    return o.stallFrom !== undefined && t >= o.stallFrom && t < o.stallTo! ? o.stallTo! : t;
  };
  const sch = new OpenLoopSchedule(0, rate, end, o.maxQueued ?? 100_000);
  const inflight: { sched: number; sent: number; ackAt: number }[] = [];
  const lat: number[] = [];
  const sentLate: number[] = [];
  let oldScheduled = 0;
  let oldSkipped = 0;
  let maxWaiting = 0;
  for (let now = 0; now <= end + 5000; now++) {
    for (let k = inflight.length - 1; k >= 0; k--) {
      const m = inflight[k]!;
      if (m.ackAt <= now) {
        lat.push(o.corrected ? now - m.sched : now - m.sent);
        if (m.sent > m.sched) sentLate.push(m.sched);
        inflight.splice(k, 1);
      }
    }
    if (o.lgStallFrom !== undefined && now >= o.lgStallFrom && now < o.lgStallTo!) continue;
    const send = (at: number) => {
      if (inflight.length >= o.window) return false;
      inflight.push({ sched: at, sent: now, ackAt: ackTime(now) });
      return true;
    };
    if (o.corrected) {
      sch.advance(now);
      sch.pump(send);
      maxWaiting = Math.max(maxWaiting, sch.waiting);
    } else {
      // bench/loadgen.ts before 2026-12-08: the count due by now, each sent or skipped.
      const due = Math.floor((Math.min(now, end) / 1000) * rate) - oldScheduled;
      for (let k = 0; k < due; k++) {
        oldScheduled++;
        if (!send(now)) oldSkipped++;
      }
    }
  }
  return { lat: latencySummary(lat), sch, sentLate, oldSkipped, maxWaiting, inflightLeft: inflight.length };
}

describe('latencySummary', () => {
  it('gives nearest-rank percentiles and NaN when empty', () => {
    const xs = Array.from({ length: 1000 }, (_, i) => 1000 - i);
    const s = latencySummary(xs);
    expect(s).toEqual({ samples: 1000, p50: 500, p90: 900, p99: 990, p999: 999, max: 1000 });
    expect(latencySummary([]).p99).toBeNaN();
  });
});

describe('OpenLoopSchedule (ack latency without coordinated omission)', () => {
  it('schedules message k at start + k / rate, none at or after the end, and sends them in order', () => {
    const sch = new OpenLoopSchedule(100, 200, 150, 1000); // every 5 ms from 105, end 150 (exclusive)
    expect(sch.advance(104.9)).toBe(0);
    expect(sch.advance(120)).toBe(4); // 105, 110, 115, 120
    const sent: number[] = [];
    sch.pump((t) => (sent.push(t), true));
    expect(sent).toEqual([105, 110, 115, 120]);
    expect(sch.advance(1e9)).toBe(5); // 125 … 145
    expect(sch.done).toBe(false);
    sch.pump((t) => (sent.push(t), true));
    expect(sch.scheduled).toBe(9);
    expect(sch.deferredByWindow).toBe(0);
    expect(sch.done).toBe(true);
  });

  it('a gateway stall: the old way hides it in its p99, the corrected recording does not', () => {
    // 1,000 msgs/s, 4 in flight at most, 2 ms service, nothing acknowledged for 200 ms.
    const stall = { window: 4, stallFrom: 500, stallTo: 700 };
    const before = simulate({ corrected: false, ...stall });
    const after = simulate({ corrected: true, ...stall });
    // Old: the ~196 messages due during the stall were skipped; only the 4 in flight saw it.
    expect(before.oldSkipped).toBeGreaterThan(150);
    expect(before.lat.samples).toBeLessThan(850);
    expect(before.lat.p99).toBeLessThanOrEqual(2);
    expect(before.lat.max).toBeGreaterThan(190);
    // Corrected: every scheduled message is measured, each from its scheduled time.
    expect(after.lat.samples).toBe(999);
    expect(after.sch.scheduled).toBe(999);
    expect(after.lat.p99).toBeGreaterThan(150);
    expect(after.lat.p90).toBeGreaterThan(50);
    expect(after.lat.max).toBeGreaterThan(195);
    expect(after.lat.p50).toBeLessThanOrEqual(2);
    // Each message that waited for a slot is counted once (not once per retry).
    expect(after.sch.deferredByWindow).toBe(after.sentLate.length);
    expect(after.sch.deferredByWindow).toBeGreaterThan(190);
    expect(after.sch.overflowed).toBe(0);
    expect(after.inflightLeft).toBe(0);
  });

  it('a stall of the load generator itself counts from the scheduled time, and is not a deferral', () => {
    const r = simulate({ corrected: true, window: 200, lgStallFrom: 300, lgStallTo: 400 });
    expect(r.lat.samples).toBe(999);
    expect(r.lat.max).toBeGreaterThanOrEqual(100); // scheduled at 300, sent at 400, acked at 402
    expect(r.lat.p99).toBeGreaterThan(80);
    expect(r.sch.deferredByWindow).toBe(0);
    const old = simulate({ corrected: false, window: 200, lgStallFrom: 300, lgStallTo: 400 });
    expect(old.lat.max).toBe(2);
  });

  it('stays bounded: past maxQueued waiting, due messages are dropped and reported, never queued', () => {
    const r = simulate({ corrected: true, window: 4, stallFrom: 200, stallTo: 900, maxQueued: 50 });
    expect(r.maxWaiting).toBeLessThanOrEqual(50);
    expect(r.sch.maxWaiting).toBe(50);
    expect(r.sch.overflowed).toBeGreaterThan(500);
    expect(r.sch.dropped).toHaveLength(r.sch.overflowed);
    expect(r.sch.overflowed + r.lat.samples).toBe(r.sch.scheduled);
    expect(r.sch.deferredByWindow).toBe(r.sentLate.length + r.sch.overflowed);
    expect(r.sch.unsent()).toEqual(r.sch.dropped);
  });

  it('keeps what is still waiting at the end for the caller (reported, with a lower bound)', () => {
    const sch = new OpenLoopSchedule(0, 1000, 100, 1000);
    sch.advance(99);
    expect(sch.pump(() => false)).toBe(0);
    expect(sch.deferredByWindow).toBe(99);
    expect(sch.pump(() => false)).toBe(0);
    expect(sch.deferredByWindow).toBe(99); // counted once
    let n = 0;
    sch.pump(() => ++n <= 10);
    expect(sch.waiting).toBe(89);
    expect(sch.unsent()[0]).toBe(11);
    expect(sch.done).toBe(false);
  });
});
