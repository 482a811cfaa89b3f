// storage/writer/writer.ts (createBatchWriter) against an in-memory Db that honours the Db
// contract (test/unit/fakes/db.ts): what is stored, when write() settles, how many rows
// the writer holds, what it does on transient and on refused statements.
import { describe, expect, it } from 'vitest';
import { createBatchWriter, type BatchStats, type TelemetryRow, type WriteItem } from '../../storage/writer/writer.ts';
import { createFakeDb } from './fakes/db.ts';
import { settle, stateOf, until } from './fakes/wait.ts';

const VIN_A = 'WUNIT000000000001';
const VIN_B = 'WUNIT000000000002';
const VIN_BAD = 'WUNIT00000000000X';
const T0 = 1_700_000_000_000;

function rows(vin: string, from: number, n: number, shareObfcm = false): TelemetryRow[] {
  return Array.from({ length: n }, (_, i) => ({
    vin,
    seq: from + i,
    recordedAtMs: T0 + from + i,
    technical: { speedKmh: 50 },
    consumption: { totalFuelConsumedL: 10 + i },
    location: null,
    shareObfcm,
  }));
}
const item = (vin: string, from: number, n: number, shareObfcm = false): WriteItem => ({ telemetry: rows(vin, from, n, shareObfcm), quarantine: [] });
const seqs = (vin: string, from: number, n: number) => Array.from({ length: n }, (_, i) => `${vin}:${from + i}`);

describe('batch writer: durability', () => {
  it('resolves a write only after its statement has committed, and stores every row once', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0 });
    f.hold();
    const p = w.write(item(VIN_A, 1, 3));
    await until(() => f.waiting() === 1, 'statement sent');
    expect(await stateOf(p)).toBe('pending');
    expect(f.telemetry()).toEqual([]);
    f.release();
    await p;
    expect(f.telemetry()).toEqual(seqs(VIN_A, 1, 3));
    await w.close();
  });

  it('a resent message is stored once (idempotent), and both writes resolve', async () => {
    const f = createFakeDb();
    const batches: BatchStats[] = [];
    const w = createBatchWriter(f.db, { lingerMs: 0, onBatch: (s) => batches.push(s) });
    await w.write(item(VIN_A, 1, 4, true));
    await w.write(item(VIN_A, 1, 4, true));
    expect(f.telemetry()).toEqual(seqs(VIN_A, 1, 4));
    expect(f.obfcm()).toEqual(seqs(VIN_A, 1, 4));
    expect(batches.map((b) => [b.telemetryRows, b.telemetryInserted, b.obfcmInserted])).toEqual([
      [4, 4, 4],
      [4, 0, 0],
    ]);
    await w.close();
  });

  it('writes only consumption of records marked shareObfcm to the OBFCM table', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0 });
    await Promise.all([w.write(item(VIN_A, 1, 2, true)), w.write(item(VIN_B, 1, 2, false))]);
    expect(f.telemetry()).toEqual([...seqs(VIN_A, 1, 2), ...seqs(VIN_B, 1, 2)]);
    expect(f.obfcm()).toEqual(seqs(VIN_A, 1, 2));
    await w.close();
  });

  it('an empty item resolves at once without a statement', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db);
    await w.write({ telemetry: [], quarantine: [] });
    expect(f.statements).toHaveLength(0);
    await w.close();
  });

  it('stores quarantine rows once per dedupe key', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0 });
    const q = { vin: VIN_A, reason: 'GW_ERR_DECODE', detail: 'x', seq: null, recordedAtMs: null, payload: null, payloadBytes: 3, dedupeKey: Buffer.from('k1') };
    await w.write({ telemetry: [], quarantine: [q] });
    await w.write({ telemetry: rows(VIN_A, 1, 1), quarantine: [q] });
    expect(f.quarantine()).toEqual([{ vin: VIN_A, reason: 'GW_ERR_DECODE' }]);
    expect(f.telemetry()).toEqual(seqs(VIN_A, 1, 1));
    await w.close();
  });
});

describe('batch writer: batches', () => {
  it('messages that arrive while a statement is in flight go out together, within batchMaxRows', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0, concurrency: 1, batchMaxRows: 10 });
    f.hold();
    const first = w.write(item(VIN_A, 1, 1));
    await until(() => f.waiting() === 1, 'first statement sent');
    // 12 messages of 3 rows while the first statement is in flight.
    const rest = Array.from({ length: 12 }, (_, i) => w.write(item(VIN_B, 1 + i * 3, 3)));
    await settle();
    expect(f.statements).toHaveLength(1);
    f.release();
    await Promise.all([first, ...rest]);
    expect(f.telemetry()).toEqual([...seqs(VIN_A, 1, 1), ...seqs(VIN_B, 1, 36)].sort());
    const sizes = f.statements.map((s) => s.telemetryRows);
    expect(sizes[0]).toBe(1);
    // 36 rows in whole messages of 3, at most 10 rows a statement: 3+3+3 per statement.
    expect(sizes.slice(1)).toEqual([9, 9, 9, 9]);
    await w.close();
  });

  it('never has more statements in flight than `concurrency`', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0, concurrency: 2, batchMaxRows: 2 });
    f.hold();
    const all = Array.from({ length: 10 }, (_, i) => w.write(item(VIN_A, 1 + i * 2, 2)));
    await until(() => f.waiting() === 2, 'two statements sent');
    await settle();
    expect(f.waiting()).toBe(2);
    for (let i = 0; i < 10 && f.waiting() > 0; i++) {
      f.release(true);
      await settle();
    }
    f.release();
    await Promise.all(all);
    expect(f.maxInFlight()).toBe(2);
    expect(f.telemetry()).toHaveLength(20);
    await w.close();
  });
});

describe('batch writer: bounds and backpressure', () => {
  it('holds at most maxPendingRows: hasRoom() turns false, whenRoom() waits, later items wait their turn', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0, maxPendingRows: 10, batchMaxRows: 100 });
    f.hold();
    const a = w.write(item(VIN_A, 1, 6));
    expect(w.hasRoom()).toBe(true);
    const b = w.write(item(VIN_A, 7, 6));
    expect(w.hasRoom()).toBe(false);
    const room = w.whenRoom();
    const c = w.write(item(VIN_A, 13, 6));
    await until(() => f.waiting() === 1, 'first statement sent');
    await settle();
    expect(w.pending().rows).toBeLessThanOrEqual(10);
    expect(w.pending().waitingRows).toBe(12);
    expect(await stateOf(room)).toBe('pending');
    expect(await stateOf(b)).toBe('pending');
    // Released one statement at a time: never more than 10 rows were ever sent at once.
    for (let i = 0; i < 10 && (await stateOf(c)) === 'pending'; i++) {
      f.release(true);
      await settle();
    }
    f.release();
    await Promise.all([a, b, c, room]);
    expect(w.hasRoom()).toBe(true);
    expect(f.maxInFlightRows()).toBeLessThanOrEqual(10);
    expect(f.telemetry()).toEqual(seqs(VIN_A, 1, 18).sort());
    expect(w.pending()).toEqual({ rows: 0, items: 0, inFlight: 0, waitingRows: 0 });
    await w.close();
  });

  it('an item larger than the bound still goes through alone when the writer is empty', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0, maxPendingRows: 5 });
    await w.write(item(VIN_A, 1, 8));
    expect(f.telemetry()).toHaveLength(8);
    await w.close();
  });
});

describe('batch writer: failures', () => {
  it('retries a transient failure (connection refused, admin shutdown) until it commits; degraded meanwhile', async () => {
    const f = createFakeDb();
    const errors: [string, boolean][] = [];
    const w = createBatchWriter(f.db, { lingerMs: 0, retryMaxMs: 20, onError: (e, retry) => errors.push([(e as { code: string }).code, retry]) });
    f.failNext(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));
    const p = w.write(item(VIN_A, 1, 2));
    await until(() => errors.length >= 1, 'first failure');
    expect(w.degraded).toBe(true);
    expect(await stateOf(p)).toBe('pending');
    await p;
    expect(errors).toEqual([
      ['ECONNREFUSED', true],
      ['57P01', true],
    ]);
    expect(w.degraded).toBe(false);
    expect(f.telemetry()).toEqual(seqs(VIN_A, 1, 2));
    expect(f.statements).toHaveLength(3);
    await w.close();
  });

  it('a refused message is rejected with STO_ERR_REJECTED; the messages batched with it are stored', async () => {
    const f = createFakeDb();
    f.refuseVin(VIN_BAD);
    const w = createBatchWriter(f.db, { lingerMs: 0, concurrency: 1 });
    f.hold();
    const first = w.write(item(VIN_A, 1, 1));
    await until(() => f.waiting() === 1, 'first statement sent');
    const good1 = w.write(item(VIN_A, 2, 2));
    const bad = w.write(item(VIN_BAD, 1, 2));
    const good2 = w.write(item(VIN_B, 1, 2));
    f.release();
    const r = await Promise.allSettled([first, good1, bad, good2]);
    expect(r.map((x) => x.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(((r[2] as PromiseRejectedResult).reason as { code: string }).code).toBe('STO_ERR_REJECTED');
    expect(f.telemetry()).toEqual([...seqs(VIN_A, 1, 3), ...seqs(VIN_B, 1, 2)]);
    await w.close();
  });

  it('a refused statement is not retried', async () => {
    const f = createFakeDb();
    f.refuseVin(VIN_BAD);
    const w = createBatchWriter(f.db, { lingerMs: 0, retryMaxMs: 5 });
    await expect(w.write(item(VIN_BAD, 1, 1))).rejects.toMatchObject({ code: 'STO_ERR_REJECTED' });
    await settle(10);
    expect(f.statements).toHaveLength(1);
    await w.close();
  });

  it('close() waits for what is queued, then rejects what is left with STO_ERR_CLOSED; later writes too', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0, retryMaxMs: 10 });
    const down = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    f.failNext(...Array.from({ length: 1000 }, down));
    const p = w.write(item(VIN_A, 1, 2));
    await until(() => f.statements.length >= 2, 'retrying');
    await w.close(50);
    await expect(p).rejects.toMatchObject({ code: 'STO_ERR_CLOSED' });
    await expect(w.write(item(VIN_A, 3, 1))).rejects.toMatchObject({ code: 'STO_ERR_CLOSED' });
    expect(f.telemetry()).toEqual([]);
  });

  it('close() flushes what is queued when the database answers', async () => {
    const f = createFakeDb();
    const w = createBatchWriter(f.db, { lingerMs: 0 });
    const ps = [w.write(item(VIN_A, 1, 2)), w.write(item(VIN_B, 1, 2))];
    await w.close(2000);
    await Promise.all(ps);
    expect(f.telemetry()).toEqual([...seqs(VIN_A, 1, 2), ...seqs(VIN_B, 1, 2)]);
  });
});
