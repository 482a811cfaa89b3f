// GET /metrics after real traffic through a real gateway: the Prometheus exposition is
// parsed line by line, and each counter moved by at least what the test sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_CONSUMPTION, FULL_TECHNICAL, connectVehicle, encodeBatch, provision, publish, record, testVin, tryConnect, waitFor } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let gw: RunningGateway;
const clients: MqttClient[] = [];

const test = gatewayTest();
test.beforeAll(async ({ gw: testGw }) => {
  gw = testGw;
});
afterAll(async () => {
  for (const c of clients) c.end(true);
});

// ---------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4, enough of it for assertions.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  helps: Map<string, string>;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+(-?\\d+))?$`);
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,\s*|$)/y;

function parseValue(v: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  const n = Number(v);
  if (Number.isNaN(n)) throw new Error(`bad sample value ${JSON.stringify(v)}`);
  return n;
}

function parseLabels(s: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  LABEL_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while (LABEL_RE.lastIndex < s.length && (m = LABEL_RE.exec(s))) {
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
  }
  if (LABEL_RE.lastIndex !== s.length && s.length > 0) throw new Error(`bad label set in ${JSON.stringify(line)}`);
  return out;
}

function parseExposition(text: string): Exposition {
  const exp: Exposition = { samples: [], types: new Map(), helps: new Map() };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
      if (m) (m[1] === 'TYPE' ? exp.types : exp.helps).set(m[2]!, m[3]!);
      continue;
    }
    const m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`unparsable exposition line ${JSON.stringify(line)}`);
    exp.samples.push({ name: m[1]!, labels: parseLabels(m[2] ?? '', line), value: parseValue(m[3]!) });
  }
  return exp;
}

/** The one sample with this name whose labels include `labels`; undefined if none. */
function sample(exp: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = exp.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${name}${JSON.stringify(labels)} matches ${hits.length} samples`);
  return hits[0]?.value;
}

/** A counter or histogram part that may not exist yet (never incremented): 0 then. */
const counter = (exp: Exposition, name: string, labels: Record<string, string> = {}) => sample(exp, name, labels) ?? 0;

async function scrape(): Promise<{ exp: Exposition; contentType: string; text: string }> {
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  expect(res.status).toBe(200);
  const text = await res.text();
  return { exp: parseExposition(text), contentType: res.headers.get('content-type') ?? '', text };
}

describe('the exposition parser', () => {
  it('reads names, escaped labels, special values and timestamps; refuses garbage', () => {
    const e = parseExposition(
      [
        '# HELP x_total A counter',
        '# TYPE x_total counter',
        'x_total{a="1",b="q\\"uote\\\\"} 3',
        'y NaN',
        'z{le="+Inf"} +Inf 1700000000000',
        'w{} 2.5e-3',
      ].join('\n'),
    );
    expect(sample(e, 'x_total', { a: '1' })).toBe(3);
    expect(e.samples[0]!.labels.b).toBe('q"uote\\');
    expect(Number.isNaN(sample(e, 'y'))).toBe(true);
    expect(sample(e, 'z', { le: '+Inf' })).toBe(Infinity);
    expect(sample(e, 'w')).toBe(0.0025);
    expect(e.types.get('x_total')).toBe('counter');
    expect(() => parseExposition('not a metric line at all {')).toThrow();
  });
});

describe('GET /metrics after traffic', () => {
  const MESSAGES = 5;
  const RECORDS_PER_MESSAGE = 3;
  let before: Exposition;
  let after: Exposition;
  let afterText: string;
  let contentType: string;
  let connected: MqttClient[];

  beforeAll(async () => {
    before = (await scrape()).exp;

    const a = await provision(gw);
    const b = await provision(gw);
    connected = [await connectVehicle(gw, a.vin, a.secret), await connectVehicle(gw, b.vin, b.secret)];
    clients.push(...connected);
    const t = Date.now() - 60_000;
    // valid traffic, QoS 1: every message acknowledged = committed
    for (let i = 0; i < MESSAGES; i++) {
      const recs = Array.from({ length: RECORDS_PER_MESSAGE }, (_, j) => record(i * RECORDS_PER_MESSAGE + j + 1, t + i * 100 + j, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION }));
      await publish(connected[0]!, `v1/vehicles/${a.vin}/telemetry`, encodeBatch(a.vin, recs));
    }
    // invalid traffic: not a TelemetryBatch (quarantined, still acknowledged)
    await publish(connected[1]!, `v1/vehicles/${b.vin}/telemetry`, Buffer.from([0x12, 0x05, 0x01, 0x02, 0x03, 0x04]));
    // a wrong secret, and an unknown vehicle
    expect(await tryConnect(gw, { clientId: a.vin, username: a.vin, password: 'definitely-not-the-secret' })).not.toBeNull();
    const stranger = testVin();
    expect(await tryConnect(gw, { clientId: stranger, username: stranger, password: 'x' })).not.toBeNull();

    const s = await scrape();
    after = s.exp;
    afterText = s.text;
    contentType = s.contentType;
  });

  const delta = (name: string, labels: Record<string, string> = {}) => counter(after, name, labels) - counter(before, name, labels);

  it('is the Prometheus text format, every line parseable, with HELP and TYPE for the gateway metrics', () => {
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(after.samples.length).toBeGreaterThan(20);
    for (const n of [
      'cardata_messages_received_total',
      'cardata_records_stored_total',
      'cardata_records_quarantined_total',
      'cardata_mqtt_refused_total',
      'cardata_mqtt_connected_vehicles',
      'cardata_puback_latency_seconds',
      'cardata_write_batch_rows',
      'cardata_db_pool_connections',
    ]) {
      expect(after.types.has(n), `# TYPE ${n}`).toBe(true);
      expect(after.helps.get(n), `# HELP ${n}`).toBeTruthy();
    }
    expect(after.types.get('cardata_puback_latency_seconds')).toBe('histogram');
    expect(after.types.get('cardata_mqtt_connected_vehicles')).toBe('gauge');
    // no secrets, no VINs in label values
    expect(afterText).not.toMatch(/WTEST/);
  });

  it('cardata_messages_received_total{qos="1"} ≥ messages sent', () => {
    expect(delta('cardata_messages_received_total', { qos: '1' })).toBeGreaterThanOrEqual(MESSAGES + 1);
  });

  it('cardata_records_stored_total ≥ records sent', () => {
    expect(delta('cardata_records_stored_total')).toBeGreaterThanOrEqual(MESSAGES * RECORDS_PER_MESSAGE);
  });

  it('cardata_records_quarantined_total{reason="GW_ERR_DECODE"} ≥ 1', () => {
    expect(delta('cardata_records_quarantined_total', { reason: 'GW_ERR_DECODE' })).toBeGreaterThanOrEqual(1);
  });

  it('cardata_mqtt_refused_total{reason="GW_ERR_BAD_CREDENTIALS"} ≥ 1 after a wrong-secret connect', () => {
    expect(delta('cardata_mqtt_refused_total', { reason: 'GW_ERR_BAD_CREDENTIALS' })).toBeGreaterThanOrEqual(2);
  });

  it('cardata_puback_latency_seconds_count ≥ messages sent; the histogram is consistent', () => {
    expect(delta('cardata_puback_latency_seconds_count')).toBeGreaterThanOrEqual(MESSAGES + 1);
    const count = counter(after, 'cardata_puback_latency_seconds_count');
    expect(sample(after, 'cardata_puback_latency_seconds_bucket', { le: '+Inf' })).toBe(count);
    const buckets = after.samples.filter((s) => s.name === 'cardata_puback_latency_seconds_bucket').map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((x, y) => x - y)); // cumulative
    expect(counter(after, 'cardata_puback_latency_seconds_sum')).toBeGreaterThan(0);
  });

  it('cardata_write_batch_rows_count ≥ 1', () => {
    expect(delta('cardata_write_batch_rows_count')).toBeGreaterThanOrEqual(1);
    expect(counter(after, 'cardata_write_batch_rows_sum')).toBeGreaterThanOrEqual(MESSAGES * RECORDS_PER_MESSAGE);
  });

  it('cardata_db_pool_connections{state="total"} is present (and idle/waiting)', () => {
    expect(sample(after, 'cardata_db_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'cardata_db_pool_connections', { state: 'idle' })).toBeDefined();
    expect(sample(after, 'cardata_db_pool_connections', { state: 'waiting' })).toBe(0);
  });

  it('cardata_mqtt_connected_vehicles equals the vehicles connected, and follows disconnects', async () => {
    expect(sample(after, 'cardata_mqtt_connected_vehicles')).toBe(connected.length);
    await connected[1]!.endAsync();
    const now = await waitFor(async () => {
      const v = sample((await scrape()).exp, 'cardata_mqtt_connected_vehicles');
      return v === connected.length - 1 ? v : null;
    }, 5000);
    expect(now).toBe(1);
  });
});
