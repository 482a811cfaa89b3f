// Read paths: CarData export (keyset-paged, so memory stays flat and each page is a
// short query that never holds a connection or a snapshot for the whole export), the
// latest position, workshop consumption, the authority's OBFCM report, disclosures.
//
// Sharded (SHARD_URLS): every per-vehicle read goes to the vehicle's shard, the report
// reads every shard, disclosures stay in the control database (README "Sharding",
// "Disclosures with shards"): a read whose answer is bounded (workshop consumption, a page
// of the report) is read into memory, its disclosure committed in the control database,
// and only then handed on; a streamed read (an export through a grant, a stream) has its
// disclosure committed before the first row is read.
import type { Db, Queryable } from '../driver/db.ts';
import type { Shards } from '../driver/shards.ts';
import { CONSUMPTION_COLUMNS, FIELD_COLUMNS, GROUP_FLAG, projectColumns, type FieldList, type Group, type StoredValues } from '../../proto/fields.ts';
import { periodCondition } from './rights.ts';
import type { OwnershipPeriod } from '../../proto/ownership.ts';
import type { ObfcmRow, Range, ReadStore, StoredRecord } from '../../proto/records.ts';
import { copyDataStart, ndjsonPlan, rowKey, rowOffsets, sqlLiteral } from '../driver/copy-out.ts';
import { insertGrantDisclosure } from './grants.ts';
import { STO_ERR, StorageError } from '../errors.ts';

/** The store this module implements (proto/records.ts). */
export type ReadRepo = ReadStore;

function clip(p: OwnershipPeriod, r: Range): { from: Date; to: Date | null } | null {
  const from = r.from && r.from > p.from ? r.from : p.from;
  let to: Date | null = p.to;
  if (r.to && (to === null || r.to < to)) to = r.to;
  if (to !== null && to <= from) return null;
  return { from, to };
}

export function groupOf(row: Record<string, unknown>, group: Group): StoredValues | null {
  if (!row[GROUP_FLAG[group]]) return null;
  const out: StoredValues = {};
  for (const c of FIELD_COLUMNS) {
    if (c.group !== group) continue;
    const v = row[c.column];
    if (v !== null && v !== undefined) out[c.jsName] = v as number;
  }
  return out;
}

/**
 * The SQL expression of one NDJSON line: proto3 JSON names, absent fields left out.
 * Plain text concatenation rather than json_build_object: it measured about 1.8× faster
 * here (json_strip_nulls re-parses what json_build_object built). Safe as JSON because
 * every value is a VIN ([A-HJ-NPR-Z0-9]), an integer, a fixed-format time or a finite
 * float8, whose text output (shortest exact form) is a valid JSON number.
 */
function ndjsonExpr(categories: readonly Group[], fields: FieldList = null): string {
  const cols = projectColumns(categories, fields);
  const parts = [
    `'{"vin":"' || vin || '","seq":' || seq || ',"recordedAt":"' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"'` +
      ` || coalesce(',"receivedAt":"' || to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', ',"receivedAt":null')`,
  ];
  for (const g of categories) {
    // concat() skips NULLs, so an absent field contributes nothing; ltrim drops the first comma.
    // Only the projected columns (a field-level grant's) are named: the others are never read.
    const present = cols.filter((c) => c.group === g).map((c) => `',"${c.jsName}":' || ${c.column}`);
    const body = present.length ? `ltrim(concat(${present.join(', ')}), ',')` : `''`;
    parts.push(`CASE WHEN ${GROUP_FLAG[g]} THEN ',"${g}":{' || ${body} || '}' ELSE ',"${g}":null' END`);
  }
  return `${parts.join(' || ')} || '}'`;
}

type KeyedRow = { us: string; seq: number };

/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z). */
const PG_EPOCH_US = 946_684_800_000_000;

/**
 * A time in whole microseconds since the Unix epoch as an exact ISO 8601 literal
 * (`2025-01-01T00:00:00.123456Z`): a keyset page's lower bound, to the microsecond.
 */
export function isoMicros(unixMicros: number): string {
  const ms = Math.floor(unixMicros / 1000);
  return `${new Date(ms).toISOString().slice(0, -1)}${String(unixMicros - ms * 1000).padStart(3, '0')}Z`;
}

/**
 * Telemetry rows of `vin` inside the periods ∩ range, in primary-key order (recorded_at,
 * seq), a page per query. Keyset paging: the time travels as exact microseconds since the
 * epoch, so each page starts exactly after the last one; the next page is asked for before
 * this one is handed on, so the database works while the caller writes. A consumer that
 * stops iterating stops the queries.
 */
async function* keysetPages<R extends KeyedRow>(
  db: Db,
  vin: string,
  periods: readonly OwnershipPeriod[],
  range: Range,
  select: string,
  pageSize: number,
  /** Prepared once per connection under this name; undefined: not prepared. */
  statementName: string | undefined,
): AsyncGenerator<R[]> {
  for (const p of periods) {
    const w = clip(p, range);
    if (!w) continue;
    const page = async (afterUs: number | null, afterSeq: number): Promise<R[]> =>
      (
        await db.query<R>(
          `SELECT (extract(epoch FROM recorded_at) * 1000000)::int8::text AS us, seq, ${select} FROM telemetry
            WHERE vin = $1 AND recorded_at >= $2 AND ($3::timestamptz IS NULL OR recorded_at < $3)
              AND ($4::int8 IS NULL OR (recorded_at, seq) > (timestamptz 'epoch' + $4::int8 * interval '1 microsecond', $5))
            ORDER BY recorded_at, seq LIMIT $6`,
          // After the first page the lower bound is the last key's own time: `(recorded_at,
          // seq) > …` alone excludes no chunk, so every page was planned (and, with a
          // generic plan, started) against every chunk of the range (issue 24).
          [vin, afterUs === null ? w.from : isoMicros(afterUs), w.to, afterUs, afterSeq, pageSize],
          // Prepared once per connection: planning a wide select list costs more than a page.
          statementName,
        )
      ).rows;
    let next: Promise<R[]> | null = page(null, -1);
    while (next) {
      const rows: R[] = await next;
      next = null;
      if (rows.length === pageSize) {
        const last = rows[rows.length - 1]!;
        next = page(Number(last.us), last.seq);
        next.catch(() => {}); // surfaced by the await above when reached
      }
      if (rows.length === 0) break;
      yield rows;
    }
  }
}

/**
 * Most bytes per chunk of the binary COPY export (whole lines). Chunks are handed on as
 * strings below V8's large-object size (128 kB): they live and die in the young
 * generation, so the scavenges their allocation triggers also free the socket buffers
 * read from PostgreSQL. Handed on as Buffers instead, the garbage is off the JS heap and
 * waits for V8's external-memory limit: a 1,000,000-row export's RSS then grew by
 * 50–62 MB, against 20–27 MB this way (bench/README.md).
 */
export const CHUNK_BYTES = 32 * 1024;

/** The last row of a segment: its seq and its recorded_at in µs since 2000-01-01 UTC (copy-out.ts rowKey). */
export type SegmentKey = { seq: number; pgMicros: number };
/** A segment's own time bounds, µs since the Unix epoch: from `loUs`, before `hiUs` (null: the range's end). */
export type SegmentBounds = { loUs: number; hiUs: number | null };

const HOUR_US = 3_600_000_000;
const DAY_MS = 86_400_000;

/**
 * The SELECT of one export segment: `vin`'s rows inside `w` and `bounds`, after `after`, in
 * primary-key order. Literals, not parameters: COPY takes none. The VIN is validated
 * ([A-HJ-NPR-Z0-9]{17}) and quoted anyway; times are ISO strings; the key is two integers.
 *
 * The segment's bounds are plain `recorded_at >= … AND recorded_at < …` constants beside
 * the row comparison `(recorded_at, seq) > (…)`, which alone excludes no chunk: on
 * TimescaleDB each 4,000-row segment of a year's export was planned against all 365 daily
 * chunks (issue 24: 20 + 13.5 ms → 9.4 + 7.0 ms per segment with the lower bound alone).
 * Constants, so the chunks outside are excluded when the statement is planned (asserted by
 * test/integration/history-plans.test.ts). No row after `after` lies before the lower bound.
 */
export function exportSegmentSql(select: string, vin: string, w: { from: Date; to: Date | null }, rows: number, after: SegmentKey | null, bounds?: SegmentBounds): string {
  const keyUs = after ? after.pgMicros + PG_EPOCH_US : null;
  const loUs = Math.max(bounds?.loUs ?? -Infinity, keyUs ?? -Infinity);
  const lit = (us: number) => `timestamptz '${isoMicros(us)}'`;
  return (
    `SELECT ${select} FROM telemetry WHERE vin = ${sqlLiteral(vin)} AND recorded_at >= ${sqlLiteral(w.from.toISOString())}::timestamptz` +
    (w.to ? ` AND recorded_at < ${sqlLiteral(w.to.toISOString())}::timestamptz` : '') +
    (Number.isFinite(loUs) && loUs > w.from.getTime() * 1000 ? ` AND recorded_at >= ${lit(loUs)}` : '') +
    (bounds && bounds.hiUs !== null ? ` AND recorded_at < ${lit(bounds.hiUs)}` : '') +
    (after && keyUs !== null ? ` AND (recorded_at, seq) > (${lit(keyUs)}, ${after.seq}::int8)` : '') +
    ` ORDER BY recorded_at, seq LIMIT ${rows}`
  );
}

/**
 * NDJSON by binary COPY: each segment is one `COPY (SELECT … ORDER BY recorded_at, seq
 * LIMIT n) TO STDOUT (FORMAT binary)`, read whole into memory (about 350 bytes a row) so
 * the connection and its snapshot are released at once, whatever the client's speed. The
 * next segment is asked for as soon as this one's last key is known, while this one's lines
 * are built and written: at most two segments are held. A consumer that stops iterating
 * stops the segments (the one already asked for completes and is dropped).
 */
async function* copyNdjson(
  copyOut: (sql: string, into: Buffer) => Promise<Buffer>,
  vin: string,
  periods: readonly OwnershipPeriod[],
  range: Range,
  categories: readonly Group[],
  segmentRows: number,
  fields: FieldList = null,
  firstRows = segmentRows,
): AsyncGenerator<string> {
  // With `fields`, the COPY's select list holds only those columns (ndjsonPlan).
  const plan = ndjsonPlan(vin, categories, { fields });
  // Two segment buffers, used in turn: one being turned into lines, one being filled.
  const spare = [Buffer.allocUnsafe(plan.maxCopyBytes(segmentRows)), Buffer.allocUnsafe(plan.maxCopyBytes(segmentRows))];
  let turn = 0;
  // Lines are written into one reused buffer, then copied out as an ASCII string.
  const out = Buffer.allocUnsafe(CHUNK_BYTES);
  for (const p of periods) {
    const w = clip(p, range);
    if (!w) continue;
    // Each period's first segment may be smaller (firstRows): its lines go out while the
    // larger ones behind it are read.
    let limit = Math.min(firstRows, segmentRows);
    const segment = (after: SegmentKey | null, b: SegmentBounds): Promise<Buffer> =>
      copyOut(`COPY (${exportSegmentSql(plan.select, vin, w, limit, after, b)}) TO STDOUT (FORMAT binary)`, spare[turn++ % 2]!);
    // After the first segment (which ends with the range: how dense the rows are is not
    // known yet), each segment also ends at a time, so that it is planned against the few
    // chunks it reads rather than every chunk to the range's end: the window is twice what
    // the last full segment spanned; a segment that ends short of its window's end is
    // complete, and the next starts there with the window four times wider (or, after an
    // empty window, ends with the range); the last one ends with the range (or, open-ended,
    // is unbounded once its window would reach past tomorrow). `after` stays in every
    // segment: a window never drops a row.
    const endUs = w.to ? w.to.getTime() * 1000 : null;
    let windowUs = HOUR_US;
    const hiOf = (loUs: number): number | null => {
      const hi = loUs + windowUs;
      return (endUs !== null && hi >= endUs) || (endUs === null && hi > (Date.now() + DAY_MS) * 1000) ? null : hi;
    };
    let after: SegmentKey | null = null;
    let bounds: SegmentBounds = { loUs: w.from.getTime() * 1000, hiUs: null };
    let next: Promise<Buffer> | null = segment(after, bounds);
    while (next) {
      const b: Buffer = await next;
      next = null;
      const rows = rowOffsets(b, copyDataStart(b));
      const last = rows.length > 0 ? rowKey(b, rows[rows.length - 1]!) : null;
      const full = rows.length === limit;
      limit = segmentRows;
      if (last && full) {
        const keyUs = last.pgMicros + PG_EPOCH_US;
        windowUs = Math.max(HOUR_US, 2 * (last.pgMicros - rowKey(b, rows[0]!).pgMicros));
        after = last;
        bounds = { loUs: keyUs, hiUs: hiOf(keyUs) };
        next = segment(after, bounds);
      } else if (bounds.hiUs !== null) {
        // Everything before the window's end is read: go on from there, in a window four
        // times wider while rows were found, else (a gap, or the end of the data) to the
        // range's end at once: one more query, not one per widening.
        if (last) after = last;
        windowUs *= 4;
        bounds = { loUs: bounds.hiUs, hiUs: rows.length > 0 ? hiOf(bounds.hiUs) : null };
        next = segment(after, bounds);
      }
      next?.catch(() => {}); // surfaced by the await above when reached
      for (let i = 0; i < rows.length; ) {
        const { next: at, bytes } = plan.fill(b, rows, i, out);
        i = at;
        yield out.toString('latin1', 0, bytes);
      }
    }
  }
}

/**
 * The OBFCM report over every shard, one page of `pageSize` VINs (in VIN order) at a time:
 * 1. control database: the page's VINs, their ownership periods and, per period, whether
 *    its readings are shareable (the same verdict as the single-database statement);
 * 2. each shard holding some of those VINs, in parallel: per shareable period clipped to
 *    the range, its latest reading (one index probe each), then the latest per VIN;
 * 3. control database: one disclosure per VIN reported, filed with the period's owner,
 *    committed before the page is handed on. A shard that fails fails the page before
 *    anything of it is disclosed or returned.
 * Pages with no reading are skipped; the report ends after the last VIN.
 */
async function* shardedReportPages(
  control: Db,
  shards: ShardRouting,
  range: Range,
  who: { role: string; subject: string; endpoint: string },
  pageSize: number,
): AsyncGenerator<ObfcmRow[]> {
  const cols = CONSUMPTION_COLUMNS.map((c) => c.column);
  const from = range.from ?? new Date(0);
  const to = range.to ?? new Date(8.64e15);
  let after = '';
  for (;;) {
    const page = (await control.query<{ vin: string }>('SELECT vin FROM vehicles WHERE vin > $1 ORDER BY vin LIMIT $2', [after, pageSize])).rows.map((v) => v.vin);
    if (page.length === 0) return;
    after = page[page.length - 1]!;
    const r = await control.query<{ vin: string; owner_id: string; p_from: Date; p_to: Date | null; shareable: boolean }>(
      `WITH periods AS (
         SELECT o.vin, o.owner_id, o.ended_at AS p_to,
                CASE WHEN row_number() OVER (PARTITION BY o.vin ORDER BY o.started_at, o.id) = 1 THEN timestamptz 'epoch' ELSE o.started_at END AS p_from
           FROM ownership_periods o WHERE o.vin = ANY($1::text[])
       )
       SELECT p.vin, p.owner_id, p.p_from, p.p_to, coalesce(s.co2_sharing_allowed, true) AND NOT coalesce(s.restricted, false) AS shareable
         FROM periods p LEFT JOIN LATERAL (
           SELECT c.co2_sharing_allowed, c.restricted FROM consent_events c
            WHERE c.vin = p.vin AND (p.p_to IS NULL OR c.effective_at < p.p_to)
            ORDER BY c.effective_at DESC, c.id DESC LIMIT 1) s ON true`,
      [page],
    );
    // Shareable periods, clipped to the range, grouped by the shard of their VIN.
    const perShard = new Map<number, { vin: string[]; owner: string[]; from: Date[]; to: Date[] }>();
    for (const p of r.rows) {
      if (!p.shareable) continue;
      const f = p.p_from > from ? p.p_from : from;
      const t = p.p_to !== null && p.p_to < to ? p.p_to : to;
      if (t <= f) continue;
      const i = shards.shardOf(p.vin);
      let g = perShard.get(i);
      if (!g) perShard.set(i, (g = { vin: [], owner: [], from: [], to: [] }));
      g.vin.push(p.vin);
      g.owner.push(p.owner_id);
      g.from.push(f);
      g.to.push(t);
    }
    const found = await Promise.all(
      [...perShard].map(async ([i, g]) =>
        (
          await probeReadings(shards.db(i), (q) =>
            q.query<Record<string, unknown>>(
              // $5/$6, the range, as constants beside the per-period bounds: the chunks outside it are excluded when planning.
              `SELECT DISTINCT ON (v.vin) v.vin, v.owner_id, x.recorded_at, ${cols.map((c) => 'x.' + c).join(', ')}
                 FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS v(vin, owner_id, p_from, p_to)
                 CROSS JOIN LATERAL (
                   SELECT o.recorded_at, o.seq, ${cols.map((c) => 'o.' + c).join(', ')} FROM obfcm_readings o
                    WHERE o.vin = v.vin AND o.recorded_at >= $5 AND o.recorded_at < $6 AND o.recorded_at >= v.p_from AND o.recorded_at < v.p_to
                    ORDER BY o.recorded_at DESC, o.seq DESC LIMIT 1) x
                ORDER BY v.vin, x.recorded_at DESC, x.seq DESC`,
              [g.vin, g.owner, g.from, g.to, from, to],
            ),
          )
        ).rows,
      ),
    );
    const rows = found.flat().sort((a, b) => ((a.vin as string) < (b.vin as string) ? -1 : 1));
    if (rows.length > 0) {
      await control.query(
        `INSERT INTO disclosures (vin, role, subject, endpoint, categories, range_from, range_to, owner_id)
         SELECT v.vin, $2, $3, $4, ARRAY['consumption'], $5, $6, v.owner_id FROM unnest($1::text[], $7::text[]) AS v(vin, owner_id)`,
        [rows.map((x) => x.vin), who.role, who.subject, who.endpoint, from, to, rows.map((x) => x.owner_id)],
      );
      yield rows.map((row) => {
        const values: StoredValues = {};
        for (const c of CONSUMPTION_COLUMNS) {
          const v = row[c.column];
          if (v !== null && v !== undefined) values[c.jsName] = v as number;
        }
        return { vin: row.vin as string, recordedAt: row.recorded_at as Date, values };
      });
    }
    if (page.length < pageSize) return;
  }
}

/**
 * Runs `fn` in a transaction that turns off TimescaleDB's runtime chunk exclusion
 * (`SET LOCAL`, this transaction only). Whatever `db.kind` says: the API's own pool is never
 * migrated, so it does not know it runs on TimescaleDB; where the extension is absent the
 * setting is a placeholder PostgreSQL accepts and nothing reads. In the report's
 * per-VIN probe (LATERAL … LIMIT 1) the period's bounds are parameters of each loop, so
 * with it on, every one of the 1,000 loops of a page re-checked every chunk of the range
 * against them before probing: measured on the benchmark's fleet (bench/parts/history.ts,
 * 365 days, 53 weekly chunks, a page of 1,000 VINs), 2.9 s and 3.9 s per page with it,
 * 0.32 s and 0.46 s without (load average 15 on 2 cores). The chunks outside the report's
 * range are still excluded when planning (constant bounds). `jit` stays as configured: the
 * page's estimated cost (about 12,000) is far below jit_above_cost, so it never compiles.
 */
export async function probeReadings<R>(db: Db, fn: (q: Queryable) => Promise<R>): Promise<R> {
  return db.transaction(async (tx) => {
    await tx.query('SET LOCAL timescaledb.enable_runtime_exclusion = off');
    return fn(tx);
  });
}

/** The OBFCM report's next page of VINs after $1, $2 of them, in VIN order (ownership_by_vin). */
export const OBFCM_VIN_PAGE_SQL = 'SELECT DISTINCT vin FROM ownership_periods WHERE vin > $1 ORDER BY vin LIMIT $2';

/**
 * One page of the OBFCM report in one database, its disclosures written by the same
 * statement: $1/$2 the range, $3-$5 who reads, $6 the page's VINs. Per ownership period of
 * those VINs, the consent state in force at its end decides whether it is shareable; per
 * shareable period, its latest reading inside the range is one backward probe of the primary
 * key (vin, recorded_at, seq) through LATERAL … LIMIT 1; per VIN the latest of those is
 * reported, and disclosed to that period's owner. The constant bounds $1/$2 beside the
 * per-period ones let TimescaleDB exclude the chunks outside the range when planning.
 * Its plan is asserted by test/integration/history-plans.test.ts.
 */
export function obfcmPageSql(): string {
  const cols = CONSUMPTION_COLUMNS.map((c) => c.column);
  return `WITH periods AS (
     SELECT o.vin, o.owner_id, o.ended_at AS p_to,
            CASE WHEN row_number() OVER (PARTITION BY o.vin ORDER BY o.started_at, o.id) = 1 THEN timestamptz 'epoch' ELSE o.started_at END AS p_from
       FROM ownership_periods o WHERE o.vin = ANY($6::text[])
   ), verdict AS (
     -- The state in force for the period: its last event before the period ended
     -- (a transfer's reset comes after the end); none: the defaults.
     SELECT p.*, coalesce(s.co2_sharing_allowed, true) AND NOT coalesce(s.restricted, false) AS shareable
       FROM periods p LEFT JOIN LATERAL (
         SELECT c.co2_sharing_allowed, c.restricted FROM consent_events c
          WHERE c.vin = p.vin AND (p.p_to IS NULL OR c.effective_at < p.p_to)
          ORDER BY c.effective_at DESC, c.id DESC LIMIT 1) s ON true
   ), page AS (
     SELECT DISTINCT ON (v.vin) v.vin, v.owner_id, x.recorded_at, ${cols.map((c) => 'x.' + c).join(', ')}
       FROM verdict v CROSS JOIN LATERAL (
         SELECT o.recorded_at, o.seq, ${cols.map((c) => 'o.' + c).join(', ')} FROM obfcm_readings o
          WHERE o.vin = v.vin AND o.recorded_at >= $1 AND o.recorded_at < $2
            AND o.recorded_at >= greatest(v.p_from, $1) AND o.recorded_at < least(coalesce(v.p_to, $2), $2)
          ORDER BY o.recorded_at DESC, o.seq DESC LIMIT 1) x
      WHERE v.shareable
      ORDER BY v.vin, x.recorded_at DESC, x.seq DESC
   ), logged AS (
     INSERT INTO disclosures (vin, role, subject, endpoint, categories, range_from, range_to, owner_id)
     SELECT vin, $3, $4, $5, ARRAY['consumption'], $1, $2, owner_id FROM page
   )
   SELECT * FROM page ORDER BY vin`;
}

/** What the read paths need of the shards: where a VIN lives, and every shard. */
export type ShardRouting = Pick<Shards, 'sharded' | 'count' | 'db' | 'dbOf' | 'shardOf'>;

/**
 * `control` is the control database (disclosures, ownership, consent); `shards`, when sharded,
 * holds the telemetry-side tables. Without `shards` (or with one that is not sharded) the
 * telemetry is in `control` itself, and every read runs there, joined in one statement.
 */
export function createReadRepo(control: Db, shards?: ShardRouting): ReadRepo {
  const sharded = shards?.sharded === true ? shards : null;
  /** The database holding `vin`'s telemetry. */
  const dbOf = (vin: string): Db => (sharded ? sharded.dbOf(vin) : control);
  return {
    async *ndjson(vin, periods, range, categories, pageSize, fields = null) {
      const db = dbOf(vin);
      if (db.copy) {
        const copy = db.copy;
        // 10,000 rows a segment: against 4,000, 129-138k → 164-171k rows/s in the process
        // (216,000 rows with every field, tmp profile, quiet machine): a third of the time
        // was spent waiting for the next segment's planning and first rows.
        // A caller that names no segment size gets a first one of 2,500 rows: the first
        // bytes leave sooner (HTTP downloads start while the next 10,000 are read).
        yield* copyNdjson((sql, into) => copy.copyOut(sql, into), vin, periods, range, categories, pageSize ?? 10_000, fields, pageSize ?? 2_500);
        return;
      }
      // A field-level read gets no prepared statement of its own: its select list is one of many.
      const pages = keysetPages<KeyedRow & { j: string }>(db, vin, periods, range, `${ndjsonExpr(categories, fields)} AS j`, pageSize ?? 500, fields ? undefined : `cardata_ndjson_${categories.join('_')}`);
      for await (const rows of pages) {
        let chunk = '';
        for (const row of rows) chunk += row.j + '\n';
        yield chunk;
      }
    },
    async *records(vin, periods, range, categories, pageSize = 1000, fields = null) {
      // Only the projected columns are selected: groupOf leaves out what the row lacks.
      const cols = projectColumns(categories, fields).map((c) => c.column);
      const select = ['recorded_at', 'received_at', ...categories.map((g) => GROUP_FLAG[g]), ...cols].join(', ');
      const pages = keysetPages<KeyedRow & Record<string, unknown>>(dbOf(vin), vin, periods, range, select, pageSize, fields ? undefined : `cardata_records_${categories.join('_')}`);
      for await (const rows of pages) {
        for (const row of rows) {
          const rec: StoredRecord = { vin, seq: row.seq, recordedAt: row.recorded_at as Date, receivedAt: (row.received_at as Date | null) ?? null };
          for (const g of categories) rec[g] = groupOf(row, g);
          yield rec;
        }
      }
    },
    async latestLocation(vin, periods) {
      const db = dbOf(vin);
      for (const p of [...periods].reverse()) {
        const r = await db.query<Record<string, unknown>>(
          `SELECT seq, recorded_at, has_location, latitude, longitude, heading_deg, altitude_m, accuracy_m FROM telemetry
            WHERE vin = $1 AND has_location AND recorded_at >= $2 AND ($3::timestamptz IS NULL OR recorded_at < $3)
            ORDER BY recorded_at DESC, seq DESC LIMIT 1`,
          [vin, p.from, p.to],
        );
        const row = r.rows[0];
        if (row) return { recordedAt: row.recorded_at as Date, seq: row.seq as number, location: groupOf(row, 'location') ?? {} };
      }
      return null;
    },
    async consumptionForWorkshop(vin, period, range, d, limit, fields = null) {
      const w = clip({ ownerId: '', startedAt: period.from, ...period }, range);
      if (!w) return [];
      // A field-level grant's consumption fields only: the others are not selected.
      const cols = projectColumns(['consumption'], fields).map((c) => c.column);
      const read = async (q: Queryable) => {
        const r = await q.query<Record<string, unknown>>(
          `SELECT * FROM (SELECT seq, recorded_at, has_consumption, ${cols.join(', ')} FROM telemetry
             WHERE vin = $1 AND has_consumption AND recorded_at >= $2 AND ($3::timestamptz IS NULL OR recorded_at < $3)
             ORDER BY recorded_at DESC, seq DESC LIMIT $4) x ORDER BY recorded_at, seq`,
          [vin, w.from, w.to, limit],
        );
        return r.rows.map((row) => ({ recordedAt: row.recorded_at as Date, seq: row.seq as number, consumption: groupOf(row, 'consumption') ?? {} }));
      };
      const disclose = async (tx: Queryable) => {
        if (d.grantId) {
          const filed = await insertGrantDisclosure(tx, { grantId: d.grantId, role: d.role, subject: d.subject, endpoint: d.endpoint, categories: d.categories, fields: d.fields ?? null, rangeFrom: w.from, rangeTo: w.to });
          if (!filed) throw new StorageError(STO_ERR.NOT_FOUND, 'the grant is no longer active, or processing is restricted');
        } else {
          await tx.query(
            'INSERT INTO disclosures (vin, role, subject, endpoint, categories, range_from, range_to, owner_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
            [d.vin, d.role, d.subject, d.endpoint, d.categories, w.from, w.to, d.ownerId ?? null],
          );
        }
      };
      if (!sharded) {
        // One database: the disclosure and the read in one transaction.
        return control.transaction(async (tx) => {
          await disclose(tx);
          return read(tx);
        });
      }
      // Sharded: read on the vehicle's shard into memory (at most `limit` rows), then commit
      // the disclosure (and the grant re-check) in the control database, and only then
      // return the rows. A read that fails discloses nothing, as nothing left the gateway;
      // a disclosure that fails (grant ended, control database down) returns nothing.
      const rows = await read(dbOf(vin));
      await control.transaction(disclose);
      return rows;
    },
    async *obfcmReportPages(range, who, pageSize = 1000) {
      if (sharded) {
        yield* shardedReportPages(control, sharded, range, who, pageSize);
        return;
      }
      const db = control;
      const from = range.from ?? new Date(0);
      const to = range.to ?? new Date(8.64e15);
      let after = '';
      for (;;) {
        // A page of VINs first (ownership_by_vin), then per VIN and shareable period one
        // backward index probe for its latest reading: the time grows with the number of
        // vehicles, not with their readings (issue 24; a join over all readings sorted the
        // 648k of a dense vehicle to keep one, and over 365 days flipped to a sequential
        // scan of every chunk, per page). Pages without a reading are skipped.
        const vins = (await db.query<{ vin: string }>(OBFCM_VIN_PAGE_SQL, [after, pageSize])).rows.map((x) => x.vin);
        if (vins.length === 0) return;
        after = vins[vins.length - 1]!;
        const r = await probeReadings(db, (q) => q.query<Record<string, unknown>>(obfcmPageSql(), [from, to, who.role, who.subject, who.endpoint, vins]));
        if (r.rows.length > 0) {
          yield r.rows.map((row) => {
            const values: StoredValues = {};
            for (const c of CONSUMPTION_COLUMNS) {
              const v = row[c.column];
              if (v !== null && v !== undefined) values[c.jsName] = v as number;
            }
            return { vin: row.vin as string, recordedAt: row.recorded_at as Date, values };
          });
        }
        if (vins.length < pageSize) return;
      }
    },
    async obfcmReport(range, who) {
      const out: ObfcmRow[] = [];
      for await (const page of this.obfcmReportPages(range, who)) out.push(...page);
      return out;
    },
    async disclosures(vin, periods) {
      if (periods.length === 0) return [];
      // Filed with this owner, or (rows from before disclosures named their owner) made during their periods.
      const cond = periodCondition(periods, 3, 'at');
      const r = await control.query<{ at: Date; role: string; subject: string; endpoint: string; categories: string[]; fields: string[] | null; range_from: Date | null; range_to: Date | null; owner_id: string | null; grant_id: string | null }>(
        `SELECT at, role, subject, endpoint, categories, fields, range_from, range_to, owner_id, grant_id::text AS grant_id FROM disclosures
          WHERE vin = $1 AND (owner_id = $2 OR (owner_id IS NULL AND ${cond.sql})) ORDER BY at, id`,
        [vin, periods[0]!.ownerId, ...cond.params],
      );
      return r.rows.map((x) => ({
        vin,
        at: x.at,
        role: x.role,
        subject: x.subject,
        endpoint: x.endpoint,
        categories: x.categories,
        fields: x.fields,
        rangeFrom: x.range_from,
        rangeTo: x.range_to,
        ownerId: x.owner_id,
        grantId: x.grant_id,
      }));
    },
  };
}
