// Part `embedded` of `npm run bench`: the memory of `npm start` on the embedded database
// (PGlite, no DATABASE_URL), issue 24. The gateway runs exactly as `npm start` runs it
// (node --import tsx main.ts) on a new DATA_DIR; its VmRSS and VmHWM, and the RSS of its
// whole process tree (tsx's esbuild service, the first start's initdb child), are read from
// /proc every 100 ms:
//   first start   empty DATA_DIR (initdb, migrations), then idle
//   restart       the same DATA_DIR again, idle, then simulated vehicles sending
//                 (npm run simulate) and idle again
// Reports peakRssMb (the gateway process's VmHWM over the first start and its idle) and
// idleRssMb (its RSS at the end of that idle: the median of the last second's samples)
// at the top, the rest per phase. No TimescaleDB involved.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnProcess, type Proc } from '../../devkit/spawn.ts';
import { newSecret } from '../../identity/secrets.ts';
import { REPO_DIR, round, sleep, track, untrack } from '../lib.ts';

export interface EmbeddedParams {
  /** Idle after each start, ms (the figure is the last second of it). */
  idleMs: number;
  /** The simulator's load during the restart: vehicles × records/s each, for durationS. */
  vehicles: number;
  rate: number;
  durationS: number;
}

interface Sample {
  ms: number;
  rssMb: number;
  hwmMb: number;
  treeMb: number;
}

const MB = 1024;

function status(pid: number): { rss: number; hwm: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(s);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(s);
    return rss && hwm ? { rss: Number(rss[1]) / MB, hwm: Number(hwm[1]) / MB } : null;
  } catch {
    return null;
  }
}

/** The pids below `pid` (children of every thread, recursively; bounded depth). */
function descendants(pid: number, depth = 0): number[] {
  if (depth > 4) return [];
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return out;
  }
  for (const t of tasks) {
    const c = Number(t);
    out.push(c, ...descendants(c, depth + 1));
  }
  return out;
}

/** Samples a process every 100 ms until stopped. */
function sampler(pid: number): { samples: Sample[]; stop(): Sample[] } {
  const t0 = performance.now();
  const samples: Sample[] = [];
  const tick = () => {
    const me = status(pid);
    if (!me) return;
    let tree = me.rss;
    for (const c of descendants(pid)) tree += status(c)?.rss ?? 0;
    samples.push({ ms: Math.round(performance.now() - t0), rssMb: me.rss, hwmMb: me.hwm, treeMb: tree });
  };
  tick();
  const timer = setInterval(tick, 100);
  return {
    samples,
    stop() {
      clearInterval(timer);
      tick();
      return samples;
    },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

/** Figures of one window of samples. */
function summary(samples: Sample[], from = 0) {
  const w = samples.filter((s) => s.ms >= from);
  const last = w[w.length - 1];
  const endMs = last?.ms ?? 0;
  const lastSecond = w.filter((s) => s.ms >= endMs - 1000);
  return {
    peakRssMb: round(Math.max(...w.map((s) => s.hwmMb)), 0),
    idleRssMb: round(median(lastSecond.map((s) => s.rssMb)), 0),
    treePeakRssMb: round(Math.max(...w.map((s) => s.treeMb)), 0),
    treeIdleRssMb: round(median(lastSecond.map((s) => s.treeMb)), 0),
  };
}

interface Started {
  proc: Proc;
  mqttPort: number;
  httpPort: number;
  readyMs: number;
}

async function startGateway(dataDir: string, adminToken: string): Promise<{ started: Started; sampling: ReturnType<typeof sampler> }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  delete env.SHARD_URLS;
  delete env.NODE_OPTIONS;
  Object.assign(env, {
    DATA_DIR: dataDir,
    MQTT_HOST: '127.0.0.1',
    MQTT_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    LOG_LEVEL: 'warn',
    ADMIN_TOKEN: adminToken,
  });
  // As `npm start` (package.json: exec node --import tsx main.ts), without npm in between.
  const proc = spawnProcess(process.execPath, ['--import', 'tsx', 'main.ts'], { name: 'embedded-gateway', cwd: REPO_DIR, env });
  track(proc.pid);
  const sampling = sampler(proc.pid);
  const t0 = performance.now();
  try {
    const m = await proc.waitForOutput(/MQTT:\s+mqtt:\/\/[^:]+:(\d+)[\s\S]*HTTP:\s+http:\/\/[^:]+:(\d+)/, 15 * 60_000);
    return { started: { proc, mqttPort: Number(m[1]), httpPort: Number(m[2]), readyMs: round(performance.now() - t0, 0) }, sampling };
  } catch (err) {
    sampling.stop();
    await proc.stop(10_000);
    untrack(proc.pid);
    throw err;
  }
}

async function stopGateway(g: Started): Promise<void> {
  await g.proc.stop(30_000);
  untrack(g.proc.pid);
}

/** The simulator (an outside client) against the gateway; its summary line parsed. */
async function simulate(g: Started, adminToken: string, p: EmbeddedParams): Promise<Record<string, number>> {
  const sim = spawnProcess(
    process.execPath,
    ['--import', 'tsx', 'simulator/index.ts', '--vehicles', String(p.vehicles), '--rate', String(p.rate), '--duration', String(p.durationS),
      '--http', `http://127.0.0.1:${g.httpPort}`, '--mqtt', `mqtt://127.0.0.1:${g.mqttPort}`, '--admin-token', adminToken, '--seed', '24', '--quiet'],
    { name: 'embedded-simulator', cwd: REPO_DIR },
  );
  track(sim.pid);
  try {
    await sim.exited(p.durationS * 1000 + 5 * 60_000);
  } finally {
    untrack(sim.pid);
  }
  const line = /simulator: (.*)/.exec(sim.stdout());
  if (!line) throw new Error(`embedded: the simulator printed no summary:\n${sim.tail()}`);
  return Object.fromEntries(line[1]!.trim().split(/\s+/).map((kv) => kv.split('=')).map(([k, v]) => [k!, Number(v)]));
}

export async function partEmbedded(p: EmbeddedParams, log: (msg: string) => void): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cardata-bench-embedded-'));
  const dataDir = path.join(dir, 'data');
  const adminToken = newSecret();
  try {
    log(`embedded: first start on an empty DATA_DIR, then ${p.idleMs / 1000} s idle`);
    const a = await startGateway(dataDir, adminToken);
    await sleep(p.idleMs);
    const first = { readyMs: a.started.readyMs, ...summary(a.sampling.stop()) };
    await stopGateway(a.started);
    log(`embedded: first start ${JSON.stringify(first)}`);

    log(`embedded: restart on the same DATA_DIR, ${p.idleMs / 1000} s idle, ${p.vehicles} vehicles × ${p.rate} records/s for ${p.durationS} s, idle again`);
    const b = await startGateway(dataDir, adminToken);
    await sleep(p.idleMs);
    const idleEnd = b.sampling.samples[b.sampling.samples.length - 1]?.ms ?? 0;
    const restart = { readyMs: b.started.readyMs, ...summary(b.sampling.samples) };
    const sim = await simulate(b.started, adminToken, p);
    const ingestEnd = b.sampling.samples[b.sampling.samples.length - 1]?.ms ?? 0;
    await sleep(p.idleMs);
    const all = b.sampling.stop();
    const during = summary(all.filter((s) => s.ms <= ingestEnd), idleEnd);
    const after = summary(all, ingestEnd);
    await stopGateway(b.started);
    const ingest = {
      vehicles: p.vehicles,
      offeredRecordsPerSec: p.vehicles * p.rate,
      ackedRecordsPerSec: sim.acked_records_per_s ?? null,
      recordsSent: sim.records_sent ?? null,
      recordsAcked: sim.records_acked ?? null,
      peakRssMb: during.peakRssMb,
      idleRssMbAfter: after.idleRssMb,
    };
    log(`embedded: restart ${JSON.stringify(restart)}; ingest ${JSON.stringify(ingest)}`);
    return {
      peakRssMb: first.peakRssMb,
      idleRssMb: first.idleRssMb,
      firstStart: first,
      restart,
      ingest,
      loadAverage: os.loadavg().map((x) => round(x, 2)),
      note: 'peakRssMb/idleRssMb: the gateway process (VmHWM; VmRSS at the end of the idle window). treePeakRssMb adds its children: on a first start the initdb child (storage/driver/pglite-init.ts), otherwise tsx\'s esbuild service',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
