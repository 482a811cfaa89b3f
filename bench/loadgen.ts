// Lean MQTT load generator (its own process): raw TCP sockets speaking MQTT 3.1.1 by
// hand, one connection per simulated vehicle, QoS 1 with a bounded window of
// unacknowledged messages per vehicle. Driven by the benchmark over IPC:
//   connect      open and authenticate the vehicles (CONNECT → CONNACK 0)
//   closedLoop   each vehicle keeps `window` messages in flight: maximum throughput
//   rate         open loop at a fixed message rate over all vehicles: ack latency, taken
//                from each message's scheduled send time (no coordinated omission:
//                bench/lib.ts OpenLoopSchedule)
//   close        end every connection
import net from 'node:net';
import { samplesFor } from './fleet.ts';
import { telemetryTopic } from '../proto/index.ts';
import { CONNACK, PUBACK, PacketReader, SEQ_BASE, buildPublishTemplate, connectPacket, stamp, type PublishTemplate } from './mqtt-wire.ts';
import { OpenLoopSchedule, latencySummary, serveRpc, slopeRate, watchTimerLag } from './lib.ts';

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
  /** scheduled send time per packet id (open loop; the send time in the closed loop) */
  schedAt: Float64Array;
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
/** Open loop: PUBACK time − scheduled send time of each measured message (the headline). */
let latencies: number[] = [];
/** The same messages from their actual send (what was reported before; hides the load generator's own delays and waits for the window). */
let latenciesFromSend: number[] = [];
/** Actual send − scheduled send of each measured message: how late the load generator was. */
let sendLags: number[] = [];
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
/** The open-loop run's schedule and queue of messages waiting for a window slot. */
let schedule: OpenLoopSchedule | null = null;

function totalInflight(): number {
  let n = 0;
  for (const c of conns) n += c.inflight;
  return n;
}

function sendOne(c: Conn, scheduledAt?: number): boolean {
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
  c.schedAt[id] = scheduledAt ?? c.sentAt[id]!;
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
  const sched = c.schedAt[id]!;
  if (mode === 'rate' && sched >= measureFrom && sched < measureTo && latencies.length < LATENCY_CAP) {
    const l = now - sched;
    latencies.push(l);
    latenciesFromSend.push(now - t);
    sendLags.push(t - sched);
    ackLog?.push(c.i, c.seqAt[id]!, performance.timeOrigin + now);
    const slot = Math.floor(Date.now() / 100);
    slotLatency.set(slot, Math.max(slotLatency.get(slot) ?? 0, l));
    const s = Math.floor((sched - measureFrom) / 1000);
    (latencyBySecond[s] ??= []).push(l);
  }
}

function afterAcks(c: Conn): void {
  if (mode === 'closed' && running && c.inflight < windowSize) {
    c.sock.cork();
    while (c.inflight < windowSize && sendOne(c));
    c.sock.uncork();
  }
  // Open loop: a freed slot takes the oldest message waiting for one, at once.
  if (mode === 'rate' && schedule && schedule.waiting > 0 && c.inflight < windowSize) {
    c.sock.cork();
    schedule.pump((at) => sendOne(c, at));
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
          schedAt: new Float64Array(ID_SPACE + 1),
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
  latenciesFromSend = [];
  sendLags = [];
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
  /** Most messages waiting for a window slot at once; past it due messages are dropped (`overflowed`). Default: 2 s of the schedule, at least 1,000. */
  maxQueued?: number;
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
  const sch = new OpenLoopSchedule(runStart, a.msgsPerSec, end, a.maxQueued ?? Math.max(1000, Math.ceil(a.msgsPerSec * 2)));
  schedule = sch;
  let rr = 0;
  // Round robin over the vehicles: the first one with a free slot takes the message.
  const sendAny = (at: number): boolean => {
    for (let tries = 0; tries < conns.length; tries++) {
      const c = conns[rr]!;
      rr = (rr + 1) % conns.length;
      if (sendOne(c, at)) return true;
    }
    return false;
  };
  // The schedule, then what still waits for a slot (bounded by drainMs).
  const queueDeadline = end + a.drainMs;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      sch.advance(now);
      if (sch.waiting > 0 && conns.length > 0) sch.pump(sendAny);
      if ((now >= end && sch.waiting === 0) || now >= queueDeadline) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  running = false;
  schedule = null;
  const drained = await drain(Math.max(0, queueDeadline - performance.now()));
  const tEnd = performance.now();
  const slotLag = lagWatch?.stop() ?? new Map<number, number>();
  lagWatch = null;
  mode = 'idle';
  // Measured messages never acknowledged (never sent, or still in flight at the deadline):
  // their latency is at least the time until the run ended; counted with that lower bound.
  const censored: number[] = [];
  for (const at of sch.unsent()) if (at >= measureFrom && at < measureTo) censored.push(tEnd - at);
  for (const c of conns) {
    for (let id = 1; id <= ID_SPACE; id++) {
      const at = c.schedAt[id]!;
      if (c.sentAt[id] !== 0 && at >= measureFrom && at < measureTo) censored.push(tEnd - at);
    }
  }
  const fromSched = latencySummary([...latencies, ...censored]);
  const fromSend = latencySummary(latenciesFromSend);
  const lag = latencySummary(sendLags);
  return {
    recordsPerMsg,
    targetMsgsPerSec: a.msgsPerSec,
    sentMsgs,
    ackedMsgs,
    /** Messages of the whole run (warm-up included) that fell due, and that found every window full (waited, or were dropped). */
    scheduledMsgs: sch.scheduled,
    deferredByWindow: sch.deferredByWindow,
    /** Dropped because `maxQueued` were already waiting; most waiting at once. */
    overflowed: sch.overflowed,
    maxWaiting: sch.maxWaiting,
    /** Measured messages never acknowledged by the end: in the percentiles with a lower bound (end − scheduled). */
    unacked: censored.length,
    measuredAckedMsgs,
    achievedRecordsPerSec: (measuredAckedMsgs * recordsPerMsg) / (a.measureMs / 1000),
    /** Latency from the scheduled send time (the headline; messages scheduled in the measured window). */
    samples: fromSched.samples,
    p50: fromSched.p50,
    p90: fromSched.p90,
    p99: fromSched.p99,
    p999: fromSched.p999,
    max: fromSched.max,
    /** The same acknowledged messages from their actual send (the figure before; omits the waits). */
    fromSend,
    /** Actual send − scheduled send (the load generator's own lateness, and waits for a slot). */
    sendLag: lag,
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
