// Reading PostgreSQL's binary COPY output (COPY … TO STDOUT (FORMAT binary)) and turning
// telemetry rows into NDJSON lines in the gateway.
//
// Why: building JSON text in SQL costs PostgreSQL a float8 → text conversion per value and
// capped the export near 80k rows/s on a 2-core box. In binary, a float8 leaves the server
// as its 8 bytes; the gateway formats numbers itself (V8's shortest round-trip form, the
// same digits PostgreSQL prints) and PostgreSQL only scans the index and copies bytes.
//
// Layout of the stream (PostgreSQL docs, "COPY", Binary Format): an 11-byte signature,
// a 32-bit flags word, a 32-bit header-extension length (+ the extension), then per row a
// 16-bit field count and, per field, a 32-bit length (-1 for NULL) and the value's bytes;
// a field count of -1 ends the data. Integers are big-endian.
import { FIELD_COLUMNS, GROUP_FLAG, fieldName, type FieldList, type Group } from '../../proto/fields.ts';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Milliseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z). */
const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 4_294_967_296;
const DAY_MS = 86_400_000;

export class CopyFormatError extends Error {
  override name = 'CopyFormatError';
}

/** Offset of the first row in a binary COPY buffer (after signature, flags and header extension). */
export function copyDataStart(b: Buffer): number {
  if (b.length < 19 || !b.subarray(0, 11).equals(SIGNATURE)) throw new CopyFormatError('not a binary COPY stream (signature)');
  const extLen = b.readUInt32BE(15);
  return 19 + extLen;
}

/** A signed 64-bit big-endian integer as a JS number (exact below 2^53: seq values, timestamps before year 2285). */
export function readInt64(b: Buffer, o: number): number {
  return b.readInt32BE(o) * TWO_32 + b.readUInt32BE(o + 4);
}

/**
 * The start offset of every row, and where the data ends. Walks field lengths only,
 * so the last row's key is known before any JSON is built.
 */
export function rowOffsets(b: Buffer, start: number): number[] {
  const out: number[] = [];
  let o = start;
  for (;;) {
    if (o + 2 > b.length) throw new CopyFormatError('binary COPY data ends inside a row');
    const n = b.readInt16BE(o);
    if (n === -1) return out;
    out.push(o);
    o += 2;
    for (let i = 0; i < n && o <= b.length; i++) {
      if (o + 4 > b.length) o = Infinity;
      else o += 4 + Math.max(0, b.readInt32BE(o));
    }
    if (o > b.length) throw new CopyFormatError('binary COPY data ends inside a row');
  }
}

/** seq and recorded_at (µs since 2000-01-01 UTC), the first two fields of every exported row. */
export function rowKey(b: Buffer, row: number): { seq: number; pgMicros: number } {
  // field count (2) + length (4) + seq (8) + length (4) + recorded_at (8)
  return { seq: readInt64(b, row + 6), pgMicros: readInt64(b, row + 18) };
}

export interface NdjsonPlan {
  /** The SELECT list the COPY must use, in the order fill() reads. */
  select: string;
  /** No line is longer than this many bytes. */
  maxLineBytes: number;
  /** Most bytes a binary COPY of `rows` rows of `select` can take (header and trailer included). */
  maxCopyBytes(rows: number): number;
  /**
   * Writes the lines of rows[from..] of a binary COPY buffer into `out` (ASCII) from `at`
   * (default 0), as many as fit whole; returns the index of the first row not written and
   * where the written bytes end.
   */
  fill(b: Buffer, rows: readonly number[], from: number, out: Buffer, at?: number): { next: number; bytes: number };
}

export interface PlanOptions {
  /**
   * The groups the rows carry (flag and columns, in this order), when not `categories`:
   * a group of the layout that is not in `categories` is read past and left out of the line.
   */
  layout?: readonly Group[];
  /** Groups written as null whatever the row carries (e.g. positions under a location opt-out). */
  nulled?: readonly Group[];
  /**
   * Only these fields of `categories` are written (catalogue names: a field-level grant's);
   * null or absent: every field. Without `layout`, the others are not even selected; with
   * it (rows shared by streams of several projections), they are read past.
   */
  fields?: FieldList;
}

/** How fill() writes a group of the layout. */
const EMIT = 0;
const AS_NULL = 1;
const LEAVE_OUT = 2;

/**
 * The plan for one set of categories: SELECT seq, recorded_at, then per category its flag
 * and its columns. Lines match the proto3 JSON mapping: absent fields left out, a category
 * the record did not carry is null.
 */
export function ndjsonPlan(vin: string, categories: readonly Group[], opts: PlanOptions = {}): NdjsonPlan {
  const ascii = (t: string): Uint8Array => Buffer.from(t, 'latin1');
  const fields = opts.fields ?? null;
  const granted = (c: (typeof FIELD_COLUMNS)[number]) => fields === null || fields.includes(fieldName(c));
  const groups = (opts.layout ?? categories).map((g) => {
    const cols = FIELD_COLUMNS.filter((c) => c.group === g && (opts.layout !== undefined || granted(c)));
    return {
      mode: !categories.includes(g) ? LEAVE_OUT : opts.nulled?.includes(g) ? AS_NULL : EMIT,
      flag: GROUP_FLAG[g],
      columns: cols.map((c) => c.column),
      /** Per column: written (else read past). */
      emit: cols.map(granted),
      // Keys with their separator: the first present field uses the variant without the comma.
      first: cols.map((c) => ascii(`"${c.jsName}":`)),
      next: cols.map((c) => ascii(`,"${c.jsName}":`)),
      open: ascii(`,"${g}":{`),
      none: ascii(`,"${g}":null`),
    };
  });
  // received_at third (after the key): when the gateway stored the record (README "Freshness").
  const select = ['seq', 'recorded_at', 'received_at', ...groups.flatMap((g) => [g.flag, ...g.columns])].join(', ');
  const head = ascii(`{"vin":"${vin}","seq":`);
  const timeKey = ascii(',"recordedAt":"');
  const receivedKey = ascii(',"receivedAt":"');
  const receivedNull = ascii(',"receivedAt":null');
  /** The last receivedAt written, and its text. */
  let lastRx = NaN;
  const lastRxText = Buffer.alloc(32);
  let lastRxBytes = 0;
  // Longest possible line: every field present, each number at its longest (24 characters,
  // e.g. -2.2250738585072014e-308), seq up to 2^53 (16 digits and a sign), a time of at most
  // 27 characters (Date#toISOString of a six-digit year), the closing quotes and braces.
  const maxLineBytes = head.length + 17 + 2 * (timeKey.length + 27 + 1) + groups.reduce((n, g) => n + g.open.length + g.next.reduce((m, k) => m + k.length + 24, 0) + 1, 0) + 2;
  // recorded_at at millisecond precision, as Date#toISOString prints it; the date is cached,
  // since consecutive rows mostly share their day, and the time of day is computed.

  // per row: field count; seq and recorded_at (length + 8 bytes each); per group its flag
  // (length + 1 byte) and its float8 columns (length + 8 bytes each)
  const maxRowBytes = 2 + 3 * 12 + groups.reduce((n, g) => n + 5 + 12 * g.columns.length, 0);

  return {
    select,
    maxLineBytes,
    maxCopyBytes: (rows) => 19 + rows * maxRowBytes + 2,
    fill(b, rows, from, out, at = 0) {
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      let p = at;
      let r = from;
      for (; r < rows.length && out.length - p >= maxLineBytes; r++) {
        let o = rows[r]! + 2 + 4;
        p = putBytes(out, p, head);
        p = putInt(out, p, dv.getInt32(o) * TWO_32 + dv.getUint32(o + 4));
        o += 8 + 4;
        p = putBytes(out, p, timeKey);
        const ms = Math.floor((dv.getInt32(o) * TWO_32 + dv.getUint32(o + 4)) / 1000) + PG_EPOCH_MS;
        o += 8;
        p = putIsoMs(out, p, ms);
        out[p++] = 34; // "
        // received_at: null in rows stored before it was kept (none today: NOT NULL DEFAULT now()).
        if (dv.getInt32(o) === 8) {
          p = putBytes(out, p, receivedKey);
          // The rows of one batch write share it (their transaction's time): written once, copied after.
          const rx = Math.floor((dv.getInt32(o + 4) * TWO_32 + dv.getUint32(o + 8)) / 1000) + PG_EPOCH_MS;
          if (rx !== lastRx) {
            lastRx = rx;
            lastRxBytes = putIsoMs(lastRxText, 0, rx);
          }
          lastRxText.copy(out, p, 0, lastRxBytes);
          p += lastRxBytes;
          out[p++] = 34; // "
          o += 12;
        } else {
          p = putBytes(out, p, receivedNull);
          o += 4;
        }
        for (const g of groups) {
          // flag: length 1, one byte
          const carried = b[o + 4] === 1;
          o += 5;
          if (!carried || g.mode !== EMIT) {
            for (let i = 0; i < g.columns.length; i++) {
              const len = dv.getInt32(o);
              o += 4 + (len > 0 ? len : 0);
            }
            if (g.mode !== LEAVE_OUT) p = putBytes(out, p, g.none);
            continue;
          }
          p = putBytes(out, p, g.open);
          let first = true;
          for (let i = 0; i < g.columns.length; i++) {
            const len = dv.getInt32(o);
            o += 4;
            if (len === 8 && !g.emit[i]) {
              o += 8;
            } else if (len === 8) {
              p = putBytes(out, p, first ? g.first[i]! : g.next[i]!);
              p = putNumber(out, p, dv.getFloat64(o));
              first = false;
              o += 8;
            } else if (len > 0) {
              throw new CopyFormatError(`column ${g.columns[i]}: ${len}-byte value where a float8 was expected`);
            }
          }
          out[p++] = 125; // }
        }
        out[p++] = 125; // }
        out[p++] = 10; // \n
      }
      return { next: r, bytes: p };
    },
  };
}

// Byte writers for fill() and for the live streams' held-row lines (stream/held-rows.ts).

export function putBytes(out: Buffer, p: number, src: Uint8Array): number {
  out.set(src, p);
  return p + src.length;
}

/**
 * `YYYY-MM-DDT` of the two days last written: Date#toISOString per value costs about
 * 1.3 µs. Two, since a line writes two times (recordedAt, receivedAt) whose days differ
 * for every record that arrived a day or more after it was measured (a history upload).
 */
let cachedDay = NaN;
let cachedDate = Buffer.alloc(0);
let otherDay = NaN;
let otherDate = Buffer.alloc(0);

/**
 * A time (ms since 1970, a year 0-9999) as Date#toISOString writes it,
 * `YYYY-MM-DDTHH:MM:SS.mmmZ`: the date of the day cached, the time digit by digit.
 */
export function putIsoMs(out: Buffer, p: number, ms: number): number {
  const day = Math.floor(ms / DAY_MS);
  if (day !== cachedDay) {
    const d = cachedDay;
    const b = cachedDate;
    if (day === otherDay) cachedDate = otherDate;
    else cachedDate = Buffer.from(new Date(day * DAY_MS).toISOString().slice(0, 11), 'latin1');
    cachedDay = day;
    otherDay = d;
    otherDate = b;
  }
  p = putBytes(out, p, cachedDate);
  let t = ms - day * DAY_MS;
  const hh = Math.floor(t / 3_600_000);
  t -= hh * 3_600_000;
  const mm = Math.floor(t / 60_000);
  t -= mm * 60_000;
  const ss = Math.floor(t / 1000);
  t -= ss * 1000;
  p = put2(out, p, hh);
  out[p++] = 58; // :
  p = put2(out, p, mm);
  out[p++] = 58;
  p = put2(out, p, ss);
  out[p++] = 46; // .
  out[p++] = 48 + Math.floor(t / 100);
  out[p++] = 48 + (Math.floor(t / 10) % 10);
  out[p++] = 48 + (t % 10);
  out[p++] = 90; // Z
  return p;
}

/** Two digits, 00-99. */
function put2(out: Buffer, p: number, n: number): number {
  const tens = Math.floor(n / 10);
  out[p++] = 48 + tens;
  out[p++] = 48 + (n - tens * 10);
  return p;
}

/** A string known to be ASCII. */
export function putAscii(out: Buffer, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[p++] = s.charCodeAt(i);
  return p;
}

/** An integer of magnitude below 2^53, in decimal. */
export function putInt(out: Buffer, p: number, n: number): number {
  if (n < 0) {
    out[p++] = 45; // -
    n = -n;
  }
  let digits = 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) digits++;
  const end = p + digits;
  for (let i = end - 1; i >= p; i--) {
    const q = Math.floor(n / 10);
    out[i] = 48 + (n - q * 10);
    n = q;
  }
  return end;
}

/**
 * A finite double exactly as JavaScript's Number#toString prints it (the shortest decimal
 * that reads back as the same double, which is also what PostgreSQL prints).
 *
 * Fast path, for values with at most 6 decimals and at most 15 significant digits, as
 * sensor readings mostly are: when n = round(v × 10^6) gives back v as n / 10^6 (IEEE
 * division is correctly rounded, so v is the double nearest to the decimal n × 10^-6), that
 * decimal has at most 15 significant digits, and two distinct decimals of at most 15
 * significant digits never read back as the same double (DBL_DIG = 15): it is therefore the
 * shortest form, printed here without trailing zeros. Such values lie in [10^-6, 10^9) or are
 * 0, where Number#toString uses plain (not exponent) notation too. Everything else goes
 * through String(v). Checked against String(v) by property tests (test/unit/copy-out.test.ts).
 */
export function putNumber(out: Buffer, p: number, v: number): number {
  let n = Math.round(v * 1e6);
  if (n / 1e6 !== v || n >= 1e15 || n <= -1e15) return putAscii(out, p, String(v));
  if (n < 0) {
    out[p++] = 45; // -
    n = -n;
  }
  const ip = Math.floor(n / 1e6);
  let fp = n - ip * 1e6;
  p = putInt(out, p, ip);
  if (fp !== 0) {
    out[p++] = 46; // .
    for (let div = 100_000; fp !== 0; div /= 10) {
      const d = Math.floor(fp / div);
      out[p++] = 48 + d;
      fp -= d * div;
    }
  }
  return p;
}

/** A string as an SQL literal (standard_conforming_strings is on in every supported server). */
export function sqlLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
