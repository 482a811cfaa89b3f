// The Patroni cluster of scripts/ha.sh (etcd, two PostgreSQL + TimescaleDB nodes, HAProxy)
// as the `ha` test project sees it: whether it can run here, the write/read URLs, who
// leads (Patroni's REST API), and the PIDs of each node's Patroni and postmaster for
// faults. Every PID signalled here is one scripts/ha.sh started (recorded in its run
// directory) or a process of that node's postmaster.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { REPO, sleep } from './proc.ts';

export const HA_SCRIPT = `${REPO}scripts/ha.sh`;
const TSDB_HOME = process.env.TSDB_HOME ?? '/var/tmp/cardata-gateway-tsdb';
const HA_HOME = process.env.HA_HOME ?? '/var/tmp/cardata-gateway-ha';
export const NODES = ['pg1', 'pg2'] as const;
export type NodeName = (typeof NODES)[number];
const API_PORT: Record<NodeName, number> = { pg1: Number(process.env.HA_API1_PORT ?? 58441), pg2: Number(process.env.HA_API2_PORT ?? 58442) };
const PG_PORT: Record<NodeName, number> = { pg1: Number(process.env.HA_PG1_PORT ?? 55441), pg2: Number(process.env.HA_PG2_PORT ?? 55442) };

function native(): boolean {
  try {
    return Number(/^VERSION_ID="?(\d+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 0) >= 13;
  } catch {
    return false;
  }
}

/** Where the root's files are on the host (the Debian 13 root on Debian 12, / on 13). */
function hostPath(p: string): string {
  return native() ? p : `${TSDB_HOME}/root${p}`;
}

/** Why the HA tests cannot run here, or null when they can. */
export function haMissing(): string | null {
  if (process.env.HA_TESTS === 'off') return 'HA_TESTS=off';
  if (process.getuid?.() !== 0) return 'needs root (scripts/ha.sh runs Patroni and etcd in the TimescaleDB root as user postgres)';
  const need = ['/usr/bin/patroni', '/usr/bin/etcd', '/usr/lib/postgresql/17/bin/postgres'].filter((p) => !existsSync(hostPath(p)));
  if (need.length) return `needs Patroni, etcd and PostgreSQL 17 + TimescaleDB (scripts/ha.sh up installs them; scripts/test.sh runs it): missing ${need.map(hostPath).join(', ')}`;
  const h = spawnSync('sh', ['-c', 'command -v haproxy || ls /usr/sbin/haproxy'], { encoding: 'utf8' });
  if (h.status !== 0) return 'needs haproxy (scripts/test.sh installs it)';
  return null;
}

export function ha(...args: string[]): string {
  return execFileSync('bash', [HA_SCRIPT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 }).trim();
}

/** The read port's URL (scripts/ha.sh read-url), for DATABASE_READ_URL; the test database's name replaces the path. */
export function haReadUrl(database?: string): string {
  const u = new URL(ha('read-url'));
  if (database) u.pathname = `/${database}`;
  return u.toString();
}

/** HTTP status of GET `path` on a node's Patroni REST API (0 when it does not answer in time). */
export async function rest(node: NodeName, path: string, timeoutMs = 1000): Promise<number> {
  try {
    const r = await fetch(`http://127.0.0.1:${API_PORT[node]}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    await r.body?.cancel();
    return r.status;
  } catch {
    return 0;
  }
}

/** The node whose Patroni answers 200 to /primary, or null. */
export async function leader(): Promise<NodeName | null> {
  const s = await Promise.all(NODES.map((n) => rest(n, '/primary')));
  const i = s.indexOf(200);
  return i < 0 ? null : NODES[i]!;
}

export function other(n: NodeName): NodeName {
  return n === 'pg1' ? 'pg2' : 'pg1';
}

/** Waits until one node leads and the other streams as its synchronous standby. */
export async function waitHealthy(timeoutMs = 120_000): Promise<NodeName> {
  const t0 = Date.now();
  for (;;) {
    const l = await leader();
    if (l && (await rest(other(l), '/synchronous')) === 200) return l;
    if (Date.now() - t0 > timeoutMs) throw new Error(`HA cluster not healthy after ${timeoutMs} ms:\n${ha('status')}`);
    await sleep(250);
  }
}

export function pgPort(n: NodeName): number {
  return PG_PORT[n];
}

/** PID of the node's Patroni (recorded by scripts/ha.sh). */
export function patroniPid(n: NodeName): number {
  return Number(readFileSync(`${HA_HOME}/run/${n}.pid`, 'utf8').trim());
}

/** PID of the node's postmaster (its data directory's postmaster.pid), or null. */
export function postmasterPid(n: NodeName): number | null {
  const s = ha('pid', `pm-${n}`);
  return s ? Number(s) : null;
}

/** The postmaster and its children (backends, walsender, checkpointer...). */
export function postgresTree(n: NodeName): number[] {
  const pm = postmasterPid(n);
  if (pm === null) return [];
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pm)], { encoding: 'utf8' });
  return [pm, ...r.stdout.split('\n').map((s) => Number(s.trim())).filter((x) => x > 0)];
}
