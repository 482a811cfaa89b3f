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
import type { LineProjection } from './stream-log.ts';

const ALL: readonly Group[] = ['technical', 'consumption', 'location'];
/** Per category, its fields in the contract's order: the name to read, and its JSON key with the colon. */
const FIELDS_OF: Record<Group, readonly { name: string; key: string }[]> = {
  technical: fieldsOf('technical'),
  consumption: fieldsOf('consumption'),
  location: fieldsOf('location'),
};
function fieldsOf(g: Group): { name: string; key: string }[] {
  return FIELD_COLUMNS.filter((c) => c.group === g).map((c) => ({ name: c.jsName, key: `"${c.jsName}":` }));
}

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
  type Keys = Map<string, CopyRow | typeof AMBIGUOUS>;
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
        const k = `${r.recordedAtMs}:${r.seq}`;
        if (v.has(k)) v.set(k, AMBIGUOUS);
        else {
          v.set(k, r);
          rows++;
        }
      }
      while (rows > maxRows && byTx.size > 0) dropTx(byTx.keys().next().value!);
    },
    get(tx, vin, ms, seq) {
      return byTx.get(tx)?.get(vin)?.get(`${ms}:${seq}`) ?? undefined;
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
 * Written out directly: JSON.stringify of an object built per record cost about a fifth of
 * the gateway's time with 1,000 streams in the benchmark. A VIN needs no escaping
 * ([A-HJ-NPR-Z0-9]), and String() of a finite double is its JSON number.
 */
export function lineOf(r: CopyRow, p: LineProjection): string {
  let s = `{"vin":"${r.vin}","seq":${r.seq},"recordedAt":"${new Date(r.recordedAtMs).toISOString()}"`;
  for (const g of ALL) {
    if (!p.categories.includes(g)) continue;
    const v = r[g];
    if (v == null || p.nulled.includes(g)) {
      s += `,"${g}":null`;
      continue;
    }
    s += `,"${g}":{`;
    let first = true;
    for (const f of FIELDS_OF[g]) {
      const x = v[f.name];
      if (x === null || x === undefined) continue;
      s += (first ? f.key : `,${f.key}`) + (Number.isFinite(x) ? String(x) : 'null');
      first = false;
    }
    s += '}';
  }
  return `${s}}`;
}
