// Child processes for end-to-end tests of the entry points (npm start, the CLI): spawned
// in their own process group so a test can always clean up the whole tree (npx → tsx →
// node), with their output captured and bounded waits on output, HTTP and exit.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { CONFIG_KEYS } from '../../config/index.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly startedAt: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code, or the signal that ended it; rejects after timeoutMs. */
  exited(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once stdout (or stderr) matches, bounded; rejects with the output so far. */
  waitForOutput(re: RegExp, timeoutMs: number, stream?: 'stdout' | 'stderr'): Promise<RegExpMatchArray>;
  /** Sends a signal to the top process only (as a supervisor would). */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL to the whole process group; safe to call twice. */
  killTree(): void;
  readonly running: boolean;
}

/**
 * The environment for a child: this process's environment without any of the gateway's
 * settings (so the test decides each of them), plus `env`.
 */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const k of CONFIG_KEYS) delete out[k];
  delete out.TEST_DATABASE_URL;
  return { ...out, ...env };
}

const children = new Set<Child>();

export function spawnChild(cmd: string, args: string[], env: Record<string, string>, cwd = REPO_ROOT): Child {
  const proc = spawn(cmd, args, { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  let closed = false;
  let settled = false;
  const exitWaiters: (() => void)[] = [];
  // 'exit', not 'close': an orphaned grandchild can hold the output pipes open forever.
  // Once exited, give the pipes a moment to drain ('close') before reporting.
  proc.on('exit', (code, signal) => {
    exit = { code, signal };
    const done = () => {
      settled = true;
      for (const w of exitWaiters.splice(0)) w();
    };
    if (closed) done();
    else {
      const t = setTimeout(done, 500);
      proc.once('close', () => {
        clearTimeout(t);
        done();
      });
    }
  });
  proc.on('close', () => (closed = true));
  proc.on('error', (e) => {
    err += `\n[spawn error] ${e.message}`;
    exit ??= { code: null, signal: null };
    settled = true;
    for (const w of exitWaiters.splice(0)) w();
  });
  const pid = proc.pid ?? -1;
  const c: Child = {
    proc,
    pid,
    startedAt: Date.now(),
    stdout: () => out,
    stderr: () => err,
    get running() {
      return exit === null;
    },
    exited(timeoutMs) {
      if (exit && settled) return Promise.resolve(exit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`process ${pid} (${cmd} ${args.join(' ')}) still running after ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
        exitWaiters.push(() => {
          clearTimeout(t);
          resolve(exit!);
        });
      });
    },
    waitForOutput(re, timeoutMs, stream = 'stdout') {
      const t0 = Date.now();
      return new Promise((resolve, reject) => {
        const tick = () => {
          const m = (stream === 'stdout' ? out : err).match(re);
          if (m) return resolve(m);
          if (exit) return reject(new Error(`process exited (${JSON.stringify(exit)}) before ${stream} matched ${re}\nstdout:\n${out}\nstderr:\n${err}`));
          if (Date.now() - t0 > timeoutMs) return reject(new Error(`${stream} did not match ${re} within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`));
          setTimeout(tick, 50);
        };
        tick();
      });
    },
    signal(sig) {
      if (exit === null && pid > 0) proc.kill(sig);
    },
    killTree() {
      if (pid <= 0) return;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    },
  };
  children.add(c);
  return c;
}

/** Kills every child this module spawned (whole process groups): for afterAll. */
export function killAllChildren(): void {
  for (const c of children) c.killTree();
  children.clear();
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

/** A port free on 127.0.0.1 right now (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
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
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${last})${child ? `\nstdout:\n${child.stdout()}\nstderr:\n${child.stderr()}` : ''}`);
}
