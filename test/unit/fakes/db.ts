// An in-memory `Db` (storage/driver/db.ts) for unit tests of the batch writer. It honours the
// contract the writer relies on: one statement per query() call, all of its rows or none
// (a failing statement stores nothing), ON CONFLICT DO NOTHING (a row already there is
// not inserted again, and not counted), the result row counting what each table took.
// The writer's statement is recognised by its tables (telemetry, obfcm_readings,
// quarantine); its unnest parameters are PostgreSQL binary arrays, decoded here as the
// server's array_recv would.
//
// The test controls the server: `hold()` makes statements wait until released (a slow
// or busy database), `failNext()` makes the next statements fail with a given error
// (transient like ECONNREFUSED, or a refusal like 23502), `refuseVin()` makes every
// statement that carries that VIN fail (bad data the database refuses).
import type { Db, QueryResult, Queryable } from '../../../storage/driver/db.ts';

export interface FakeStatement {
  tables: string[];
  telemetryRows: number;
  quarantineRows: number;
  name: string | undefined;
}

interface Held {
  release: () => void;
}

/** Decodes a one-dimensional PostgreSQL binary array (array_send format) into element byte slices. */
function binaryArray(buf: Buffer): (Buffer | null)[] {
  const ndim = buf.readInt32BE(0);
  if (ndim !== 1) throw new Error(`fake db: ${ndim}-dimensional array`);
  const n = buf.readInt32BE(12);
  const out: (Buffer | null)[] = [];
  let pos = 20;
  for (let i = 0; i < n; i++) {
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len < 0) out.push(null);
    else {
      out.push(buf.subarray(pos, pos + len));
      pos += len;
    }
  }
  return out;
}

const int8 = (b: Buffer | null): number => (b === null ? NaN : b.readInt32BE(0) * 4294967296 + b.readUInt32BE(4));

/** Parameters of one `x AS (INSERT INTO table … unnest($a, $b, …))` part, in order. */
function cteParams(sql: string, table: string): number[] | null {
  const m = new RegExp(`INSERT INTO ${table} \\([^)]*\\)[\\s\\S]*?FROM unnest\\(([^)]*)\\)`).exec(sql);
  if (!m) return null;
  return [...m[1]!.matchAll(/\$(\d+)/g)].map((x) => Number(x[1]) - 1);
}

export function createFakeDb() {
  const telemetry = new Map<string, { vin: string; seq: number; recordedAtMs: number }>();
  const obfcm = new Set<string>();
  const quarantine = new Map<string, { vin: string | null; reason: string }>();
  const statements: FakeStatement[] = [];
  let holding = false;
  const held: Held[] = [];
  const failures: unknown[] = [];
  const refused = new Set<string>();
  let inFlight = 0;
  let maxInFlight = 0;
  let inFlightRows = 0;
  let maxInFlightRows = 0;

  async function execute(sql: string, params: readonly unknown[] = [], name?: string): Promise<QueryResult<{ t: number; o: number; q: number }>> {
    const tel = cteParams(sql, 'telemetry');
    const obf = cteParams(sql, 'obfcm_readings');
    const qua = cteParams(sql, 'quarantine');
    if (!tel && !obf && !qua) throw new Error(`fake db: unexpected statement ${sql.slice(0, 80)}`);
    const telRows = tel
      ? (() => {
          const vins = binaryArray(params[tel[0]!] as Buffer).map((b) => b!.toString('latin1'));
          const ms = binaryArray(params[tel[1]!] as Buffer).map(int8);
          const seqs = binaryArray(params[tel[2]!] as Buffer).map(int8);
          return vins.map((vin, i) => ({ vin, recordedAtMs: ms[i]!, seq: seqs[i]! }));
        })()
      : [];
    const obfRows = obf
      ? (() => {
          const vins = binaryArray(params[obf[0]!] as Buffer).map((b) => b!.toString('latin1'));
          const seqs = binaryArray(params[obf[2]!] as Buffer).map(int8);
          return vins.map((vin, i) => `${vin}:${seqs[i]}`);
        })()
      : [];
    const quaRows = qua
      ? (() => {
          const vins = params[qua[0]!] as (string | null)[];
          const reasons = params[qua[1]!] as string[];
          const keys = params[qua[7]!] as Buffer[];
          return vins.map((vin, i) => ({ vin, reason: reasons[i]!, key: keys[i]!.toString('hex') }));
        })()
      : [];
    const rows = telRows.length + quaRows.length;
    statements.push({
      tables: [tel && 'telemetry', obf && 'obfcm_readings', qua && 'quarantine'].filter((x): x is string => !!x),
      telemetryRows: telRows.length,
      quarantineRows: quaRows.length,
      name,
    });
    inFlight++;
    inFlightRows += rows;
    maxInFlight = Math.max(maxInFlight, inFlight);
    maxInFlightRows = Math.max(maxInFlightRows, inFlightRows);
    try {
      if (holding) await new Promise<void>((release) => held.push({ release }));
      else await new Promise<void>((r) => setImmediate(r));
      if (failures.length) throw failures.shift();
      const bad = [...telRows.map((r) => r.vin), ...quaRows.map((r) => r.vin)].find((v) => v !== null && refused.has(v));
      if (bad) throw Object.assign(new Error(`null value in column violates not-null constraint (vin ${bad})`), { code: '23502' });
      // All or nothing: only now, after every check, does the statement change anything.
      let t = 0;
      let o = 0;
      let q = 0;
      for (const r of telRows) {
        const k = `${r.vin}:${r.seq}:${r.recordedAtMs}`;
        if (!telemetry.has(k)) {
          telemetry.set(k, r);
          t++;
        }
      }
      for (const k of obfRows) {
        if (!obfcm.has(k)) {
          obfcm.add(k);
          o++;
        }
      }
      for (const r of quaRows) {
        if (!quarantine.has(r.key)) {
          quarantine.set(r.key, { vin: r.vin, reason: r.reason });
          q++;
        }
      }
      return { rows: [{ t, o, q }], rowCount: 1 };
    } finally {
      inFlight--;
      inFlightRows -= rows;
    }
  }

  const db: Db = {
    kind: 'postgres',
    // No COPY: the writer takes its unnest path, which this fake decodes.
    copy: null,
    query: execute as Queryable['query'],
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return fn({ query: execute as Queryable['query'] });
    },
    async listen() {
      return async () => {};
    },
    stats: () => ({ total: 1, idle: inFlight ? 0 : 1, waiting: 0 }),
    async close() {},
  };

  return {
    db,
    /** Stored telemetry rows, as `vin:seq`, sorted. */
    telemetry: () => [...telemetry.values()].map((r) => `${r.vin}:${r.seq}`).sort(),
    obfcm: () => [...obfcm].sort(),
    quarantine: () => [...quarantine.values()],
    statements,
    /** From now on statements wait for release(). */
    hold() {
      holding = true;
    },
    /** Lets every waiting statement go on; with `keepHolding`, later ones wait again. */
    release(keepHolding = false) {
      holding = keepHolding;
      for (const h of held.splice(0)) h.release();
    },
    /** Statements waiting in hold(). */
    waiting: () => held.length,
    failNext(...errors: unknown[]) {
      failures.push(...errors);
    },
    refuseVin(vin: string) {
      refused.add(vin);
    },
    maxInFlight: () => maxInFlight,
    maxInFlightRows: () => maxInFlightRows,
  };
}

export type FakeDb = ReturnType<typeof createFakeDb>;
