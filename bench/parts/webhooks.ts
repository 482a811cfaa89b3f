// Bench part `webhooks` (issue 25, docs/webhooks.md): recipients' webhooks under load.
//
// 1,000 vehicles (the load generator's raw MQTT, QoS 1, 10 records a message), one grant
// each to one third party, and per grant a webhook of its own to a local receiver process
// (bench/webhook-receiver.ts) that verifies every signature with the standardwebhooks
// library and dedupes by webhook-id. The grants and webhooks are written straight into the
// database (as the API writes them; 1,000 API calls would measure nothing here), in a fresh
// database (bench_webhooks); the gateway is its own process.
//   - ingest ratio: the closed loop's rate with the 1,000 webhooks delivering, over the rate
//     before they exist (the same gateway, the same vehicles);
//   - latency: at half the rate with webhooks, open loop, PUBACK (after the commit) → the
//     receiver's receipt of the message's last record: p50/p99;
//   - receiver down: at half the rate for WEBHOOK_BENCH_DOWN_MS (60 s), the receiver closed;
//     then back: the time until every stored record was received (drain), records lost
//     (stored but never received) and order breaks (a grant's record received after a
//     later one).
import pg from 'pg';
import { randomBytes, randomUUID } from 'node:crypto';
import { typeParsers } from '../../storage/driver/db.ts';
import { benchVin, freePort, round, sleep, spawnNode, type Child } from '../lib.ts';

export interface WebhooksBenchOptions {
  vehicles: number;
  window: number;
  warmupMs: number;
  measureMs: number;
  latencyMs: number;
  downMs: number;
}

/** WEBHOOK_BENCH_VEHICLES (default 1,000) and WEBHOOK_BENCH_DOWN_MS (default 60,000): a smaller run on a busy machine; the targets are for the defaults. */
export function webhooksOptions(env: NodeJS.ProcessEnv, quick: boolean): WebhooksBenchOptions {
  const downMs = Number(env.WEBHOOK_BENCH_DOWN_MS ?? 60_000);
  const vehicles = Number(env.WEBHOOK_BENCH_VEHICLES ?? 1000);
  return quick
    ? { vehicles, window: 8, warmupMs: 2000, measureMs: 6000, latencyMs: 5000, downMs }
    : { vehicles, window: 8, warmupMs: 5000, measureMs: 15_000, latencyMs: 10_000, downMs };
}

interface Gateway {
  child: Child;
  pid: number;
  mqttPort: number;
  httpPort: number;
}

export interface WebhooksBenchDeps {
  server: string;
  secretHash: string;
  /** The vehicles' MQTT password (matching secretHash). */
  password: string;
  log(msg: string): void;
  freshSchema(server: string, name: string): Promise<string>;
  startGateway(name: string, url: string, nodeArgs?: string[], extraEnv?: Record<string, string>): Promise<Gateway>;
  stopGateway(gw: Gateway | null): Promise<void>;
  startLoadgen(name: string): Promise<Child>;
  dropQuietly(server: string, name: string): Promise<void>;
}

const RECIPIENT = 'bench-webhook-tp';

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, types: typeParsers() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function runWebhooks(d: WebhooksBenchDeps, o: WebhooksBenchOptions): Promise<Record<string, unknown>> {
  const name = 'bench_webhooks';
  const url = await d.freshSchema(d.server, name);
  const vins = Array.from({ length: o.vehicles }, (_, i) => benchVin('W', i));
  const owners = vins.map((_, i) => `bench-wh-owner-${i}`);
  const out: Record<string, unknown> = { vehicles: o.vehicles, webhooks: o.vehicles, recordsPerMsg: 10 };
  await withClient(url, async (c) => {
    await c.query('BEGIN');
    await c.query('INSERT INTO vehicles (vin, owner_id, secret_hash) SELECT v, o, $3 FROM unnest($1::text[], $2::text[]) AS x(v, o)', [vins, owners, d.secretHash]);
    await c.query('INSERT INTO ownership_periods (vin, owner_id, started_at) SELECT vin, owner_id, created_at FROM vehicles');
    await c.query(`INSERT INTO recipients (id, role, name) VALUES ($1, 'third_party', 'Bench insurer')`, [RECIPIENT]);
    // One grant per vehicle, every category, streaming, as POST /v1/vehicles/{vin}/grants makes it.
    await c.query(
      `INSERT INTO grants (id, vin, owner_id, period_id, recipient_id, categories, access, purpose, data_from, created_at, expires_at, origin)
       SELECT gen_random_uuid(), p.vin, p.owner_id, p.id, $1, ARRAY['technical', 'consumption', 'location'], ARRAY['history', 'stream'], 'bench', now() - interval '1 day', now(), now() + interval '30 days', 'owner'
         FROM ownership_periods p`,
      [RECIPIENT],
    );
    await c.query('COMMIT');
  });
  const port = await freePort();
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  let gw: Gateway | null = null;
  let lg: Child | null = null;
  let rx: Child | null = null;
  const storedTotal = async () => withClient(url, async (c) => Number((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM telemetry')).rows[0]!.n));
  const received = async () => (await rx!.call<{ records: number; outOfOrder: number; badSignatures: number; duplicates: number; deliveries: number; counts: Record<string, number> }>('stats'));
  try {
    gw = await d.startGateway('gateway-webhooks', url, [], {
      WEBHOOK_ALLOW_HTTP: 'true',
      WEBHOOK_ALLOW_PRIVATE: '127.0.0.1/32',
      // A receiver back after a minute is retried within 5 s (the default schedule waits up to 1 h).
      WEBHOOK_RETRY_MAX_MS: '5000',
      WEBHOOK_LEASE_MS: '6000',
    });
    lg = await d.startLoadgen('loadgen-webhooks');
    rx = spawnNode('webhook-receiver', 'webhook-receiver.ts');
    await rx.waitFor('ready', 60_000);
    await rx.call('listen', { port, secret });
    const c = await lg.call<{ connected: number; errors: string[] }>('connect', { host: '127.0.0.1', port: gw.mqttPort, vins, password: d.password, recordsPerMsg: 10, parallel: 100, timeoutMs: 120_000 }, 150_000);
    if (c.connected !== vins.length) throw new Error(`webhooks: only ${c.connected}/${vins.length} vehicles connected: ${c.errors.join('; ')}`);
    const closedLoop = async (label: string): Promise<number> => {
      d.log(`webhooks: closed loop ${label} webhooks, ${o.warmupMs / 1000} s warm-up + ${o.measureMs / 1000} s measured`);
      const r = await lg!.call<{ drained: boolean; unexpectedCloses: number; slopeRecordsPerSec: number }>('closedLoop', { window: o.window, warmupMs: o.warmupMs, measureMs: o.measureMs, drainMs: 60_000 }, o.warmupMs + o.measureMs + 90_000);
      if (!r.drained || r.unexpectedCloses) throw new Error(`webhooks: closed loop ${label} did not drain (closes ${r.unexpectedCloses})`);
      return r.slopeRecordsPerSec;
    };
    const without = await closedLoop('without');
    // Past the 5 s margin a new endpoint's cursor starts before its creation: what was stored
    // until now is not the webhooks' to deliver.
    await sleep(6000);
    const perVin = async () => withClient(url, async (cl) => new Map((await cl.query<{ vin: string; n: number }>('SELECT vin, count(*)::int AS n FROM telemetry GROUP BY vin')).rows.map((r) => [r.vin, r.n])));
    const before = await perVin();
    baseline.set(d, [...before.values()].reduce((a, b) => a + b, 0));
    // The webhooks, one per grant, as POST /v1/webhooks {"url","grantIds":[…]} stores them.
    await withClient(url, async (cl) => {
      const grants = (await cl.query<{ id: string; vin: string }>('SELECT id::text AS id, vin FROM grants')).rows;
      const at = new Map(vins.map((v, i) => [v, i]));
      const ids = grants.map(() => randomUUID());
      await cl.query('BEGIN');
      await cl.query(
        `INSERT INTO webhooks (id, recipient_id, recipient_role, url, secret, grant_ids, events)
         SELECT x.id, $1, 'third_party', x.url, $2, ARRAY[x.gid], ARRAY['records', 'grants'] FROM unnest($3::uuid[], $4::text[], $5::uuid[]) AS x(id, url, gid)`,
        [RECIPIENT, secret, ids, grants.map((g) => `http://127.0.0.1:${port}/hook/${at.get(g.vin)}`), grants.map((g) => g.id)],
      );
      await cl.query(
        `INSERT INTO webhook_grants (webhook_id, grant_id, vin, created_sent) SELECT x.id, x.gid, x.vin, true FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS x(id, gid, vin)`,
        [ids, grants.map((g) => g.id), grants.map((g) => g.vin)],
      );
      await cl.query('COMMIT');
    });
    // The worker leases new endpoints within a third of WEBHOOK_LEASE_MS.
    await sleep(3000);
    const withW = await closedLoop('with');
    out.ingestRecordsPerSecWithout = round(without);
    out.ingestRecordsPerSecWith = round(withW);
    out.ingestRatio = round(withW / without, 3);
    // Everything stored so far reaches the receiver.
    const drainedAfterLoop = await waitDrained(d, storedTotal, received, 600_000);
    out.catchUpAfterClosedLoopSeconds = drainedAfterLoop;

    // Latency at half the rate with webhooks: PUBACK → receipt of the message's last record.
    const msgsPerSec = Math.max(1, Math.round(withW / 2 / 10));
    d.log(`webhooks: PUBACK → receipt at ${msgsPerSec * 10} records/s`);
    await rx.call('record', { on: true });
    const lat = await lg.call<{ ackLog: number[]; achievedRecordsPerSec: number }>('rate', { msgsPerSec, window: o.window, warmupMs: o.warmupMs, measureMs: o.latencyMs, drainMs: 30_000, ackLog: true }, o.warmupMs + o.latencyMs + 60_000);
    out.catchUpAfterLatencyRunSeconds = await waitDrained(d, storedTotal, received, 600_000);
    const l = await rx.call<{ samples: number; missing: number; p50: number; p90: number; p99: number; max: number }>('latencies', { ackLog: lat.ackLog, recordsPerMsg: 10 }, 60_000);
    await rx.call('record', { on: false });
    out.latencyRun = { recordsPerSec: msgsPerSec * 10, achievedRecordsPerSec: round(lat.achievedRecordsPerSec), messages: l.samples, missing: l.missing };
    out.deliveryLatencyMs = { p50: round(l.p50, 1), p90: round(l.p90, 1), p99: round(l.p99, 1), max: round(l.max, 1) };

    // Receiver down for downMs while vehicles go on at half the rate, then back.
    d.log(`webhooks: receiver down for ${o.downMs / 1000} s at ${msgsPerSec * 10} records/s`);
    await rx.call('down');
    await lg.call('rate', { msgsPerSec, window: o.window, warmupMs: 0, measureMs: o.downMs, drainMs: 30_000 }, o.downMs + 60_000);
    const backlog = (await storedTotal()) - (baseline.get(d) ?? 0) - (await received()).records;
    await rx.call('listen', { port, secret });
    const drain = await waitDrained(d, storedTotal, received, 600_000);
    out.downSeconds = o.downMs / 1000;
    out.backlogRecordsWhenBack = backlog;
    out.drainSeconds = drain;
    const st = await received();
    // Per vehicle: stored since the webhooks exist, and not received.
    let lost = 0;
    for (const [vin, n] of await perVin()) lost += Math.max(0, n - (before.get(vin) ?? 0) - (st.counts[String(vins.indexOf(vin))] ?? 0));
    out.lostRecords = lost;
    out.recordsStoredBeforeWebhooks = baseline.get(d);
    out.outOfOrder = st.outOfOrder;
    out.badSignatures = st.badSignatures;
    out.duplicates = st.duplicates;
    out.deliveries = st.deliveries;
    out.recordsReceived = st.records;
    out.config = { WEBHOOK_RETRY_MAX_MS: 5000, WEBHOOK_CONCURRENCY: 16, WEBHOOK_PER_ENDPOINT: 4, WEBHOOK_POLL_MS: 250 };
  } finally {
    await rx?.call('close').catch(() => {});
    rx?.killTree();
    await lg?.call('close').catch(() => {});
    lg?.killTree();
    await d.stopGateway(gw);
    await d.dropQuietly(d.server, name);
  }
  return out;
}

/** Seconds until the receiver holds as many records as are stored (minus those from before the webhooks), or throws past `timeoutMs`. */
async function waitDrained(d: WebhooksBenchDeps, stored: () => Promise<number>, received: () => Promise<{ records: number }>, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  let last = -1;
  for (;;) {
    const [s, r] = [await stored(), (await received()).records];
    if (s - r <= (baseline.get(d) ?? 0)) return round((performance.now() - t0) / 1000, 1);
    if (r !== last) last = r;
    if (performance.now() - t0 > timeoutMs) throw new Error(`webhooks: ${s - r} records stored but not received after ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}
const baseline = new WeakMap<WebhooksBenchDeps, number>();

type Add = (key: string, value: number | undefined | null, target: string, ok: (v: number) => boolean) => void;
type Fmt = (v: number | string | boolean | null | undefined, unit?: string) => string;

/** The targets of the part. */
export function webhooksTargets(w: Record<string, any> | undefined, add: Add): void {
  if (!w || w.vehicles === undefined) return;
  // A smaller run (WEBHOOK_BENCH_VEHICLES, WEBHOOK_BENCH_DOWN_MS) is reported, judged against nothing but losses.
  add('webhooks.outOfOrder', w.outOfOrder, '= 0 (a grant\'s deliveries in commit order)', (x) => x === 0);
  if (w.vehicles !== 1000 || w.downSeconds !== 60) {
    add('webhooks.lostRecords', w.lostRecords, '= 0 (receiver down, then back)', (x) => x === 0);
    return;
  }
  add('webhooks.deliveryLatencyMs.p99', w.deliveryLatencyMs?.p99, '< 1000 ms (PUBACK → receipt, half the rate)', (x) => x < 1000);
  add('webhooks.ingestRatio', w.ingestRatio, '>= 0.85 (with 1,000 webhooks / without)', (x) => x >= 0.85);
  add('webhooks.lostRecords', w.lostRecords, '= 0 (receiver down, then back)', (x) => x === 0);
}

/** The part's rows of the printed table. */
export function webhooksRows(w: Record<string, any> | undefined, fmt: Fmt, verdict: (k: string) => string): [string, string, string][] {
  if (!w || w.vehicles === undefined) return [];
  return [
    [`webhooks.deliveryLatencyMs p50/p99 (PUBACK → receipt, ${fmt(w.latencyRun?.recordsPerSec)} rec/s, ${fmt(w.webhooks)} webhooks)`, `${fmt(w.deliveryLatencyMs?.p50)} / ${fmt(w.deliveryLatencyMs?.p99, ' ms')}`, verdict('webhooks.deliveryLatencyMs.p99')],
    [`webhooks.ingestRatio (${fmt(w.ingestRecordsPerSecWith)} / ${fmt(w.ingestRecordsPerSecWithout)} rec/s)`, fmt(w.ingestRatio), verdict('webhooks.ingestRatio')],
    [`webhooks.drainSeconds (receiver down ${fmt(w.downSeconds)} s, ${fmt(w.backlogRecordsWhenBack)} records behind)`, fmt(w.drainSeconds, ' s'), ''],
    [`webhooks.lostRecords / outOfOrder / badSignatures`, `${fmt(w.lostRecords)} / ${fmt(w.outOfOrder)} / ${fmt(w.badSignatures)}`, verdict('webhooks.lostRecords')],
  ];
}
