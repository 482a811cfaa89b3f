// A second, throwaway TimescaleDB cluster that a test may stop and start at will, so the
// shared test server (scripts/timescaledb.sh) is never disturbed. It reuses what that
// script installed: on Debian 12 the chroot at $TSDB_HOME/root, with a data directory of
// its own inside it; on Debian 13 the host's packages. Same settings as the script.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { promisify } from 'node:util';
import { freePort } from '../../devkit/spawn.ts';

const execFileP = promisify(execFile);

const TSDB_HOME = process.env.TSDB_HOME ?? '/var/tmp/cardata-gateway-tsdb';
const ROOT = `${TSDB_HOME}/root`;
const PG_BIN = '/usr/lib/postgresql/17/bin';
const PG_ENV = ['env', '-i', 'PATH=/usr/bin:/bin', 'LANG=C.UTF-8', 'LC_ALL=C.UTF-8'];

function native(): boolean {
  try {
    const m = /^VERSION_ID="?(\d+)/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return Number(m?.[1] ?? 0) >= 13;
  } catch {
    return false;
  }
}

/** Path on the host of a path as the server sees it. */
function hostPath(p: string): string {
  return native() ? p : ROOT + p;
}

/** argv running cmd as user postgres (inside the chroot when there is one). */
function asPg(cmd: string[]): [string, string[]] {
  const inner = ['runuser', '-u', 'postgres', '--', ...PG_ENV, ...cmd];
  return native() ? [inner[0]!, inner.slice(1)] : ['chroot', [ROOT, ...inner]];
}

async function run(argv: [string, string[]], timeoutMs = 60_000): Promise<string> {
  try {
    const r = await execFileP(argv[0], argv[1], { timeout: timeoutMs, encoding: 'utf8' });
    return r.stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv[0]} ${argv[1].join(' ')} failed: ${e.message}\n${e.stderr ?? ''}`, { cause: err });
  }
}

/** True when the PostgreSQL 17 + TimescaleDB that scripts/timescaledb.sh installs is here. */
export function tsdbInstalled(): boolean {
  return existsSync(hostPath(`${PG_BIN}/postgres`)) && existsSync(hostPath('/usr/share/postgresql/17/extension/timescaledb.control'));
}

export interface TsdbInstance {
  readonly url: string;
  readonly port: number;
  /** Fast shutdown (sessions terminated, in-flight transactions rolled back), waits until down. */
  stop(): Promise<void>;
  /** Starts it again, waits until it accepts connections. */
  start(): Promise<void>;
  running(): Promise<boolean>;
  /** Stops it (immediately) and deletes its data directory and log. */
  remove(): Promise<void>;
}

export async function startTsdbInstance(): Promise<TsdbInstance> {
  const port = await freePort();
  const tag = `cardata-tsdb-faults-${process.pid}-${port}`;
  const dataIn = `/var/lib/${tag}`;
  const logIn = `/tmp/${tag}.log`;
  const pwIn = `/tmp/${tag}-pw`;
  const data = hostPath(dataIn);
  const password = 'faults';

  const pgctl = (...args: string[]) => asPg([`${PG_BIN}/pg_ctl`, '-D', dataIn, ...args]);
  const psql = (db: string, sql: string) =>
    run(asPg(['/usr/bin/psql', '-h', '/tmp', '-p', String(port), '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-qAt', '-c', sql]));

  if (existsSync(data)) throw new Error(`${data} exists already`);
  await mkdir(data, { recursive: true });
  await run(native() ? ['chown', ['postgres:postgres', data]] : ['chroot', [ROOT, 'chown', 'postgres:postgres', dataIn]]);
  await writeFile(hostPath(pwIn), password + '\n');
  await chmod(hostPath(pwIn), 0o644);
  try {
    await run(asPg([`${PG_BIN}/initdb`, '-D', dataIn, '--locale=C.UTF-8', '--encoding=UTF8', '--auth-local=trust', '--auth-host=scram-sha-256', '-U', 'postgres', `--pwfile=${pwIn}`]));
  } catch (err) {
    await rm(data, { recursive: true, force: true });
    throw err;
  } finally {
    await rm(hostPath(pwIn), { force: true });
  }
  await appendFile(
    `${data}/postgresql.conf`,
    [
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = '/tmp'`,
      `shared_preload_libraries = 'timescaledb'`,
      `timescaledb.telemetry_level = off`,
      `dynamic_shared_memory_type = sysv`,
      `max_connections = 100`,
      `shared_buffers = 64MB`,
      `timescaledb.max_background_workers = 2`,
      // throwaway test cluster: no fsync (no OS crash is simulated). synchronous_commit stays
      // on: a COMMIT the gateway sees must be in the WAL the server keeps across a stop.
      `fsync = off`,
      '',
    ].join('\n'),
  );

  const running = async () => {
    try {
      await run(pgctl('status'), 10_000);
      return true;
    } catch {
      return false;
    }
  };
  const start = async () => {
    // setsid: the postmaster must not belong to this process group; stdio ignored so no
    // pipe stays open after pg_ctl returns.
    const [cmd, args] = pgctl('-l', logIn, '-w', '-t', '60', 'start');
    await new Promise<void>((resolve, reject) => {
      const p = spawn('setsid', [cmd, ...args], { stdio: 'ignore' });
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl start exited ${code}; see ${hostPath(logIn)}`))));
    });
  };
  const stop = async () => {
    await run(pgctl('-m', 'fast', '-w', '-t', '60', 'stop'));
  };

  const remove = async () => {
    if (await running()) await run(pgctl('-m', 'immediate', '-w', 'stop')).catch(() => {});
    await rm(data, { recursive: true, force: true });
    await rm(hostPath(logIn), { force: true });
  };

  try {
    await start();
    await psql('postgres', `CREATE ROLE cardata LOGIN CREATEDB PASSWORD '${password}'`);
    await psql('postgres', 'CREATE DATABASE faults OWNER cardata');
    await psql('faults', 'CREATE EXTENSION IF NOT EXISTS timescaledb');
  } catch (err) {
    await remove().catch(() => {});
    throw err;
  }

  return {
    url: `postgres://cardata:${password}@127.0.0.1:${port}/faults`,
    port,
    stop,
    start,
    running,
    remove,
  };
}
