// Starts the real gateway (app/gateway.ts startGateway) on ephemeral ports, plus helpers to
// provision vehicles through the admin API and connect them over MQTT.
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import Long from 'long';
import { loadConfig } from '../../config/index.ts';
import { startGateway, type RunningGateway } from '../../app/gateway.ts';
import { TelemetryBatch, type ITelemetryRecord } from '../../proto/index.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export async function startTestGateway(databaseUrl: string, env: Record<string, string> = {}): Promise<RunningGateway> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    MQTT_HOST: '127.0.0.1',
    MQTT_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    ADMIN_TOKEN,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // Tests fail authentications on purpose, all from 127.0.0.1; the limiter has its own test.
    AUTH_FAILURES_MAX: '100000',
    AUTH_FAILURES_PER_VIN_MAX: '100000',
    ...env,
  });
  return startGateway(config);
}

const VIN_CHARS = '0123456789ABCDEFGHJKLMNPRSTUVWXYZ';
let vinCounter = 0;
/** A valid, unique VIN for this test run. */
export function testVin(): string {
  let s = 'WTEST';
  let n = Date.now() * 1000 + process.pid * 7 + vinCounter++;
  let tail = '';
  for (let i = 0; i < 12; i++) {
    tail = VIN_CHARS[n % VIN_CHARS.length] + tail;
    n = Math.floor(n / VIN_CHARS.length);
  }
  s += tail;
  return s.slice(0, 17);
}

export async function api(gw: RunningGateway, method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const h: Record<string, string> = { ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}${path}`, {
    method,
    headers: h,
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the body is returned as text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export async function provision(gw: RunningGateway, vin = testVin(), ownerId = 'owner-1'): Promise<{ vin: string; secret: string }> {
  const r = await api(gw, 'POST', '/v1/admin/vehicles', { vin, ownerId });
  if (r.status !== 201) throw new Error(`provision failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { vin: string; secret: string };
}

export async function connectVehicle(gw: RunningGateway, vin: string, secret: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, {
    clientId: vin,
    username: vin,
    password: secret,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...opts,
  });
}

/** Resolves with the CONNACK error (or null when connected). */
export async function tryConnect(gw: RunningGateway, opts: IClientOptions): Promise<{ code: number | undefined; message: string } | null> {
  try {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    await c.endAsync();
    return null;
  } catch (err) {
    return { code: (err as { code?: number }).code, message: (err as Error).message };
  }
}

export function record(seq: number, recordedAtMs: number, groups: Partial<Pick<ITelemetryRecord, 'technical' | 'consumption' | 'location'>> = {}): ITelemetryRecord {
  return { seq: Long.fromNumber(seq, true), recordedAtMs: Long.fromNumber(recordedAtMs), ...groups };
}

export function encodeBatch(vin: string, records: ITelemetryRecord[]): Buffer {
  return Buffer.from(TelemetryBatch.encode({ vin, records }).finish());
}

export const FULL_TECHNICAL = {
  odometerKm: 12345.6,
  speedKmh: 88.5,
  fuelLevelPct: 42.25,
  batterySocPct: 77.5,
  engineRpm: 2100,
  coolantTempC: 90.5,
  outsideTempC: -3.25,
  auxBatteryVoltageV: 12.6,
  remainingRangeKm: 410,
  engineOilTempC: 101.5,
};
export const FULL_CONSUMPTION = {
  totalFuelConsumedL: 812.5,
  totalDistanceKm: 12345.6,
  totalFuelConsumedChargeDepletingL: 10.25,
  totalFuelConsumedChargeIncreasingL: 20.5,
  totalDistanceChargeDepletingEngineOffKm: 3000.5,
  totalDistanceChargeDepletingEngineRunningKm: 400.25,
  totalDistanceChargeIncreasingKm: 500.75,
  totalGridEnergyIntoBatteryKwh: 950.125,
};
export const FULL_LOCATION = { latitude: 48.137154, longitude: 11.576124, headingDeg: 271.5, altitudeM: 519.25, accuracyM: 4.5 };

/** Publish and resolve on PUBACK (QoS 1); rejects if the connection closes first. */
export function publish(client: MqttClient, topic: string, payload: Buffer, qos: 0 | 1 = 1): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new Error('connection closed before PUBACK'));
    // One listener per publish in flight: many at once are expected, not a leak.
    client.setMaxListeners(0);
    client.once('close', onClose);
    client.publish(topic, payload, { qos }, (err) => {
      client.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

export function waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 5000, stepMs = 25): Promise<T> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      try {
        const v = await fn();
        if (v) return resolve(v);
      } catch (err) {
        if (Date.now() - t0 > timeoutMs) return reject(err instanceof Error ? err : new Error(String(err)));
      }
      if (Date.now() - t0 > timeoutMs) return reject(new Error('waitFor timed out'));
      setTimeout(() => void tick(), stepMs);
    };
    void tick();
  });
}
