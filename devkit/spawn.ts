// The one way the tests and the benchmark start other processes (the gateway, the CLI,
// npm start, load generators): output captured and bounded, bounded waits on output and
// exit, and a guaranteed end. By default a child runs in its own process group
// (detached), so the whole tree (npx → tsx → node, tsx's esbuild service) can be killed
// at once whatever happened; every child is killed when this process exits.
// Optionally an IPC channel with a small request/response protocol (serveRpc on the
// child side). Development tooling only: nothing in the gateway imports it.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the exit was seen. */
  at: number;
}

export interface SpawnOptions {
  /** Shown in error messages. Default: the command. */
  name?: string;
  cwd?: string;
  /** The child's whole environment. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Its own process group, killed as a whole (default true). */
  group?: boolean;
  /** An IPC channel for call() / waitFor() (default false). */
  ipc?: boolean;
  /** Most characters kept of each of stdout, stderr and their interleaving (the latest). Default 1,000,000. */
  outputLimit?: number;
}

export interface Proc {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly startedAt: number;
  /** True until the process has exited. */
  readonly running: boolean;
  /** Settles once the process has exited and its output is read (never rejects). */
  readonly exit: Promise<ExitInfo>;
  /** Like `exit` (without `at`): resolves with the exit code or signal; rejects with the output so far after timeoutMs. */
  exited(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr interleaved as they arrived. */
  output(): string;
  /** The last `lines` lines of output, each cut at 400 characters. */
  tail(lines?: number): string;
  /** Resolves once the stream matches; rejects (with the output) on exit or after timeoutMs. */
  waitForOutput(re: RegExp, timeoutMs: number, stream?: 'stdout' | 'stderr' | 'output'): Promise<RegExpMatchArray>;
  /** Sends a signal to the top process only (as a supervisor would). */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL to the whole group (or the process, without a group); safe to call twice. */
  killTree(): void;
  /** SIGTERM, then SIGKILL (tree) if still running after timeoutMs; resolves once exited. */
  stop(timeoutMs?: number): Promise<ExitInfo>;
  /** IPC: sends {id, cmd, args}, resolves with the child's {id, result} (rejects on {id, error}, exit or timeout). */
  call<T = unknown>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T>;
  /** IPC: resolves with the first message of this type. */
  waitFor<T = Record<string, unknown>>(type: string, timeoutMs: number): Promise<T>;
}

const live = new Set<Proc>();
let exitHooked = false;

/** SIGKILLs every child still running that this module started. */
export function killAllProcesses(): void {
  for (const p of live) p.killTree();
  live.clear();
}

/** Children started here that have not exited yet. */
export function liveProcesses(): Proc[] {
  return [...live];
}

function keepTail(s: string, limit: number): string {
  return s.length > limit ? s.slice(s.length - Math.floor(limit / 2)) : s;
}

export function spawnProcess(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Proc {
  if (!exitHooked) {
    exitHooked = true;
    // Last resort when this process ends abnormally.
    process.once('exit', killAllProcesses);
  }
  const name = opts.name ?? cmd;
  const group = opts.group ?? true;
  const limit = opts.outputLimit ?? 1_000_000;
  const proc = spawn(cmd, [...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: opts.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    detached: group,
  });
  let out = '';
  let err = '';
  let all = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out = keepTail(out + d, limit);
    all = keepTail(all + d, limit);
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err = keepTail(err + d, limit);
    all = keepTail(all + d, limit);
  });
  const pid = proc.pid ?? -1;

  let exitInfo: ExitInfo | null = null;
  let settled: ExitInfo | null = null;
  let closed = false;
  proc.on('close', () => (closed = true));
  const exit = new Promise<ExitInfo>((resolve) => {
    const done = () => {
      settled = exitInfo;
      live.delete(p);
      resolve(exitInfo!);
    };
    // 'exit', not 'close': an orphaned grandchild can hold the output pipes open forever.
    // Once exited, the rest of the group goes too, and the pipes get a moment to drain.
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal, at: Date.now() };
      if (group) p.killTree();
      if (closed) return done();
      const t = setTimeout(done, 500);
      proc.once('close', () => {
        clearTimeout(t);
        done();
      });
    });
    proc.on('error', (e) => {
      err += `\n[spawn error] ${e.message}`;
      all += `\n[spawn error] ${e.message}`;
      if (exitInfo) return;
      exitInfo = { code: null, signal: null, at: Date.now() };
      done();
    });
  });

  // IPC: replies by id, other messages by type.
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  const waiters: { type: string; resolve: (m: unknown) => void }[] = [];
  proc.on('message', (m: { id?: number; type?: string; result?: unknown; error?: string }) => {
    if (m.id !== undefined && pending.has(m.id)) {
      const q = pending.get(m.id)!;
      pending.delete(m.id);
      clearTimeout(q.timer);
      if (m.error !== undefined) q.reject(new Error(`${name}: ${m.error}`));
      else q.resolve(m.result);
      return;
    }
    const i = waiters.findIndex((w) => w.type === m.type);
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m);
  });
  void exit.then((e) => {
    for (const [, q] of pending) {
      clearTimeout(q.timer);
      q.reject(new Error(`${name} exited (code ${e.code}, signal ${e.signal}); last output:\n${p.tail()}`));
    }
    pending.clear();
  });

  const p: Proc = {
    name,
    proc,
    pid,
    startedAt: Date.now(),
    get running() {
      return exitInfo === null;
    },
    exit,
    exited(timeoutMs) {
      if (settled) return Promise.resolve({ code: settled.code, signal: settled.signal });
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`process ${pid} (${name} ${args.join(' ')}) still running after ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
        void exit.then((e) => {
          clearTimeout(t);
          resolve({ code: e.code, signal: e.signal });
        });
      });
    },
    stdout: () => out,
    stderr: () => err,
    output: () => all,
    tail(lines = 40) {
      return all
        .split('\n')
        .filter((l) => l !== '')
        .slice(-lines)
        .map((l) => (l.length > 400 ? l.slice(0, 400) + '…' : l))
        .join('\n');
    },
    waitForOutput(re, timeoutMs, stream = 'stdout') {
      const t0 = Date.now();
      const text = () => (stream === 'stdout' ? out : stream === 'stderr' ? err : all);
      return new Promise((resolve, reject) => {
        const tick = () => {
          const m = text().match(re);
          if (m) return resolve(m);
          if (exitInfo) return reject(new Error(`process exited (${JSON.stringify(exitInfo)}) before ${stream} matched ${re}\nstdout:\n${out}\nstderr:\n${err}`));
          if (Date.now() - t0 > timeoutMs) return reject(new Error(`${stream} did not match ${re} within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`));
          setTimeout(tick, 50);
        };
        tick();
      });
    },
    signal(sig) {
      if (exitInfo === null && pid > 0) proc.kill(sig);
    },
    killTree() {
      if (pid <= 0) return;
      try {
        process.kill(group ? -pid : pid, 'SIGKILL');
      } catch {
        // already gone
      }
    },
    async stop(timeoutMs = 15_000) {
      if (exitInfo === null) {
        const t = setTimeout(() => p.killTree(), timeoutMs);
        p.signal('SIGTERM');
        await exit;
        clearTimeout(t);
      }
      return exit;
    },
    call<T>(cmd: string, callArgs?: unknown, timeoutMs = 60_000): Promise<T> {
      if (!opts.ipc) return Promise.reject(new Error(`${name}: started without an IPC channel`));
      if (exitInfo) return Promise.reject(new Error(`${name} is not running; last output:\n${p.tail()}`));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: ${cmd} timed out after ${timeoutMs} ms; last output:\n${p.tail()}`));
        }, timeoutMs);
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
        proc.send({ id, cmd, args: callArgs });
      });
    },
    waitFor<T>(type: string, timeoutMs: number): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no "${type}" within ${timeoutMs} ms; last output:\n${p.tail()}`)), timeoutMs);
        waiters.push({
          type,
          resolve: (m: unknown) => {
            clearTimeout(timer);
            resolve(m as T);
          },
        });
        void exit.then((e) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited before "${type}" (code ${e.code}); last output:\n${p.tail()}`));
        });
      });
    },
  };
  live.add(p);
  return p;
}

/** Child side of the IPC protocol: handlers by command name; exits when the parent goes away. */
export function serveRpc(handlers: Record<string, (args: any) => unknown>): void {
  process.on('disconnect', () => process.exit(0));
  const answer = async (m: { id: number; cmd: string; args: unknown }): Promise<void> => {
    const h = handlers[m.cmd];
    try {
      if (!h) throw new Error(`unknown command ${m.cmd}`);
      const result = await h(m.args);
      process.send?.({ id: m.id, result: result ?? null });
    } catch (err) {
      process.send?.({ id: m.id, error: (err as Error).stack ?? String(err) });
    }
  };
  // EventEmitter drops a listener's promise, so answer() settles every command itself.
  process.on('message', (m: { id: number; cmd: string; args: unknown }) => void answer(m));
}

/** A port free on 127.0.0.1 right now (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
