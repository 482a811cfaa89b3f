// Privacy filters: pure functions from (record, consent) to what may be stored.
// No I/O, no clock, no logging: the gateway decides which consent applies, this module
// decides what that consent lets through. One filter per consent state, built once.
import type { IConsumptionData, ILocation, ITechnicalData } from '../proto/index.ts';
import type { ConsentFlags } from '../proto/consent.ts';

/**
 * What the owner allows (proto/consent.ts). Defaults: both allowed. A restricted state
 * sends nothing to the shareable table; `restricted` absent = not restricted.
 */
export type ConsentState = Readonly<Omit<ConsentFlags, 'restricted'> & Partial<Pick<ConsentFlags, 'restricted'>>>;

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

/** The stricter of two consent states: a refusal (or restriction) in either wins. */
export function strictest(a: ConsentState, b: ConsentState): ConsentState {
  return STATES[index(a) & index(b)]!;
}

// Bit 2: location allowed, bit 1: CO2 sharing allowed, bit 0: NOT restricted. With this
// encoding "stricter" is a bitwise AND.
function index(s: ConsentState): number {
  return (s.location ? 4 : 0) | (s.co2Sharing ? 2 : 0) | (s.restricted ? 0 : 1);
}

const STATES: ConsentState[] = Array.from({ length: 8 }, (_, i) =>
  Object.freeze({ location: (i & 4) !== 0, co2Sharing: (i & 2) !== 0, restricted: (i & 1) === 0 }),
);

function compile(state: ConsentState): RecordFilter {
  const keepLocation = state.location;
  const share = state.co2Sharing && !state.restricted;
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

/** The filter for a consent state (one of eight, compiled at load). */
export function filterFor(state: ConsentState): RecordFilter {
  return FILTERS[index(state)]!;
}
