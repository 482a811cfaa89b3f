// The read side with SHARD_URLS (issue 16), through the real gateway: 200 vehicles over two
// shards (databases on the test server) sent over MQTT; every owner's export (NDJSON, and
// CSV/ZIP for a vehicle of each shard), latest location, portal series and live stream read
// from the vehicle's shard; the authority report reads both shards and answers one CSV;
// workshop reads and reads through grants are disclosed in the control database, also when
// the shard's read fails (README "Disclosures with shards"); erasure and scheduled
// retention run on every shard.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, connectVehicle, encodeBatch, FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, publish, record, startTestGateway, testVin, waitFor } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient, workshopVisit } from '../helpers/grants.ts';
import { openSse } from '../helpers/sse.ts';
import { bucketOf } from '../../storage/driver/shards.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const VEHICLES = 200;
const RECORDS = 5;
const OWNER = 'owner-sr';
// Measured a day ago: inside every default window (report, stream ?from=).
const BASE = Date.now() - 86_400_000;

let control: TestDatabase;
let shardDbs: TestDatabase[] = [];
let gw: RunningGateway;
let ownerToken: string;
let vins: string[] = [];
const secrets = new Map<string, string>();
/** The shard (0 or 1) each VIN was found on. */
const shardOfVin = new Map<string, number>();

const q = <R = Record<string, unknown>>(d: TestDatabase, sql: string, params?: unknown[]) => d.query<R>(sql, params);

function rec(vin: string, seq: number) {
  void vin;
  return record(seq, BASE + seq * 1000, {
    technical: { ...FULL_TECHNICAL, speedKmh: seq },
    consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 1000 + seq },
    location: { ...FULL_LOCATION, headingDeg: seq },
  });
}

async function sendAll(list: { vin: string; secret: string }[], seqs: number[]): Promise<void> {
  // 20 vehicles at a time, each: connect, one QoS 1 message, PUBACK, disconnect.
  for (let i = 0; i < list.length; i += 20) {
    await Promise.all(
      list.slice(i, i + 20).map(async (v) => {
        const c = await connectVehicle(gw, v.vin, v.secret);
        try {
          await publish(c, `v1/vehicles/${v.vin}/telemetry`, encodeBatch(v.vin, seqs.map((s) => rec(v.vin, s))), 1);
        } finally {
          await c.endAsync();
        }
      }),
    );
  }
}

/** Makes a shard database refuse connections and ends its sessions (a shard that is down). */
async function takeDown(d: TestDatabase): Promise<void> {
  await q(control, `ALTER DATABASE ${d.name} ALLOW_CONNECTIONS false`);
  // Our own sessions only (an autovacuum worker there belongs to the superuser).
  await q(control, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()', [d.name]);
}
async function bringUp(d: TestDatabase): Promise<void> {
  await q(control, `ALTER DATABASE ${d.name} ALLOW_CONNECTIONS true`);
}

const disclosuresOf = (vin: string) => q<{ role: string; subject: string; endpoint: string; owner_id: string | null; grant_id: string | null }>(control, 'SELECT role, subject, endpoint, owner_id, grant_id::text AS grant_id FROM disclosures WHERE vin = $1 ORDER BY id', [vin]);

beforeAll(async () => {
  control = await createTestDatabase();
  shardDbs = [await createTestDatabase(), await createTestDatabase()];
  gw = await startTestGateway(control.url, {
    SHARD_URLS: shardDbs.map((d) => d.url).join(','),
    SECRET_SCRYPT_COST: '1024',
    STREAM_POLL_MS: '200',
  });
  ownerToken = await mintToken(gw, 'customer', OWNER);
  const list: { vin: string; secret: string }[] = [];
  for (let i = 0; i < VEHICLES; i++) {
    const r = await api(gw, 'POST', '/v1/admin/vehicles', { vin: testVin(), ownerId: OWNER });
    if (r.status !== 201) throw new Error(`provision: ${r.status}`);
    list.push(r.body);
  }
  vins = list.map((v) => v.vin).sort();
  for (const v of list) secrets.set(v.vin, v.secret);
  await sendAll(list, Array.from({ length: RECORDS }, (_, i) => i + 1));
}, 180_000);

afterAll(async () => {
  await gw?.close();
  for (const d of [control, ...shardDbs]) await d?.drop().catch(() => {});
});

describe('200 vehicles over 2 shards', () => {
  it('each VIN has all its rows on exactly one shard (its bucket\'s), none in the control database', async () => {
    const per = await Promise.all(shardDbs.map((d) => q<{ vin: string; n: number; o: number }>(d, 'SELECT t.vin, count(*)::int AS n, (SELECT count(*)::int FROM obfcm_readings o WHERE o.vin = t.vin) AS o FROM telemetry t WHERE t.vin = ANY($1) GROUP BY t.vin', [vins])));
    for (let i = 0; i < 2; i++) {
      for (const r of per[i]!) {
        expect(shardOfVin.has(r.vin), `${r.vin} on both shards`).toBe(false);
        shardOfVin.set(r.vin, i);
        expect([r.n, r.o]).toEqual([RECORDS, RECORDS]);
      }
    }
    expect(shardOfVin.size).toBe(VEHICLES);
    // The initial map: bucket b on shard b mod 2.
    for (const v of vins) expect(shardOfVin.get(v)).toBe(bucketOf(v) % 2);
    expect(per[0]!.length).toBeGreaterThan(50);
    expect(per[1]!.length).toBeGreaterThan(50);
    expect((await q<{ n: number }>(control, 'SELECT count(*)::int AS n FROM telemetry'))[0]!.n).toBe(0);
  });

  it('every owner export (NDJSON) is complete, from the vehicle\'s shard', async () => {
    // Two at a time: at most two exports per caller run at once (EXPORTS_PER_CALLER).
    for (let i = 0; i < vins.length; i += 2) {
      await Promise.all(
        vins.slice(i, i + 2).map(async (vin) => {
          const r = await api(gw, 'GET', `/v1/vehicles/${vin}/cardata?format=ndjson`, undefined, ownerToken);
          expect(r.status, vin).toBe(200);
          const lines = String(r.body).trimEnd().split('\n').map((l) => JSON.parse(l));
          expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5]);
          expect(lines[4]).toMatchObject({ vin, recordedAt: new Date(BASE + 5000).toISOString(), consumption: { totalDistanceKm: 1005 }, location: { headingDeg: 5 } });
        }),
      );
    }
  });

  it('CSV and ZIP exports, latest location and the portal\'s series of a vehicle on each shard', async () => {
    for (const s of [0, 1]) {
      const vin = vins.find((v) => shardOfVin.get(v) === s)!;
      const csv = await api(gw, 'GET', `/v1/vehicles/${vin}/cardata?format=csv`, undefined, ownerToken);
      expect(csv.status).toBe(200);
      expect(String(csv.body).trimEnd().split('\n')).toHaveLength(1 + RECORDS);
      const zip = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/vehicles/${vin}/cardata?format=zip`, { headers: { authorization: `Bearer ${ownerToken}` } });
      expect(zip.status).toBe(200);
      expect((await zip.arrayBuffer()).byteLength).toBeGreaterThan(500);
      const loc = await api(gw, 'GET', `/v1/vehicles/${vin}/location/latest`, undefined, ownerToken);
      expect(loc.status).toBe(200);
      expect(JSON.stringify(loc.body)).toContain('"headingDeg":5');
      const latest = await api(gw, 'GET', `/v1/vehicles/${vin}/latest`, undefined, ownerToken);
      expect(latest.status).toBe(200);
      expect(latest.body.record).toMatchObject({ seq: 5 });
      const from = new Date(BASE).toISOString();
      const to = new Date(BASE + 3_600_000).toISOString();
      const series = await api(gw, 'GET', `/v1/vehicles/${vin}/series?from=${from}&to=${to}&bucket=1h`, undefined, ownerToken);
      expect(series.status, JSON.stringify(series.body)).toBe(200);
      expect(series.body.count.reduce((a: number, b: number) => a + b, 0)).toBe(RECORDS);
    }
  });

  it('the authority report reads both shards and answers one CSV: every vehicle once, in VIN order, each disclosed', async () => {
    const auth = await mintToken(gw, 'authority', 'eu-commission');
    const from = new Date(BASE - 60_000).toISOString();
    const to = new Date().toISOString();
    const r = await api(gw, 'GET', `/v1/reports/obfcm?from=${from}&to=${to}`, undefined, auth);
    expect(r.status).toBe(200);
    const lines = String(r.body).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^vin,recordedAt,/);
    const rows = lines.slice(1).map((l) => l.split(','));
    expect(rows.map((x) => x[0])).toEqual(vins);
    for (const x of rows) expect(x[1]).toBe(new Date(BASE + RECORDS * 1000).toISOString());
    const d = await q<{ vin: string; owner_id: string }>(control, "SELECT vin, owner_id FROM disclosures WHERE role = 'authority' AND vin = ANY($1) ORDER BY vin", [vins]);
    expect(d.map((x) => x.vin)).toEqual(vins);
    expect(d.every((x) => x.owner_id === OWNER)).toBe(true);
  });
});

describe('disclosures with shards', () => {
  it('a workshop read is disclosed; when its shard is down it fails, returns nothing and discloses nothing', async () => {
    const workshop = await registerRecipient(gw, 'garage-sr', 'workshop');
    const vin = vins.find((v) => shardOfVin.get(v) === 1)!;
    await workshopVisit(gw, vin, ownerToken, workshop);
    const ok = await api(gw, 'GET', `/v1/workshop/vehicles/${vin}/consumption`, undefined, workshop);
    expect(ok.status).toBe(200);
    expect(ok.body.history).toHaveLength(RECORDS);
    expect((await disclosuresOf(vin)).filter((x) => x.role === 'workshop')).toHaveLength(1);

    try {
      await takeDown(shardDbs[1]!);
      const down = await api(gw, 'GET', `/v1/workshop/vehicles/${vin}/consumption`, undefined, workshop);
      expect(down.status).toBe(503);
      expect(JSON.stringify(down.body)).not.toContain('totalDistanceKm');
      // Nothing left the gateway, so nothing is disclosed.
      expect((await disclosuresOf(vin)).filter((x) => x.role === 'workshop')).toHaveLength(1);
    } finally {
      await bringUp(shardDbs[1]!);
    }
  });

  it('a read through a grant is disclosed before the shard is read: with the shard down the export fails, and its disclosure is there', async () => {
    const tp = await registerRecipient(gw, 'insurer-sr', 'third_party');
    const vin = vins.find((v) => shardOfVin.get(v) === 0)!;
    const g = await createGrant(gw, vin, ownerToken, { recipientId: 'insurer-sr', categories: ['technical'], access: ['history'], dataFrom: new Date(BASE - 60_000).toISOString(), expiresAt: new Date(Date.now() + 86_400_000).toISOString() });
    const ok = await api(gw, 'GET', `/v1/grants/${g.id}/cardata`, undefined, tp);
    expect(ok.status).toBe(200);
    expect(String(ok.body).trimEnd().split('\n')).toHaveLength(RECORDS);
    expect((await disclosuresOf(vin)).filter((x) => x.grant_id === g.id)).toHaveLength(1);

    try {
      await takeDown(shardDbs[0]!);
      const res = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/grants/${g.id}/cardata`, { headers: { authorization: `Bearer ${tp}` } });
      const body = await res.text().catch(() => '');
      // Headers may be out before the first row is asked for: then the body ends short.
      expect(res.status === 200 ? body.trimEnd().split('\n').filter(Boolean).length : res.status).not.toBe(RECORDS);
      expect(body).not.toContain('"speedKmh":5');
      // Over-disclosure, never under-disclosure: the failed read is listed too.
      expect((await disclosuresOf(vin)).filter((x) => x.grant_id === g.id)).toHaveLength(2);
    } finally {
      await bringUp(shardDbs[0]!);
    }
  });

  it('the report with one shard down fails and discloses nothing it did not hand on', async () => {
    const auth = await mintToken(gw, 'authority', 'report-down');
    try {
      await takeDown(shardDbs[1]!);
      const res = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/reports/obfcm?from=${new Date(BASE - 60_000).toISOString()}&to=${new Date().toISOString()}`, { headers: { authorization: `Bearer ${auth}` } });
      const body = await res.text().catch(() => '');
      const handedOn = res.status === 200 ? body.trimEnd().split('\n').slice(1).filter(Boolean).map((l) => l.split(',')[0]) : [];
      expect(handedOn.length).toBeLessThan(VEHICLES);
      const d = await q<{ vin: string }>(control, "SELECT vin FROM disclosures WHERE subject = 'report-down' ORDER BY vin");
      expect(d.map((x) => x.vin)).toEqual(handedOn);
    } finally {
      await bringUp(shardDbs[1]!);
    }
  });
});

describe('live streams on the vehicle\'s shard', () => {
  it('a stream of a vehicle on each shard delivers new records; a resume by cursor continues without gap or duplicate', async () => {
    for (const s of [0, 1]) {
      const vin = vins.find((v) => shardOfVin.get(v) === s && v !== vins[0])!;
      const secret = secrets.get(vin);
      const sse = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, ownerToken);
      expect(sse.status).toBe(200);
      await sendAll([{ vin, secret: secret! }], [6, 7]);
      await sse.until((e) => e.filter((x) => x.event === 'record').length >= 2, 10_000);
      const first = sse.records();
      expect(first.map((r) => r.data.seq)).toEqual([6, 7]);
      sse.close();
      await sendAll([{ vin, secret: secret! }], [8]);
      const again = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, ownerToken, { 'last-event-id': first[1]!.id });
      expect(again.status).toBe(200);
      await again.until((e) => e.filter((x) => x.event === 'record').length >= 1, 10_000);
      expect(again.records().map((r) => r.data.seq)).toEqual([8]);
      again.close();
    }
  });
});

describe('erasure and retention on every shard', () => {
  it('an erasure deletes the vehicle\'s rows on every shard (also a stray copy on the other shard, as during a bucket move)', async () => {
    const vin = vins[0]!;
    const home = shardOfVin.get(vin)!;
    const other = shardDbs[1 - home]!;
    // A copy of one row on the other shard, as a bucket move leaves it until its last step.
    await q(other, `INSERT INTO telemetry (vin, recorded_at, seq, speed_kmh, has_technical) VALUES ($1, $2, 99, 1, true)`, [vin, new Date(BASE + 99_000)]);
    const r = await api(gw, 'DELETE', `/v1/vehicles/${vin}/data`, undefined, ownerToken);
    expect(r.status).toBe(200);
    expect(r.body.telemetryRecordsDeleted).toBe(RECORDS + 1);
    for (const d of shardDbs) expect((await q<{ n: number }>(d, 'SELECT count(*)::int AS n FROM telemetry WHERE vin = $1', [vin]))[0]!.n).toBe(0);
    // The log of it is in the control database.
    expect((await q<{ n: number }>(control, 'SELECT count(*)::int AS n FROM erasure_log WHERE vin = $1', [vin]))[0]!.n).toBe(1);
  });

  it('scheduled retention runs per shard (one job each) and deletes old rows on both', async () => {
    // Old readings on each shard (3 years), and a recent one that stays.
    const old = new Date(Date.now() - 3 * 365 * 86_400_000);
    const pick = [0, 1].map((s) => vins.find((v) => shardOfVin.get(v) === s && v !== vins[0])!);
    for (const [s, vin] of pick.entries()) {
      await q(shardDbs[s]!, 'INSERT INTO obfcm_readings (vin, recorded_at, seq, total_distance_km) VALUES ($1, $2, 1, 1)', [vin, old]);
    }
    // A second gateway process on the same databases with a short interval runs the jobs.
    const t0 = new Date();
    const gw2 = await startTestGateway(control.url, { SHARD_URLS: shardDbs.map((d) => d.url).join(','), OBFCM_RETENTION_DAYS: '365', RETENTION_INTERVAL_MS: '2000' });
    try {
      await waitFor(async () => {
        const jobs = await q<{ job: string }>(control, "SELECT job FROM scheduled_runs WHERE job LIKE 'retention:shard%' AND finished_at > $1", [t0]);
        return new Set(jobs.map((j) => j.job)).size === 2;
      }, 20_000, 100);
      for (const [s, vin] of pick.entries()) {
        const left = await q<{ n: number }>(shardDbs[s]!, 'SELECT count(*)::int AS n FROM obfcm_readings WHERE vin = $1 AND recorded_at < $2', [vin, new Date(Date.now() - 365 * 86_400_000)]);
        expect(left[0]!.n, `shard ${s}`).toBe(0);
        expect((await q<{ n: number }>(shardDbs[s]!, 'SELECT count(*)::int AS n FROM obfcm_readings WHERE vin = $1', [vin]))[0]!.n).toBeGreaterThanOrEqual(RECORDS);
      }
    } finally {
      await gw2.close();
    }
  });
});
