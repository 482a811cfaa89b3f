// The strong peer's consumer (its own process): what a competent team writes in a day
// on top of Mosquitto. One MQTT.js subscriber at QoS 1 whose acks go out as each message
// arrives (MQTT.js' default: before anything is written), protobuf decode, rows buffered
// in memory and written by COPY (CSV) in batches of up to 5,000 rows or every 20 ms,
// one COPY at a time on one connection. When 50,000 rows wait, it stops reading its
// socket until the COPY catches up (Mosquitto queues the rest). No privacy filter, no
// idempotence (COPY cannot skip duplicates), and an acknowledged message is lost if the
// process dies before its COPY commits: the speed it buys with that is what is measured.
import { connect } from 'mqtt';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TelemetryBatch } from '../proto/index.ts';
import { FIELD_COLUMNS } from '../proto/fields.ts';
import { serveRpc } from './lib.ts';

const mqttUrl = process.env.PEER_MQTT_URL!;
const dbUrl = process.env.PEER_DATABASE_URL!;
const BATCH = 5000;
const FLUSH_MS = 20;
const HIGH_WATER = 50_000;

const db = new pg.Client({ connectionString: dbUrl, application_name: 'bench-strong-peer' });
await db.connect();
const cols = FIELD_COLUMNS.map((c) => c.column);
const copySql = `COPY telemetry (vin, recorded_at, seq, ${cols.join(', ')}, has_technical, has_consumption, has_location) FROM STDIN (FORMAT csv)`;

let lines: string[] = [];
let messages = 0;
let rows = 0;
let errors = 0;
let lastError = '';
let copying = false;
let paused = false;

const client = connect(mqttUrl, { clientId: 'bench-strong-peer', protocolVersion: 4, clean: true, keepalive: 60, reconnectPeriod: 1000 });

async function flush(): Promise<void> {
  if (copying || lines.length === 0) return;
  copying = true;
  const take = lines.length > BATCH ? lines.splice(0, BATCH) : lines;
  if (take === lines) lines = [];
  try {
    await pipeline(Readable.from([take.join('')]), db.query(copyFrom(copySql)));
    rows += take.length;
  } catch (err) {
    errors++;
    lastError = (err as Error).message;
  } finally {
    copying = false;
  }
  if (paused && lines.length < HIGH_WATER / 2) {
    paused = false;
    client.stream.resume();
  }
  if (lines.length >= BATCH) void flush();
}
const timer = setInterval(() => void flush(), FLUSH_MS);

client.on('message', (_topic, payload) => {
  try {
    const batch = TelemetryBatch.decode(payload);
    for (const r of batch.records) {
      let l = `${batch.vin},${new Date(Number(r.recordedAtMs)).toISOString()},${Number(r.seq)}`;
      for (const c of FIELD_COLUMNS) {
        const g = r[c.group] as Record<string, unknown> | null | undefined;
        const v = g?.[c.jsName];
        l += v === undefined || v === null ? ',' : `,${v as number}`;
      }
      l += `,${r.technical != null},${r.consumption != null},${r.location != null}\n`;
      lines.push(l);
    }
    messages++;
  } catch (err) {
    errors++;
    lastError = (err as Error).message;
  }
  if (lines.length >= BATCH) void flush();
  if (!paused && lines.length >= HIGH_WATER) {
    paused = true;
    client.stream.pause();
  }
});
await new Promise<void>((resolve, reject) => {
  client.once('connect', () => resolve());
  client.once('error', reject);
});
await client.subscribeAsync('v1/vehicles/+/telemetry', { qos: 1 });

serveRpc({
  stats: () => ({ messages, rows, errors, lastError, buffered: lines.length }),
  async close() {
    clearInterval(timer);
    await client.endAsync(true).catch(() => {});
    await db.end().catch(() => {});
    setTimeout(() => process.exit(0), 20);
    return { messages, rows };
  },
});
process.send?.({ type: 'ready' });
