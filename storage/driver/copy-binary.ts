// PostgreSQL binary COPY encoding of telemetry and OBFCM rows. Binary COPY spares both
// sides the text conversion of every double (String(n) here, float8in there), which is
// most of the cost of a wide numeric batch.
// Format: https://www.postgresql.org/docs/current/sql-copy.html ("Binary Format").
import { CONSUMPTION_COLUMNS, FIELD_COLUMNS, GROUP_FLAG, GROUPS, type FieldColumn, type Group } from '../../proto/fields.ts';

import type { RecordValues } from '../../proto/records.ts';

/** A record as the encoders here take it (proto/records.ts). */
export type CopyRow = RecordValues;

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_US = 946_684_800_000_000n;
const PG_EPOCH_MS = 946_684_800_000;

/**
 * What one table takes of a row, in the order every encoder here writes it: vin,
 * recorded_at, seq, the value columns, then the group flags.
 */
export interface RowTable {
  /** Column names in that order (the COPY column list). */
  readonly columns: readonly string[];
  readonly values: readonly FieldColumn[];
  readonly flags: readonly Group[];
  /** Most bytes one row takes in a binary COPY stream. */
  readonly copyRowBytes: number;
}

function rowTable(values: readonly FieldColumn[], flags: readonly Group[]): RowTable {
  return {
    columns: ['vin', 'recorded_at', 'seq', ...values.map((c) => c.column), ...flags.map((g) => GROUP_FLAG[g])],
    values,
    flags,
    // field count; vin; recorded_at and seq; each value; each flag
    copyRowBytes: 2 + (4 + 17) + 2 * (4 + 8) + values.length * (4 + 8) + flags.length * (4 + 1),
  };
}

/** The owner's telemetry: every value column and the three group flags. */
export const TELEMETRY_TABLE = rowTable(FIELD_COLUMNS, GROUPS);
/** The shareable OBFCM readings: the consumption columns only. */
export const OBFCM_TABLE = rowTable(CONSUMPTION_COLUMNS, []);

class Enc {
  buf: Buffer;
  pos = 0;
  /** `into`: a buffer to write into when it is large enough (a caller's reused buffer). */
  constructor(size: number, into?: Buffer) {
    this.buf = into && into.length >= size ? into : Buffer.allocUnsafe(size);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(b, 0, 0, this.pos);
    this.buf = b;
  }
  i16(v: number): void {
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
  }
  i32(v: number): void {
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
  }
  header(): void {
    this.ensure(19);
    SIGNATURE.copy(this.buf, this.pos);
    this.pos += SIGNATURE.length;
    this.i32(0); // flags
    this.i32(0); // header extension length
  }
  /** VINs are 17 ASCII characters (validated upstream). */
  vin(v: string): void {
    this.i32(v.length);
    this.pos += this.buf.write(v, this.pos, 'latin1');
  }
  /** A safe integer as int64, without BigInt (two 32-bit halves; floor keeps negatives right). */
  private i64(v: number): void {
    const hi = Math.floor(v / 4294967296);
    this.buf.writeInt32BE(hi, this.pos);
    this.buf.writeUInt32BE(v - hi * 4294967296, this.pos + 4);
    this.pos += 8;
  }
  int8(v: number): void {
    this.i32(8);
    this.i64(v);
  }
  timestamp(ms: number): void {
    this.i32(8);
    // Whole milliseconds → microseconds since 2000-01-01; exact while a safe integer
    // (until the year 2255), else through BigInt.
    const us = (ms - PG_EPOCH_MS) * 1000;
    if (Number.isSafeInteger(us)) this.i64(us);
    else {
      this.buf.writeBigInt64BE(BigInt(ms) * 1000n - PG_EPOCH_US, this.pos);
      this.pos += 8;
    }
  }
  float8(v: number | null | undefined): void {
    if (v === null || v === undefined) {
      this.i32(-1);
      return;
    }
    this.i32(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }
  bool(v: boolean): void {
    this.i32(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }
  trailer(): Buffer {
    this.ensure(2);
    this.i16(-1);
    return this.buf.subarray(0, this.pos);
  }
}

/** Most bytes encodeCopy() writes for `rows` rows of `table`. */
export const copyBytes = (table: RowTable, rows: number): number => 19 + rows * table.copyRowBytes + 2;

/** The rows as a binary COPY stream for `table`; written into `into` (and a view of it returned) when it is large enough. */
export function encodeCopy(table: RowTable, rows: readonly CopyRow[], into?: Buffer): Buffer {
  const e = new Enc(copyBytes(table, rows.length), into);
  e.header();
  const n = table.columns.length;
  for (const r of rows) {
    e.ensure(table.copyRowBytes);
    e.i16(n);
    e.vin(r.vin);
    e.timestamp(r.recordedAtMs);
    e.int8(r.seq);
    for (const c of table.values) e.float8(r[c.group]?.[c.jsName]);
    for (const g of table.flags) e.bool(r[g] != null);
  }
  return e.trailer();
}

// ---------------------------------------------------------------------------
// Binary one-dimensional arrays, sent as statement parameters: pg sends a Buffer
// parameter in binary format, so PostgreSQL reads each element with float8recv/int8recv
// instead of parsing text, and nothing here formats numbers.
// Layout (array_send): ndim, has-nulls flag, element type OID, then per dimension its
// length and lower bound, then per element its length (-1 for NULL) and bytes.

const OID = { bool: 16, int8: 20, text: 25, float8: 701 } as const;

/**
 * The unnest statement's array parameters for these rows of `table`, in the table's order
 * (recorded_at in ms). All arrays are written into one buffer in one pass per column, and
 * returned as views of it.
 */
export function unnestParams(table: RowTable, rows: readonly CopyRow[]): Buffer[] {
  const n = rows.length;
  const cols = table.values;
  const flags = table.flags;
  const HEADER = 20;
  const size = HEADER + n * (4 + 17) + 2 * (HEADER + n * 12) + cols.length * (HEADER + n * 12) + flags.length * (HEADER + n * 5);
  const e = new Enc(size);
  const out: Buffer[] = [];
  const header = (oid: number) => {
    e.i32(1);
    e.i32(0); // has-nulls flag: array_recv does not rely on it
    e.i32(oid);
    e.i32(n);
    e.i32(1);
  };
  let start = 0;
  const done = () => {
    out.push(e.buf.subarray(start, e.pos));
    start = e.pos;
  };
  header(OID.text);
  for (let i = 0; i < n; i++) e.vin(rows[i]!.vin);
  done();
  header(OID.int8);
  for (let i = 0; i < n; i++) e.int8(rows[i]!.recordedAtMs);
  done();
  header(OID.int8);
  for (let i = 0; i < n; i++) e.int8(rows[i]!.seq);
  done();
  for (const c of cols) {
    const g = c.group;
    const k = c.jsName;
    header(OID.float8);
    for (let i = 0; i < n; i++) e.float8(rows[i]![g]?.[k]);
    done();
  }
  for (const g of flags) {
    header(OID.bool);
    for (let i = 0; i < n; i++) e.bool(rows[i]![g] != null);
    done();
  }
  return out;
}
