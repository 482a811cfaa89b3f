// Three gateway processes on one TimescaleDB database behind a real HAProxy (the shipped
// deploy/haproxy/haproxy.cfg), everything on loopback. The vehicles are MQTT.js clients
// with persistent sessions streaming QoS 1 through HAProxy; the faults are real SIGKILLs.
// Each test prints its figures, then asserts on them.
//
// Checked: every acknowledged message is in the database at each kill; at the end every
// record sent is stored exactly once; a consent change answered by one instance is in
// force on the instance holding the vehicle; retention runs on exactly one instance per
// period; the failed-authentication limiter counts the vehicle's own address (PROXY
// protocol), so an attacker's failures do not lock out the vehicle behind the same balancer.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { MqttClient } from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, encodeBatch, record, testVin } from '../helpers/gateway.ts';
import { freePort, killAllGateways, metricValues, readyz, sleep, spawnGateway, waitReady, type GatewayProcess } from '../helpers/proc.ts';
import { ackedButMissing, provisionVehicles, startFleet, summarizeStored, type Fleet } from '../helpers/fleet.ts';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.ts';

const CLK_TCK = 100;
/** utime + stime of a process, seconds (null once it is gone). */
function cpuSecondsOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

interface Instance {
  name: string;
  env: Record<string, string>;
  g: GatewayProcess;
  /** Every process this instance has been, for its logs and CPU. */
  lives: GatewayProcess[];
  /** CPU seconds of the lives that ended (read just before each kill). */
  cpuDone: number;
}

const fleets: Fleet[] = [];
let db: TestDatabase | null = null;
let lb: Haproxy | null = null;

afterAll(async () => {
  await Promise.all(fleets.map((f) => f.close().catch(() => {})));
  lb?.stop();
  killAllGateways();
  await db?.drop().catch(() => {});
});

async function distinctPorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, detail?: () => string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${detail()}` : ''}`);
    await sleep(20);
  }
}

const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]! : NaN);

/** Connected vehicles per instance, from each one's own /metrics. */
async function connectedPer(instances: Instance[]): Promise<number[]> {
  return Promise.all(
    instances.map(async (i) => {
      const m = await metricValues(i.g.httpPort, [`cardata_mqtt_connected_vehicles{instance="${i.name}"}`] as const);
      return m ? Number(m[`cardata_mqtt_connected_vehicles{instance="${i.name}"}`]) : NaN;
    }),
  );
}

async function adminPost(httpPort: number, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

/** An MQTT.js client whose TCP connection starts from `localAddress` (a 127.0.0.x address). */
function clientFrom(localAddress: string, port: number, opts: { vin: string; password: string }): MqttClient {
  return new MqttClient(() => net.createConnection({ host: '127.0.0.1', port, localAddress }), {
    clientId: opts.vin,
    username: opts.vin,
    password: opts.password,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
}

/** CONNACK outcome of one connection attempt: 'ok', or the error's message. */
function attempt(c: MqttClient): Promise<string> {
  return new Promise((resolve) => {
    c.once('connect', () => resolve('ok'));
    c.once('error', (e) => resolve(e.message));
    c.once('close', () => resolve('closed'));
  }).finally(() => c.end(true)) as Promise<string>;
}

describe('three gateways behind HAProxy on one database (real processes)', () => {
  it('100 vehicles, QoS 1, persistent sessions through HAProxy; SIGKILL ×2; consent across instances; retention once per period; auth limiter per vehicle address', async () => {
    db = await createTestDatabase();
    const ports = await distinctPorts(9);
    const [lbMqtt, lbMqtts, lbHttp] = ports as [number, number, number];
    const RETENTION_MS = 1000;
    const names = ['gw1', 'gw2', 'gw3'];
    const instances: Instance[] = names.map((name, k) => {
      const env = {
        DATABASE_URL: db!.url,
        MQTT_PORT: String(ports[3 + 2 * k]),
        HTTP_PORT: String(ports[4 + 2 * k]),
        ADMIN_TOKEN,
        INSTANCE_ID: name,
        // Shared by every instance: a token minted by one is honoured by all.
        JWT_KEYS: 'k1:cluster-test-signing-key-0123456789abcdef',
        MQTT_PROXY_PROTOCOL: 'true',
        HTTP_TRUST_PROXY: '127.0.0.1',
        RETENTION_INTERVAL_MS: String(RETENTION_MS),
        AUTH_FAILURES_MAX: '5',
        // info: the retention_applied lines are what this test counts.
        LOG_LEVEL: 'info',
        SECRET_SCRYPT_COST: '1024',
      };
      return { name, env, g: null as unknown as GatewayProcess, lives: [], cpuDone: 0 };
    });
    const boot = async (i: Instance) => {
      i.g = spawnGateway(i.env);
      i.lives.push(i.g);
      return waitReady(i.g, 60_000);
    };
    // All three at once: migrations from three processes on a fresh database.
    const startups = await Promise.all(instances.map(boot));
    const lbEnv: Record<string, string> = { LB_BIND: '127.0.0.1', LB_MQTT_PORT: String(lbMqtt), LB_MQTTS_PORT: String(lbMqtts), LB_HTTP_PORT: String(lbHttp), LB_CHECK_INTERVAL: '1s', LB_MAXCONN: '2000', GW_MAXCONN: '1000' };
    instances.forEach((i, k) => {
      lbEnv[`GW${k + 1}_HOST`] = '127.0.0.1';
      lbEnv[`GW${k + 1}_MQTT_PORT`] = i.env.MQTT_PORT!;
      lbEnv[`GW${k + 1}_HTTP_PORT`] = i.env.HTTP_PORT!;
    });
    lb = await startHaproxy(lbEnv, [lbMqtt, lbHttp]);
    await until(async () => (await readyz(lbHttp)) === 200, 15_000, '/readyz through HAProxy');

    // --- the fleet -------------------------------------------------------------------
    const VEHICLES = 100;
    const MESSAGES = 200;
    const RPM = 5;
    const vehicles = await provisionVehicles(lbHttp, ADMIN_TOKEN, Array.from({ length: VEHICLES }, () => testVin()));
    const fleet = startFleet({ mqttPort: lbMqtt, vehicles, messages: MESSAGES, recordsPerMessage: RPM, window: 5, intervalMs: 250, baseMs: Date.now() - 3_600_000, startPaused: true });
    fleets.push(fleet);
    // Per vehicle: when its connection closed and when it was connected again.
    const closes = new Map<string, number[]>();
    const connects = new Map<string, number[]>();
    for (const v of fleet.vehicles) {
      v.client.on('close', () => (closes.get(v.vin) ?? closes.set(v.vin, []).get(v.vin)!).push(Date.now()));
      v.client.on('connect', () => (connects.get(v.vin) ?? connects.set(v.vin, []).get(v.vin)!).push(Date.now()));
    }
    const notConnected = () => {
      const v = fleet.vehicles.filter((x) => x.connects === 0);
      return `${v.length} not connected, e.g. ${v.slice(0, 3).map((x) => `${x.vin} errors ${x.errors.slice(-2).join(' | ')}`).join('; ')}\nhaproxy: ${lb!.output().slice(-1500)}\n${instances.map((i) => i.g.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-5).join('\n')).join('\n')}`;
    };
    await until(() => fleet.vehicles.every((v) => v.connects > 0), 30_000, 'every vehicle connected through HAProxy', notConnected);
    const spread0 = await connectedPer(instances);
    // The stream (200 messages, one every 250 ms per vehicle) starts once all are connected.
    fleet.resume();

    const kills: { victim: string; at: number; connectedBefore: number[]; inFlight: number; inFlightOnVictim: number; ackedAtKill: number; ackedMissing: number; reconnectMs: number[]; restartReadyMs: number }[] = [];
    for (const frac of [0.2, 0.55]) {
      await until(() => fleet.acked() >= frac * fleet.total, 60_000, `${frac * 100}% acknowledged`);
      const before = await connectedPer(instances);
      // The instance holding the most vehicles right now.
      // (An instance whose /metrics did not answer in time counts as holding none.)
      const held = before.map((x) => (Number.isFinite(x) ? x : -1));
      const victim = instances[Math.max(0, held.indexOf(Math.max(...held)))]!;
      // Kill while messages are in flight in the gateways: waited for (a kill with nothing in
      // flight would not test what it is about); which of them were on the victim is known
      // once its vehicles' connections have closed (below).
      await until(() => fleet.outstanding() >= 30, 10_000, `messages in flight before kill ${kills.length + 1}`, () => `${fleet.outstanding()} unacknowledged`);
      const inFlight = fleet.outstanding();
      const outstandingAtKill = new Map(fleet.vehicles.map((v) => [v.vin, v.outstanding]));
      victim.cpuDone += cpuSecondsOf(victim.g.pid) ?? 0;
      const at = Date.now();
      victim.g.signal('SIGKILL');
      await victim.g.exit;
      await sleep(50);
      const check = await ackedButMissing(db.query, fleet);
      if (check.missing.length) console.log('acknowledged but missing after SIGKILL:', check.missing.slice(0, 10));
      // Its vehicles reconnect through HAProxy to the two others.
      const moved = fleet.vehicles.filter((v) => (closes.get(v.vin) ?? []).some((t) => t >= at));
      await until(() => moved.every((v) => (connects.get(v.vin) ?? []).some((t) => t > at)), 30_000, 'the killed instance\'s vehicles reconnected');
      const reconnectMs = moved.map((v) => Math.min(...connects.get(v.vin)!.filter((t) => t > at)) - at);
      const inFlightOnVictim = moved.reduce((n, v) => n + outstandingAtKill.get(v.vin)!, 0);
      // No new messages while the killed instance restarts (however slow the machine), so
      // the second kill still falls in the middle of the stream; what is in flight stays.
      fleet.pause();
      const restartReadyMs = await boot(victim);
      fleet.resume();
      kills.push({ victim: victim.name, at, connectedBefore: before, inFlight, inFlightOnVictim, ackedAtKill: check.acked, ackedMissing: check.missing.length, reconnectMs, restartReadyMs });
    }
    await fleet.done(90_000);
    const spreadEnd = await connectedPer(instances);
    const s = await summarizeStored(db.query, fleet, MESSAGES * RPM);
    const st = fleet.stats();

    // --- consent: changed through one instance, the vehicle on another ----------------
    const cvin = testVin();
    const [cveh] = await provisionVehicles(lbHttp, ADMIN_TOKEN, [cvin]);
    const tok = await adminPost(lbHttp, '/v1/admin/tokens', { role: 'customer', subject: 'owner-faults', ttlSeconds: 600 });
    expect(tok.status).toBe(201);
    const before = await connectedPer(instances);
    const car = clientFrom('127.0.0.1', lbMqtt, { vin: cvin, password: cveh!.secret });
    await new Promise<void>((resolve, reject) => {
      car.once('connect', () => resolve());
      car.once('error', reject);
    });
    let holder = -1;
    await until(async () => {
      const now = await connectedPer(instances);
      holder = now.findIndex((n, k) => n === before[k]! + 1);
      return holder >= 0;
    }, 10_000, 'the consent vehicle to show up on one instance');
    const answering = (holder + 1) % 3;
    let seq = 0;
    let publishing = true;
    const pub = (async () => {
      while (publishing) {
        const batch = encodeBatch(cvin, [record(++seq, Date.now(), { location: { latitude: 48.1, longitude: 11.5 } })]);
        await car.publishAsync(`v1/vehicles/${cvin}/telemetry`, batch, { qos: 1 });
        await sleep(5);
      }
    })();
    await sleep(500);
    const put = await fetch(`http://127.0.0.1:${instances[answering]!.g.httpPort}/v1/vehicles/${cvin}/consent`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${tok.json.token as string}`, 'content-type': 'application/json' },
      body: JSON.stringify({ location: false, co2Sharing: true }),
    });
    const answeredAt = Date.now();
    expect(put.status).toBe(200);
    const heldAtAnswer = await connectedPer(instances);
    await sleep(1000);
    publishing = false;
    await pub;
    await car.endAsync();
    // Observed, not chosen: the vehicle was on the instance whose connected-vehicles gauge
    // rose by one when it connected, was still up at the answer, and fell by one when it left;
    // the consent change was answered by the process that logged consent_changed for it.
    expect(heldAtAnswer[holder], `${names[holder]} still holds the consent vehicle when the change is answered`).toBe(before[holder]! + 1);
    await until(async () => (await connectedPer(instances))[holder] === heldAtAnswer[holder]! - 1, 10_000, `the consent vehicle to leave ${names[holder]}`);
    const consentLoggedBy = instances.flatMap((i) =>
      i.g
        .output()
        .split('\n')
        .filter((l) => l.includes('"consent_changed"'))
        .map((l) => JSON.parse(l) as { event: string; vin: string; instance: string })
        .filter((o) => o.event === 'consent_changed' && o.vin === cvin)
        .map((o) => o.instance),
    );
    const crow = await db.query<{ before_with: number; after_with: number; after_without: number }>(
      `SELECT count(*) FILTER (WHERE recorded_at <= to_timestamp($2::float8 / 1000) AND has_location)::int AS before_with,
              count(*) FILTER (WHERE recorded_at > to_timestamp($2::float8 / 1000) AND has_location)::int AS after_with,
              count(*) FILTER (WHERE recorded_at > to_timestamp($2::float8 / 1000) AND NOT has_location)::int AS after_without
         FROM telemetry WHERE vin = $1`,
      [cvin, answeredAt],
    );
    const c = crow[0]!;

    // --- auth limiter behind the balancer: failures counted per vehicle address ---------
    const victimVeh = fleet.vehicles[0]!;
    const outcomes: string[] = [];
    for (let k = 0; k < 8; k++) outcomes.push(await attempt(clientFrom('127.0.0.2', lbMqtt, { vin: victimVeh.vin, password: 'wrong-secret' })));
    const legit = await attempt(clientFrom('127.0.0.1', lbMqtt, { vin: victimVeh.vin, password: vehicles[0]!.secret }));
    const limited = (
      await Promise.all(instances.map((i) => metricValues(i.g.httpPort, [`cardata_mqtt_refused_total{reason="GW_ERR_AUTH_RATE_LIMITED",instance="${i.name}"}`] as const)))
    ).reduce((a, m) => a + (m ? Number(Object.values(m)[0]) || 0 : 0), 0);

    await fleet.close();
    // --- retention: which instance ran which period -----------------------------------
    await sleep(RETENTION_MS * 1.5);
    const cpu = instances.map((i) => i.cpuDone + (cpuSecondsOf(i.g.pid) ?? 0));
    for (const i of instances) i.g.signal('SIGTERM');
    await Promise.all(instances.map((i) => i.g.exit));
    const ran = new Map<string, string[]>();
    for (const i of instances) {
      for (const life of i.lives) {
        for (const line of life.output().split('\n')) {
          if (!line.includes('"retention_applied"')) continue;
          const o = JSON.parse(line) as { instance: string; period_start: string };
          (ran.get(o.period_start) ?? ran.set(o.period_start, []).get(o.period_start)!).push(o.instance);
        }
      }
    }
    const periods = [...ran.keys()].map((p) => Date.parse(p)).sort((a, b) => a - b);
    const span = periods.length ? (periods.at(-1)! - periods[0]!) / RETENTION_MS + 1 : 0;
    const twice = [...ran.entries()].filter(([, who]) => who.length > 1);
    const rows = await db.query<{ p: Date; instance: string }>("SELECT period_start AS p, instance FROM scheduled_runs WHERE job = 'retention' ORDER BY period_start");
    const byInstance = Object.fromEntries(names.map((n) => [n, [...ran.values()].filter((w) => w.includes(n)).length]));

    const recordsTotal = st.recordsSent;
    console.log(
      [
        '[cluster] 3 gateways behind HAProxy, one TimescaleDB',
        `  startups (to /readyz 200, all three at once): ${startups.join(', ')} ms; vehicles per instance at start ${spread0.join('/')}, at the end ${spreadEnd.join('/')}`,
        `  vehicles ${st.vehicles}, window ${st.window}; messages sent ${st.messagesSent} (records ${st.recordsSent}), acked ${st.messagesAcked} (records ${st.recordsAcked})`,
        `  records sent ${recordsTotal}, stored ${s.rows}, distinct ${s.distinct}, duplicated ${s.duplicates}, lost ${s.missing}, quarantined ${s.quarantined}`,
        `  PUBLISH packets ${st.publishPackets} (MQTT.js store resends ${st.resentByMqttJs}, republished ${st.republished}), reconnects ${st.reconnects}`,
        ...kills.map(
          (k, n) =>
            `  kill ${n + 1}: SIGKILL ${k.victim} (vehicles per instance before ${k.connectedBefore.join('/')}), unacknowledged messages then ${k.inFlight} (of the victim's vehicles ${k.inFlightOnVictim}); acknowledged so far ${k.ackedAtKill}, missing in the database ${k.ackedMissing}; ` +
            `${k.reconnectMs.length} vehicles reconnected through HAProxy in p50 ${pct(k.reconnectMs, 50)} ms, max ${Math.max(...k.reconnectMs)} ms; ${k.victim} ready again in ${k.restartReadyMs} ms`,
        ),
        `  CPU per instance (all its processes, s): ${instances.map((i, k) => `${i.name} ${cpu[k]!.toFixed(2)}`).join(', ')}; ${((1000 * cpu.reduce((a, b) => a + b, 0)) / (recordsTotal / 1000)).toFixed(1)} ms per 1,000 records over all (incl. start-up)`,
        `  consent: vehicle on ${names[holder]}, PUT through ${names[answering]} answered 200, consent_changed logged by ${consentLoggedBy.join(', ') || 'no instance'}; records with a position before the answer ${c.before_with}, after it ${c.after_with}; without a position after it ${c.after_without}`,
        `  auth limiter: 8 wrong secrets from 127.0.0.2 → ${JSON.stringify([...new Set(outcomes)])}; rate-limited refusals ${limited}; the vehicle itself from 127.0.0.1 → ${legit}`,
        `  retention: ${ran.size} periods run over a span of ${span}, by instance ${JSON.stringify(byInstance)}, periods run twice ${twice.length}; scheduled_runs rows ${rows.length}`,
      ].join('\n'),
    );

    expect(kills.map((k) => k.ackedMissing)).toEqual([0, 0]);
    // Both kills during the stream, not after it.
    for (const k of kills) expect(k.ackedAtKill).toBeLessThan(fleet.total);
    // Each kill hit messages in flight on the killed instance itself.
    for (const [n, k] of kills.entries()) expect(k.inFlightOnVictim, `kill ${n + 1}: no message of the killed instance's vehicles was in flight`).toBeGreaterThan(0);
    for (const k of kills) expect(k.reconnectMs.length).toBeGreaterThan(0);
    expect(st.messagesAcked).toBe(fleet.total);
    expect(s.perVinProblems).toEqual([]);
    expect([s.rows, s.distinct, s.duplicates, s.missing, s.quarantined]).toEqual([st.recordsSent, st.recordsSent, 0, 0, 0]);
    expect(consentLoggedBy, 'the instances that logged the consent change').toHaveLength(1);
    expect(consentLoggedBy[0], 'the instance that answered the consent change is the one holding the vehicle').not.toBe(names[holder]);
    expect(c.before_with).toBeGreaterThan(0);
    expect(c.after_without).toBeGreaterThan(0);
    expect(c.after_with).toBe(0);
    expect(limited).toBeGreaterThan(0);
    expect(legit).toBe('ok');
    expect(twice).toEqual([]);
    expect(ran.size).toBe(rows.length);
    expect(ran.size).toBeGreaterThanOrEqual(5);
    for (const r of rows) expect(ran.get(r.p.toISOString())).toEqual([r.instance]);
  }, 240_000);
});
