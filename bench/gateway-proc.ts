// The gateway in its own process for the benchmark: configuration from the environment
// (as in production), ports and admin token reported over IPC, orderly close on request.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { monitorEventLoopDelay, PerformanceObserver, constants } from 'node:perf_hooks';
import { loadConfig } from '../config/index.ts';
import { startGateway, createLogger } from '../app/gateway.ts';
import { serveRpc, watchTimerLag } from './lib.ts';

const config = loadConfig(process.env);
const gw = await startGateway(config, createLogger(config.logLevel));

let closing: Promise<void> | null = null;
function close(): Promise<void> {
  closing ??= gw.close().catch((err: Error) => {
    process.stderr.write(`gateway-proc: close failed: ${err.message}\n`);
  });
  return closing;
}

// CPU profile of a chosen window (the benchmark's measured part only), via the inspector.
let session: Session | null = null;
function post<T = unknown>(method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => session!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));
}

// Event-loop delay and GC pauses over a chosen window: tells a latency spike caused by
// this process (GC, a long synchronous task) from one caused by the database.
let eld: ReturnType<typeof monitorEventLoopDelay> | null = null;
let gcObs: PerformanceObserver | null = null;
let gcs: { start: number; ms: number; major: boolean }[] = [];
let windowStart = 0;
let lagWatch: ReturnType<typeof watchTimerLag> | null = null;

serveRpc({
  loopStart() {
    eld = monitorEventLoopDelay({ resolution: 10 });
    eld.enable();
    gcs = [];
    windowStart = performance.now();
    gcObs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
        gcs.push({ start: e.startTime - windowStart, ms: e.duration, major: kind === constants.NODE_PERFORMANCE_GC_MAJOR });
      }
    });
    gcObs.observe({ entryTypes: ['gc'] });
    lagWatch = watchTimerLag();
    return { started: true };
  },
  loopStop() {
    eld!.disable();
    gcObs!.disconnect();
    const slotLag = lagWatch?.stop() ?? new Map<number, number>();
    lagWatch = null;
    const wallStart = performance.timeOrigin + windowStart;
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    const major = gcs.filter((g) => g.major);
    const r = {
      eventLoopDelayMs: { p50: ms(eld!.percentile(50)), p99: ms(eld!.percentile(99)), max: ms(eld!.max) },
      gc: {
        count: gcs.length,
        totalMs: Math.round(gcs.reduce((a, g) => a + g.ms, 0)),
        maxMs: Math.round(Math.max(0, ...gcs.map((g) => g.ms)) * 10) / 10,
        major: major.length,
        majorMaxMs: Math.round(Math.max(0, ...major.map((g) => g.ms)) * 10) / 10,
        /** The five longest pauses: seconds into the window, ms. */
        longest: [...gcs].sort((a, b) => b.ms - a.ms).slice(0, 5).map((g) => ({ atS: Math.round(g.start / 100) / 10, ms: Math.round(g.ms * 10) / 10, major: g.major })),
      },
      heapUsedMB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
      /** Wall-clock 100 ms slot → [timer lag, GC ms] where either exceeded 5 ms. */
      slots: Object.fromEntries(
        [...slotLag.entries()]
          .map(([slot, lag]) => {
            const gcMs = gcs.filter((g) => Math.floor((wallStart + g.start) / 100) === slot).reduce((a, g) => a + g.ms, 0);
            return [slot, [Math.round(lag), Math.round(gcMs)]] as const;
          })
          .filter(([, [lag, gcMs]]) => lag > 5 || gcMs > 5),
      ),
    };
    eld = null;
    gcObs = null;
    return r;
  },
  async profileStart() {
    session = new Session();
    session.connect();
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 250 });
    await post('Profiler.start');
    // With BENCH_HEAP_PROFILE=1, allocations are sampled too (where the GC's work comes from);
    // with BENCH_HEAP_PROFILE=survivors only those that outlived a scavenge (promoted to the
    // old generation: what the mark-compacts and the long scavenges are made of).
    const heap = process.env.BENCH_HEAP_PROFILE;
    if (heap) await post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: heap !== 'survivors' });
    return { started: true };
  },
  async profileStop(a: { file: string }) {
    const { profile } = await post<{ profile: object }>('Profiler.stop');
    if (process.env.BENCH_HEAP_PROFILE) {
      const heap = await post<{ profile: object }>('HeapProfiler.stopSampling');
      writeFileSync(a.file.replace(/\.cpuprofile$/, '.heapprofile'), JSON.stringify(heap.profile));
    }
    session!.disconnect();
    session = null;
    writeFileSync(a.file, JSON.stringify(profile));
    return { file: a.file };
  },
  gc() {
    const g = (globalThis as { gc?: () => void }).gc;
    if (!g) return { gc: false };
    g();
    g();
    return { gc: true };
  },
  memory() {
    return process.memoryUsage();
  },
  /** Diagnostics: a heap snapshot (after a full GC) written to `file`. */
  heapSnapshot(a: { file: string }) {
    return { file: writeHeapSnapshot(a.file) };
  },
  async close() {
    await close();
    // Exit after the answer is out (a --cpu-prof profile is written on exit).
    setTimeout(() => process.exit(0), 20);
    return { closed: true };
  },
});
process.once('SIGTERM', () => void close().then(() => process.exit(0)));

process.send?.({ type: 'ready', mqttPort: gw.mqttPort, httpPort: gw.httpPort, adminToken: gw.adminToken, pid: process.pid });
