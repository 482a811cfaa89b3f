// The batch writer: the only path from the ingest pipeline into the database.
//
// Items (the rows of one MQTT message) queue up; whenever a statement slot is free the
// writer takes everything pending, up to batchMaxRows, and writes it as ONE statement
// (INSERT … SELECT FROM unnest(arrays) … ON CONFLICT DO NOTHING, the tables joined by
// data-modifying CTEs, so a message's rows commit together). Batches therefore size
// themselves from the load: one message at a time when idle, thousands under load,
// with no timer to wait on. An item's promise resolves only once its statement has
// committed: that is what the gateway waits for before sending a PUBACK.
import type { CopyCapability, Db } from '../driver/db.ts';
import { STO_ERR, StorageError, isStorageError, isTransient } from '../errors.ts';
import { OBFCM_TABLE, TELEMETRY_TABLE, copyBytes, encodeCopy, unnestParams, type RowTable } from '../driver/copy-binary.ts';
import type { QuarantineRow, TelemetryRow, WriteItem } from '../../proto/records.ts';
import { SUMMARY_SOURCE_COLUMNS, summaryUpsert } from '../repos/summaries.ts';

export type { QuarantineRow, TelemetryRow, WriteItem };

export interface BatchStats {
  items: number;
  telemetryRows: number;
  telemetryInserted: number;
  obfcmInserted: number;
  quarantineInserted: number;
  durationMs: number;
  /** The transaction that wrote the batch's telemetry (its id, xid8; null: none written or not known) ... */
  telemetryTx: number | null;
  /** ... and the telemetry rows it was given (each inserted unless its key was stored already). */
  telemetry: readonly TelemetryRow[];
}

export interface WriterOptions {
  /** Most rows in one statement. Default 5000. */
  batchMaxRows?: number;
  /** Rows held (queued + in flight) above which `hasRoom()` is false. Default 100000. */
  maxPendingRows?: number;
  /** Statements in flight at once. Default 2. */
  concurrency?: number;
  /**
   * While a statement is already in flight, another starts only once `lingerRows` rows
   * are queued or the oldest queued item has waited `lingerMs` (defaults 500 rows, 3 ms).
   * An idle writer starts at once. Under moderate load this trades a few milliseconds for
   * batches several times larger: fewer statements, less CPU per row on both sides, and
   * on a shared box a shorter run queue for everyone. 0 disables it.
   */
  lingerMs?: number;
  lingerRows?: number;
  /** Longest pause between retries after a transient failure, ms. Default 2000. */
  retryMaxMs?: number;
  /** 'auto' (default): binary COPY for large batches where the backend supports it; 'unnest': always one statement. */
  method?: 'auto' | 'unnest';
  onBatch?: (stats: BatchStats) => void;
  /** Called on each failed attempt; `willRetry` says whether the rows stay queued. */
  onError?: (err: unknown, willRetry: boolean) => void;
}

export interface BatchWriter {
  /** Resolves once every row of the item is committed; rejects with STO_ERR_CLOSED on close(). */
  write(item: WriteItem): Promise<void>;
  /** False when the writer holds more than maxPendingRows: callers should wait (backpressure). */
  hasRoom(): boolean;
  /** Resolves when hasRoom() is true again. */
  whenRoom(): Promise<void>;
  /** True when a write() rejection says the database refused the rows (STO_ERR_REJECTED), not that the writer closed. */
  isRejected(err: unknown): boolean;
  /** True while writes fail and are being retried. */
  readonly degraded: boolean;
  /** rows: held (queued + being written, ≤ maxPendingRows); waitingRows: arrived while full. */
  pending(): { rows: number; items: number; inFlight: number; waitingRows: number };
  /** Waits for everything queued to be written, up to timeoutMs, then rejects what is left. */
  close(timeoutMs?: number): Promise<void>;
}

interface Pending {
  item: WriteItem;
  rows: number;
  /** performance.now() when queued. */
  at: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export function createBatchWriter(db: Db, opts: WriterOptions = {}): BatchWriter {
  const batchMaxRows = opts.batchMaxRows ?? 5000;
  const maxPendingRows = opts.maxPendingRows ?? 100_000;
  const concurrency = opts.concurrency ?? 2;
  const retryMaxMs = opts.retryMaxMs ?? 2000;
  const lingerMs = opts.lingerMs ?? 3;
  const lingerRows = opts.lingerRows ?? 500;
  // Chosen once: binary COPY where the backend speaks it, unless told otherwise.
  const copy = (opts.method ?? 'auto') !== 'unnest' ? db.copy : null;
  const copyBuffers = new CopyBuffers();
  const statements = new Statements();

  // Taken slots are cleared at once: a slot that kept its item until the next compaction
  // would keep the message's rows reachable long enough to be promoted to V8's old
  // generation, and cost a mark-compact later.
  const queue: (Pending | undefined)[] = [];
  let queueHead = 0;
  // Items that arrived while the writer was full: not yet counted in pendingRows. Their
  // callers are still waiting (their PUBACKs held), which is what stops the sockets.
  const overflow: (Pending | undefined)[] = [];
  let overflowHead = 0;
  let overflowRows = 0;
  let pendingRows = 0; // queued + in flight
  let queuedRows = 0; // queued, not yet taken
  let inFlight = 0;
  let scheduled = false;
  let lingerTimer: NodeJS.Timeout | null = null;
  let closed = false;
  let degraded = false;
  let retryDelay = 0;
  let retryTimer: NodeJS.Timeout | null = null;
  let roomWaiters: (() => void)[] = [];
  let idleWaiters: (() => void)[] = [];

  function schedule(): void {
    if (scheduled || retryTimer || inFlight >= concurrency || queue.length === queueHead) return;
    const wait = lingering();
    if (wait > 0) {
      lingerTimer ??= setTimeout(() => {
        lingerTimer = null;
        schedule();
      }, wait);
      return;
    }
    scheduled = true;
    // setImmediate, not a timer: collects every message that arrived in this I/O turn.
    setImmediate(flush);
  }

  /** Milliseconds another statement should wait for its batch to fill (0: go now). */
  function lingering(): number {
    if (inFlight === 0 || lingerMs <= 0 || queuedRows >= lingerRows || closed) return 0;
    const waited = performance.now() - queue[queueHead]!.at;
    return waited >= lingerMs ? 0 : Math.max(1, Math.ceil(lingerMs - waited));
  }

  function take(): Pending[] {
    const batch: Pending[] = [];
    let rows = 0;
    while (queueHead < queue.length) {
      const p = queue[queueHead]!;
      if (batch.length > 0 && rows + p.rows > batchMaxRows) break;
      batch.push(p);
      rows += p.rows;
      queue[queueHead++] = undefined;
    }
    queuedRows -= rows;
    if (queueHead === queue.length) {
      queue.length = 0;
      queueHead = 0;
    } else if (queueHead > 1024 && queueHead * 2 > queue.length) {
      queue.splice(0, queueHead);
      queueHead = 0;
    }
    return batch;
  }

  function flush(): void {
    scheduled = false;
    while (inFlight < concurrency && queueHead < queue.length && !retryTimer && lingering() === 0) {
      const batch = take();
      inFlight++;
      void run(batch);
    }
  }

  async function run(batch: Pending[]): Promise<void> {
    const t0 = performance.now();
    try {
      const r = await writeItems(db, batch.map((p) => p.item), copy, copyBuffers, statements);
      degraded = false;
      retryDelay = 0;
      opts.onBatch?.({ items: batch.length, ...r, durationMs: performance.now() - t0 });
      settle(batch, null);
    } catch (err) {
      if (isTransient(err) && !closed) {
        opts.onError?.(err, true);
        degraded = true;
        requeue(batch);
        retryDelay = Math.min(retryMaxMs, retryDelay === 0 ? 50 : retryDelay * 2);
        if (!retryTimer) {
          retryTimer = setTimeout(() => {
            retryTimer = null;
            schedule();
          }, retryDelay);
        }
      } else if (batch.length > 1 && !closed) {
        // The database refused something in this batch: find which message by
        // writing them one by one; the others must not pay for it.
        opts.onError?.(err, true);
        for (const p of batch) {
          inFlight++;
          await run([p]);
        }
      } else {
        opts.onError?.(err, false);
        const e = isStorageError(err) ? err : new StorageError(closed ? STO_ERR.CLOSED : STO_ERR.REJECTED, (err as Error).message, { cause: err });
        settle(batch, e);
      }
    } finally {
      inFlight--;
      schedule();
      if (inFlight === 0 && queue.length === queueHead && overflow.length === overflowHead) {
        const w = idleWaiters;
        idleWaiters = [];
        for (const f of w) f();
      }
    }
  }

  function requeue(batch: Pending[]): void {
    // Back at the head, in their order: retried before anything newer.
    for (const p of batch) queuedRows += p.rows;
    if (queueHead >= batch.length) {
      queueHead -= batch.length;
      for (let i = 0; i < batch.length; i++) queue[queueHead + i] = batch[i]!;
    } else {
      queue.splice(queueHead, 0, ...batch);
    }
  }

  function admit(p: Pending): void {
    p.at = performance.now();
    queue.push(p);
    pendingRows += p.rows;
    queuedRows += p.rows;
    schedule();
  }

  /** Moves waiting items into the queue, oldest first, as far as the bound allows. */
  function admitOverflow(): void {
    while (overflowHead < overflow.length) {
      const p = overflow[overflowHead]!;
      if (pendingRows > 0 && pendingRows + p.rows > maxPendingRows) break;
      overflow[overflowHead++] = undefined;
      overflowRows -= p.rows;
      admit(p);
    }
    if (overflowHead === overflow.length) {
      overflow.length = 0;
      overflowHead = 0;
    }
  }

  function settle(batch: Pending[], err: Error | null): void {
    for (const p of batch) {
      pendingRows -= p.rows;
      if (err) p.reject(err);
      else p.resolve();
    }
    if (!closed) admitOverflow();
    if (pendingRows + overflowRows < maxPendingRows && roomWaiters.length) {
      const w = roomWaiters;
      roomWaiters = [];
      for (const f of w) f();
    }
  }

  return {
    isRejected: (err: unknown) => isStorageError(err, STO_ERR.REJECTED),
    write(item) {
      if (closed) return Promise.reject(new StorageError(STO_ERR.CLOSED, 'writer is closed'));
      const rows = item.telemetry.length + item.quarantine.length;
      if (rows === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const p: Pending = { item, rows, at: 0, resolve, reject };
        // Hard bound on rows held: beyond it, items wait their turn (an item larger than
        // the bound still goes alone when the writer is empty).
        if (overflowHead < overflow.length || (pendingRows > 0 && pendingRows + rows > maxPendingRows)) {
          overflow.push(p);
          overflowRows += rows;
        } else admit(p);
      });
    },
    hasRoom: () => pendingRows + overflowRows < maxPendingRows,
    whenRoom() {
      if (pendingRows + overflowRows < maxPendingRows) return Promise.resolve();
      return new Promise((r) => roomWaiters.push(r));
    },
    get degraded() {
      return degraded;
    },
    pending: () => ({ rows: pendingRows, items: queue.length - queueHead, inFlight, waitingRows: overflowRows }),
    async close(timeoutMs = 10_000) {
      if (inFlight > 0 || queue.length > queueHead || overflow.length > overflowHead) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, timeoutMs);
          idleWaiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      closed = true;
      if (lingerTimer) {
        clearTimeout(lingerTimer);
        lingerTimer = null;
      }
      if (retryTimer) {
        clearTimeout(retryTimer);
        retryTimer = null;
      }
      const left = queue.splice(queueHead) as Pending[];
      queueHead = 0;
      queue.length = 0;
      queuedRows = 0;
      const waiting = overflow.splice(overflowHead) as Pending[];
      overflowHead = 0;
      overflowRows = 0;
      settle(left, new StorageError(STO_ERR.CLOSED, 'writer closed before these rows were written'));
      for (const p of waiting) p.reject(new StorageError(STO_ERR.CLOSED, 'writer closed before these rows were written'));
      for (const f of roomWaiters) f();
      roomWaiters = [];
    },
  };
}

// ---------------------------------------------------------------------------
// SQL

const EPOCH_MS = "timestamptz 'epoch' + u.ms * interval '1 millisecond'";

/** `alias AS (INSERT INTO target …)` from the arrays of unnestParams(table, …), idempotent. */
function unnestInsert(alias: string, target: string, table: RowTable, param: (type: string) => string, returning = '1'): string {
  const arrays = [param('text'), param('int8'), param('int8'), ...table.values.map(() => param('float8')), ...table.flags.map(() => param('bool'))];
  const names = ['vin', 'ms', 'seq', ...table.values.map((_, i) => `c${i}`), ...table.flags.map((_, i) => `f${i}`)];
  return `${alias} AS (INSERT INTO ${target} (${table.columns.join(', ')})
      SELECT u.vin, ${EPOCH_MS}, u.seq, ${names.slice(3).map((n) => `u.${n}`).join(', ')}
      FROM unnest(${arrays.join(', ')}) AS u(${names.join(', ')})
      ON CONFLICT DO NOTHING RETURNING ${returning})`;
}

/**
 * The stream log entries of the rows a CTE `t` inserted (RETURNING vin, recorded_at, seq):
 * one per vehicle, in the same transaction, so the streams learn of exactly the rows that
 * were stored (a resent duplicate inserts nothing and is not streamed twice). The two
 * array_agg of one group see its rows in the same order.
 */
const STREAM_LOG_INSERT = `INSERT INTO stream_log (vin, ats, seqs) SELECT vin, array_agg(recorded_at), array_agg(seq) FROM t GROUP BY vin`;

/**
 * What the telemetry CTE `t` returns: the key for the stream log, the values for the hourly
 * summaries (storage/repos/summaries.ts), which the same statement brings up to date.
 */
const TELEMETRY_RETURNING = [...new Set(['seq', ...SUMMARY_SOURCE_COLUMNS])].join(', ');
const SUMMARY_UPSERT = `h AS (${summaryUpsert('t')})`;

/** The statements of one writer, built once per combination of tables present (the mask). */
class Statements {
  private readonly byMask = new Map<number, string>();
  get(mask: number): string {
    let sql = this.byMask.get(mask);
    if (sql === undefined) {
      sql = buildStatement(mask);
      this.byMask.set(mask, sql);
    }
    return sql;
  }
}

/** One statement for the combination of tables present: bit 1 telemetry, 2 OBFCM, 4 quarantine. */
function buildStatement(mask: number): string {
  const ctes: string[] = [];
  const selects: string[] = [];
  let p = 0;
  const param = (type: string) => `$${++p}::${type}[]`;
  if (mask & 1) {
    ctes.push(unnestInsert('t', 'telemetry', TELEMETRY_TABLE, param, TELEMETRY_RETURNING));
    ctes.push(`l AS (${STREAM_LOG_INSERT})`, SUMMARY_UPSERT);
    selects.push('(SELECT count(*) FROM t)::int AS t', 'pg_current_xact_id()::text AS x');
  } else selects.push('0 AS t');
  if (mask & 2) {
    ctes.push(unnestInsert('o', 'obfcm_readings', OBFCM_TABLE, param));
    selects.push('(SELECT count(*) FROM o)::int AS o');
  } else selects.push('0 AS o');
  if (mask & 4) {
    const arrays = [param('text'), param('text'), param('text'), param('int8'), param('int8'), param('bytea'), param('int4'), param('bytea')];
    ctes.push(`q AS (INSERT INTO quarantine (vin, reason, detail, seq, recorded_at, payload, payload_bytes, dedupe_key)
      SELECT u.vin, u.reason, u.detail, u.seq, CASE WHEN u.ms IS NULL THEN NULL ELSE ${EPOCH_MS} END, u.payload, u.nbytes, u.dk
      FROM unnest(${arrays.join(', ')}) AS u(vin, reason, detail, seq, ms, payload, nbytes, dk)
      ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1)`);
    selects.push('(SELECT count(*) FROM q)::int AS q');
  } else selects.push('0 AS q');
  return `WITH ${ctes.join(',\n')}\nSELECT ${selects.join(', ')}`;
}

/**
 * Batches at least this large go through binary COPY into per-connection staging tables,
 * then one INSERT … SELECT … ON CONFLICT DO NOTHING per table (COPY itself cannot skip
 * duplicates); smaller ones take the single unnest statement, one round trip.
 */
const COPY_MIN_ROWS = 2000;

const STAGING_DDL = `
  CREATE TEMP TABLE IF NOT EXISTS stage_telemetry (LIKE telemetry INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
  CREATE TEMP TABLE IF NOT EXISTS stage_obfcm (LIKE obfcm_readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`;

/**
 * Encoding buffers for the COPY path, reused across batches: a 20,000-row batch encodes to
 * about 11 MB, and fresh buffers of that size at several batches a second are garbage off
 * the JS heap that only V8's external-memory limit collects. A buffer goes back only after
 * a successful COPY (PostgreSQL has read all of it); at most 4, of at most 32 MB each.
 */
class CopyBuffers {
  private free: Buffer[] = [];
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= size);
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    return Buffer.allocUnsafeSlow(Math.max(size, 1 << 20));
  }
  give(b: Buffer): void {
    if (b.length <= 32 << 20 && this.free.length < 4) this.free.push(b);
  }
}

async function writeItemsCopy(copy: CopyCapability, tel: TelemetryRow[], obf: TelemetryRow[], qua: QuarantineRow[], buffers: CopyBuffers, statements: Statements): Promise<Omit<BatchStats, 'items' | 'durationMs'>> {
  const telBuf = buffers.take(copyBytes(TELEMETRY_TABLE, tel.length));
  const obfBuf = obf.length ? buffers.take(copyBytes(OBFCM_TABLE, obf.length)) : null;
  // Four round trips: BEGIN with the staging tables, the two COPYs, then the inserts from
  // staging with COMMIT (a quarantine, rare, adds one). Each round trip also waits for this
  // process's event loop, which a burst of ingest keeps busy for up to a few hundred ms.
  const r = await copy.transaction(
    async (tx) => {
      const cols = TELEMETRY_TABLE.columns.join(', ');
      await tx.copyFrom(`COPY stage_telemetry (${cols}) FROM STDIN (FORMAT binary)`, encodeCopy(TELEMETRY_TABLE, tel, telBuf));
      const oc = OBFCM_TABLE.columns.join(', ');
      if (obfBuf) await tx.copyFrom(`COPY stage_obfcm (${oc}) FROM STDIN (FORMAT binary)`, encodeCopy(OBFCM_TABLE, obf, obfBuf));
      let q = 0;
      if (qua.length) {
        const r = await tx.query<{ q: number }>(statements.get(4), quarantineParams(qua));
        q = r.rows[0]?.q ?? 0;
      }
      const [t, o] = await tx.commitWith<{ n: number; x: string }>([
        `WITH t AS (INSERT INTO telemetry (${cols}) SELECT ${cols} FROM stage_telemetry ON CONFLICT DO NOTHING RETURNING ${TELEMETRY_RETURNING}),
              l AS (${STREAM_LOG_INSERT}),
              ${SUMMARY_UPSERT}
         SELECT count(*)::int AS n, pg_current_xact_id()::text AS x FROM t`,
        ...(obfBuf ? [`INSERT INTO obfcm_readings (${oc}) SELECT ${oc} FROM stage_obfcm ON CONFLICT DO NOTHING`] : []),
      ]);
      return { telemetryRows: tel.length, telemetryInserted: t!.rows[0]?.n ?? 0, obfcmInserted: o?.rowCount ?? 0, quarantineInserted: q, telemetryTx: txOf(t!.rows[0]?.x), telemetry: tel };
    },
    { begin: `SET LOCAL client_min_messages = warning; ${STAGING_DDL}` },
  );
  // Committed, so PostgreSQL has read every byte: the buffers may be written again.
  buffers.give(telBuf);
  if (obfBuf) buffers.give(obfBuf);
  return r;
}

function quarantineParams(qua: readonly QuarantineRow[]): unknown[] {
  // Rare path: pg's own serialiser handles the quoting of free text and bytea.
  return [
    qua.map((q) => q.vin),
    qua.map((q) => q.reason),
    qua.map((q) => q.detail),
    qua.map((q) => q.seq),
    qua.map((q) => q.recordedAtMs),
    qua.map((q) => q.payload),
    qua.map((q) => q.payloadBytes),
    qua.map((q) => q.dedupeKey),
  ];
}

async function writeItems(db: Db, items: readonly WriteItem[], copy: CopyCapability | null, buffers: CopyBuffers, statements: Statements): Promise<Omit<BatchStats, 'items' | 'durationMs'>> {
  const tel: TelemetryRow[] = [];
  const obf: TelemetryRow[] = [];
  const qua: QuarantineRow[] = [];
  for (const it of items) {
    for (const r of it.telemetry) {
      tel.push(r);
      if (r.shareObfcm && r.consumption) obf.push(r);
    }
    for (const q of it.quarantine) qua.push(q);
  }
  if (copy && tel.length >= COPY_MIN_ROWS) return writeItemsCopy(copy, tel, obf, qua, buffers, statements);
  let mask = 0;
  const params: unknown[] = [];
  // Binary arrays: pg sends Buffer parameters in binary format, so PostgreSQL reads each
  // element with float8recv/int8recv instead of parsing text, and nothing here formats numbers.
  if (tel.length) {
    mask |= 1;
    params.push(...unnestParams(TELEMETRY_TABLE, tel));
  }
  if (obf.length) {
    mask |= 2;
    params.push(...unnestParams(OBFCM_TABLE, obf));
  }
  if (qua.length) {
    mask |= 4;
    params.push(...quarantineParams(qua));
  }
  // Prepared per connection: planning this wide CTE costs more than executing a small batch.
  const r = await db.query<{ t: number; o: number; q: number; x?: string }>(statements.get(mask), params, `cardata_write_${mask}`);
  const row = r.rows[0] ?? { t: 0, o: 0, q: 0 };
  return { telemetryRows: tel.length, telemetryInserted: row.t, obfcmInserted: row.o, quarantineInserted: row.q, telemetryTx: txOf(row.x), telemetry: tel };
}

/** A transaction id as the statements return it (text: xid8 exceeds int4), or null. */
function txOf(x: string | null | undefined): number | null {
  const n = x == null ? NaN : Number(x);
  return Number.isSafeInteger(n) ? n : null;
}
