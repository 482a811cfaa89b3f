// Failover of the database under load (issue 27), with real processes: etcd, two
// Patroni-managed PostgreSQL 17 + TimescaleDB nodes and HAProxy (scripts/ha.sh,
// deploy/patroni/), the gateway as a child process with DATABASE_URL at HAProxy's write
// port, 100 MQTT.js vehicles with persistent sessions sending QoS 1.
//
// Each test makes a fault, waits for Patroni to elect the other node, lets every vehicle
// finish, and checks: every acknowledged message is on the new primary right after the
// failover (so the PUBACK meant "on two servers"), and at the end every record sent is
// stored exactly once. Figures are printed (console.log), then asserted.
//
// Settings that govern the timings (docs/high-availability.md "Failover timeline"):
// Patroni's ttl (20 s), loop_wait (1 s), retry_timeout (8 s) and primary_start_timeout (0)
// in deploy/patroni/patroni.yml; HAProxy's check inter (1 s) x fall (2) in
// deploy/patroni/haproxy.cfg; the gateway's writer retry delay.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { typeParsers } from '../../storage/driver/db.ts';
import { ADMIN_TOKEN, testVin } from '../helpers/gateway.ts';
import { freePort, killAllGateways, readyz, sampler, sleep, spawnGateway, waitReady, type GatewayProcess } from '../helpers/proc.ts';
import { skipEachWhen } from '../helpers/skip.ts';
import { ackedButMissing, provisionVehicles, startFleet, summarizeStored, type Fleet } from '../helpers/fleet.ts';
import { openSse, type SseClient } from '../helpers/sse.ts';
import { ha, haMissing, haReadUrl, leader, other, patroniPid, pgPort, postgresTree, postmasterPid, rest, waitHealthy, type NodeName } from '../helpers/ha.ts';

type Query = <R>(sql: string, params?: unknown[]) => Promise<R[]>;

const JWT_KEYS = 'ha1:ha-failover-test-signing-key-0123456789abcdef';
const VEHICLES = 100;
const RPM = 5;
const fleets: Fleet[] = [];
const pools: pg.Pool[] = [];
const dbs: TestDatabase[] = [];
const stopped = new Set<number>();

skipEachWhen(haMissing());

afterEach(async () => {
  // A test that failed half-way: nothing of the cluster stays frozen.
  for (const pid of stopped) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
  stopped.clear();
  await Promise.all(fleets.splice(0).map((f) => f.close().catch(() => {})));
  killAllGateways();
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
  for (const d of dbs) await d.drop().catch(() => {});
});

beforeEach(async (ctx) => {
  if (haMissing() === null) await waitHealthy();
  else ctx.skip(haMissing()!);
});

function queryOf(url: string): Query {
  const pool = new pg.Pool({ connectionString: url, max: 2, types: typeParsers(), connectionTimeoutMillis: 5000 });
  pool.on('error', () => {});
  pools.push(pool);
  return async <R>(sql: string, params?: unknown[]) => (await pool.query(sql, params)).rows as R[];
}

/** A query that retries while the write port has no primary (bounded). */
async function retrying<R>(q: Query, sql: string, params?: unknown[], timeoutMs = 60_000): Promise<R[]> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await q<R>(sql, params);
    } catch (err) {
      if (Date.now() - t0 > timeoutMs) throw err;
      await sleep(250);
    }
  }
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, g?: GatewayProcess): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${g ? `; the gateway's output ends with:\n${g.output().slice(-4000)}\n${await diagnose()}` : ''}`);
    await sleep(20);
  }
}

/** What the leader's sessions wait for, and its synchronous standby setting: for a failure's message. */
async function diagnose(): Promise<string> {
  const l = await leader();
  if (!l) return 'no leader';
  const c = new pg.Client({ host: '127.0.0.1', port: pgPort(l), user: 'cardata', password: 'cardata', database: 'cardata', connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    const ssn = await c.query<{ synchronous_standby_names: string }>('SHOW synchronous_standby_names');
    const w = await c.query<{ datname: string; wait: string; state: string; n: number }>(
      "SELECT datname, coalesce(wait_event_type || ':' || wait_event, '-') AS wait, state, count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1, 2, 3",
    );
    return `leader ${l}: synchronous_standby_names '${ssn.rows[0]?.synchronous_standby_names}'; sessions ${JSON.stringify(w.rows)}`;
  } catch (e) {
    return `leader ${l}: ${(e as Error).message}`;
  } finally {
    await c.end().catch(() => {});
  }
}

interface Setup {
  db: TestDatabase;
  q: Query;
  g: GatewayProcess;
  fleet: Fleet;
  messages: number;
}

async function setup(messages: number, intervalMs: number, extraEnv: (database: string) => Record<string, string> = () => ({}), vehicleCount = VEHICLES): Promise<Setup> {
  const db = await createTestDatabase();
  dbs.push(db);
  const mqttPort = await freePort();
  let httpPort = await freePort();
  while (httpPort === mqttPort) httpPort = await freePort();
  const g = spawnGateway({
    DATABASE_URL: db.url,
    MQTT_PORT: String(mqttPort),
    HTTP_PORT: String(httpPort),
    ADMIN_TOKEN,
    JWT_KEYS,
    LOG_LEVEL: process.env.HA_GATEWAY_LOG_LEVEL ?? 'warn',
    SECRET_SCRYPT_COST: '1024',
    READYZ_CACHE_MS: '500',
    // docs/high-availability.md: behind a Patroni cluster the writer's retries back off to
    // 500 ms at most (default 2 s), so the first write after a promotion is not held back.
    WRITER_RETRY_MAX_MS: '500',
    STREAM_KEEPALIVE_MS: '1000',
    ...extraEnv(db.name),
  });
  await waitReady(g, 60_000);
  const vehicles = await provisionVehicles(httpPort, ADMIN_TOKEN, Array.from({ length: vehicleCount }, () => testVin()));
  const fleet = startFleet({ mqttPort, vehicles, messages, recordsPerMessage: RPM, window: 5, intervalMs, baseMs: Date.now() - 3_600_000 });
  fleets.push(fleet);
  return { db, q: queryOf(db.url), g, fleet, messages };
}

/** Every record sent stored exactly once; prints the summary. */
async function finish(s: Setup, title: string, lines: string[]): Promise<void> {
  await s.fleet.done(120_000);
  const sum = await summarizeStored(s.q, s.fleet, s.messages * RPM);
  const st = s.fleet.stats();
  console.log(
    [
      `[ha] ${title}`,
      `  vehicles ${st.vehicles}, window ${st.window}; messages sent ${st.messagesSent} (records ${st.recordsSent}), acked ${st.messagesAcked} (records ${st.recordsAcked})`,
      `  stored rows ${sum.rows}, distinct ${sum.distinct}, duplicated ${sum.duplicates}, missing ${sum.missing}, quarantined ${sum.quarantined}`,
      `  PUBLISH packets ${st.publishPackets} (MQTT.js store resends ${st.resentByMqttJs}, republished ${st.republished}), reconnects ${st.reconnects}`,
      ...lines,
      ...(sum.perVinProblems.length ? ['  problems:', ...sum.perVinProblems.slice(0, 20).map((x) => '    ' + x)] : []),
    ].join('\n'),
  );
  expect(st.messagesAcked).toBe(s.fleet.total);
  expect(sum.perVinProblems).toEqual([]);
  expect([sum.rows, sum.distinct, sum.duplicates, sum.missing, sum.quarantined]).toEqual([st.recordsSent, st.recordsSent, 0, 0, 0]);
}

/** The longest stretch without any PUBACK between `from` and `to` (test clock), ms. */
function longestPause(acks: number[], from: number, to: number): number {
  const t = [from, ...acks.filter((x) => x > from && x < to).sort((a, b) => a - b), to];
  let m = 0;
  for (let i = 1; i < t.length; i++) m = Math.max(m, t[i]! - t[i - 1]!);
  return m;
}

/** Samples who leads (Patroni REST), every 100 ms. */
function leaderSampler() {
  return sampler(() => leader(), 100);
}

async function customerToken(httpPort: number, subject: string): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/v1/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ role: 'customer', subject }),
  });
  const b = (await r.json()) as { token: string };
  if (r.status !== 201) throw new Error(`token: ${r.status} ${JSON.stringify(b)}`);
  return b.token;
}

describe('database failover under load (Patroni + HAProxy)', () => {
  it('kill -9 of the primary postmaster: 0 acknowledged lost, every record once, /readyz 503 meanwhile, transaction ids kept, the owner\'s live stream resumes by cursor with every record once', async () => {
    const s = await setup(120, 100);
    const { fleet, q, g } = s;
    const vin = fleet.vehicles[0]!.vin;
    const token = await customerToken(g.httpPort, 'owner-faults');
    const streams: SseClient[] = [];
    let sse = await openSse(g.httpPort, `/v1/vehicles/${vin}/stream?from=${new Date(Date.now() - 7_200_000).toISOString()}`, token);
    expect(sse.status).toBe(200);
    streams.push(sse);
    const ready = sampler(async () => {
      const t = Date.now();
      const code = await readyz(g.httpPort, 5000);
      return { code, ms: Date.now() - t };
    }, 100);
    const leaders = leaderSampler();

    await until(() => fleet.acked() >= 0.25 * fleet.total, 60_000, '25% acknowledged');
    // The stream log as the old primary has it (every entry committed by now is on the standby too).
    const before = await q<{ vin: string; tx: string; seqs: string }>('SELECT vin, tx::text AS tx, seqs::text AS seqs FROM stream_log');
    await sleep(300);
    const old = (await leader())!;
    const pm = postmasterPid(old)!;
    const killedAt = Date.now();
    process.kill(pm, 'SIGKILL');
    // The stream's cursor across the failover: the client leaves now and resumes later.
    await sleep(50);
    sse.close();
    const cursorAtKill = sse.records().at(-1)?.id;
    // What was acknowledged up to the kill is on the new primary once there is one.
    await until(async () => (await leader()) === other(old), 60_000, 'the standby to lead');
    // The promotion: the start of the first leader sample that named the new node. A PUBACK
    // after it comes from the new primary (the old one's commits can no longer be confirmed
    // by a standby that has been promoted).
    const promotedAt = leaders.samples.find((x) => x.at > killedAt && x.value === other(old))?.at ?? Date.now();
    const check = await ackedButMissingRetrying(q, fleet);
    await until(() => fleet.ackTimes().some((t) => t > promotedAt), 60_000, 'a PUBACK on the new primary', g);
    const firstAck = Math.min(...fleet.ackTimes().filter((t) => t > promotedAt));
    const lastOldAck = Math.max(killedAt, ...fleet.ackTimes().filter((t) => t <= promotedAt));
    const pause = longestPause(fleet.ackTimes(), killedAt, firstAck + 1);
    // Resume the owner's stream by its cursor on the new primary.
    sse = await openSse(g.httpPort, `/v1/vehicles/${vin}/stream`, token, cursorAtKill ? { 'last-event-id': cursorAtKill } : {});
    expect(sse.status).toBe(200);
    streams.push(sse);
    await finish(s, 'kill -9 of the primary postmaster, 100 vehicles', [
      `  killed ${old}'s postmaster (pid ${pm}); ${other(old)} leads (Patroni REST API, sampled every 100 ms) ${promotedAt - killedAt} ms after the kill`,
      `  first PUBACK on the new primary ${firstAck - killedAt} ms after the kill; last PUBACK before it +${lastOldAck - killedAt} ms (commits the old backends finished); longest PUBACK pause ${pause} ms`,
      `  at the failover: acknowledged ${check.acked}, of which missing on the new primary ${check.missing.length}; committed but not acknowledged ${check.storedNotAcked}`,
    ]);
    await Promise.all([ready.stop(), leaders.stop()]);
    // /readyz probes that started once the last probe answer from before the kill could no
    // longer be reused (READYZ_CACHE_MS 500) and before the new primary took a write: 503
    // among them; and none that ended before the promotion answered 200.
    const readyDuring = ready.samples.filter((r) => r.at > killedAt + 600 && r.at < firstAck).map((r) => r.value.code);
    const readyBeforePromotion = ready.samples.filter((r) => r.at > killedAt + 600 && r.at + r.value.ms < promotedAt).map((r) => r.value.code);
    const stored = (await q<{ seq: number }>('SELECT seq FROM telemetry WHERE vin = $1 ORDER BY seq', [vin])).map((r) => r.seq);
    await sse.until(() => streamed(streams).length >= stored.length, 30_000).catch(() => {});
    sse.close();
    const got = streamed(streams);
    // The stream log on the new primary: the same entries with the same transaction ids, and
    // transactions after the failover numbered above them.
    const after = await q<{ vin: string; tx: string; seqs: string }>('SELECT vin, tx::text AS tx, seqs::text AS seqs FROM stream_log');
    const afterKeys = new Set(after.map((e) => `${e.vin}|${e.tx}|${e.seqs}`));
    const keptTx = before.filter((e) => afterKeys.has(`${e.vin}|${e.tx}|${e.seqs}`)).length;
    const maxBefore = before.reduce((m, e) => (BigInt(e.tx) > m ? BigInt(e.tx) : m), 0n);
    const written = await q<{ min: string | null }>('SELECT min(tx)::text AS min FROM stream_log WHERE at > to_timestamp($1 / 1000.0)', [firstAck]);
    console.log(
      [
        `  /readyz during the failover: ${summarize(readyDuring)} (of which ended before the promotion: ${summarize(readyBeforePromotion)})`,
        `  stream log: ${before.length} entries before the kill, ${keptTx} of them on the new primary with the same transaction id; highest id before ${maxBefore}, lowest written after the failover ${written[0]?.min}`,
        `  owner's stream: ${got.length} records delivered (${new Set(got).size} distinct) over ${streams.length} connections, ${stored.length} stored`,
      ].join('\n'),
    );
    expect(check.missing).toEqual([]);
    expect(readyDuring).toContain(503);
    expect(readyBeforePromotion).not.toContain(200);
    expect(keptTx).toBe(before.length);
    expect(BigInt(written[0]!.min!)).toBeGreaterThan(maxBefore);
    expect(got.sort((a, b) => a - b)).toEqual(stored);
    expect(firstAck - killedAt).toBeLessThan(30_000);
  }, 240_000);

  it('planned switchover (scripts/ha.sh switchover: CHECKPOINT, then patronictl switchover) under load: 0 lost, 0 duplicated, longest PUBACK pause reported (under 10 s)', async () => {
    const s = await setup(120, 100);
    const { fleet } = s;
    await until(() => fleet.acked() >= 0.25 * fleet.total, 60_000, '25% acknowledged');
    const old = (await leader())!;
    const t0 = Date.now();
    ha('switchover');
    const t1 = Date.now();
    await until(async () => (await leader()) === other(old), 60_000, 'the new leader');
    await until(() => fleet.ackTimes().some((t) => t > t1), 60_000, 'a PUBACK after the switchover', s.g);
    const firstAck = Math.min(...fleet.ackTimes().filter((t) => t > t1));
    const check = await ackedButMissingRetrying(s.q, fleet);
    const pause = longestPause(fleet.ackTimes(), t0 - 1000, firstAck + 1);
    await finish(s, 'planned switchover, 100 vehicles', [
      `  ${old} -> ${other(old)}: CHECKPOINT and patronictl took ${t1 - t0} ms; longest PUBACK pause ${pause} ms`,
      `  PUBACKs per 250 ms from the switchover request: ${histogram(fleet.ackTimes(), t0, firstAck + 1000, 250)}`,
      `  after it: acknowledged ${check.acked}, of which missing on the new primary ${check.missing.length}`,
    ]);
    expect(check.missing).toEqual([]);
    // Target 5 s; measured 3.8-4.0 s on a quiet machine (docs/high-availability.md "Failover
    // timeline"): the CHECKPOINT ha.sh runs first leaves the shutdown checkpoint little to
    // fsync; then Patroni's fixed 1 s wait plus its poll for the clean shutdown (~2 s), the
    // promotion (0.3 s), HAProxy's 250 ms check and the writer's retry (<= 500 ms). The
    // bound asserted is 10 s: CI machines are shared.
    expect(pause).toBeLessThan(10_000);
  }, 180_000);

  it('DATABASE_READ_URL: exports read on the caught-up standby and see every acknowledged write, an erasure included; a dead read URL falls back to the primary', async () => {
    const s = await setup(40, 20, (name) => ({ DATABASE_READ_URL: haReadUrl(name), DATABASE_READ_MAX_WAIT_MS: '2000' }), 5);
    const { fleet, g, db } = s;
    await fleet.done(60_000);
    const token = await customerToken(g.httpPort, 'owner-faults');
    const [v1, v2] = [fleet.vehicles[0]!.vin, fleet.vehicles[1]!.vin];
    // Right after the last PUBACK: everything acknowledged is in the export.
    const seqs = await exportSeqs(g.httpPort, v1, token);
    const standbys = await readSessionsOnStandbys(db.name);
    const onStandby = standbys.reduce((n, x) => n + x.sessions, 0);
    // An erasure, then at once the export: the erased rows are gone from it.
    const del = await fetch(`http://127.0.0.1:${g.httpPort}/v1/vehicles/${v2}/data`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    expect(del.status).toBe(200);
    const afterErasure = await exportSeqs(g.httpPort, v2, token);
    await fleet.close();
    g.signal('SIGTERM');
    await g.exit;
    // A read URL where nothing listens: exports still answer, from the primary.
    const deadPort = await freePort();
    const dead = await setup(4, 20, (name) => ({ DATABASE_READ_URL: `postgres://cardata:cardata@127.0.0.1:${deadPort}/${name}`, DATABASE_READ_MAX_WAIT_MS: '200' }), 1);
    await dead.fleet.done(60_000);
    const deadToken = await customerToken(dead.g.httpPort, 'owner-faults');
    const fallback = await exportSeqs(dead.g.httpPort, dead.fleet.vehicles[0]!.vin, deadToken);
    console.log(
      [
        '[ha] DATABASE_READ_URL',
        `  export right after the last PUBACK: ${seqs.length} records of ${40 * RPM}; read-pool sessions on the standbys: ${JSON.stringify(standbys)}`,
        `  export right after an erasure: ${afterErasure.length} records; with a dead read URL: ${fallback.length} of ${4 * RPM} records`,
      ].join('\n'),
    );
    expect(seqs).toEqual(Array.from({ length: 40 * RPM }, (_, i) => i + 1));
    expect(onStandby).toBeGreaterThan(0);
    expect(afterErasure).toEqual([]);
    expect(fallback).toHaveLength(4 * RPM);
  }, 120_000);

  it('SIGSTOP of the primary (Patroni and PostgreSQL frozen): failover, every record once, and the resumed old primary takes no writes', async () => {
    const s = await setup(150, 100);
    const { fleet } = s;
    await until(() => fleet.acked() >= 0.25 * fleet.total, 60_000, '25% acknowledged');
    const old = (await leader())!;
    const frozen = [patroniPid(old), ...postgresTree(old)];
    const stoppedAt = Date.now();
    for (const pid of frozen) {
      process.kill(pid, 'SIGSTOP');
      stopped.add(pid);
    }
    await until(async () => (await rest(other(old), '/primary')) === 200, 90_000, 'the standby to lead');
    const promoted = Date.now();
    await until(() => fleet.ackTimes().some((t) => t > promoted), 60_000, 'a PUBACK on the new primary', s.g);
    const firstAck = Math.min(...fleet.ackTimes().filter((t) => t > stoppedAt + 500));
    const check = await ackedButMissingRetrying(s.q, fleet);

    // Resume the old primary. It still believes it leads until its Patroni runs a cycle; a
    // client that reaches it directly must not get a commit acknowledged there.
    const direct = new pg.Client({ host: '127.0.0.1', port: pgPort(old), user: 'cardata', password: 'cardata', database: s.db.name, connectionTimeoutMillis: 5000 });
    direct.on('error', () => {});
    for (const pid of frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* exited */
      }
      stopped.delete(pid);
    }
    const resumed = Date.now();
    const primaryAnswers: number[] = [];
    const probe = sampler(async () => {
      const r = await rest(old, '/primary');
      primaryAnswers.push(r);
      return r;
    }, 100);
    let directWrite: string;
    try {
      await direct.connect();
      const w = direct.query("CREATE TABLE split_brain_probe AS SELECT 1 AS x").then(
        () => 'committed',
        (e: Error) => `refused: ${e.message}`,
      );
      directWrite = await Promise.race([w, sleep(5000).then(() => 'no answer in 5 s (waiting for a synchronous standby)')]);
    } catch (e) {
      directWrite = `no connection: ${(e as Error).message}`;
    }
    await direct.end().catch(() => {});
    await sleep(1000);
    await probe.stop();
    const probeOnNew = await retrying<{ n: number }>(s.q, "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'split_brain_probe'");
    const oldIsStandby = await until(async () => (await rest(old, '/replica')) === 200, 90_000, 'the old primary to rejoin as a standby').then(
      () => true,
      () => false,
    );
    await finish(s, 'SIGSTOP of the primary, 100 vehicles', [
      `  froze ${old} (Patroni + ${frozen.length - 1} PostgreSQL processes); ${other(old)} led ${promoted - stoppedAt} ms later; first PUBACK on it ${firstAck - stoppedAt} ms after the stop`,
      `  at the failover: acknowledged ${check.acked}, of which missing on the new primary ${check.missing.length}`,
      `  resumed after ${resumed - stoppedAt} ms: its /primary answered ${summarize(primaryAnswers)}; a direct write on it: ${directWrite}; the write on the new primary: ${probeOnNew[0]?.n ?? '?'} rows; rejoined as a standby: ${oldIsStandby}`,
    ]);
    expect(check.missing).toEqual([]);
    expect(primaryAnswers).not.toContain(200);
    expect(directWrite).not.toBe('committed');
    expect(probeOnNew[0]?.n).toBe(0);
    expect(oldIsStandby).toBe(true);
  }, 240_000);
});

/** PUBACK counts per `step` ms from `from` to `to`. */
function histogram(acks: number[], from: number, to: number, step: number): string {
  const n = Math.ceil((to - from) / step);
  const b = new Array<number>(n).fill(0);
  for (const t of acks) if (t >= from && t < to) b[Math.floor((t - from) / step)]!++;
  return b.join(' ');
}

async function exportSeqs(httpPort: number, vin: string, token: string): Promise<number[]> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/v1/vehicles/${vin}/cardata?format=ndjson`, { headers: { authorization: `Bearer ${token}` } });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`export: ${r.status} ${text.slice(0, 300)}`);
  return text
    .split('\n')
    .filter((l) => l.length)
    .map((l) => (JSON.parse(l) as { seq: number }).seq)
    .sort((a, b) => a - b);
}

/** Sessions of the gateway's read pool (application_name cardata-gateway-read) on the nodes that are standbys now. */
async function readSessionsOnStandbys(database: string): Promise<{ node: NodeName; sessions: number }[]> {
  const out: { node: NodeName; sessions: number }[] = [];
  for (const node of ['pg1', 'pg2'] as const) {
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort(node), user: 'cardata', password: 'cardata', database, connectionTimeoutMillis: 3000 });
    c.on('error', () => {});
    try {
      await c.connect();
      const r = await c.query<{ n: number; standby: boolean }>(
        "SELECT count(*) FILTER (WHERE application_name = 'cardata-gateway-read')::int AS n, pg_is_in_recovery() AS standby FROM pg_stat_activity",
      );
      if (r.rows[0]!.standby) out.push({ node, sessions: r.rows[0]!.n });
    } catch {
      /* a node that does not answer is no standby serving reads */
    } finally {
      await c.end().catch(() => {});
    }
  }
  return out;
}

function streamed(streams: SseClient[]): number[] {
  return streams.flatMap((c) => c.records().map((r) => r.data.seq as number));
}

function summarize(v: (number | string)[]): string {
  const m = new Map<string, number>();
  for (const x of v) m.set(String(x), (m.get(String(x)) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k}×${n}`).join(', ') || 'none';
}

async function ackedButMissingRetrying(q: Query, fleet: Fleet): Promise<Awaited<ReturnType<typeof ackedButMissing>>> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await ackedButMissing(q, fleet);
    } catch (err) {
      if (Date.now() - t0 > 60_000) throw err;
      await sleep(250);
    }
  }
}
