// The rows this process's writer just committed, kept for the live streams' tail so that
// it need not read them back from the database (README "Live CarData", "How it works").
//
// The stream log stays the order and the truth: the tail reads its entries as always, and
// takes a record from here only when the entry's transaction is one this process wrote and
// the row is held under that transaction. A transaction inserts each key at most once, and
// its log entry lists exactly the keys it inserted, so the row held under (transaction,
// key) is the row stored. Everything else (another process's writes, rows already let go,
// a key sent twice in one batch) is read from the database as before.
//
// Held: only rows of vehicles someone here follows, until the tail has read past their
// transaction, at most `maxRows`; a vehicle's rows are let go at once when its stored data
// may have changed (an erasure) or its terms did.
import type { CopyRow } from './copy-binary.ts';
import { FIELD_COLUMNS, type Group } from '../proto/fields.ts';
import { putAscii, putBytes, putInt, putIsoMs, putNumber } from './copy-out.ts';
import type { LineProjection } from './stream-log.ts';

const ALL: readonly Group[] = ['technical', 'consumption', 'location'];
/** Per category: `,"<category>":{`, `,"<category>":null`, and its fields in the contract's order, each with `"<name>":`. */
const GROUP_OF: Record<Group, { open: Buffer; nul: Buffer; fields: readonly { name: string; key: Buffer }[] }> = {
  technical: groupOf('technical'),
  consumption: groupOf('consumption'),
  location: groupOf('location'),
};
function groupOf(g: Group) {
  return {
    open: Buffer.from(`,"${g}":{`, 'latin1'),
    nul: Buffer.from(`,"${g}":null`, 'latin1'),
    fields: FIELD_COLUMNS.filter((c) => c.group === g).map((c) => ({ name: c.jsName, key: Buffer.from(`"${c.jsName}":`, 'latin1') })),
  };
}
/** One line is written here at a time (a line is ~1.5 kB at most). */
const LINE = Buffer.allocUnsafe(16 * 1024);

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
 * A held row as one NDJSON export line (without the newline), projected: the same text the
 * export and the database read give (proto3 JSON names in the contract's order, absent
 * fields left out, a category the record did not carry or that is withheld as null).
 * Written byte by byte with the export's number printer (storage/copy-out.ts putNumber,
 * String(v) for every finite double) and the date of the day cached: JSON.stringify of an
 * object per record cost a fifth of the gateway's time with 1,000 streams in the benchmark
 * (a line of the simulator's, micro-benchmarked: ~5 µs with Date#toISOString, ~4 µs with
 * the date cached). A VIN needs no escaping ([A-HJ-NPR-Z0-9]).
 */
export function lineOf(r: CopyRow, p: LineProjection): string {
  const out = LINE;
  let o = putAscii(out, 0, '{"vin":"');
  o = putAscii(out, o, r.vin);
  o = putAscii(out, o, '","seq":');
  o = putInt(out, o, r.seq);
  o = putAscii(out, o, ',"recordedAt":"');
  // Years 0-9999 (what validation lets through); beyond, Date#toISOString's own form.
  o = r.recordedAtMs >= -62_167_219_200_000 && r.recordedAtMs < 253_402_300_800_000 ? putIsoMs(out, o, r.recordedAtMs) : putAscii(out, o, new Date(r.recordedAtMs).toISOString());
  out[o++] = 34; // "
  for (const g of ALL) {
    if (!p.categories.includes(g)) continue;
    const v = r[g];
    const G = GROUP_OF[g];
    if (v == null || p.nulled.includes(g)) {
      o = putBytes(out, o, G.nul);
      continue;
    }
    o = putBytes(out, o, G.open);
    let first = true;
    for (const f of G.fields) {
      const x = v[f.name];
      if (x === null || x === undefined) continue;
      if (!first) out[o++] = 44; // ,
      first = false;
      o = putBytes(out, o, f.key);
      o = Number.isFinite(x) ? putNumber(out, o, x) : putAscii(out, o, 'null');
    }
    out[o++] = 125; // }
  }
  out[o++] = 125;
  return out.toString('latin1', 0, o);
}
