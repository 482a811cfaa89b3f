// What the fan-out (hub.ts) needs from the stream log, as an interface: log.ts implements
// it; the unit tests hand in models of it. The record and position types are the contract's
// (proto/stream.ts).
import type { StreamPos, StreamRecord } from '../proto/stream.ts';

/** The commit-ordered log of stored records (see stream/log.ts for the guarantees). */
export interface StreamStore {
  horizon(): Promise<{ h: number; waiting: boolean }>;
  range(lo: number, hi: number, vins: readonly string[]): Promise<StreamRecord[]>;
  /** horizon() then range(lo, h, vins), in one round trip where the store can (its h may be lower than horizon()'s). */
  tail?(lo: number, vins: readonly string[]): Promise<{ h: number; waiting: boolean; records: StreamRecord[] }>;
  page(vin: string, after: StreamPos | null, bound: number, maxRecords: number, fromMs: number | null): Promise<{ records: StreamRecord[]; last: StreamPos | null }>;
}
