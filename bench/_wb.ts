import pg from 'pg';
import { createPgDb } from '../storage/db.ts';
import { migrate } from '../storage/migrate.ts';
import { createBatchWriter, type TelemetryRow } from '../storage/writer.ts';
import { FIELD_COLUMNS } from '../proto/fields.ts';
const admin = 'postgres://cardata:cardata@127.0.0.1:55432/cardata';
const c = new pg.Client(admin); await c.connect();
await c.query('DROP DATABASE IF EXISTS wb'); await c.query('CREATE DATABASE wb'); await c.end();
const db = createPgDb(admin.replace(/cardata$/, 'wb'), { max: 4 });
await migrate(db);
const method = (process.argv[2] ?? 'unnest') as 'unnest' | 'auto';
const w = createBatchWriter(db, { method, concurrency: 1 });
let seq = 0;
const row = (i: number): TelemetryRow => {
  const g: Record<string, Record<string, number>> = { technical: {}, consumption: {}, location: {} };
  for (const col of FIELD_COLUMNS) g[col.group]![col.jsName] = ((i * 7) % 1000) / 10;
  return { vin: `WBENCH0000000${String(i % 1000).padStart(4, '0')}`.replace(/I/g, '1'), seq: ++seq, recordedAtMs: Date.UTC(2025, 0, 1) + seq, technical: g.technical, consumption: g.consumption, location: g.location, shareObfcm: process.env.NOOBF ? false : true };
};
for (const n of [1, 10, 100, 1000]) {
  const reps = Math.min(300, Math.ceil(20000 / n));
  const items = Array.from({ length: reps }, () => ({ telemetry: Array.from({ length: n }, (_, i) => row(i)), quarantine: [] }));
  await w.write(items[0]!);
  const t = performance.now();
  for (const it of items.slice(1)) await w.write(it);
  const ms = (performance.now() - t) / (reps - 1);
  console.log(`${method} n=${n}: ${ms.toFixed(2)} ms/statement, ${(ms * 1000 / n).toFixed(1)} µs/row`);
}
await w.close(); await db.close();
