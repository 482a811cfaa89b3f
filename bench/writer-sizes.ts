// Statement time of the batch writer by batch size, one connection, no MQTT: shows the
// per-statement fixed cost and the per-row cost of the unnest statement (or, with
// `auto`, of whichever method the writer picks). Not part of `npm run bench`.
//
//   npx tsx bench/writer-sizes.ts [unnest|auto]
//
// Uses BENCH_DATABASE_URL, else the local TimescaleDB of scripts/timescaledb.sh; creates
// and drops a database `bench_writer_sizes`. NOOBF=1: no shareable OBFCM copy per record.
import { createPgDb } from '../storage/driver/db.ts';
import { migrate } from '../storage/driver/migrate.ts';
import { createBatchWriter, type TelemetryRow } from '../storage/writer/writer.ts';
import { FIELD_COLUMNS } from '../proto/fields.ts';
import { createDatabase, dropDatabase } from './lib.ts';

const server = process.env.BENCH_DATABASE_URL ?? 'postgres://cardata:cardata@127.0.0.1:55432/cardata';
const NAME = 'bench_writer_sizes';
const db = createPgDb(await createDatabase(server, NAME), { max: 4 });
try {
  await migrate(db);
  const method = process.argv[2] === 'auto' ? 'auto' : 'unnest';
  const w = createBatchWriter(db, { method, concurrency: 1 });
  let seq = 0;
  const row = (i: number): TelemetryRow => {
    const g: Record<string, Record<string, number>> = { technical: {}, consumption: {}, location: {} };
    for (const col of FIELD_COLUMNS) g[col.group]![col.jsName] = ((i * 7) % 1000) / 10;
    return {
      vin: `WBENCH0000000${String(i % 1000).padStart(4, '0')}`,
      seq: ++seq,
      recordedAtMs: Date.UTC(2025, 0, 1) + seq,
      technical: g.technical,
      consumption: g.consumption,
      location: g.location,
      shareObfcm: !process.env.NOOBF,
    };
  };
  for (const n of [1, 10, 100, 1000]) {
    const reps = Math.min(300, Math.ceil(20_000 / n));
    const items = Array.from({ length: reps }, () => ({ telemetry: Array.from({ length: n }, (_, i) => row(i)), quarantine: [] }));
    await w.write(items[0]!);
    const t = performance.now();
    for (const it of items.slice(1)) await w.write(it);
    const ms = (performance.now() - t) / (reps - 1);
    console.log(`${method} n=${n}: ${ms.toFixed(2)} ms/statement, ${((ms * 1000) / n).toFixed(1)} µs/row`);
  }
  await w.close();
} finally {
  await db.close();
  await dropDatabase(server, NAME);
}
