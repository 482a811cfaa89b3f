// Lean MQTT load generator (its own process): raw TCP sockets speaking MQTT 3.1.1 by
// hand, one connection per simulated vehicle, QoS 1 with a bounded window of
// unacknowledged messages per vehicle. Driven by the benchmark over IPC:
//   connect      open and authenticate the vehicles (CONNECT → CONNACK 0)
//   closedLoop   each vehicle keeps `window` messages in flight: maximum throughput
//   rate         open loop at a fixed message rate over all vehicles: ack latency
//   close        end every connection
import net from 'node:net';
import { samplesFor } from './fleet.ts';
import { telemetryTopic } from '../proto/index.ts';
import { CONNACK, PUBACK, PacketReader, SEQ_BASE, buildPublishTemplate, connectPacket, stamp, type PublishTemplate } from './mqtt-wire.ts';
import { serveRpc, slopeRate, watchTimerLag } from './lib.ts';

const ID_SPACE = 1024;

interface Conn {
  i: number;
  vin: string;
  sock: net.Socket;
  tpl: PublishTemplate | null;
  seq: number;
  inflight: number;
  nextId: number;
  /** send time (performance.now()) per packet id; 0 = free */
  sentAt: Float64Array;
  /** first seq of the message in flight under each packet id (for the stream bench's ack log) */
  seqAt: Float64Array;
  open: boolean;
}

let conns: Conn[] = [];
let recordsPerMsg = 0;

// Counters of the run in progress.
let mode: 'idle' | 'closed' | 'rate' = 'idle';
let running = false;
let windowSize = 8;
let sentMsgs = 0;
let ackedMsgs = 0;
let unexpectedCloses = 0;
let measureFrom = Infinity;
let measureTo = -Infinity;
let measuredAckedMsgs = 0;
let latencies: number[] = [];
/** With RateArgs.ackLog: [vehicle index, first seq, PUBACK wall-clock ms] of each measured message. */
let ackLog: number[] | null = null;
let latencyBySecond: number[][] = [];
/** Wall-clock 100 ms slot → the largest latency of a message acknowledged in it, and this process's largest timer lag. */
const slotLatency = new Map<number, number>();
let lagWatch: ReturnType<typeof watchTimerLag> | null = null;
const LATENCY_CAP = 2_000_000;
let perSecond: number[] = [];
/** Acknowledgements per 10 ms of the measured window (closed loop): the rate as a slope. */
let measuredBuckets: number[] = [];
let runStart = 0;
let drainWaiter: (() => void) | null = null;

function totalInflight(): number {
  let n = 0;
  for (const c of conns) n += c.inflight;
  return n;
}

function sendOne(c: Conn): boolean {
  if (!c.open || !c.tpl || c.inflight >= windowSize) return false;
  let id = 0;
  for (let k = 0; k < ID_SPACE; k++) {
    const cand = (c.nextId % ID_SPACE) + 1;
    c.nextId = cand;
    if (c.sentAt[cand] === 0) {
      id = cand;
      break;
    }
  }
  if (id === 0) return false;
  const buf = stamp(c.tpl, id, c.seq, Date.now());
  c.seq += c.tpl.records;
  c.inflight++;
  c.sentAt[id] = performance.now();
  c.seqAt[id] = c.seq - c.tpl.records;
  sentMsgs++;
  c.sock.write(buf);
  return true;
}

function onAck(c: Conn, id: number): void {
  const t = c.sentAt[id]!;
  if (t === 0) return;
  c.sentAt[id] = 0;
  c.inflight--;
  ackedMsgs++;
  const now = performance.now();
  const sec = Math.floor((now - runStart) / 1000);
  if (sec >= 0 && sec < 3600) perSecond[sec] = (perSecond[sec] ?? 0) + 1;
  if (now >= measureFrom && now < measureTo) {
    measuredAckedMsgs++;
    const b = Math.floor((now - measureFrom) / 10);
    measuredBuckets[b] = (measuredBuckets[b] ?? 0) + 1;
  }
  if (mode === 'rate' && t >= measureFrom && t < measureTo && latencies.length < LATENCY_CAP) {
    latencies.push(now - t);
    ackLog?.push(c.i, c.seqAt[id]!, performance.timeOrigin + now);
    const slot = Math.floor(Date.now() / 100);
    slotLatency.set(slot, Math.max(slotLatency.get(slot) ?? 0, now - t));
    const s = Math.floor((t - measureFrom) / 1000);
    (latencyBySecond[s] ??= []).push(now - t);
  }
}

function afterAcks(c: Conn): void {
  if (mode === 'closed' && running && c.inflight < windowSize) {
    c.sock.cork();
    while (c.inflight < windowSize && sendOne(c));
    c.sock.uncork();
  }
  if (drainWaiter && totalInflight() === 0) {
    const w = drainWaiter;
    drainWaiter = null;
    w();
  }
}

function buildTemplate(vin: string, i: number, n: number, withLocation: boolean): PublishTemplate {
  return buildPublishTemplate(vin, telemetryTopic(vin), samplesFor(i, n, withLocation));
}

interface ConnectArgs {
  host: string;
  port: number;
  vins: string[];
  password: string | null;
  /** Source addresses to spread the connections over (127.0.0.x). */
  localAddresses?: string[];
  parallel?: number;
  recordsPerMsg: number;
  withLocation?: boolean;
  timeoutMs?: number;
  /** The first index used for model seeds (so two generators do not share trips). */
  indexBase?: number;
}

function connectAll(a: ConnectArgs): Promise<{ connected: number; failed: number; errors: string[]; ms: number }> {
  recordsPerMsg = a.recordsPerMsg;
  const t0 = performance.now();
  const parallel = a.parallel ?? 200;
  const errors: string[] = [];
  let next = 0;
  let active = 0;
  let connected = 0;
  let failed = 0;
  const timeoutMs = a.timeoutMs ?? 120_000;
  return new Promise((resolve) => {
    const deadline = setTimeout(() => finish(), timeoutMs);
    let done = false;
    function finish() {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      resolve({ connected, failed: a.vins.length - connected, errors: errors.slice(0, 5), ms: Math.round(performance.now() - t0) });
    }
    function launch() {
      while (active < parallel && next < a.vins.length) {
        const i = next++;
        active++;
        const vin = a.vins[i]!;
        const local = a.localAddresses?.length ? a.localAddresses[i % a.localAddresses.length] : undefined;
        const sock = net.connect({ host: a.host, port: a.port, localAddress: local, noDelay: true });
        const c: Conn = {
          i,
          vin,
          sock,
          tpl: a.recordsPerMsg > 0 ? buildTemplate(vin, (a.indexBase ?? 0) + i, a.recordsPerMsg, a.withLocation ?? true) : null,
          seq: SEQ_BASE,
          inflight: 0,
          nextId: 0,
          sentAt: new Float64Array(ID_SPACE + 1),
          seqAt: new Float64Array(ID_SPACE + 1),
          open: false,
        };
        let settled = false;
        const settle = (ok: boolean, err?: string) => {
          if (settled) return;
          settled = true;
          active--;
          if (ok) {
            connected++;
            c.open = true;
            conns.push(c);
          } else {
            failed++;
            if (err) errors.push(`${vin}: ${err}`);
            sock.destroy();
          }
          if (connected + failed === a.vins.length) finish();
          else launch();
        };
        const reader = new PacketReader((first, body) => {
          const type = first & 0xf0;
          if (type === PUBACK) {
            onAck(c, (body[0]! << 8) | body[1]!);
          } else if (type === CONNACK) {
            const rc = body[1]!;
            if (rc === 0) settle(true);
            else settle(false, `CONNACK return code ${rc}`);
          }
        });
        sock.on('data', (d: Buffer) => {
          reader.push(d);
          if (c.open) afterAcks(c);
        });
        sock.on('connect', () => sock.write(connectPacket(vin, a.password === null ? null : vin, a.password)));
        sock.on('error', (e) => settle(false, e.message));
        sock.on('close', () => {
          if (c.open) {
            c.open = false;
            if (running || c.inflight > 0) unexpectedCloses++;
            // What it had in flight will never be acknowledged.
            c.inflight = 0;
            c.sentAt.fill(0);
          }
          settle(false, 'closed before CONNACK');
        });
      }
    }
    if (a.vins.length === 0) finish();
    else launch();
  });
}

function resetCounters(): void {
  sentMsgs = 0;
  ackedMsgs = 0;
  measuredAckedMsgs = 0;
  unexpectedCloses = 0;
  latencies = [];
  latencyBySecond = [];
  slotLatency.clear();
  // Timer lag of this process: a stall here delays every acknowledgement it reads.
  lagWatch?.stop();
  lagWatch = watchTimerLag();
  perSecond = [];
  measuredBuckets = [];
}

function drain(ms: number): Promise<boolean> {
  if (totalInflight() === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      drainWaiter = null;
      resolve(false);
    }, ms);
    drainWaiter = () => {
      clearTimeout(t);
      resolve(true);
    };
  });
}

interface RunArgs {
  window: number;
  warmupMs: number;
  measureMs: number;
  drainMs: number;
}

async function closedLoop(a: RunArgs) {
  resetCounters();
  mode = 'closed';
  windowSize = a.window;
  running = true;
  runStart = performance.now();
  measureFrom = runStart + a.warmupMs;
  measureTo = measureFrom + a.measureMs;
  for (const c of conns) {
    c.sock.cork();
    while (sendOne(c));
    c.sock.uncork();
  }
  await new Promise((r) => setTimeout(r, a.warmupMs + a.measureMs));
  running = false;
  const sentAtStop = sentMsgs;
  const drained = await drain(a.drainMs);
  mode = 'idle';
  return {
    recordsPerMsg,
    sentMsgs,
    sentMsgsAtStop: sentAtStop,
    ackedMsgs,
    measuredAckedMsgs,
    measuredRecordsPerSec: (measuredAckedMsgs * recordsPerMsg) / (a.measureMs / 1000),
    ackedRecords: ackedMsgs * recordsPerMsg,
    sentRecords: sentMsgs * recordsPerMsg,
    inflightLeft: totalInflight(),
    drained,
    unexpectedCloses,
    perSecondRecords: perSecond.map((n) => (n ?? 0) * recordsPerMsg),
    /** The same window's rate as the slope of acknowledgements over time (bench/lib.ts slopeRate). */
    slopeRecordsPerSec: slopeRate(Array.from({ length: Math.ceil(a.measureMs / 10) }, (_, i) => measuredBuckets[i] ?? 0), 10) * recordsPerMsg,
  };
}

interface RateArgs extends RunArgs {
  msgsPerSec: number;
  /** Return the ack log (vehicle index, first seq, PUBACK wall-clock ms) of the measured messages. */
  ackLog?: boolean;
}

async function rateRun(a: RateArgs) {
  resetCounters();
  mode = 'rate';
  ackLog = a.ackLog ? [] : null;
  windowSize = a.window;
  running = true;
  runStart = performance.now();
  measureFrom = runStart + a.warmupMs;
  measureTo = measureFrom + a.measureMs;
  const end = measureTo;
  let scheduled = 0;
  let deferred = 0;
  let rr = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.floor(((Math.min(now, end) - runStart) / 1000) * a.msgsPerSec) - scheduled;
      for (let k = 0; k < due; k++) {
        scheduled++;
        let sent = false;
        for (let tries = 0; tries < conns.length && !sent; tries++) {
          const c = conns[rr]!;
          rr = (rr + 1) % conns.length;
          sent = sendOne(c);
        }
        if (!sent) deferred++;
      }
      if (now >= end) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  running = false;
  const drained = await drain(a.drainMs);
  const slotLag = lagWatch?.stop() ?? new Map<number, number>();
  lagWatch = null;
  mode = 'idle';
  latencies.sort((x, y) => x - y);
  const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]! : NaN);
  return {
    recordsPerMsg,
    targetMsgsPerSec: a.msgsPerSec,
    sentMsgs,
    ackedMsgs,
    deferred,
    measuredAckedMsgs,
    achievedRecordsPerSec: (measuredAckedMsgs * recordsPerMsg) / (a.measureMs / 1000),
    samples: latencies.length,
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    p999: pct(99.9),
    max: latencies.length ? latencies[latencies.length - 1]! : NaN,
    /** p99 of the messages sent in each second of the measured window, ms. */
    p99BySecond: latencyBySecond.map((l) => {
      const x = (l ?? []).sort((p, q) => p - q);
      return x.length ? Math.round(x[Math.min(x.length - 1, Math.ceil(0.99 * x.length) - 1)]! * 10) / 10 : null;
    }),
    /** The 10 worst 100 ms slots: [wall-clock slot, worst latency acknowledged in it, this process's timer lag then]. */
    worstSlots: [...slotLatency.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, 10)
      .map(([slot, ms]) => [slot, Math.round(ms), Math.round(Math.max(slotLag.get(slot) ?? 0, slotLag.get(slot - 1) ?? 0))]),
    drained,
    ...(ackLog ? { ackLog } : {}),
    inflightLeft: totalInflight(),
    unexpectedCloses,
  };
}

serveRpc({
  connect: (a: ConnectArgs) => connectAll(a),
  closedLoop: (a: RunArgs) => closedLoop(a),
  rate: (a: RateArgs) => rateRun(a),
  status: () => ({ connections: conns.filter((c) => c.open).length, inflight: totalInflight(), sentMsgs, ackedMsgs }),
  close() {
    for (const c of conns) {
      c.open = false;
      c.sock.destroy();
    }
    conns = [];
    return { closed: true };
  },
});
process.send?.({ type: 'ready' });
