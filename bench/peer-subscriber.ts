// The naive peer pipeline's consumer (its own process): ONE MQTT.js subscriber at QoS 1
// on Mosquitto → protobuf decode → one INSERT per record through `pg`, into the same
// telemetry table. Each message is acknowledged after its rows are stored (the same
// "acknowledged = durable" promise the gateway makes); MQTT.js handles one message at
// a time, Mosquitto queues the rest (max_queued_messages 0 = unbounded, so nothing is
// dropped silently). No privacy filter, no batching: the straightforward way.
import { connect } from 'mqtt';
import pg from 'pg';
import { TelemetryBatch } from '../proto/index.ts';
import { FIELD_COLUMNS } from '../proto/fields.ts';
import { serveRpc } from './lib.ts';

const mqttUrl = process.env.PEER_MQTT_URL!;
const dbUrl = process.env.PEER_DATABASE_URL!;

const db = new pg.Client({ connectionString: dbUrl, application_name: 'bench-peer' });
await db.connect();

const cols = FIELD_COLUMNS.map((c) => c.column);
const sql = `INSERT INTO telemetry (vin, recorded_at, seq, ${cols.join(', ')}, has_technical, has_consumption, has_location)
  VALUES ($1, to_timestamp($2::float8 / 1000), $3, ${cols.map((_, i) => `$${i + 4}`).join(', ')}, $${cols.length + 4}, $${cols.length + 5}, $${cols.length + 6})
  ON CONFLICT DO NOTHING`;

let messages = 0;
let rows = 0;
let errors = 0;
let lastError = '';

const client = connect(mqttUrl, { clientId: 'bench-peer-subscriber', protocolVersion: 4, clean: true, keepalive: 60, reconnectPeriod: 1000 });
// Ack after the rows are stored: MQTT.js calls this per message and waits for the callback.
client.handleMessage = (packet, callback) => {
  void (async () => {
    try {
      const batch = TelemetryBatch.decode(packet.payload as Buffer);
      for (const r of batch.records) {
        const params: unknown[] = [batch.vin, Number(r.recordedAtMs), Number(r.seq)];
        for (const c of FIELD_COLUMNS) {
          const g = r[c.group] as Record<string, unknown> | null | undefined;
          params.push(g?.[c.jsName] ?? null);
        }
        params.push(r.technical != null, r.consumption != null, r.location != null);
        await db.query(sql, params);
        rows++;
      }
      messages++;
    } catch (err) {
      errors++;
      lastError = (err as Error).message;
    }
    callback();
  })();
};
await new Promise<void>((resolve, reject) => {
  client.once('connect', () => resolve());
  client.once('error', reject);
});
await client.subscribeAsync('v1/vehicles/+/telemetry', { qos: 1 });

serveRpc({
  stats: () => ({ messages, rows, errors, lastError }),
  async close() {
    await client.endAsync(true).catch(() => {});
    await db.end().catch(() => {});
    setTimeout(() => process.exit(0), 20);
    return { messages, rows };
  },
});
process.send?.({ type: 'ready' });
