// Live CarData as the contract speaks of it: a record's place in its vehicle's stream, the
// shape a stream line takes, a stored record as the stream hands it out, and what a
// consumer of the fan-out must answer to. The stream log (stream/log.ts) produces these,
// the hub (stream/hub.ts) moves them, the SSE session (stream/sse.ts) writes them, and the
// API's ports (api/ports.ts) narrow them. Types only.
import type { FieldList, Group } from './fields.ts';

/** Place of a record in its vehicle's stream: (writing transaction id (xid8), 1-based place in that transaction's entry). */
export interface StreamPos {
  tx: number;
  ord: number;
}

/** Which categories a line carries, in the export's order, and which of them are written as null whatever the record held. */
export interface LineProjection {
  categories: readonly Group[];
  nulled: readonly Group[];
  /** Only these fields of the categories (catalogue names: a field-level grant's); null or absent: every field. */
  fields?: FieldList;
}

/** A stored record as the live streams deliver it. */
export interface StreamRecord extends StreamPos {
  vin: string;
  /** Measurement time, ms since 1970. */
  recordedAtMs: number;
  /** The record as one line of the NDJSON CarData export (no newline), projected. */
  json(p: LineProjection): string;
  /** The same line (ASCII) written into `out` at `at`, where at least LINE_ROOM (16 KiB) bytes are free; returns where it ends. */
  line(p: LineProjection, out: Buffer, at: number): number;
}

/** One consumer of the fan-out: an open stream of one vehicle. */
export interface StreamSubscriber {
  readonly vin: string;
  /** The grant a recipient's stream reads through (its changes recheck this subscriber). */
  readonly grantId?: string;
  /** Records in cursor order, all after the subscriber's position. */
  deliver(records: readonly StreamRecord[], live: boolean): void;
  /** True while the consumer should not be given more backlog (its buffer is full). */
  busy(): boolean;
  /** Resolves when busy() may have turned false (or the subscriber closed). */
  ready(): Promise<void>;
  /** The consent, ownership or grant of this vehicle may have changed: check again. */
  recheck(): void;
  /** A stream without cursor: the position it starts at (a valid resume point before any record). */
  startedAt?(pos: StreamPos): void;
  /** Ends the stream with a last event saying why (the fan-out can no longer serve it: its vehicle moved to another shard). */
  end?(reason: string): void;
  readonly closed: boolean;
}

/** Where a stream starts: after a position (a cursor), and only records measured since a time (?from=). */
export interface StreamStart {
  /** Resume after this position; null: start live. */
  after: StreamPos | null;
  /** Only records measured at or after this time, ms (for ?from=); null: all. */
  fromMs: number | null;
}

/** What the open streams of a process hold: for metrics, /readyz-adjacent checks and tests. */
export interface StreamStats {
  open: number;
  /** Bytes written to streams and not yet taken by the kernel, all streams. */
  bufferedBytes: number;
  /** The largest of those per stream. */
  maxBufferedBytes: number;
  /** Streams ended, by reason, since start. */
  ended: Record<string, number>;
}
