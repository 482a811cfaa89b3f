// Shared pieces of the benchmark: child processes (through devkit/spawn.ts, with its small
// RPC over IPC) listed in a pid file so a later run can end leftovers, /proc readings, throwaway databases, statistics.
import { spawnSync } from 'node:child_process';
import { createWriteStream, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, serveRpc, sleep, spawnProcess, type Proc } from '../devkit/spawn.ts';

export { freePort, serveRpc, sleep };

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = path.resolve(BENCH_DIR, '..');
/** Every process this run starts is listed here, so a later run can end leftovers by pid. */
const PID_FILE = path.join(os.tmpdir(), 'cardata-bench-pids.json');
export const MARKER = 'cardata-bench';

// ---------------------------------------------------------------------------
// Child processes

/** A benchmark child: started by the one spawner (devkit/spawn.ts), with its IPC channel. */
export type Child = Proc;

const children = new Set<Child>();
const otherPids = new Set<number>();

function savePids(): void {
  try {
    const pids = [...[...children].filter((c) => c.running).map((c) => c.pid), ...otherPids];
    writeFileSync(PID_FILE, JSON.stringify(pids));
  } catch {
    // best effort
  }
}

/** Ends processes a previous run left behind (killed bench): only pids it recorded, only if still ours. */
export function reapLeftovers(): void {
  if (!existsSync(PID_FILE)) return;
  try {
    const pids = JSON.parse(readFileSync(PID_FILE, 'utf8')) as number[];
    for (const pid of pids) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmd.includes(MARKER) || cmd.includes(`${BENCH_DIR}/`)) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  } catch {
    // unreadable: ignore
  }
  writeFileSync(PID_FILE, '[]');
}

export function killAllChildren(): void {
  for (const c of children) c.killTree();
  for (const pid of otherPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  otherPids.clear();
  savePids();
}

let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', killAllChildren);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAllChildren();
      process.exit(130);
    });
  }
}

/** Registers a process started some other way (e.g. mosquitto) for the exit cleanup. */
export function track(pid: number): void {
  hookExit();
  otherPids.add(pid);
  savePids();
}
export function untrack(pid: number): void {
  otherPids.delete(pid);
  savePids();
}

export interface SpawnOptions {
  env?: Record<string, string>;
  nodeArgs?: string[];
  args?: string[];
}

/**
 * Starts bench/<script> under node + tsx in a shell that first raises the soft
 * open-files limit to the hard limit (10,000 sockets need it on a fresh machine).
 */
export function spawnNode(name: string, script: string, opts: SpawnOptions = {}): Child {
  hookExit();
  const file = path.join(BENCH_DIR, script);
  const argv = [process.execPath, ...(opts.nodeArgs ?? []), '--import', 'tsx', file, ...(opts.args ?? [])];
  // Not a process group of its own (as before): the shell exec's into node, so the pid is
  // node's, and killing it ends the child.
  const child = spawnProcess('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; exec "$@"', MARKER, ...argv], {
    name,
    cwd: REPO_DIR,
    env: { ...process.env, ...opts.env },
    ipc: true,
    group: false,
    outputLimit: 200_000,
  });
  // BENCH_CHILD_OUTPUT_DIR=dir: every child's whole output also goes to dir/<name>.log
  // (for diagnostics such as BENCH_GATEWAY_NODE_ARGS=--trace-gc-nvp).
  const outDir = process.env.BENCH_CHILD_OUTPUT_DIR;
  if (outDir) {
    const out = createWriteStream(path.join(outDir, `${name}.log`), { flags: 'a' });
    child.proc.stdout!.pipe(out, { end: false });
    child.proc.stderr!.pipe(out, { end: false });
    child.proc.once('exit', () => out.end());
  }
  children.add(child);
  savePids();
  void child.exit.then(() => {
    children.delete(child);
    savePids();
  });
  return child;
}

// ---------------------------------------------------------------------------
// /proc

/** Resident set size of a process, bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) * 1024 : NaN;
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** CPU seconds (user + system) used so far by a process. */
export function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/**
 * Seconds the threads of `pid` have spent runnable but waiting for a CPU (the run queue),
 * from /proc/<pid>/task/<tid>/schedstat; 0 where the kernel does not keep schedstats.
 */
export function runQueueWaitSeconds(pid: number): number {
  let ns = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[1] ?? 0);
      } catch {
        // thread gone
      }
    }
  } catch {
    return 0;
  }
  return ns / 1e9;
}

type PgKind = 'ours' | 'shared' | 'other';

/**
 * pid → CPU seconds of every PostgreSQL server process visible here, classified:
 * backends of our databases ('ours'), server-wide processes such as the WAL writer and
 * checkpointer ('shared'), backends of any other database ('other': someone else's load).
 */
export function postgresCpu(ourDbs: readonly string[]): Map<number, { cpu: number; wait: number; kind: PgKind }> {
  const out = new Map<number, { cpu: number; wait: number; kind: PgKind }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== 'postgres') continue;
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      const m = /^postgres: \S+ (\S+) (?:\d+\.\d+\.\d+\.\d+|\[local\])/.exec(cmd) ?? /^postgres: autovacuum worker (\S+)/.exec(cmd);
      const kind: PgKind = !m ? 'shared' : ourDbs.includes(m[1]!) ? 'ours' : 'other';
      out.set(Number(d), { cpu: cpuSeconds(Number(d)), wait: runQueueWaitSeconds(Number(d)), kind });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * CPU used by groups of processes between start and stop(), in cores (CPU-s per s),
 * plus PostgreSQL (our databases' backends + server-wide processes), the whole machine,
 * and what is left: other processes on this machine (noise in the figures).
 */
export function cpuMeter(groups: Record<string, number[]>, ourDbs: readonly string[] = []) {
  const t0 = performance.now();
  const before = new Map<string, number>();
  const waitBefore = new Map<string, number>();
  for (const [g, pids] of Object.entries(groups)) {
    before.set(g, pids.reduce((a, p) => a + cpuSeconds(p), 0));
    waitBefore.set(g, pids.reduce((a, p) => a + runQueueWaitSeconds(p), 0));
  }
  const pg0 = postgresCpu(ourDbs);
  const total0 = machineCpu();
  return {
    stop(): Record<string, number> {
      const dt = (performance.now() - t0) / 1000;
      const out: Record<string, number> = {};
      // Per group, seconds per second its threads waited for a CPU while runnable.
      const waits: Record<string, number> = {};
      let accounted = 0;
      for (const [g, pids] of Object.entries(groups)) {
        const used = (pids.reduce((a, p) => a + cpuSeconds(p), 0) - before.get(g)!) / dt;
        out[g] = round(used, 2);
        waits[g] = round((pids.reduce((a, p) => a + runQueueWaitSeconds(p), 0) - waitBefore.get(g)!) / dt, 3);
        accounted += used;
      }
      const pg1 = postgresCpu(ourDbs);
      const used: Record<PgKind, number> = { ours: 0, shared: 0, other: 0 };
      let pgWait = 0;
      for (const [pid, x] of pg1) {
        used[x.kind] += x.cpu - (pg0.get(pid)?.cpu ?? 0);
        if (x.kind !== 'other') pgWait += x.wait - (pg0.get(pid)?.wait ?? 0);
      }
      out.postgres = round((used.ours + used.shared) / dt, 2);
      waits.postgres = round(pgWait / dt, 3);
      accounted += (used.ours + used.shared) / dt;
      const total1 = machineCpu();
      const busy = (total1.busy - total0.busy) / CLK_TCK / dt;
      out.machineBusy = round(busy, 2);
      out.otherProcesses = round(Math.max(0, busy - accounted), 2);
      (out as Record<string, unknown>).runQueueWait = waits;
      return out;
    },
  };
}

/** Cores kept busy by everything on the machine over the next `ms`. */
export async function machineBusyCores(ms: number): Promise<number> {
  const a = machineCpu();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const b = machineCpu();
  return (b.busy - a.busy) / CLK_TCK / ((performance.now() - t0) / 1000);
}

function machineCpu(): { busy: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: f.reduce((a, b) => a + b, 0) - idle };
}

// ---------------------------------------------------------------------------
// Databases

export function serverUrl(): string {
  if (process.env.BENCH_DATABASE_URL) return process.env.BENCH_DATABASE_URL;
  const r = spawnSync('bash', [path.join(REPO_DIR, 'scripts/timescaledb.sh'), 'up'], { encoding: 'utf8', timeout: 600_000 });
  const url = (r.stdout ?? '').trim().split('\n').filter((l) => /^postgres(ql)?:\/\//.test(l)).pop();
  if (r.status !== 0 || !url) throw new Error(`scripts/timescaledb.sh up failed (status ${r.status}):\n${(r.stderr ?? '').slice(-2000)}`);
  return url;
}

export function dbUrl(server: string, name: string): string {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

const created = new Set<string>();

export async function createDatabase(server: string, name: string): Promise<string> {
  const c = new pg.Client({ connectionString: server });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  created.add(name);
  return dbUrl(server, name);
}

/**
 * Drops a benchmark database. WITH (FORCE) ends our own leftover sessions, but a
 * non-superuser may not terminate an autovacuum worker (busy after the bulk inserts):
 * then plain DROP DATABASE, which stops autovacuum itself, retried a few times.
 */
export async function dropDatabase(server: string, name: string): Promise<void> {
  const c = new pg.Client({ connectionString: server });
  await c.connect();
  try {
    let lastErr: Error | null = null;
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        await c.query(attempt % 2 === 0 ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${name}`);
        lastErr = null;
        break;
      } catch (err) {
        lastErr = err instanceof Error ? err : new Error(String(err));
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    if (lastErr) throw lastErr;
  } finally {
    await c.end();
  }
  created.delete(name);
}

export async function dropAllCreated(server: string): Promise<void> {
  const failed: string[] = [];
  for (const n of [...created]) await dropDatabase(server, n).catch((err: Error) => failed.push(`${n}: ${err.message}`));
  if (failed.length) throw new Error(`not dropped: ${failed.join('; ')}`);
}

// ---------------------------------------------------------------------------
// Misc

export function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > end) reject(new Error(`port ${port} not open within ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}


export function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * The rate of an event, per second, as the least-squares slope of its running total against
 * time; `buckets[i]` counts the events in [i, i + 1) × bucketMs. A closed loop is acknowledged
 * in bursts (a writer transaction acknowledges everything it stored: at the stream part's
 * load ~2,000 messages every 0.5-1.5 s), so a count over a fixed window moves by a whole
 * burst with the window's phase: ±10 % in 10 s. The slope is fitted to the whole staircase
 * and moves by about the square of that fraction.
 */
export function slopeRate(buckets: readonly number[], bucketMs: number): number {
  const n = buckets.length;
  if (n < 2) return NaN;
  // x = end of bucket i (s), y = total at that end.
  const mx = ((n + 1) / 2) * (bucketMs / 1000);
  let total = 0;
  let my = 0;
  for (const b of buckets) my += total += b;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  total = 0;
  for (let i = 0; i < n; i++) {
    total += buckets[i]!;
    const dx = (i + 1) * (bucketMs / 1000) - mx;
    sxy += dx * (total - my);
    sxx += dx * dx;
  }
  return sxy / sxx;
}

/** Percentile by nearest rank of a sorted copy. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** p50, p90, p99, p99.9 and max by nearest rank (sorts `values` in place); NaN when empty. */
export function latencySummary(values: number[]): { samples: number; p50: number; p90: number; p99: number; p999: number; max: number } {
  values.sort((a, b) => a - b);
  const n = values.length;
  const at = (p: number) => (n ? values[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n - 1e-9) - 1))]! : NaN);
  return { samples: n, p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: n ? values[n - 1]! : NaN };
}

/**
 * The open-loop schedule of the ack-latency runs, without coordinated omission (as wrk2, or
 * HdrHistogram's corrected recording): message k (1, 2, …) is due at start + k·1000/msgsPerSec,
 * and its latency is taken from that scheduled time, not from when it actually left. A
 * message that finds every in-flight window full waits in a FIFO queue (it is not dropped)
 * and goes out when a slot frees; it counts once in `deferredByWindow`. A stall of the
 * gateway or of the load generator itself then shows in the latencies of every message
 * scheduled during it, instead of removing them from the sample.
 *
 * Bounded: nothing is scheduled at or after `end`, and at most `maxQueued` messages wait;
 * past that a due message is dropped (`overflowed`, also deferred) and its scheduled time
 * kept in `dropped` (a run with drops has no valid percentile: the caller reports them as
 * lower bounds). Pure: the caller passes the clock and the send function.
 */
export class OpenLoopSchedule {
  readonly intervalMs: number;
  /** Messages that have fallen due so far. */
  scheduled = 0;
  /** Messages that were not sent in the pass in which they fell due (no free window slot), dropped ones included. */
  deferredByWindow = 0;
  /** Messages dropped because `maxQueued` were already waiting. */
  overflowed = 0;
  /** Largest number of messages waiting at once. */
  maxWaiting = 0;
  readonly dropped: number[] = [];
  private readonly q: number[] = [];
  private head = 0;
  /** Absolute queue index below which waiting messages are already counted as deferred. */
  private countedTo = 0;
  private base = 0;

  constructor(
    readonly start: number,
    readonly msgsPerSec: number,
    readonly end: number,
    readonly maxQueued: number,
  ) {
    if (!(msgsPerSec > 0)) throw new Error('msgsPerSec must be > 0');
    this.intervalMs = 1000 / msgsPerSec;
  }

  /** Scheduled send time of message k (1-based). */
  timeOf(k: number): number {
    return this.start + k * this.intervalMs;
  }

  get waiting(): number {
    return this.q.length - this.head;
  }

  /** True once the schedule is over (nothing more will fall due) and nothing waits. */
  get done(): boolean {
    return this.waiting === 0 && this.timeOf(this.scheduled + 1) >= this.end;
  }

  /** Queues the messages due by `now`, in schedule order; returns how many fell due. */
  advance(now: number): number {
    let n = 0;
    for (;;) {
      const t = this.timeOf(this.scheduled + 1);
      if (t > now || t >= this.end) break;
      this.scheduled++;
      n++;
      if (this.waiting >= this.maxQueued) {
        this.overflowed++;
        this.deferredByWindow++;
        this.dropped.push(t);
        continue;
      }
      this.q.push(t);
    }
    this.maxWaiting = Math.max(this.maxWaiting, this.waiting);
    return n;
  }

  /**
   * Sends waiting messages, oldest first, while `send(scheduledAt)` succeeds; returns how
   * many went. Those still waiting when a send fails are counted as deferred (once each).
   */
  pump(send: (scheduledAt: number) => boolean): number {
    let sent = 0;
    while (this.head < this.q.length) {
      if (!send(this.q[this.head]!)) {
        const tail = this.base + this.q.length;
        const from = Math.max(this.base + this.head, this.countedTo);
        if (tail > from) this.deferredByWindow += tail - from;
        this.countedTo = tail;
        break;
      }
      this.head++;
      sent++;
    }
    // Compact now and then (the queue is bounded, this keeps its array small).
    if (this.head > 4096 && this.head * 2 > this.q.length) {
      this.q.splice(0, this.head);
      this.base += this.head;
      this.head = 0;
    }
    return sent;
  }

  /** Scheduled times of the messages never sent: still waiting, then dropped. */
  unsent(): number[] {
    return [...this.q.slice(this.head), ...this.dropped];
  }
}

const VIN_CHARS = '0123456789ABCDEFGHJKLMNPRSTUVWXYZ';
/** Deterministic VINs: BNCH + a tag letter per part + 12 digits (the gateway checks the syntax). */
export function benchVin(tag: string, i: number): string {
  if (!VIN_CHARS.includes(tag) || tag.length !== 1) throw new Error(`bad VIN tag ${tag}`);
  return `BNCH${tag}${String(i).padStart(12, '0')}`;
}

/** The commit of the working tree, read from .git without running git. */
export function gitCommit(): string | null {
  try {
    const gitDir = path.join(REPO_DIR, '.git');
    const head = readFileSync(path.join(gitDir, 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    const loose = path.join(gitDir, ref);
    if (existsSync(loose)) return readFileSync(loose, 'utf8').trim();
    const packed = readFileSync(path.join(gitDir, 'packed-refs'), 'utf8');
    const line = packed.split('\n').find((l) => l.endsWith(` ${ref}`));
    return line ? line.split(' ')[0]! : null;
  } catch {
    return null;
  }
}

/**
 * Watches this process's timer lag: a 2 ms interval that records, per wall-clock 100 ms
 * slot (Date.now() / 100), how late it fired at worst. A stall of the process (GC, a long
 * task, a wait for a CPU) shows as lag in its slot. stop() ends it and returns the slots.
 */
export function watchTimerLag(): { stop(): Map<number, number> } {
  const slots = new Map<number, number>();
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const slot = Math.floor(Date.now() / 100);
    slots.set(slot, Math.max(slots.get(slot) ?? 0, now - last - 2));
    last = now;
  }, 2);
  return {
    stop() {
      clearInterval(timer);
      return slots;
    },
  };
}

const SEQ_KEY = Buffer.from('"seq":', 'latin1');

/**
 * A reader of a Server-Sent Events body (Buffer chunks) that calls `onSeq` with each record
 * event's `"seq":` value and the chunk's arrival time (wall clock, ms). Only the seq is
 * looked at: each record's data starts {"vin":"…","seq":N. The last bytes of a chunk are
 * kept for the next one, in case a match is cut between them. Bytes, not text: the
 * consumers share the gateway's 2 cores in the benchmark, and decoding each chunk to a
 * string was most of their ~3 µs per event.
 */
export function seqScanner(onSeq: (seq: number, at: number) => void): (chunk: Buffer) => void {
  let tail: Buffer | null = null;
  return (chunk) => {
    const at = performance.timeOrigin + performance.now();
    const b = tail ? Buffer.concat([tail, chunk]) : chunk;
    let p = 0;
    for (;;) {
      const k = b.indexOf(SEQ_KEY, p);
      if (k < 0) break;
      let e = k + SEQ_KEY.length;
      let n = 0;
      for (; e < b.length && b[e]! >= 48 && b[e]! <= 57; e++) n = n * 10 + (b[e]! - 48);
      // The number may go on in the next chunk.
      if (e >= b.length) break;
      onSeq(n, at);
      p = e;
    }
    const from = Math.max(p, b.length - 40);
    tail = from < b.length ? Buffer.from(b.subarray(from)) : null;
  };
}
