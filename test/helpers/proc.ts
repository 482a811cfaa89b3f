// The gateway as a real child process (for fault tests: SIGKILL, SIGTERM, outages), plus
// probes of it from outside: /readyz, /metrics, RSS from /proc.
//
// The child is `node --import tsx main.ts`, not `npx tsx main.ts`: with npx and tsx in
// between, a signal sent to the spawned pid reaches npx, not the gateway, and its RSS is
// not the gateway's. It runs in its own process group (detached), so cleanup can kill
// the whole group (the gateway and tsx's esbuild service) whatever happened.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONFIG_KEYS } from '../../config/index.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the exit was seen. */
  at: number;
}

export interface GatewayProcess {
  readonly pid: number;
  readonly proc: ChildProcess;
  readonly httpPort: number;
  readonly mqttPort: number;
  readonly startedAt: number;
  readonly alive: boolean;
  /** Settles when the process has exited (never rejects). */
  readonly exit: Promise<ExitInfo>;
  output(): string;
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL to the whole process group; safe to call twice. */
  killGroup(): void;
  /** VmRSS of the gateway process, kB (null once it is gone). */
  rssKb(): number | null;
}

const children = new Set<GatewayProcess>();

export { freePort } from './child.ts';

export function rssKbOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** This process's environment without any gateway setting, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const k of CONFIG_KEYS) delete out[k];
  delete out.TEST_DATABASE_URL;
  delete out.NODE_OPTIONS;
  return { ...out, ...env };
}

/** Spawns the gateway; does not wait for it (see waitReady). env must hold MQTT_PORT and HTTP_PORT. */
export function spawnGateway(env: Record<string, string>): GatewayProcess {
  const httpPort = Number(env.HTTP_PORT);
  const mqttPort = Number(env.MQTT_PORT);
  if (!httpPort || !mqttPort) throw new Error('spawnGateway: fixed MQTT_PORT and HTTP_PORT needed');
  const proc = spawn(process.execPath, ['--import', 'tsx', 'main.ts'], {
    cwd: REPO,
    env: childEnv({ MQTT_HOST: '127.0.0.1', HTTP_HOST: '127.0.0.1', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  const keep = (d: string) => {
    out += d;
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  proc.stdout!.setEncoding('utf8').on('data', keep);
  proc.stderr!.setEncoding('utf8').on('data', keep);
  let exited: ExitInfo | null = null;
  const exit = new Promise<ExitInfo>((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal, at: Date.now() };
      resolve(exited);
    });
    proc.on('error', (e) => {
      out += `\n[spawn error] ${e.message}`;
      exited ??= { code: null, signal: null, at: Date.now() };
      resolve(exited);
    });
  });
  const pid = proc.pid ?? -1;
  const g: GatewayProcess = {
    pid,
    proc,
    httpPort,
    mqttPort,
    startedAt: Date.now(),
    get alive() {
      return exited === null;
    },
    exit,
    output: () => out,
    signal(sig) {
      if (exited === null && pid > 0) process.kill(pid, sig);
    },
    killGroup() {
      if (pid <= 0) return;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    },
    rssKb: () => (exited === null ? rssKbOf(pid) : null),
  };
  children.add(g);
  void exit.then(() => {
    // The group may still hold tsx's esbuild service: take it down with the gateway.
    g.killGroup();
  });
  return g;
}

/** Polls GET /readyz until 200; resolves with the ms waited. Rejects when the child exits or after timeoutMs. */
export async function waitReady(g: GatewayProcess, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  let last = 'no answer';
  while (Date.now() - t0 < timeoutMs) {
    if (!g.alive) throw new Error(`gateway ${g.pid} exited before it was ready (last: ${last})\n${g.output()}`);
    const r = await readyz(g.httpPort, 1500);
    last = String(r);
    if (r === 200) return Date.now() - t0;
    await sleep(50);
  }
  throw new Error(`gateway ${g.pid} not ready within ${timeoutMs} ms (last: ${last})\n${g.output()}`);
}

/** Status of GET /readyz, or 0 when nothing answered within timeoutMs. */
export async function readyz(httpPort: number, timeoutMs = 2000): Promise<number> {
  try {
    const r = await fetch(`http://127.0.0.1:${httpPort}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

/**
 * Values of series from GET /metrics, named as exposed (e.g. `cardata_writer_pending_rows`
 * or `cardata_messages_received_total{qos="1"}`); null when not answered, NaN when absent.
 */
export async function metricValues<K extends string>(httpPort: number, series: readonly K[], timeoutMs = 2000): Promise<Record<K, number> | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await r.text();
    const out = {} as Record<K, number>;
    for (const name of series) {
      const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const m = new RegExp(`^${escaped} ([0-9.eE+-]+)$`, 'm').exec(text);
      out[name] = m ? Number(m[1]) : NaN;
    }
    return out;
  } catch {
    return null;
  }
}

/** Samples fn() every intervalMs until stop(); keeps (time, value) pairs. */
export function sampler<T>(fn: () => T | Promise<T>, intervalMs: number): { samples: { at: number; value: T }[]; stop(): Promise<void> } {
  const samples: { at: number; value: T }[] = [];
  let stopped = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const tick = async () => {
    if (stopped) return resolveDone();
    const at = Date.now();
    try {
      samples.push({ at, value: await fn() });
    } catch {
      // a failed probe is simply not a sample
    }
    if (stopped) return resolveDone();
    setTimeout(tick, Math.max(0, intervalMs - (Date.now() - at)));
  };
  void tick();
  return {
    samples,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

/** SIGKILLs every gateway child still running (whole process groups). For afterAll. */
export function killAllGateways(): void {
  for (const g of children) g.killGroup();
  children.clear();
}

// Last resort when the test process itself ends abnormally.
process.once('exit', killAllGateways);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
