// storage/ops/schedule.ts: duties that run once per period whatever the number of gateway
// processes on one database. Three pools on one TimescaleDB database stand for three
// processes; each asks far more often than once a period, as the gateway's timer does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb, type Db } from '../../storage/driver/db.ts';
import { migrate } from '../../storage/driver/migrate.ts';
import { runExclusive, runOncePerPeriod } from '../../storage/ops/schedule.ts';

let tdb: TestDatabase;
const dbs: Db[] = [];
beforeAll(async () => {
  tdb = await createTestDatabase();
  for (let i = 0; i < 3; i++) dbs.push(createPgDb(tdb.url, { max: 2 }));
  await migrate(dbs[0]!);
});
afterAll(async () => {
  for (const d of dbs) await d.close().catch(() => {});
  await tdb?.drop();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('runOncePerPeriod across three processes', () => {
  it('each period runs exactly once, never two at a time, with no period skipped', async () => {
    const PERIOD = 400;
    const runs: { instance: string; period: number }[] = [];
    let active = 0;
    let maxActive = 0;
    const until = Date.now() + 3000;
    await Promise.all(
      dbs.map(async (db, i) => {
        while (Date.now() < until) {
          await runOncePerPeriod(db, 'test-job', PERIOD, `p${i}`, async (tx) => {
            active++;
            maxActive = Math.max(maxActive, active);
            await tx.query('SELECT pg_sleep(0.03)');
            active--;
            return { by: i };
          }).then((r) => {
            if (r.ran) runs.push({ instance: `p${i}`, period: r.periodStart.getTime() });
          });
          await sleep(20 + 20 * i);
        }
      }),
    );
    const periods = runs.map((r) => r.period).sort((a, b) => a - b);
    const rows = await tdb.query<{ period: Date; instance: string; result: { by: number } }>("SELECT period_start AS period, instance, result FROM scheduled_runs WHERE job = 'test-job' ORDER BY period_start");
    console.log(`[schedule] ${runs.length} runs over ${periods.length ? (periods.at(-1)! - periods[0]!) / PERIOD + 1 : 0} periods; by instance ${JSON.stringify(Object.fromEntries(['p0', 'p1', 'p2'].map((p) => [p, runs.filter((r) => r.instance === p).length])))}`);
    expect(maxActive).toBe(1);
    expect(new Set(periods).size).toBe(periods.length);
    expect(periods.length).toBeGreaterThanOrEqual(6);
    for (let k = 1; k < periods.length; k++) expect(periods[k]! - periods[k - 1]!).toBe(PERIOD);
    expect(rows.map((r) => r.period.getTime())).toEqual(periods);
    for (const r of rows) expect(`p${r.result.by}`).toBe(r.instance);
  });

  it('a run that fails half-way gives its period back: the next process to ask runs it', async () => {
    const PERIOD = 60_000;
    const failed = await runOncePerPeriod(dbs[0]!, 'fail-job', PERIOD, 'p0', async (tx) => {
      await tx.query('SELECT 1');
      throw new Error('died half-way');
    }).then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    expect(failed).toBe('died half-way');
    const second = await runOncePerPeriod(dbs[1]!, 'fail-job', PERIOD, 'p1', async () => 'done by p1');
    const third = await runOncePerPeriod(dbs[2]!, 'fail-job', PERIOD, 'p2', async () => 'done by p2');
    // Unless the minute turned between the two calls, the third finds the period done.
    expect(second.ran).toBe(true);
    if (third.ran) expect(third.periodStart.getTime()).toBeGreaterThan((second as { periodStart: Date }).periodStart.getTime());
    else expect(third.reason).toBe('done');
  });

  it('while one process holds the period, another asking gets "busy", not a second run', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const first = runOncePerPeriod(dbs[0]!, 'slow-job', 60_000, 'p0', async () => {
      entered();
      await held;
      return 1;
    });
    await inside;
    const other = await runOncePerPeriod(dbs[1]!, 'slow-job', 60_000, 'p1', async () => 2);
    release();
    expect(other).toMatchObject({ ran: false, reason: 'busy' });
    expect((await first).ran).toBe(true);
  });

  it('runExclusive: set-up from three processes at once runs one at a time', async () => {
    let active = 0;
    let maxActive = 0;
    const order: number[] = [];
    await Promise.all(
      dbs.map((db, i) =>
        runExclusive(db, 'setup-test', async (tx) => {
          active++;
          maxActive = Math.max(maxActive, active);
          await tx.query('SELECT pg_sleep(0.05)');
          order.push(i);
          active--;
        }),
      ),
    );
    expect(maxActive).toBe(1);
    expect(order.sort()).toEqual([0, 1, 2]);
  });
});
