// The simulation loop: provision vehicles through the admin API, connect each
// over MQTT, sample every vehicle's model in real time and publish its
// records in batches, keeping a bounded window of unacknowledged messages per
// vehicle (the gateway acknowledges only durable data, so the window is what
// applies its back-pressure), then drain and count.
//
// The simulator is an outside client of the gateway: it only uses the public
// contract in proto/ and the documented HTTP and MQTT interfaces.
import Long from 'long';
import { connect } from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import { z } from 'zod';
import { TelemetryBatch, telemetryTopic } from '../proto/index.ts';
import type { ITelemetryRecord } from '../proto/index.ts';
import { createVehicleModel, pickVehicleKind } from './model.ts';
import type { VehicleKind, VehicleModel, VehicleSample } from './model.ts';
import { createRng, deriveSeed } from './prng.ts';
import { randomVin } from './vin.ts';

export interface SimulationOptions {
  /** Number of vehicles. */
  vehicles: number;
  /** Records per second per vehicle. */
  rate: number;
  /** How long the vehicles drive, seconds. */
  durationS: number;
  /** Records per MQTT message. */
  batch: number;
  /** Base URL of the admin HTTP API, e.g. http://127.0.0.1:8080. */
  httpUrl: string;
  /** MQTT broker URL, e.g. mqtt://127.0.0.1:1883. */
  mqttUrl: string;
  adminToken: string;
  ownerId: string;
  /** Unacknowledged messages allowed per vehicle. */
  inflight: number;
  /** Seed of the driving models (vehicle kinds, trips). */
  seed: number;
  /** Vehicles provisioned and connected at the same time (default 20). */
  concurrency?: number;
  /** First characters of every VIN (see vin.ts); the rest is random. */
  vinPrefix?: string;
  /** Powertrains to cycle through instead of a seeded fleet mix. */
  kinds?: readonly VehicleKind[];
  /** How long to wait for outstanding acknowledgements after driving, ms (default 30 000). */
  drainTimeoutMs?: number;
  /** Aborting it ends driving early; outstanding messages are still drained. */
  signal?: AbortSignal;
  /** Aborting it ends draining early; what is still unacknowledged counts as lost. */
  drainSignal?: AbortSignal;
  /** Called about once per second while connecting, driving and draining. */
  onProgress?: (progress: SimulationProgress) => void;
  /** Receives problems worth a human's attention; default: stderr. */
  log?: (line: string) => void;
}

export interface SimulationProgress {
  stage: 'connecting' | 'driving' | 'draining';
  /** Seconds since the stage 'connecting' began, or since driving started for the later stages. */
  elapsedS: number;
  vehicles: number;
  vehiclesConnected: number;
  recordsGenerated: number;
  recordsSent: number;
  recordsAcked: number;
  messagesSent: number;
  messagesAcked: number;
  /** Messages published and not yet acknowledged, all vehicles. */
  messagesInFlight: number;
  /** Messages waiting for a free slot in their vehicle's window. */
  messagesQueued: number;
  /** Records acknowledged per second since the previous progress report. */
  ackedRecordsPerS: number;
}

export interface SimulationResult {
  vehiclesRequested: number;
  /** Vehicles that were provisioned, connected and driven. */
  vehicles: number;
  /** Vehicles that could not be provisioned or connected. */
  vehiclesFailed: number;
  recordsGenerated: number;
  /** Records in messages handed to MQTT. */
  recordsSent: number;
  recordsAcked: number;
  messagesGenerated: number;
  messagesSent: number;
  messagesAcked: number;
  /** Messages whose publish reported an error (not merely unacknowledged). */
  messagesFailed: number;
  /** From the start of driving to the end of draining, seconds. */
  durationS: number;
  ackedRecordsPerS: number;
  /** Driving was cut short by `signal`. */
  interrupted: boolean;
  /** Every vehicle ran and every generated message was acknowledged. */
  ok: boolean;
}

const DEFAULT_CONCURRENCY = 20;
const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
const HTTP_TIMEOUT_MS = 15_000;
const MQTT_CONNECT_TIMEOUT_MS = 15_000;
/** Fresh VINs tried when the admin API reports the VIN as taken. */
const MAX_VIN_ATTEMPTS = 3;
/** Same-kind problems printed in full before they are only counted. */
const MAX_REPORTS_PER_KIND = 5;

/** The line printed at the end of a run; its shape is a contract for scripts. */
export function formatSummary(r: SimulationResult): string {
  return (
    `simulator: vehicles=${r.vehicles} records_sent=${r.recordsSent} records_acked=${r.recordsAcked} ` +
    `messages_sent=${r.messagesSent} messages_acked=${r.messagesAcked} ` +
    `duration_s=${r.durationS.toFixed(3)} acked_records_per_s=${r.ackedRecordsPerS.toFixed(1)}`
  );
}

export function formatProgress(p: SimulationProgress): string {
  if (p.stage === 'connecting') {
    return `simulator: connecting t=${p.elapsedS.toFixed(0)}s connected=${p.vehiclesConnected}/${p.vehicles}`;
  }
  return (
    `simulator: ${p.stage} t=${p.elapsedS.toFixed(0)}s connected=${p.vehiclesConnected}/${p.vehicles} ` +
    `records sent=${p.recordsSent} acked=${p.recordsAcked} messages sent=${p.messagesSent} acked=${p.messagesAcked} ` +
    `in_flight=${p.messagesInFlight} queued=${p.messagesQueued} rate=${p.ackedRecordsPerS.toFixed(1)} acked records/s`
  );
}

/** Builds the wire form of one sample. */
export function buildRecord(seq: number, recordedAtMs: number, sample: VehicleSample): ITelemetryRecord {
  return {
    seq: Long.fromNumber(seq, true),
    recordedAtMs: Long.fromNumber(recordedAtMs),
    technical: sample.technical,
    consumption: sample.consumption,
    location: sample.location,
  };
}

/** Encodes one MQTT payload. */
export function encodeBatch(vin: string, records: readonly ITelemetryRecord[]): Buffer {
  const bytes = TelemetryBatch.encode({ vin, records: [...records] }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class ProvisionError extends Error {
  /** HTTP status, or undefined when no response arrived. */
  readonly status: number | undefined;
  /** True when no other vehicle can succeed either (bad token, API unreachable). */
  readonly fatal: boolean;
  constructor(message: string, status: number | undefined, fatal: boolean) {
    super(message);
    this.name = 'ProvisionError';
    this.status = status;
    this.fatal = fatal;
  }
}

const ProvisionedBody = z.object({ vin: z.string(), secret: z.string().min(1) });

/**
 * Registers one vehicle through the admin API and returns its MQTT secret.
 * Throws ProvisionError; status 409 means the VIN exists and its secret
 * cannot be learned.
 */
export async function provisionVehicle(
  httpUrl: string,
  adminToken: string,
  vin: string,
  ownerId: string,
): Promise<{ vin: string; secret: string }> {
  const url = new URL('/v1/admin/vehicles', httpUrl).toString();
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ vin, ownerId }),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
  } catch (err) {
    throw new ProvisionError(`cannot reach the admin API at ${url}: ${describeError(err)}`, undefined, true);
  }
  const text = await res.text().catch(() => '');
  if (res.status === 201) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const parsed = ProvisionedBody.safeParse(body);
    if (!parsed.success) throw new ProvisionError(`admin API answered 201 without {vin, secret}: ${text.slice(0, 200)}`, 201, true);
    return parsed.data;
  }
  const detail = problemDetail(text);
  if (res.status === 409) {
    throw new ProvisionError(`vehicle ${vin}: already provisioned (409), so its MQTT secret is unknown`, 409, false);
  }
  if (res.status === 401 || res.status === 403) {
    throw new ProvisionError(`admin API refused the admin token (${res.status}${detail ? `: ${detail}` : ''}); check --admin-token / ADMIN_TOKEN`, res.status, true);
  }
  if (res.status === 400) {
    throw new ProvisionError(`admin API rejected vehicle ${vin} (400${detail ? `: ${detail}` : ''})`, 400, true);
  }
  throw new ProvisionError(`admin API answered ${res.status} for vehicle ${vin}${detail ? `: ${detail}` : ''}`, res.status, false);
}

/** The `detail` of an RFC 9457 problem, else the start of the body. */
function problemDetail(text: string): string {
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === 'object' && body !== null && 'detail' in body && typeof body.detail === 'string') return body.detail;
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.slice(0, 200).trim();
}

/** The string `code` a (system) error carries, if any. */
function codeOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause;
    const code = typeof cause === 'object' && cause !== null && 'code' in cause ? (typeof cause.code === 'string' ? cause.code : undefined) : codeOf(err);
    if (code !== undefined) return code;
    if (err.name === 'TimeoutError') return `no answer within ${HTTP_TIMEOUT_MS / 1000} s`;
    if (cause instanceof Error) return cause.message;
    return err.message;
  }
  return String(err);
}

export class ConnectError extends Error {
  /** CONNACK return code when the broker refused, undefined for transport errors. */
  readonly returnCode: number | undefined;
  /** True when the broker cannot be reached at all, so other vehicles will fail too. */
  readonly fatal: boolean;
  constructor(message: string, returnCode: number | undefined, fatal = false) {
    super(message);
    this.name = 'ConnectError';
    this.returnCode = returnCode;
    this.fatal = fatal;
  }
}

/** Socket errors that say the broker address is wrong or down, not that this vehicle is. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Opens the MQTT 3.1.1 session of one vehicle and resolves once CONNACK
 * accepted it. Later connection losses are retried by MQTT.js, which also
 * resends the unacknowledged QoS 1 messages (the gateway stores a record once).
 */
export function connectVehicle(mqttUrl: string, vin: string, secret: string): Promise<MqttClient> {
  const options: IClientOptions = {
    clientId: vin,
    username: vin,
    password: secret,
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 1000,
    connectTimeout: MQTT_CONNECT_TIMEOUT_MS,
    resubscribe: false,
  };
  return new Promise((resolve, reject) => {
    const client = connect(mqttUrl, options);
    let lastError: Error | undefined;
    const fail = (message: string, returnCode: number | undefined, fatal = false): void => {
      cleanup();
      client.end(true);
      // Whatever happens on this client from now on is already reported.
      client.on('error', () => undefined);
      reject(new ConnectError(`vehicle ${vin}: ${message}`, returnCode, fatal));
    };
    const onConnect = (): void => {
      cleanup();
      resolve(client);
    };
    const onError = (err: Error & { code?: unknown }): void => {
      lastError = err;
      if (typeof err.code === 'number') {
        // "Connection refused: Not authorized" from MQTT.js.
        fail(`connection refused: ${err.message.replace(/^Connection refused: /i, '')}`, err.code);
      } else if (typeof err.code === 'string') {
        fail(`cannot connect to ${mqttUrl}: ${err.code}`, undefined, UNREACHABLE.has(err.code));
      } else if (/connack timeout/i.test(err.message)) {
        fail(`no CONNACK from ${mqttUrl} within ${MQTT_CONNECT_TIMEOUT_MS / 1000} s`, undefined);
      } else {
        fail(`connection failed: ${err.message}`, undefined);
      }
    };
    const onClose = (): void => {
      fail(`connection closed by ${mqttUrl} before CONNACK${lastError ? ` (${lastError.message})` : ''}`, undefined);
    };
    const cleanup = (): void => {
      client.removeListener('connect', onConnect);
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
    };
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

/** Runs `fn` over `items` with at most `limit` calls pending; stops starting new ones once `stop()` is true. */
async function forEachLimited<T>(items: readonly T[], limit: number, stop: () => boolean, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !stop()) {
      const index = next++;
      await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Prints the first few problems of a kind, then only counts them. */
class Reporter {
  private readonly counts = new Map<string, number>();
  constructor(private readonly log: (line: string) => void) {}
  report(kind: string, line: string): void {
    const n = (this.counts.get(kind) ?? 0) + 1;
    this.counts.set(kind, n);
    if (n <= MAX_REPORTS_PER_KIND) this.log(line);
    else if (n === MAX_REPORTS_PER_KIND + 1) this.log(`simulator: further "${kind}" problems are counted, not printed`);
  }
  summary(): string[] {
    return [...this.counts].filter(([, n]) => n > MAX_REPORTS_PER_KIND).map(([kind, n]) => `simulator: ${n} "${kind}" problems in all`);
  }
}

interface PendingMessage {
  payload: Buffer;
  records: number;
}

interface Stats {
  recordsGenerated: number;
  recordsSent: number;
  recordsAcked: number;
  messagesGenerated: number;
  messagesSent: number;
  messagesAcked: number;
  messagesFailed: number;
  inFlight: number;
  queued: number;
}

/** One connected vehicle: its model, its batch being filled and its publish window. */
class SimulatedVehicle {
  private seq = 0;
  private sampleIndex = 0;
  private records: ITelemetryRecord[] = [];
  private batchTarget: number;
  private readonly queue: PendingMessage[] = [];
  private inFlight = 0;
  private readonly topic: string;

  constructor(
    readonly vin: string,
    readonly client: MqttClient,
    private readonly model: VehicleModel,
    /** Time of this vehicle's first sample, epoch ms (may be fractional). */
    private readonly firstSampleMs: number,
    private readonly periodMs: number,
    private readonly batch: number,
    firstBatch: number,
    private readonly window: number,
    private readonly stats: Stats,
    private readonly onSettled: () => void,
  ) {
    this.topic = telemetryTopic(vin);
    this.batchTarget = firstBatch;
  }

  get outstanding(): number {
    return this.queue.length + this.inFlight;
  }

  /** Samples everything due up to `nowMs`, but nothing measured at or after `endMs`. */
  sampleUntil(nowMs: number, endMs: number): void {
    for (;;) {
      const at = this.firstSampleMs + this.sampleIndex * this.periodMs;
      if (at > nowMs || at >= endMs) return;
      this.sampleIndex++;
      // Rounded to the wire's millisecond; the period is at least 1 ms, so
      // recordedAtMs still strictly increases.
      const recordedAtMs = Math.round(at);
      this.seq++;
      this.records.push(buildRecord(this.seq, recordedAtMs, this.model.next(recordedAtMs)));
      this.stats.recordsGenerated++;
      if (this.records.length >= this.batchTarget) {
        this.flush();
        this.batchTarget = this.batch;
      }
    }
  }

  /** Turns the records collected so far into a message. */
  flush(): void {
    if (this.records.length === 0) return;
    this.queue.push({ payload: encodeBatch(this.vin, this.records), records: this.records.length });
    this.stats.messagesGenerated++;
    this.stats.queued++;
    this.records = [];
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.window) {
      const msg = this.queue.shift();
      if (msg === undefined) return;
      this.stats.queued--;
      this.inFlight++;
      this.stats.inFlight++;
      this.stats.messagesSent++;
      this.stats.recordsSent += msg.records;
      this.client.publish(this.topic, msg.payload, { qos: 1 }, (err) => {
        this.inFlight--;
        this.stats.inFlight--;
        if (err) this.stats.messagesFailed++;
        else {
          this.stats.messagesAcked++;
          this.stats.recordsAcked += msg.records;
        }
        this.pump();
        this.onSettled();
      });
    }
  }
}

/**
 * Runs a whole simulation and resolves with its counts. Problems (refused
 * connections, failed provisioning) are reported through `log` and reflected
 * in the result; the promise itself only rejects on programming errors.
 */
export async function runSimulation(opts: SimulationOptions): Promise<SimulationResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const reporter = new Reporter(log);
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const drainTimeoutMs = opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const periodMs = 1000 / opts.rate;
  const stats: Stats = {
    recordsGenerated: 0, recordsSent: 0, recordsAcked: 0,
    messagesGenerated: 0, messagesSent: 0, messagesAcked: 0, messagesFailed: 0,
    inFlight: 0, queued: 0,
  };
  const aborted = (): boolean => opts.signal?.aborted === true;

  // --- setup: provision, then connect, a limited number of vehicles at a time.
  type Ready = { index: number; vin: string; client: MqttClient };
  const ready: Ready[] = [];
  let fatal: string | undefined;
  let connected = 0;
  const indices = Array.from({ length: opts.vehicles }, (_, i) => i);
  const setupStartMs = Date.now();
  const setupTimer = setInterval(() => {
    opts.onProgress?.({
      stage: 'connecting', elapsedS: (Date.now() - setupStartMs) / 1000, vehicles: opts.vehicles, vehiclesConnected: connected,
      recordsGenerated: 0, recordsSent: 0, recordsAcked: 0, messagesSent: 0, messagesAcked: 0,
      messagesInFlight: 0, messagesQueued: 0, ackedRecordsPerS: 0,
    });
  }, 1000);
  try {
    await forEachLimited(indices, concurrency, () => aborted() || fatal !== undefined, async (index) => {
      let creds: { vin: string; secret: string } | undefined;
      for (let attempt = 1; attempt <= MAX_VIN_ATTEMPTS && creds === undefined && fatal === undefined; attempt++) {
        const vin = randomVin(opts.vinPrefix ?? '');
        try {
          creds = await provisionVehicle(opts.httpUrl, opts.adminToken, vin, opts.ownerId);
        } catch (err) {
          if (!(err instanceof ProvisionError)) throw err;
          if (err.fatal) {
            fatal ??= err.message;
            return;
          }
          const retry = attempt < MAX_VIN_ATTEMPTS;
          reporter.report(err.status === 409 ? 'VIN taken' : 'provisioning failed', `simulator: ${err.message}${retry ? '; trying a fresh VIN' : '; giving up on this vehicle'}`);
        }
      }
      if (creds === undefined || fatal !== undefined || aborted()) return;
      try {
        const client = await connectVehicle(opts.mqttUrl, creds.vin, creds.secret);
        watchConnection(client, creds.vin, reporter);
        ready.push({ index, vin: creds.vin, client });
        connected++;
      } catch (err) {
        if (!(err instanceof ConnectError)) throw err;
        if (err.fatal) fatal ??= err.message;
        else reporter.report('connection failed', `simulator: ${err.message}`);
      }
    });
  } finally {
    clearInterval(setupTimer);
  }
  if (fatal !== undefined) {
    // A partial fleet would make the counts look like a (slow) success.
    log(`simulator: ${fatal}; not driving`);
    for (const r of ready.splice(0)) r.client.end(true);
  }
  // Vehicle order must not depend on which connection won the race, or a
  // seed would not reproduce the same fleet.
  ready.sort((a, b) => a.index - b.index);

  // --- drive.
  let settle: (() => void) | undefined;
  const onSettled = (): void => {
    if (settle !== undefined && stats.inFlight === 0 && stats.queued === 0) settle();
  };
  const n = ready.length;
  const t0 = Date.now();
  const endMs = t0 + opts.durationS * 1000;
  const fleet = ready.map((r, i) => {
    const vehicleSeed = deriveSeed(opts.seed, r.index);
    const kind = opts.kinds && opts.kinds.length > 0
      ? (opts.kinds[r.index % opts.kinds.length] as VehicleKind)
      : pickVehicleKind(createRng(deriveSeed(opts.seed ^ 0x5eed_f1ee, r.index)));
    // Spreading first samples over one period and first batches over one
    // batch interval keeps N vehicles from publishing in lockstep bursts.
    const firstSampleMs = t0 + (periodMs * i) / Math.max(n, 1);
    const firstBatch = opts.batch - Math.floor((i * opts.batch) / Math.max(n, 1));
    return new SimulatedVehicle(r.vin, r.client, createVehicleModel(kind, vehicleSeed), firstSampleMs, periodMs, opts.batch, firstBatch, opts.inflight, stats, onSettled);
  });

  let lastProgressMs = t0;
  let lastProgressAcked = 0;
  const progress = (stage: SimulationProgress['stage']): void => {
    if (!opts.onProgress) return;
    const now = Date.now();
    const dt = (now - lastProgressMs) / 1000;
    const p: SimulationProgress = {
      stage,
      elapsedS: (now - t0) / 1000,
      vehicles: n,
      vehiclesConnected: fleet.filter((v) => v.client.connected).length,
      recordsGenerated: stats.recordsGenerated,
      recordsSent: stats.recordsSent,
      recordsAcked: stats.recordsAcked,
      messagesSent: stats.messagesSent,
      messagesAcked: stats.messagesAcked,
      messagesInFlight: stats.inFlight,
      messagesQueued: stats.queued,
      ackedRecordsPerS: dt > 0 ? (stats.recordsAcked - lastProgressAcked) / dt : 0,
    };
    lastProgressMs = now;
    lastProgressAcked = stats.recordsAcked;
    opts.onProgress(p);
  };

  if (n > 0 && !aborted()) {
    // A tick of at most 100 ms bounds how late a sample is taken; sampling is
    // driven by timestamps, not by counting ticks, so timer jitter never
    // changes how many records are produced.
    const tickMs = Math.min(100, Math.max(10, periodMs));
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = Date.now();
        for (const v of fleet) v.sampleUntil(now, endMs);
        if (now >= endMs || aborted()) finish();
      };
      const sampler = setInterval(tick, tickMs);
      const reporterTimer = setInterval(() => progress('driving'), 1000);
      const onAbort = (): void => finish();
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearInterval(sampler);
        clearInterval(reporterTimer);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      tick();
    });
  }
  for (const v of fleet) v.flush();

  // --- drain: wait for the acknowledgements of everything generated.
  if (stats.inFlight > 0 || stats.queued > 0) {
    await new Promise<void>((resolve) => {
      const reporterTimer = setInterval(() => progress('draining'), 1000);
      const timeout = setTimeout(() => {
        log(`simulator: ${stats.inFlight + stats.queued} messages still unacknowledged after waiting ${drainTimeoutMs / 1000} s`);
        done();
      }, drainTimeoutMs);
      const onDrainAbort = (): void => {
        log(`simulator: stopped waiting; ${stats.inFlight + stats.queued} messages unacknowledged`);
        done();
      };
      function done(): void {
        settle = undefined;
        clearInterval(reporterTimer);
        clearTimeout(timeout);
        opts.drainSignal?.removeEventListener('abort', onDrainAbort);
        resolve();
      }
      settle = done;
      if (opts.drainSignal?.aborted) onDrainAbort();
      else opts.drainSignal?.addEventListener('abort', onDrainAbort, { once: true });
    });
  }
  const endedMs = Date.now();
  const durationS = n > 0 ? (endedMs - t0) / 1000 : 0;

  // --- disconnect: politely when nothing is pending, else drop the socket.
  await Promise.race([
    Promise.all(fleet.map((v) => v.client.endAsync(v.outstanding > 0).catch(() => undefined))),
    new Promise((resolve) => setTimeout(resolve, 5000).unref()),
  ]);

  for (const line of reporter.summary()) log(line);
  const vehiclesFailed = aborted() ? 0 : opts.vehicles - connected;
  if (!aborted() && connected < opts.vehicles) log(`simulator: ${opts.vehicles - connected} of ${opts.vehicles} vehicles could not be provisioned or connected`);
  return {
    vehiclesRequested: opts.vehicles,
    vehicles: n,
    vehiclesFailed,
    recordsGenerated: stats.recordsGenerated,
    recordsSent: stats.recordsSent,
    recordsAcked: stats.recordsAcked,
    messagesGenerated: stats.messagesGenerated,
    messagesSent: stats.messagesSent,
    messagesAcked: stats.messagesAcked,
    messagesFailed: stats.messagesFailed,
    durationS,
    ackedRecordsPerS: durationS > 0 ? stats.recordsAcked / durationS : 0,
    interrupted: aborted(),
    ok:
      n > 0 &&
      vehiclesFailed === 0 &&
      fatal === undefined &&
      stats.messagesAcked === stats.messagesGenerated &&
      stats.messagesFailed === 0,
  };
}

/** Reports connection losses after the initial connect; MQTT.js reconnects by itself. */
function watchConnection(client: MqttClient, vin: string, reporter: Reporter): void {
  let lost = false;
  client.on('close', () => {
    if (lost || client.disconnecting) return;
    lost = true;
    reporter.report('connection lost', `simulator: vehicle ${vin}: connection lost; reconnecting`);
  });
  client.on('connect', () => {
    if (!lost) return;
    lost = false;
    reporter.report('reconnected', `simulator: vehicle ${vin}: reconnected`);
  });
  client.on('error', (err: Error & { code?: unknown }) => {
    const what = typeof err.code === 'number' ? `connection refused: ${err.message.replace(/^Connection refused: /i, '')}` : err.message;
    reporter.report('connection error', `simulator: vehicle ${vin}: ${what}`);
  });
}
