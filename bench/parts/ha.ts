// Bench part `ha` (issue 27, docs/high-availability.md): what the second copy costs.
//
// The same gateway and load on three databases, one after the other, each in a fresh
// database (bench_ha_<mode>):
//   - single: the benchmark's own TimescaleDB (one server, scripts/timescaledb.sh);
//   - sync:   the Patroni cluster of scripts/ha.sh through HAProxy's write port, with
//             synchronous_mode on (the shipped configuration: a COMMIT, and so a PUBACK,
//             waits until the standby has flushed the WAL);
//   - async:  the same cluster with synchronous_mode off (patronictl edit-config), restored after.
// For each: ingest records/s in a closed loop (every vehicle keeps `window` messages in
// flight), then PUBACK latency p50/p99 in an open loop at half the synchronous cluster's
// closed-loop rate (the same absolute rate for all three). Ratios are to the single node.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { typeParsers } from '../../storage/driver/db.ts';
import { REPO_DIR, benchVin, round, sleep, type Child } from '../lib.ts';

export interface HaBenchOptions {
  vehicles: number;
  window: number;
  warmupMs: number;
  measureMs: number;
  latencyMs: number;
}

export function haOptions(quick: boolean): HaBenchOptions {
  return quick ? { vehicles: 200, window: 8, warmupMs: 2000, measureMs: 6000, latencyMs: 5000 } : { vehicles: 500, window: 8, warmupMs: 4000, measureMs: 12_000, latencyMs: 10_000 };
}

interface Gateway {
  child: Child;
  pid: number;
  mqttPort: number;
  httpPort: number;
}

export interface HaBenchDeps {
  server: string;
  secretHash: string;
  password: string;
  log(msg: string): void;
  freshSchema(server: string, name: string): Promise<string>;
  startGateway(name: string, url: string, nodeArgs?: string[], extraEnv?: Record<string, string>): Promise<Gateway>;
  stopGateway(gw: Gateway | null): Promise<void>;
  startLoadgen(name: string): Promise<Child>;
  dropQuietly(server: string, name: string): Promise<void>;
}

const HA = `${REPO_DIR}/scripts/ha.sh`;

function ha(...args: string[]): string {
  return execFileSync('bash', [HA, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 }).trim();
}

/** Why the part cannot run here, or null. */
function missing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (scripts/ha.sh)';
  const root = (() => {
    try {
      return Number(/^VERSION_ID="?(\d+)/m.exec(execFileSync('cat', ['/etc/os-release'], { encoding: 'utf8' }))?.[1] ?? 0) >= 13 ? '' : `${process.env.TSDB_HOME ?? '/var/tmp/cardata-gateway-tsdb'}/root`;
    } catch {
      return '';
    }
  })();
  for (const p of ['/usr/bin/patroni', '/usr/bin/etcd']) if (!existsSync(root + p)) return `Patroni/etcd not installed (scripts/ha.sh install): ${root + p} missing`;
  return null;
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, types: typeParsers() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Waits until the primary's synchronous_standby_names is set (sync) or empty (async). */
async function waitSyncState(url: string, sync: boolean): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      const s = await withClient(url, async (c) => (await c.query<{ s: string }>('SELECT current_setting($1) AS s', ['synchronous_standby_names'])).rows[0]!.s);
      if ((s !== '') === sync) return;
    } catch {
      /* the write port between two leaders */
    }
    if (Date.now() - t0 > 60_000) throw new Error(`ha: synchronous replication did not turn ${sync ? 'on' : 'off'} within 60 s`);
    await sleep(250);
  }
}

export async function runHa(d: HaBenchDeps, o: HaBenchOptions): Promise<Record<string, unknown>> {
  const why = missing();
  if (why) {
    d.log(`ha: skipped: ${why}`);
    return { skipped: why };
  }
  const wasRunning = /pg1: running/.test(ha('status'));
  const haUrl = ha('up').split('\n').pop()!;
  const out: Record<string, any> = { vehicles: o.vehicles, window: o.window, recordsPerMsg: 10, modes: {} };
  let lg: Child | null = null;
  let gw: Gateway | null = null;
  let halfRate = 0;
  try {
    await waitSyncState(haUrl, true);
    // Synchronous first: its closed-loop rate (the lowest) sets the latency runs' rate, one
    // that all three sustain, so the PUBACK figures compare like with like.
    for (const mode of ['sync', 'async', 'single'] as const) {
      const server = mode === 'single' ? d.server : haUrl;
      if (mode === 'async') {
        ha('ctl', 'edit-config', '--force', '-s', 'synchronous_mode=false');
        await waitSyncState(haUrl, false);
      }
      if (mode === 'single') {
        // The cluster idle (synchronous again) while the single server is measured.
        ha('ctl', 'edit-config', '--force', '-s', 'synchronous_mode=true');
      }
      const name = `bench_ha_${mode}`;
      const url = await d.freshSchema(server, name);
      const vins = Array.from({ length: o.vehicles }, (_, i) => benchVin('H', i));
      await withClient(url, async (c) => {
        await c.query('INSERT INTO vehicles (vin, owner_id, secret_hash) SELECT v, $2, $3 FROM unnest($1::text[]) AS v', [vins, 'bench-ha-owner', d.secretHash]);
        await c.query('INSERT INTO ownership_periods (vin, owner_id, started_at) SELECT vin, owner_id, created_at FROM vehicles');
      });
      try {
        gw = await d.startGateway(`gateway-ha-${mode}`, url);
        lg = await d.startLoadgen(`loadgen-ha-${mode}`);
        const c = await lg.call<{ connected: number; errors: string[] }>('connect', { host: '127.0.0.1', port: gw.mqttPort, vins, password: d.password, recordsPerMsg: 10, parallel: 100, timeoutMs: 120_000 }, 150_000);
        if (c.connected !== vins.length) throw new Error(`ha ${mode}: only ${c.connected}/${vins.length} vehicles connected: ${c.errors.join('; ')}`);
        d.log(`ha ${mode}: closed loop, ${o.warmupMs / 1000} s warm-up + ${o.measureMs / 1000} s measured`);
        const r = await lg.call<{ drained: boolean; unexpectedCloses: number; slopeRecordsPerSec: number }>('closedLoop', { window: o.window, warmupMs: o.warmupMs, measureMs: o.measureMs, drainMs: 60_000 }, o.warmupMs + o.measureMs + 90_000);
        if (!r.drained || r.unexpectedCloses) throw new Error(`ha ${mode}: closed loop did not drain (closes ${r.unexpectedCloses})`);
        if (mode === 'sync') halfRate = Math.max(1, Math.round(r.slopeRecordsPerSec / 2 / 10));
        d.log(`ha ${mode}: PUBACK latency at ${halfRate * 10} records/s`);
        const lat = await lg.call<{ p50: number; p99: number; achievedRecordsPerSec: number; unacked: number }>('rate', { msgsPerSec: halfRate, window: o.window, warmupMs: o.warmupMs, measureMs: o.latencyMs, drainMs: 30_000 }, o.warmupMs + o.latencyMs + 60_000);
        out.modes[mode] = {
          recordsPerSec: round(r.slopeRecordsPerSec),
          pubackMs: { p50: round(lat.p50, 1), p99: round(lat.p99, 1) },
          latencyRun: { recordsPerSec: halfRate * 10, achievedRecordsPerSec: round(lat.achievedRecordsPerSec), unacked: lat.unacked },
        };
      } finally {
        await lg?.call('close').catch(() => {});
        lg?.killTree();
        lg = null;
        await d.stopGateway(gw);
        gw = null;
        await d.dropQuietly(server, name);
      }
    }
    const s = out.modes.single;
    for (const mode of ['sync', 'async'] as const) {
      const m = out.modes[mode];
      if (!m || !s) continue;
      m.ratioRecordsPerSec = round(m.recordsPerSec / s.recordsPerSec, 3);
      m.ratioPubackP50 = round(m.pubackMs.p50 / s.pubackMs.p50, 2);
      m.ratioPubackP99 = round(m.pubackMs.p99 / s.pubackMs.p99, 2);
    }
    out.config = { synchronous_commit: 'on (remote flush)', cluster: 'scripts/ha.sh: 2 nodes on this machine, HAProxy write port' };
  } finally {
    // The shipped configuration again, and the cluster as it was found.
    try {
      ha('ctl', 'edit-config', '--force', '-s', 'synchronous_mode=true');
    } catch (err) {
      d.log(`ha: could not turn synchronous_mode back on: ${(err as Error).message}`);
    }
    if (!wasRunning) {
      try {
        ha('down');
      } catch {
        /* reported by the next up */
      }
    }
  }
  return out;
}

type Fmt = (v: number | string | boolean | null | undefined, unit?: string) => string;

export function haRows(h: Record<string, any> | undefined, fmt: Fmt): [string, string, string][] {
  if (!h || !h.modes) return h?.skipped ? [['ha (skipped)', String(h.skipped).slice(0, 60), '']] : [];
  const m = h.modes;
  const row = (mode: string, label: string): [string, string, string][] =>
    m[mode]
      ? [
          [`ha.${mode}.recordsPerSec (${label})`, `${fmt(m[mode].recordsPerSec)}${m[mode].ratioRecordsPerSec !== undefined ? ` (×${m[mode].ratioRecordsPerSec})` : ''}`, ''],
          [`ha.${mode}.pubackMs p50/p99 at ${fmt(m[mode].latencyRun?.recordsPerSec)} rec/s`, `${fmt(m[mode].pubackMs?.p50)} / ${fmt(m[mode].pubackMs?.p99, ' ms')}${m[mode].ratioPubackP99 !== undefined ? ` (×${m[mode].ratioPubackP50}/×${m[mode].ratioPubackP99})` : ''}`, ''],
        ]
      : [];
  return [...row('single', 'one server'), ...row('sync', 'Patroni, synchronous'), ...row('async', 'Patroni, asynchronous')];
}
