// Moving one bucket to another shard, offline for that bucket's vehicles only (README
// "Sharding", "Moving a bucket"). The steps, each safe to run again after a crash:
//
//  1. mark the bucket 'moving' in the control database and NOTIFY: every gateway holds new
//     writes of its vehicles (PUBACKs wait, the vehicles keep their messages);
//  2. drain: wait for writes the gateways had already taken to commit on the old shard;
//  3. copy every row of the bucket's VINs from the old shard to the new one, with
//     ON CONFLICT DO NOTHING (a copy run twice adds nothing);
//  4. switch the map (new shard, 'active') and NOTIFY, in one transaction: the gateways
//     release the held writes to the new shard, reads go there from now on;
//  5. on every other shard, copy again whatever of those VINs is still there (a write that
//     committed late) and delete exactly the rows copied, until none is left.
//
// Nothing is lost: a row leaves a shard only after the same key is committed on the new
// one. Nothing is duplicated: the new shard's primary keys take each key once, and after
// step 5 no other shard has a row of those VINs. Stream log entries are not copied (their
// positions are transaction ids of the old shard): the rows copied are logged anew on the
// new shard, as they are inserted there. Open streams of a moved vehicle end (reason
// `moved`) and resume by time (?from=) on the new shard.
import type { Db } from '../driver/db.ts';
import { STO_ERR, StorageError } from '../errors.ts';
import { BUCKETS, SHARD_MAP_CHANNEL, bucketOf, type Shards } from '../driver/shards.ts';
import { summaryUpsert } from '../repos/summaries.ts';

export interface MoveOptions {
  /** How long to wait after marking the bucket 'moving' for in-flight writes to commit, ms. */
  drainMs: number;
  /** Rows per copied page. Default 5000. */
  pageRows?: number;
  /** Progress, one line per step. */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface TableCounts {
  telemetry: number;
  obfcm_readings: number;
  quarantine: number;
}

export interface MoveResult {
  bucket: number;
  from: number | null;
  to: number;
  vins: number;
  copied: TableCounts;
  deleted: TableCounts & { stream_log: number };
  cleanupRounds: number;
}

const zero = (): TableCounts => ({ telemetry: 0, obfcm_readings: 0, quarantine: 0 });

/** The VINs of `bucket` with rows on `src`, and those the control database knows. */
async function bucketVins(control: Db, src: Db, bucket: number): Promise<string[]> {
  const vins = new Set<string>();
  for (const r of (await control.query<{ vin: string }>('SELECT vin FROM vehicles')).rows) if (bucketOf(r.vin) === bucket) vins.add(r.vin);
  // Every VIN with rows on the shard, by a skip scan of each table's (vin, …) index, so
  // rows of a VIN the control database no longer lists move too.
  for (const table of ['telemetry', 'obfcm_readings', 'quarantine']) {
    const rows = await src.query<{ vin: string }>(
      `WITH RECURSIVE v AS (
         (SELECT vin FROM ${table} WHERE vin IS NOT NULL ORDER BY vin LIMIT 1)
         UNION ALL
         SELECT (SELECT t.vin FROM ${table} t WHERE t.vin > v.vin ORDER BY t.vin LIMIT 1) FROM v WHERE v.vin IS NOT NULL)
       SELECT vin FROM v WHERE vin IS NOT NULL`,
    );
    for (const r of rows.rows) if (bucketOf(r.vin) === bucket) vins.add(r.vin);
  }
  return [...vins].sort();
}

interface Page {
  /** The rows as a JSON array, as PostgreSQL wrote it (never parsed here: bigint stays exact). */
  json: string;
  n: number;
  last: { a: string; b: string } | null;
}

/**
 * Copies (and with `remove`, then deletes from src) every row of `vins` in one table, page
 * by page. The rows travel as JSON (to_jsonb / jsonb_populate_recordset): exact for
 * float8 (shortest round-trip text), timestamptz (microseconds) and bytea (hex).
 */
async function transferTable(src: Db, dst: Db, table: keyof TableCounts, vins: readonly string[], remove: boolean, pageRows: number): Promise<{ copied: number; deleted: number }> {
  let copied = 0;
  let deleted = 0;
  const q = table === 'quarantine';
  for (const vin of vins) {
    let cursor: { a: string; b: string } | null = null;
    for (;;) {
      const page: Page = await (async () => {
        const r = await src.query<{ rows: string | null; n: number; a: string | null; b: string | null }>(
          q
            ? `SELECT (jsonb_agg(to_jsonb(p) - 'id'))::text AS rows, count(*)::int AS n, max(p.id)::text AS a, '' AS b FROM (
                 SELECT * FROM quarantine WHERE vin = $1 AND id > $2::bigint ORDER BY id LIMIT $3) p`
            : `SELECT (jsonb_agg(to_jsonb(p)))::text AS rows, count(*)::int AS n, (array_agg(p.recorded_at::text ORDER BY p.recorded_at DESC, p.seq DESC))[1] AS a,
                      (array_agg(p.seq::text ORDER BY p.recorded_at DESC, p.seq DESC))[1] AS b FROM (
                 SELECT * FROM ${table} WHERE vin = $1 AND (recorded_at, seq) > ($2::timestamptz, $3::bigint) ORDER BY recorded_at, seq LIMIT $4) p`,
          q ? [vin, cursor?.a ?? '0', pageRows] : [vin, cursor?.a ?? '-infinity', cursor?.b ?? '-9223372036854775808', pageRows],
        );
        const row = r.rows[0];
        return { json: row?.rows ?? '[]', n: row?.n ?? 0, last: row?.a ? { a: row.a, b: row.b ?? '' } : null };
      })();
      if (page.n === 0) break;
      const json = page.json;
      if (table === 'telemetry') {
        // The rows this inserts go into dst's stream log too, in the same transaction (as the
        // batch writer logs its rows): on dst, ?from= and resumes find them like rows
        // written there. (Positions in src's log mean nothing on dst.)
        const r = await dst.query<{ n: number }>(
          `WITH t AS (INSERT INTO telemetry SELECT * FROM jsonb_populate_recordset(NULL::telemetry, $1::jsonb) ON CONFLICT DO NOTHING RETURNING *),
                l AS (INSERT INTO stream_log (vin, ats, seqs) SELECT vin, array_agg(recorded_at ORDER BY recorded_at, seq), array_agg(seq ORDER BY recorded_at, seq) FROM t GROUP BY vin),
                h AS (${summaryUpsert('t')})
           SELECT count(*)::int AS n FROM t`,
          [json],
        );
        copied += r.rows[0]?.n ?? 0;
      } else {
        copied += (
          await dst.query(
            q
              ? `INSERT INTO quarantine (received_at, vin, reason, detail, seq, recorded_at, payload, payload_bytes, dedupe_key)
                 SELECT received_at, vin, reason, detail, seq, recorded_at, payload, payload_bytes, dedupe_key
                 FROM jsonb_populate_recordset(NULL::quarantine, $1::jsonb) ON CONFLICT (dedupe_key) DO NOTHING`
              : `INSERT INTO ${table} SELECT * FROM jsonb_populate_recordset(NULL::${table}, $1::jsonb) ON CONFLICT DO NOTHING`,
            [json],
          )
        ).rowCount;
      }
      if (remove) {
        // Only keys now committed on dst (the INSERT above returned): nothing is lost.
        deleted += (
          await src.query(
            q
              ? `DELETE FROM quarantine t USING jsonb_populate_recordset(NULL::quarantine, $1::jsonb) r WHERE t.dedupe_key = r.dedupe_key`
              : `DELETE FROM ${table} t USING jsonb_populate_recordset(NULL::${table}, $1::jsonb) r WHERE t.vin = r.vin AND t.recorded_at = r.recorded_at AND t.seq = r.seq`,
            [json],
          )
        ).rowCount;
      }
      cursor = page.last;
      if (page.n < pageRows || !cursor) break;
    }
  }
  return { copied, deleted };
}

async function transfer(src: Db, dst: Db, vins: readonly string[], remove: boolean, pageRows: number): Promise<{ copied: TableCounts; deleted: TableCounts & { stream_log: number }; found: number }> {
  const copied = zero();
  const deleted = { ...zero(), stream_log: 0 };
  let found = 0;
  for (const table of ['telemetry', 'obfcm_readings', 'quarantine'] as const) {
    const r = await transferTable(src, dst, table, vins, remove, pageRows);
    copied[table] += r.copied;
    deleted[table] += r.deleted;
    found += remove ? r.deleted : r.copied;
  }
  if (remove && vins.length) {
    deleted.stream_log = (await src.query('DELETE FROM stream_log WHERE vin = ANY($1)', [vins])).rowCount;
    // Their rows have left this shard: so have their hourly summaries (the copies above
    // summed what they inserted on dst).
    await src.query('DELETE FROM telemetry_hourly WHERE vin = ANY($1)', [vins]);
  }
  return { copied, deleted, found };
}

function add(a: TableCounts, b: TableCounts): void {
  a.telemetry += b.telemetry;
  a.obfcm_readings += b.obfcm_readings;
  a.quarantine += b.quarantine;
}

/** Moves `bucket` to shard `to` (see the top of this file). Running it again finishes an interrupted move. */
export async function moveBucket(control: Db, shards: Shards, bucket: number, to: number, opts: MoveOptions): Promise<MoveResult> {
  if (!shards.sharded) throw new StorageError(STO_ERR.SHARD_MAP, 'SHARD_URLS is not set: there is nothing to move');
  if (!Number.isInteger(bucket) || bucket < 0 || bucket >= BUCKETS) throw new RangeError(`bucket must be 0-${BUCKETS - 1}`);
  if (!Number.isInteger(to) || to < 0 || to >= shards.count) throw new RangeError(`shard must be 0-${shards.count - 1} (SHARD_URLS order)`);
  const log = opts.log ?? (() => {});
  const pageRows = opts.pageRows ?? 5000;
  const dst = shards.db(to);

  // 1. Mark (unless the bucket is already on `to`: then only the clean-up is left).
  const from = await control.transaction(async (tx) => {
    const cur = (await tx.query<{ shard: number; state: string }>('SELECT shard, state FROM shard_map WHERE bucket = $1 FOR UPDATE', [bucket])).rows[0];
    if (!cur) throw new StorageError(STO_ERR.SHARD_MAP, `bucket ${bucket} is not in shard_map`);
    if (cur.shard === to && cur.state === 'active') return null;
    await tx.query("UPDATE shard_map SET state = 'moving' WHERE bucket = $1", [bucket]);
    await tx.query('SELECT pg_notify($1, $2)', [SHARD_MAP_CHANNEL, String(bucket)]);
    return cur.shard;
  });
  const copied = zero();
  const deleted = { ...zero(), stream_log: 0 };
  let vins: string[];
  if (from !== null && from !== to) {
    log('shard_move_marked', { bucket, from, to });
    // 2. Drain: the gateways heard the NOTIFY within milliseconds; what they had taken
    // before commits within the writer's own latency.
    await new Promise((r) => setTimeout(r, opts.drainMs));
    const src = shards.db(from);
    vins = await bucketVins(control, src, bucket);
    // 3. Copy.
    const c = await transfer(src, dst, vins, false, pageRows);
    add(copied, c.copied);
    log('shard_move_copied', { bucket, vins: vins.length, ...c.copied });
  } else {
    vins = [];
  }
  // 4. Switch (and resume the held writes, on the new shard).
  await control.transaction(async (tx) => {
    await tx.query("UPDATE shard_map SET shard = $2, state = 'active' WHERE bucket = $1", [bucket, to]);
    await tx.query('SELECT pg_notify($1, $2)', [SHARD_MAP_CHANNEL, String(bucket)]);
  });
  log('shard_move_switched', { bucket, to });
  // 5. Clean up every other shard: copy what is still there, delete exactly that.
  let rounds = 0;
  const all = new Set(vins);
  for (let i = 0; i < shards.count; i++) {
    if (i === to) continue;
    const src = shards.db(i);
    for (const v of await bucketVins(control, src, bucket)) all.add(v);
  }
  const list = [...all].sort();
  for (let round = 1; round <= 10; round++) {
    rounds = round;
    let found = 0;
    for (let i = 0; i < shards.count; i++) {
      if (i === to) continue;
      const r = await transfer(shards.db(i), dst, list, true, pageRows);
      add(copied, r.copied);
      add(deleted, r.deleted);
      deleted.stream_log += r.deleted.stream_log;
      found += r.found;
    }
    if (found === 0) break;
    if (round === 10) throw new StorageError(STO_ERR.SHARD_MAP, `bucket ${bucket}: rows keep arriving on other shards after the switch; is a gateway running with an old SHARD_URLS?`);
  }
  log('shard_move_done', { bucket, to, rounds, ...deleted });
  return { bucket, from, to, vins: list.length, copied, deleted, cleanupRounds: rounds };
}
