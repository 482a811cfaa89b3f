// The embedded database's memory settings, and its first start (initdb) in a child process.
// Figures: README "Embedded database: memory"; measured by `npm run bench -- --only=embedded`.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import v8 from 'node:v8';
import { PGlite } from '@electric-sql/pglite';

/**
 * PostgreSQL's buffer pool inside PGlite's WebAssembly memory. initdb picks 128MB, and
 * PGlite zero-fills the whole shared memory (145 MB with 128MB) at start, so all of it is
 * resident from the first second: a gateway on an existing data directory peaked at
 * ~500 MB RSS. With 16MB the shared memory is 24 MB and the same start peaks ~140 MB lower;
 * the writer's cost per row did not move measurably (1,000-row batches, 2 cores). The pages
 * a query misses are read from the data files through the operating system's page cache.
 */
export const PGLITE_SHARED_BUFFERS = '16MB';

/** PGlite's own start parameters, with the buffer pool above (it overrides postgresql.conf, so older data directories get it too). */
export const PGLITE_START_PARAMS: readonly string[] = [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`];

/** initdb's own runs of PostgreSQL use the same pool, and postgresql.conf records it. */
export const PGLITE_INITDB_PARAMS: readonly string[] = ['--set', `shared_buffers=${PGLITE_SHARED_BUFFERS}`];

let liftoffSet = false;
/**
 * V8 compiles PGlite's 9 MB of WebAssembly twice: a quick baseline (Liftoff), then its hot
 * functions again with the optimising compiler (TurboFan) in the background. The second
 * tier cost 40-80 MB RSS that stays (code and the compiler's freed but kept memory) for
 * 10-30 % more CPU in PostgreSQL's own work (a pure-SQL insert and aggregate loop), which
 * in the gateway's writer is lost in the JavaScript around it. A process flag: set once,
 * before the first module is compiled; it touches nothing but WebAssembly.
 */
export function useBaselineWasmCompiler(): void {
  if (liftoffSet) return;
  liftoffSet = true;
  v8.setFlagsFromString('--liftoff-only');
}

// The child's program (CommonJS, no TypeScript loader needed): PGlite.create on an empty
// directory runs initdb, then opens the new cluster once; close and exit.
const INIT_PROGRAM = `
const { PGlite } = require(process.env.PGLITE_INIT_MODULE);
const params = JSON.parse(process.env.PGLITE_INIT_PARAMS);
PGlite.create(process.env.PGLITE_INIT_DIR, { initDbStartParams: params.initdb, startParams: params.start })
  .then((pg) => pg.close())
  .then(() => process.exit(0), (err) => { process.stderr.write(String(err && err.stack || err) + '\\n'); process.exit(1); });
`;

/** The longest a first start's initdb may take (it took 5-25 s on a loaded 2-core machine). */
const INITDB_TIMEOUT_MS = 10 * 60_000;

/**
 * Creates the database cluster in `dataDir` when it has none yet (no PG_VERSION), in a
 * child process. PGlite's initdb runs a second PostgreSQL instance beside the first and
 * copies its 128 MiB WebAssembly heap (the module's minimum) before each of initdb's
 * steps: that took the first start's RSS to ~750-850 MB, and the finished instance kept
 * ~400 MB of it reachable for as long as the database stayed open (937 MB peak, ~920 MB
 * idle). In a child, all of it goes back to the system when the child exits, before the
 * gateway opens the cluster like any later start. The child builds the cluster in a
 * directory beside the others and the files are moved in with PG_VERSION last: a first
 * start that is interrupted leaves no half-made cluster behind.
 */
export async function initPgliteDataDir(dataDir: string): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  if (existsSync(path.join(dataDir, 'PG_VERSION'))) return;
  // Leftovers of an interrupted first start (its process is gone) are removed; a first
  // start still under way in another process is left alone.
  for (const e of readdirSync(dataDir)) {
    const m = /^\.initdb-(\d+)$/.exec(e);
    if (m && !alive(Number(m[1]))) rmSync(path.join(dataDir, e), { recursive: true, force: true });
  }
  const tmp = path.join(dataDir, `.initdb-${process.pid}`);
  try {
    await runInitdbChild(tmp);
    if (!existsSync(path.join(tmp, 'PG_VERSION'))) throw new Error(`embedded database: initdb left no PG_VERSION in ${tmp}`);
    for (const e of readdirSync(tmp)) {
      if (e === 'PG_VERSION') continue;
      rmSync(path.join(dataDir, e), { recursive: true, force: true });
      renameSync(path.join(tmp, e), path.join(dataDir, e));
    }
    renameSync(path.join(tmp, 'PG_VERSION'), path.join(dataDir, 'PG_VERSION'));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function runInitdbChild(dir: string): Promise<void> {
  const module = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--liftoff-only', '-e', INIT_PROGRAM], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        PGLITE_INIT_MODULE: module,
        PGLITE_INIT_DIR: dir,
        PGLITE_INIT_PARAMS: JSON.stringify({ initdb: PGLITE_INITDB_PARAMS, start: PGLITE_START_PARAMS }),
      },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), INITDB_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`embedded database: cannot start initdb: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`embedded database: initdb of ${dir} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || 'no output'}`));
    });
  });
}
