// Privacy filters: pure functions from (record, consent) to what may be stored.
// No I/O, no clock, no logging: the gateway decides which consent applies, this module
// decides what that consent lets through. One filter per consent state, built once.
import type { IConsumptionData, ILocation, ITechnicalData } from '../proto/index.ts';

/** What the owner allows. `true` = allowed. Defaults: both allowed. */
export interface ConsentState {
  /** Processing of the vehicle's location (GDPR Art. 6(1)(a) consent; objection Art. 21). */
  readonly location: boolean;
  /** Sharing of OBFCM data with the authorities ((EU) 2021/392 lets the owner refuse it). */
  readonly co2Sharing: boolean;
}

export interface RecordIn {
  readonly vin: string;
  readonly seq: number;
  readonly recordedAtMs: number;
  readonly technical?: ITechnicalData | null;
  readonly consumption?: IConsumptionData | null;
  readonly location?: ILocation | null;
}

export interface FilteredRecord {
  readonly vin: string;
  readonly seq: number;
  readonly recordedAtMs: number;
  readonly technical: ITechnicalData | null;
  readonly consumption: IConsumptionData | null;
  /** null whenever location processing was refused: the position is gone from here on. */
  readonly location: ILocation | null;
  /** Whether the OBFCM counters may go to the table the authorities read. */
  readonly shareObfcm: boolean;
}

export type RecordFilter = (r: RecordIn) => FilteredRecord;

/** The stricter of two consent states: a refusal in either wins. */
export function strictest(a: ConsentState, b: ConsentState): ConsentState {
  if (a.location && a.co2Sharing) return b;
  if (b.location && b.co2Sharing) return a;
  return stateOf(a.location && b.location, a.co2Sharing && b.co2Sharing);
}

const STATES: ConsentState[] = [
  Object.freeze({ location: false, co2Sharing: false }),
  Object.freeze({ location: false, co2Sharing: true }),
  Object.freeze({ location: true, co2Sharing: false }),
  Object.freeze({ location: true, co2Sharing: true }),
];

function stateOf(location: boolean, co2Sharing: boolean): ConsentState {
  return STATES[(location ? 2 : 0) + (co2Sharing ? 1 : 0)]!;
}

function compile(state: ConsentState): RecordFilter {
  const keepLocation = state.location;
  const share = state.co2Sharing;
  // Each branch is its own closure so the per-record path has no consent checks at all.
  if (keepLocation) {
    return (r) => ({
      vin: r.vin,
      seq: r.seq,
      recordedAtMs: r.recordedAtMs,
      technical: r.technical ?? null,
      consumption: r.consumption ?? null,
      location: r.location ?? null,
      shareObfcm: share && r.consumption != null,
    });
  }
  return (r) => ({
    vin: r.vin,
    seq: r.seq,
    recordedAtMs: r.recordedAtMs,
    technical: r.technical ?? null,
    consumption: r.consumption ?? null,
    location: null,
    shareObfcm: share && r.consumption != null,
  });
}

const FILTERS: RecordFilter[] = STATES.map(compile);

/** The filter for a consent state (one of four, compiled at load). */
export function filterFor(state: ConsentState): RecordFilter {
  return FILTERS[(state.location ? 2 : 0) + (state.co2Sharing ? 1 : 0)]!;
}
