// A fleet of vehicles streaming telemetry at QoS 1 through real MQTT.js clients, the way a
// vehicle would across gateway restarts: persistent session (clean: false), fixed client
// id (the VIN), automatic reconnects, a bounded window of unacknowledged messages, and
// every message kept until its PUBACK. Each message is built once (fixed seq and
// recorded_at per record), so a resend is byte-identical.
//
// MQTT.js (5.x) behaviour this relies on, read from node_modules/mqtt/build/lib/client.js:
// - a QoS 1 publish stays in the outgoing store until its PUBACK; after a reconnect
//   `_onConnect` resends the whole store (one at a time: the next after the previous
//   PUBACK) whether or not the broker kept the session, and the callback fires on PUBACK;
// - a publish queued while that resend is running (`_storeProcessingQueue`) gets
//   "Connection closed" if the connection drops again: it was never sent, so the vehicle
//   publishes it again (counted as `republished`);
// - a refused CONNACK (e.g. 3, server unavailable, while the database is down) stops
//   reconnecting unless `reconnectOnConnackError` is set: it is.
import mqtt, { type MqttClient } from 'mqtt';
import { encodeBatch, record } from './gateway.ts';

export interface FleetVehicle {
  vin: string;
  secret: string;
}

export interface FleetOptions {
  mqttPort: number;
  vehicles: FleetVehicle[];
  /** Messages per vehicle. */
  messages: number;
  /** Records per message; message i carries seq i*recordsPerMessage+1 … (i+1)*recordsPerMessage. */
  recordsPerMessage: number;
  /** Most unacknowledged messages per vehicle. */
  window: number;
  /** Message i is not published before start + i*intervalMs (0: as fast as the window allows). */
  intervalMs: number;
  /** recorded_at of seq s is baseMs + s. */
  baseMs: number;
  /**
   * Connect, but publish nothing until resume(); the pacing (intervalMs) then counts from
   * the resume, so a slow connect phase does not turn into a burst of overdue messages.
   */
  startPaused?: boolean;
}

export interface MessageState {
  index: number;
  payload: Buffer;
  /** Publish calls for it (1 + republished after "Connection closed"). */
  calls: number;
  firstSentAt: number | null;
  ackedAt: number | null;
}

export interface VehicleState {
  vin: string;
  client: MqttClient;
  topic: string;
  messages: MessageState[];
  next: number;
  outstanding: number;
  maxOutstanding: number;
  acked: number;
  /** PUBLISH packets written to the socket (first sends + MQTT.js store resends + republishes). */
  publishPackets: number;
  republished: number;
  connects: number;
  errors: string[];
}

export interface Fleet {
  readonly vehicles: VehicleState[];
  readonly total: number;
  acked(): number;
  /** Every PUBACK time (test process clock), any vehicle. */
  ackTimes(): number[];
  /** Resolves when every message is acknowledged; rejects after timeoutMs with the progress. */
  done(timeoutMs: number): Promise<void>;
  /** Messages acknowledged so far, as [vin, index]. */
  ackedMessages(): { vin: string; index: number }[];
  /** seq numbers carried by message `index`. */
  seqsOf(index: number): number[];
  stats(): FleetStats;
  /** Publishes nothing new from now on (what is in flight stays in flight). */
  pause(): void;
  resume(): void;
  /** Messages published and not yet acknowledged, all vehicles. */
  outstanding(): number;
  /** Closes every client at once (unacknowledged messages are abandoned). */
  close(): Promise<void>;
}

export interface FleetStats {
  vehicles: number;
  messagesSent: number;
  recordsSent: number;
  messagesAcked: number;
  recordsAcked: number;
  publishPackets: number;
  resentByMqttJs: number;
  republished: number;
  reconnects: number;
  maxOutstanding: number;
  window: number;
}

export function startFleet(opts: FleetOptions): Fleet {
  let t0 = Date.now();
  const ackTimes: number[] = [];
  let totalAcked = 0;
  let doneWaiters: (() => void)[] = [];
  const total = opts.vehicles.length * opts.messages;
  const seqsOf = (i: number) => Array.from({ length: opts.recordsPerMessage }, (_, k) => i * opts.recordsPerMessage + k + 1);

  const vehicles: VehicleState[] = opts.vehicles.map(({ vin, secret }) => {
    const messages: MessageState[] = Array.from({ length: opts.messages }, (_, i) => ({
      index: i,
      payload: encodeBatch(
        vin,
        seqsOf(i).map((s) => record(s, opts.baseMs + s, { technical: { speedKmh: s % 200, odometerKm: 1000 + s / 10 } })),
      ),
      calls: 0,
      firstSentAt: null,
      ackedAt: null,
    }));
    const client = mqtt.connect(`mqtt://127.0.0.1:${opts.mqttPort}`, {
      clientId: vin,
      username: vin,
      password: secret,
      protocolVersion: 4,
      clean: false,
      reconnectPeriod: 200,
      reconnectOnConnackError: true,
      connectTimeout: 5000,
      resubscribe: false,
    });
    const v: VehicleState = {
      vin,
      client,
      topic: `v1/vehicles/${vin}/telemetry`,
      messages,
      next: 0,
      outstanding: 0,
      maxOutstanding: 0,
      acked: 0,
      publishPackets: 0,
      republished: 0,
      connects: 0,
      errors: [],
    };
    client.on('error', (e) => {
      if (v.errors.length < 50) v.errors.push(e.message);
    });
    client.on('connect', () => v.connects++);
    client.on('packetsend', (p) => {
      if (p.cmd === 'publish') v.publishPackets++;
    });
    return v;
  });

  function send(v: VehicleState, m: MessageState): void {
    m.calls++;
    m.firstSentAt ??= Date.now();
    let settled = false;
    v.client.publish(v.topic, m.payload, { qos: 1 }, (err) => {
      if (settled) return;
      settled = true;
      if (closed) return;
      if (err) {
        // Never sent (or the client was reset): publish it again; the window slot stays taken.
        v.republished++;
        setTimeout(() => {
          if (!closed) send(v, m);
        }, 100);
        return;
      }
      if (m.ackedAt === null) {
        m.ackedAt = Date.now();
        ackTimes.push(m.ackedAt);
        v.acked++;
        totalAcked++;
        v.outstanding--;
        if (totalAcked === total) {
          const w = doneWaiters;
          doneWaiters = [];
          for (const f of w) f();
        }
      }
      pump(v);
    });
  }

  const timers = new Set<NodeJS.Timeout>();
  function pump(v: VehicleState): void {
    while (!closed && !paused && v.outstanding < opts.window && v.next < opts.messages) {
      const due = t0 + v.next * opts.intervalMs;
      const wait = due - Date.now();
      if (wait > 0) {
        const t = setTimeout(() => {
          timers.delete(t);
          pump(v);
        }, wait);
        timers.add(t);
        return;
      }
      const m = v.messages[v.next++]!;
      v.outstanding++;
      v.maxOutstanding = Math.max(v.maxOutstanding, v.outstanding);
      send(v, m);
    }
  }

  let closed = false;
  let paused = opts.startPaused === true;
  for (const v of vehicles) pump(v);

  const fleet: Fleet = {
    vehicles,
    total,
    acked: () => totalAcked,
    ackTimes: () => ackTimes,
    seqsOf,
    done(timeoutMs) {
      if (totalAcked === total) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          const lagging = vehicles
            .filter((v) => v.acked < opts.messages)
            .slice(0, 5)
            .map((v) => `${v.vin}: acked ${v.acked}/${opts.messages}, next ${v.next}, outstanding ${v.outstanding}, connected ${v.client.connected}, errors ${v.errors.slice(-3).join(' | ')}`);
          reject(new Error(`fleet not done after ${timeoutMs} ms: ${totalAcked}/${total} acknowledged\n${lagging.join('\n')}`));
        }, timeoutMs);
        doneWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
    ackedMessages() {
      const out: { vin: string; index: number }[] = [];
      for (const v of vehicles) for (const m of v.messages) if (m.ackedAt !== null) out.push({ vin: v.vin, index: m.index });
      return out;
    },
    stats() {
      let sent = 0;
      let packets = 0;
      let calls = 0;
      let republished = 0;
      let reconnects = 0;
      let maxOutstanding = 0;
      for (const v of vehicles) {
        sent += v.next;
        packets += v.publishPackets;
        for (const m of v.messages) calls += m.calls;
        republished += v.republished;
        reconnects += Math.max(0, v.connects - 1);
        maxOutstanding = Math.max(maxOutstanding, v.maxOutstanding);
      }
      return {
        vehicles: vehicles.length,
        messagesSent: sent,
        recordsSent: sent * opts.recordsPerMessage,
        messagesAcked: totalAcked,
        recordsAcked: totalAcked * opts.recordsPerMessage,
        publishPackets: packets,
        // PUBLISH packets beyond one per publish() call: MQTT.js' own resends from its store.
        resentByMqttJs: Math.max(0, packets - calls),
        republished,
        reconnects,
        maxOutstanding,
        window: opts.window,
      };
    },
    pause() {
      paused = true;
    },
    resume() {
      if (paused && vehicles.every((v) => v.next === 0)) t0 = Date.now();
      paused = false;
      for (const v of vehicles) pump(v);
    },
    outstanding: () => vehicles.reduce((n, v) => n + v.outstanding, 0),
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all(vehicles.map((v) => v.client.endAsync(true).catch(() => {})));
    },
  };
  return fleet;
}

/** Provisions vehicles through the admin API of a gateway on httpPort. */
export async function provisionVehicles(httpPort: number, adminToken: string, vins: string[]): Promise<FleetVehicle[]> {
  const out: FleetVehicle[] = [];
  for (const vin of vins) {
    const r = await fetch(`http://127.0.0.1:${httpPort}/v1/admin/vehicles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ vin, ownerId: 'owner-faults' }),
    });
    const body = (await r.json()) as { vin: string; secret: string };
    if (r.status !== 201) throw new Error(`provision ${vin}: ${r.status} ${JSON.stringify(body)}`);
    out.push(body);
  }
  return out;
}

/** What the database holds for these VINs: per VIN rows, distinct seqs, min and max seq. */
export interface StoredSummary {
  rows: number;
  distinct: number;
  duplicates: number;
  missing: number;
  quarantined: number;
  perVinProblems: string[];
}

export async function summarizeStored(
  query: <R>(sql: string, params?: unknown[]) => Promise<R[]>,
  fleet: Fleet,
  recordsPerVin: number,
): Promise<StoredSummary> {
  const vins = fleet.vehicles.map((v) => v.vin);
  const rows = await query<{ vin: string; n: number; d: number; lo: number; hi: number }>(
    'SELECT vin, count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq)::int AS lo, max(seq)::int AS hi FROM telemetry WHERE vin = ANY($1) GROUP BY vin',
    [vins],
  );
  const q = await query<{ n: number }>('SELECT count(*)::int AS n FROM quarantine WHERE vin = ANY($1)', [vins]);
  const byVin = new Map(rows.map((r) => [r.vin, r]));
  let n = 0;
  let d = 0;
  let missing = 0;
  const problems: string[] = [];
  for (const vin of vins) {
    const r = byVin.get(vin) ?? { n: 0, d: 0, lo: 0, hi: 0 };
    n += r.n;
    d += r.d;
    // only seqs 1..recordsPerVin are ever sent: fewer distinct ones means some are missing
    missing += Math.max(0, recordsPerVin - r.d);
    if (r.n !== recordsPerVin || r.d !== recordsPerVin || (r.d > 0 && (r.lo !== 1 || r.hi !== recordsPerVin))) {
      if (problems.length < 10) problems.push(`${vin}: rows ${r.n}, distinct seq ${r.d}, seq ${r.lo}..${r.hi}, expected ${recordsPerVin} (1..${recordsPerVin})`);
    }
  }
  return { rows: n, distinct: d, duplicates: n - d, missing, quarantined: q[0]?.n ?? 0, perVinProblems: problems };
}

/**
 * Acknowledged messages whose records are not (all) in the database right now; also how
 * many messages are stored but not acknowledged (committed, PUBACK never seen).
 */
export async function ackedButMissing(
  query: <R>(sql: string, params?: unknown[]) => Promise<R[]>,
  fleet: Fleet,
): Promise<{ acked: number; missing: { vin: string; index: number }[]; storedNotAcked: number }> {
  const acked = fleet.ackedMessages();
  const vins = fleet.vehicles.map((v) => v.vin);
  const rows = await query<{ vin: string; seq: number }>('SELECT vin, seq::int AS seq FROM telemetry WHERE vin = ANY($1)', [vins]);
  const have = new Set(rows.map((r) => `${r.vin}:${r.seq}`));
  const missing = acked.filter((a) => fleet.seqsOf(a.index).some((s) => !have.has(`${a.vin}:${s}`)));
  let storedNotAcked = 0;
  for (const v of fleet.vehicles) {
    for (const m of v.messages) {
      if (m.ackedAt === null && fleet.seqsOf(m.index).every((s) => have.has(`${v.vin}:${s}`))) storedNotAcked++;
    }
  }
  return { acked: acked.length, missing, storedNotAcked };
}
