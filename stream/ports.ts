// What the stream fan-out needs from storage, as interfaces. main.ts hands in the storage
// implementation (stream/log.ts); nothing here imports storage/.
import type { Group } from '../proto/fields.ts';

/** Place of a record in a vehicle's stream: (writing transaction id, place in its entry). */
export interface StreamPos {
  tx: number;
  ord: number;
}

export interface LineProjection {
  /** Categories the line carries, in the export's order. */
  categories: readonly Group[];
  /** Of those, the ones written as null whatever the record carried. */
  nulled: readonly Group[];
}

export interface StreamRecord {
  vin: string;
  tx: number;
  ord: number;
  recordedAtMs: number;
  /** The record as one line of the NDJSON CarData export (no newline), projected. */
  json(p: LineProjection): string;
  /** The same line written into `out` at `at`, where at least 16 KiB are free; returns where it ends. */
  line(p: LineProjection, out: Buffer, at: number): number;
}

/** The commit-ordered log of stored records (see stream/log.ts for the guarantees). */
export interface StreamStore {
  horizon(): Promise<{ h: number; waiting: boolean }>;
  range(lo: number, hi: number, vins: readonly string[]): Promise<StreamRecord[]>;
  /** horizon() then range(lo, h, vins), in one round trip where the store can (its h may be lower than horizon()'s). */
  tail?(lo: number, vins: readonly string[]): Promise<{ h: number; waiting: boolean; records: StreamRecord[] }>;
  page(vin: string, after: StreamPos | null, bound: number, maxRecords: number, fromMs: number | null): Promise<{ records: StreamRecord[]; last: StreamPos | null }>;
}
