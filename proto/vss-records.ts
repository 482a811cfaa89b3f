// Records keyed by VSS path (`?names=vss`): the one conversion the export, the live
// streams and every later consumer of record lines use. Pure: a record line (or a CSV
// header and row) in the catalogue's names goes in, the same data keyed by VSS path and in
// the VSS unit comes out. Whatever else the line carries (vin, seq, recordedAt, and any
// metadata added later) passes through under its own name, in its place.
import { GROUPS } from './fields.ts';
import { VSS_NAMES, type VssDatatype } from './vss.ts';

/** The naming schemes of a record (the `names` query parameter). */
export const RECORD_NAMES = ['catalogue', 'vss'] as const;
export type RecordNames = (typeof RECORD_NAMES)[number];

const CATEGORIES: ReadonlySet<string> = new Set(GROUPS);
const INTEGER: ReadonlySet<VssDatatype> = new Set(['uint8', 'uint16', 'uint32', 'int8', 'int16', 'int32']);

/** `v` × 10^k, decimally exact for the shortest form of `v` (12345.678 km → 12345678 m, not 12345678.000000002). */
function shift10(v: number, k: number): number {
  if (k === 0 || v === 0 || !Number.isFinite(v)) return v;
  const s = String(v);
  const i = s.indexOf('e');
  const mantissa = i < 0 ? s : s.slice(0, i);
  const exp = i < 0 ? 0 : Number(s.slice(i + 1));
  return Number(`${mantissa}e${exp + k}`);
}

/** The VSS key of a catalogue field name: its VSS path, or the name itself when it has none. */
export function vssKey(name: string): string {
  return VSS_NAMES[name]?.path ?? name;
}

/**
 * A value of catalogue field `name` in its VSS unit and datatype: scaled by the table's
 * power of ten, rounded to the nearest integer for integer datatypes (VSS 6.0
 * Vehicle.TraveledDistance is uint32 metres). A field without VSS name is unchanged.
 */
export function toVssValue(name: string, v: number): number {
  const n = VSS_NAMES[name];
  if (!n) return v;
  const scaled = n.scale10 ? shift10(v, n.scale10) : v;
  return INTEGER.has(n.datatype) ? Math.round(scaled) : scaled;
}

/**
 * One record (as parsed from a line of the NDJSON CarData export) keyed by VSS path: each
 * category object's fields become top-level keys (`technical.odometerKm` →
 * `Vehicle.TraveledDistance`, in metres); a category the record did not carry (null)
 * contributes no key; every other member passes through as it is.
 */
export function vssRecord(plain: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(plain)) {
    if (v === null && CATEGORIES.has(k)) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [f, x] of Object.entries(v as Record<string, unknown>)) {
        const name = `${k}.${f}`;
        out[vssKey(name)] = typeof x === 'number' ? toVssValue(name, x) : x;
      }
      continue;
    }
    out[k] = v;
  }
  return out;
}

/** One NDJSON line (no newline) in the catalogue's names → the same record keyed by VSS path. */
export function vssLine(line: string): string {
  return JSON.stringify(vssRecord(JSON.parse(line) as Record<string, unknown>));
}

/** A CSV header in the catalogue's names (`technical.odometerKm` …) → VSS paths; other columns keep theirs. */
export function vssCsvHeader(columns: readonly string[]): string[] {
  return columns.map(vssKey);
}

/** A CSV row under the catalogue header `columns` → the values in VSS units (empty cells stay empty). */
export function vssCsvRow(columns: readonly string[], row: readonly (string | number)[]): (string | number)[] {
  return row.map((v, i) => (typeof v === 'number' ? toVssValue(columns[i] ?? '', v) : v));
}
