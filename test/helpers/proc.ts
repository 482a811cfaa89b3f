// Child processes of the tests, through the one spawner (devkit/spawn.ts): the gateway as
// a real child process (for fault tests: SIGKILL, SIGTERM, outages), the entry points
// (npm start, the CLI) for end-to-end tests, and probes from outside: /readyz, /metrics,
// RSS from /proc.
//
// The gateway child is `node --import tsx main.ts`, not `npx tsx main.ts`: with npx and
// tsx in between, a signal sent to the spawned pid reaches npx, not the gateway, and its
// RSS is not the gateway's. Every child runs in its own process group, so cleanup kills
// the whole group (the gateway and tsx's esbuild service) whatever happened.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONFIG_KEYS } from '../../config/index.ts';
import { freePort, killAllProcesses, sleep, spawnProcess, type ExitInfo, type Proc } from '../../devkit/spawn.ts';

export { freePort, sleep, type ExitInfo, type Proc };

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** A child of the tests (see devkit/spawn.ts). */
export type Child = Proc;

/** The gateway as a child process, on fixed ports. */
export interface GatewayProcess extends Proc {
  readonly httpPort: number;
  readonly mqttPort: number;
  /** VmRSS of the gateway process, kB (null once it is gone). */
  rssKb(): number | null;
}

export function rssKbOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * The environment for a child: this process's environment without any of the gateway's
 * settings (so the test decides each of them), plus `env`.
 */
export function childEnv(env: Record<string, string>, opts: { keepNodeOptions?: boolean } = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const k of CONFIG_KEYS) delete out[k];
  delete out.TEST_DATABASE_URL;
  if (!opts.keepNodeOptions) delete out.NODE_OPTIONS;
  return { ...out, ...env };
}

/** Spawns a command in the repository with the gateway settings of `env` only. */
export function spawnChild(cmd: string, args: string[], env: Record<string, string>, cwd = REPO): Child {
  return spawnProcess(cmd, args, { cwd, env: childEnv(env, { keepNodeOptions: true }) });
}

/** Runs a command to completion, bounded; resolves with its exit code and output. */
export async function runChild(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = spawnChild(cmd, args, env);
  try {
    const e = await c.exited(timeoutMs);
    return { code: e.code, stdout: c.stdout(), stderr: c.stderr() };
  } finally {
    c.killTree();
  }
}

/** Kills every child the tests spawned (whole process groups): for afterAll. */
export function killAllChildren(): void {
  killAllProcesses();
}

/** Spawns the gateway; does not wait for it (see waitReady). env must hold MQTT_PORT and HTTP_PORT. */
export function spawnGateway(env: Record<string, string>): GatewayProcess {
  const httpPort = Number(env.HTTP_PORT);
  const mqttPort = Number(env.MQTT_PORT);
  if (!httpPort || !mqttPort) throw new Error('spawnGateway: fixed MQTT_PORT and HTTP_PORT needed');
  const p = spawnProcess(process.execPath, ['--import', 'tsx', 'main.ts'], {
    name: 'gateway',
    cwd: REPO,
    env: childEnv({ MQTT_HOST: '127.0.0.1', HTTP_HOST: '127.0.0.1', ...env }),
    outputLimit: 200_000,
  });
  return Object.assign(p, {
    httpPort,
    mqttPort,
    rssKb: () => (p.running ? rssKbOf(p.pid) : null),
  });
}

/** Polls until GET url answers 200; resolves with the ms waited; rejects after timeoutMs or when the child exits. */
export async function waitForHttp200(url: string, timeoutMs: number, child?: Child): Promise<number> {
  const t0 = Date.now();
  let last = 'no answer';
  while (Date.now() - t0 < timeoutMs) {
    if (child && !child.running) throw new Error(`process exited before ${url} answered 200 (last: ${last})\nstdout:\n${child.stdout()}\nstderr:\n${child.stderr()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      last = `${r.status} ${await r.text()}`;
      if (r.status === 200) return Date.now() - t0;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${last})${child ? `\nstdout:\n${child.stdout()}\nstderr:\n${child.stderr()}` : ''}`);
}

/** Polls GET /readyz until 200; resolves with the ms waited. Rejects when the child exits or after timeoutMs. */
export async function waitReady(g: GatewayProcess, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  let last = 'no answer';
  while (Date.now() - t0 < timeoutMs) {
    if (!g.running) throw new Error(`gateway ${g.pid} exited before it was ready (last: ${last})\n${g.output()}`);
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
    setTimeout(() => void tick(), Math.max(0, intervalMs - (Date.now() - at)));
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

/** SIGKILLs every child still running (whole process groups). For afterAll. */
export function killAllGateways(): void {
  killAllProcesses();
}
