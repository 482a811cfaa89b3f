// Micro-benchmark of the privacy filter alone, on this thread (one core): for each
// record, the stricter of two consent states (state when measured, state now, mixed
// over all eight combinations) → filterFor → the filtered record. Baseline in the same
// run: a plain copy of the same records into the same output shape, no consent logic.
import Long from 'long';
import { filterFor, strictest, type ConsentState, type FilteredRecord, type RecordIn } from '../filters/privacy.ts';
import { TelemetryBatch } from '../proto/index.ts';
import { samplesFor } from './fleet.ts';
import { median, round } from './lib.ts';

export interface FilterResult {
  recordsPerSec: number;
  baselineRecordsPerSec: number;
  ratioToBaseline: number;
  records: number;
  rounds: number;
  locationKept: number;
}

export function runFilterBench(opts: { records: number; rounds: number }): FilterResult {
  // Records as the gateway has them: decoded by protobufjs (class instances).
  const recs: RecordIn[] = [];
  for (let v = 0; recs.length < opts.records; v++) {
    const vin = `BNCHF${String(v).padStart(12, '0')}`;
    const samples = samplesFor(v, 10);
    const now = Date.now();
    const bytes = TelemetryBatch.encode({
      vin,
      records: samples.map((s, k) => ({ seq: Long.fromNumber(k + 1, true), recordedAtMs: Long.fromNumber(now + k), ...s })),
    }).finish();
    const b = TelemetryBatch.decode(bytes);
    for (const r of b.records) {
      recs.push({ vin, seq: Number(r.seq), recordedAtMs: Number(r.recordedAtMs), technical: r.technical ?? null, consumption: r.consumption ?? null, location: r.location ?? null });
    }
  }
  recs.length = opts.records;
  const states: ConsentState[] = [];
  for (let i = 0; i < 8; i++) states.push({ location: (i & 4) !== 0, co2Sharing: (i & 2) !== 0, restricted: (i & 1) === 0 });
  // Mostly the defaults, as in a real fleet, with every combination present.
  let x = 12345;
  const rnd = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x / 0x7fffffff);
  const pick = () => (rnd() < 0.7 ? states[7]! /* allowed, not restricted */ : states[Math.floor(rnd() * 8)]!);
  const atMeasure = recs.map(() => pick());
  const current = recs.map(() => pick());
  // Outputs go to a small ring: they escape (no allocation elided), die young (as in
  // the gateway, where a filtered record lives until its batch is written), and the
  // figures do not swing with old-generation GC.
  const RING = 1024;
  const out: FilteredRecord[] = new Array(RING);

  const filterPass = (): number => {
    const t0 = performance.now();
    for (let i = 0; i < recs.length; i++) out[i & (RING - 1)] = filterFor(strictest(atMeasure[i]!, current[i]!))(recs[i]!);
    return performance.now() - t0;
  };
  const copyPass = (): number => {
    const t0 = performance.now();
    for (let i = 0; i < recs.length; i++) {
      const r = recs[i]!;
      out[i & (RING - 1)] = { vin: r.vin, seq: r.seq, recordedAtMs: r.recordedAtMs, technical: r.technical ?? null, consumption: r.consumption ?? null, location: r.location ?? null, shareObfcm: false };
    }
    return performance.now() - t0;
  };
  // Warm both up (JIT), then alternate.
  for (let i = 0; i < 3; i++) {
    filterPass();
    copyPass();
  }
  const f: number[] = [];
  const c: number[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    f.push(recs.length / (filterPass() / 1000));
    c.push(recs.length / (copyPass() / 1000));
  }
  let kept = 0;
  for (let i = 0; i < recs.length; i++) if (filterFor(strictest(atMeasure[i]!, current[i]!))(recs[i]!).location) kept++;
  const fr = median(f);
  const cr = median(c);
  return { recordsPerSec: round(fr), baselineRecordsPerSec: round(cr), ratioToBaseline: round(fr / cr, 3), records: recs.length, rounds: opts.rounds, locationKept: kept };
}
