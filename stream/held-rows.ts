// The rows this process's writer just committed, kept for the live streams' tail so that
// it need not read them back from the database (README "Live CarData", "How it works").
//
// The stream log stays the order and the truth: the tail reads its entries as always, and
// takes a record from here only when the entry's transaction is one this process wrote and
// the row is held under that transaction. A transaction inserts each key at most once, and
// its log entry lists exactly the keys it inserted, so the row held under (transaction,
// key) is the row stored. Everything else (another process's writes, rows already let go,
// a key sent twice in one batch) is read from the database.
//
// Held: only rows of vehicles someone here follows, until the tail has read past their
// transaction, at most `maxRows`; a vehicle's rows are let go at once when its stored data
// may have changed (an erasure) or its terms did.
import type { CopyRow } from '../storage/driver/copy-binary.ts';
import { FIELD_COLUMNS, GROUPS, fieldName, type Group } from '../proto/fields.ts';
import { putAscii, putBytes, putInt, putIsoMs, putNumber } from '../storage/driver/copy-out.ts';
import type { LineProjection } from '../proto/stream.ts';

const ALL: readonly Group[] = GROUPS;
/** Room a line of a held row may take (it is ~1.5 kB at most): what a caller of a line writer must leave free. */
export const LINE_ROOM = 16 * 1024;
/** One line is written here at a time by lineOf. */
const LINE = Buffer.allocUnsafe(LINE_ROOM);

export interface RecentRows {
  /** Rows transaction `tx` (a writer's batch, committed) inserted or tried to; only those `keep` accepts are held. */
  put(tx: number, rows: readonly CopyRow[], keep: (vin: string) => boolean): void;
  /** The row of (vin, measured at ms, seq) that transaction `tx` wrote, when held. */
  get(tx: number, vin: string, ms: number, seq: number): CopyRow | undefined;
  /** Lets go of every row of `vin` (its stored data or its terms may have changed). */
  dropVin(vin: string): void;
  /** Lets go of everything. */
  clear(): void;
  /** Lets go of the transactions below `tx` (the tail has read past them). */
  trimBelow(tx: number): void;
  readonly rows: number;
  /** Records the tail took from here, and records it read from the database, since start. */
  readonly counts: { held: number; read: number };
}

/** A held key sent twice in one batch: which of the two was stored is the database's to say. */
const AMBIGUOUS = null;

export function createRecentRows(maxRows = 50_000): RecentRows {
  // Insertion order is commit order closely enough for trimming and for the bound.
  // Per vehicle, by seq (the time is checked on the way out): no key string per row.
  type Keys = Map<number, CopyRow | typeof AMBIGUOUS>;
  const byTx = new Map<number, Map<string, Keys>>();
  let rows = 0;
  const counts = { held: 0, read: 0 };
  const dropTx = (tx: number) => {
    const m = byTx.get(tx);
    if (!m) return;
    for (const v of m.values()) rows -= v.size;
    byTx.delete(tx);
  };
  return {
    put(tx, list, keep) {
      let m = byTx.get(tx);
      for (const r of list) {
        if (!keep(r.vin)) continue;
        if (!m) byTx.set(tx, (m = new Map<string, Keys>()));
        let v = m.get(r.vin);
        if (!v) m.set(r.vin, (v = new Map() as Keys));
        // A seq twice in one batch (the same key resent, or one seq at two times): left to the database.
        if (v.has(r.seq)) v.set(r.seq, AMBIGUOUS);
        else {
          v.set(r.seq, r);
          rows++;
        }
      }
      while (rows > maxRows && byTx.size > 0) dropTx(byTx.keys().next().value!);
    },
    get(tx, vin, ms, seq) {
      const r = byTx.get(tx)?.get(vin)?.get(seq);
      return r && r.recordedAtMs === ms ? r : undefined;
    },
    dropVin(vin) {
      for (const m of byTx.values()) {
        const v = m.get(vin);
        if (v) {
          rows -= v.size;
          m.delete(vin);
        }
      }
    },
    clear() {
      byTx.clear();
      rows = 0;
    },
    trimBelow(tx) {
      for (const t of [...byTx.keys()]) if (t < tx) dropTx(t);
    },
    get rows() {
      return rows;
    },
    counts,
  };
}

/**
 * Writes a held row's line (no newline) at `at` in `out`, which has LINE_ROOM bytes free there; returns its end.
 * `receivedAtMs`: when it was stored (its transaction's time, the log entry's `at`, equal to the row's received_at); null: unknown.
 */
export type LineWriter = (r: CopyRow, out: Buffer, at: number, receivedAtMs: number | null) => number;

const writers = new Map<string, LineWriter>();
/** The same by projection object: a stream asks with the same one for every record. */
const writerOf = new WeakMap<LineProjection, LineWriter>();

/**
 * The line writer of a projection: a held row as one NDJSON export line, the same text the
 * export and the database read give (proto3 JSON names in the contract's order, absent
 * fields left out, a category the record did not carry or that is withheld as null).
 * Written byte by byte with the export's number printer (storage/driver/copy-out.ts putNumber,
 * String(v) for every finite double) and the date of the day cached.
 *
 * Compiled once per projection (at most 3 categories × what is nulled: a handful), from the
 * generated field table alone: each field is read by its name at its own site, which V8
 * keeps monomorphic. A loop over the names read them through one megamorphic site, ~45 ns
 * a field on the decoded protobuf objects. Measured on the simulator's rows (node, one
 * core): JSON.stringify of an object per record ~8 µs, the byte writer with a name loop
 * 3.7-4.9 µs, compiled 2.5-3.7 µs. A VIN needs no escaping ([A-HJ-NPR-Z0-9]).
 */
export function lineWriter(p: LineProjection): LineWriter {
  let w = writerOf.get(p);
  if (w) return w;
  const key = `${p.categories.join(',')}|${p.nulled.join(',')}|${p.fields?.join(',') ?? '*'}`;
  w = writers.get(key);
  if (!w) {
    w = compile(p);
    // Field-level grants make many projections possible: keep the compiled ones bounded.
    if (writers.size >= 1000) writers.clear();
    writers.set(key, w);
  }
  writerOf.set(p, w);
  return w;
}

function compile(p: LineProjection): LineWriter {
  const consts: Buffer[] = [];
  const k = (text: string): string => `K[${consts.push(Buffer.from(text, 'latin1')) - 1}]`;
  // A constant up to 24 bytes is written by byte stores in the code itself; out.set costs
  // more per call than that (the simulator's rows, node, one core, interleaved in one
  // process: 1.90 → 1.64 µs a line at the 25th percentile, 3 runs).
  const put = (text: string): string => {
    if (text.length > 24) return `o = putBytes(out, o, ${k(text)});`;
    const b = Buffer.from(text, 'latin1');
    return `{ ${[...b].map((c, i) => `out[o${i ? ` + ${i}` : ''}] = ${c};`).join(' ')} o += ${b.length}; }`;
  };
  const src: string[] = [
    put('{"vin":"'),
    'o = putAscii(out, o, r.vin);',
    put('","seq":'),
    'o = putInt(out, o, r.seq);',
    put(',"recordedAt":"'),
    // Years 0-9999 (what validation lets through); beyond, Date#toISOString's own form.
    'o = r.recordedAtMs >= -62167219200000 && r.recordedAtMs < 253402300800000 ? putIsoMs(out, o, r.recordedAtMs) : putAscii(out, o, new Date(r.recordedAtMs).toISOString());',
    'out[o++] = 34;',
    // The row's received_at is its transaction's now(): the stream log entry's `at` (README "Freshness").
    `if (rx == null) ${put(',"receivedAt":null')} else { ${put(',"receivedAt":"')} o = putIsoMs(out, o, rx); out[o++] = 34; }`,
    'let v, x, first;',
  ];
  for (const g of ALL) {
    if (!p.categories.includes(g)) continue;
    if (p.nulled.includes(g)) {
      src.push(put(`,"${g}":null`));
      continue;
    }
    src.push(`v = r.${g};`, `if (v == null) ${put(`,"${g}":null`)} else {`, `${put(`,"${g}":{`)} first = true;`);
    for (const c of FIELD_COLUMNS) {
      // A field-level grant's stream: the fields it does not name are not written.
      if (c.group !== g || (p.fields != null && !p.fields.includes(fieldName(c)))) continue;
      // The generated table's names are proto3 JSON names (identifiers); checked, as they become code.
      if (!/^[A-Za-z][A-Za-z0-9]*$/.test(c.jsName)) throw new Error(`field name ${JSON.stringify(c.jsName)} is not an identifier`);
      src.push(
        `x = v.${c.jsName};`,
        `if (x != null) { if (!first) out[o++] = 44; first = false; ${put(`"${c.jsName}":`)} o = Number.isFinite(x) ? putNumber(out, o, x) : putAscii(out, o, 'null'); }`,
      );
    }
    src.push('out[o++] = 125; }');
  }
  src.push('out[o++] = 125;', 'return o;');
  // Code from the generated field table and constants only (names checked above), as
  // protobufjs builds its codecs; nothing of a record or a request goes into it.
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- see above
  const make = new Function('K', 'putBytes', 'putAscii', 'putInt', 'putIsoMs', 'putNumber', `return function line(r, out, o, rx) {\n${src.join('\n')}\n};`) as (...deps: unknown[]) => LineWriter;
  return make(consts, putBytes, putAscii, putInt, putIsoMs, putNumber);
}

/** A held row's line as text (lineWriter's bytes). */
export function lineOf(r: CopyRow, p: LineProjection, receivedAtMs: number | null = null): string {
  return LINE.toString('latin1', 0, lineWriter(p)(r, LINE, 0, receivedAtMs));
}
