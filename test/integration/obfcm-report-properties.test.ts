// Property (fast-check) through the real path: the authority's OBFCM report decides per
// reading by the privacy state in force for the ownership period the reading belongs to,
// across transfers, and files each disclosure with that period's owner (issue 12, "Also
// fix"). Per run: a fresh vehicle, a random sequence of readings (over MQTT), CO2-sharing
// changes, restrictions and transfers (over HTTP); then the report (no range: the default
// window) must hold, for that VIN, exactly the latest stored reading whose period's last
// state shares, or no row when there is none; its disclosure is filed with that period's
// owner and listed to the current owner only when the reading is theirs.
//
// Which readings reach obfcm_readings at all (the ingest rule: sharing allowed when
// measured and when processed) has its own property test (privacy-properties.test.ts);
// here the stored readings are taken from the table, and the report's choice is checked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_CONSUMPTION, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { createTokenService, parseKeys } from '../../identity/tokens.ts';
import { obfcmShareable } from '../../access/grants.ts';
import { createPgDb } from '../../storage/driver/db.ts';
import { createReadRepo } from '../../storage/repos/reads.ts';
import { bucketOf, openShards } from '../../storage/driver/shards.ts';

const JWT_KEYS = 'obfcmprop1:obfcm-report-property-signing-secret-0123456789';
const signer = createTokenService(parseKeys(JWT_KEYS));
const token = async (role: 'customer' | 'authority', subject: string) => (await signer.sign({ role, subject, ttlSeconds: 3600 })).token;


type Action = { kind: 'read'; n: number } | { kind: 'co2'; allow: boolean } | { kind: 'restrict'; on: boolean } | { kind: 'transfer' };
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }).map((n) => ({ kind: 'read' as const, n })) },
  { weight: 2, arbitrary: fc.boolean().map((allow) => ({ kind: 'co2' as const, allow })) },
  { weight: 1, arbitrary: fc.boolean().map((on) => ({ kind: 'restrict' as const, on })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'transfer' as const }) },
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let run = 0;

// Both storage modes: one database, and SHARD_URLS with two shards (README "Sharding": the
// report reads the verdict in the control database and the readings on every shard).
describe.each([{ mode: 'one database', shards: 0 }, { mode: 'SHARD_URLS with 2 shards', shards: 2 }])('$mode', ({ shards: nShards }) => {
  let db: TestDatabase;
  const shardDbs: TestDatabase[] = [];
  let gw: RunningGateway;
  beforeAll(async () => {
    db = await createTestDatabase();
    for (let i = 0; i < nShards; i++) shardDbs.push(await createTestDatabase());
    gw = await startTestGateway(db.url, { JWT_KEYS, ...(nShards ? { SHARD_URLS: shardDbs.map((d) => d.url).join(',') } : {}) });
  });
  afterAll(async () => {
    await gw?.close();
    for (const d of [db, ...shardDbs]) await d?.drop();
  });
  /** A query on the telemetry-side tables: the database, or every shard (rows concatenated). */
  const tq = async <R,>(sql: string, params: unknown[]): Promise<R[]> => (nShards ? (await Promise.all(shardDbs.map((d) => d.query<R>(sql, params)))).flat() : db.query<R>(sql, params));
  /** The database holding `vin`'s telemetry (the first start's map: bucket b on shard b mod N). */
  const tdb = (vin: string): TestDatabase => (nShards ? shardDbs[bucketOf(vin) % nShards]! : db);

  describe('the OBFCM report across transfers (property)', () => {
    it('reports, per VIN, the latest stored reading whose ownership period\'s state shares, and files the disclosure with that period\'s owner', { timeout: 240_000 }, async () => {
      let reportedRuns = 0;
      let withheldRuns = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(action, { minLength: 2, maxLength: 9 }), async (actions) => {
          const r = ++run;
          const owners = [`obfcm-${r}-0`];
          const v = await provision(gw, undefined, owners[0]);
          // The model: per ownership period, its owner, its end (ms), and its last state.
          const periods: { owner: string; endMs: number | null; co2: boolean; restricted: boolean }[] = [{ owner: owners[0]!, endMs: null, co2: true, restricted: false }];
          const cur = () => periods[periods.length - 1]!;
          let seq = 0;
          const trace: string[] = [];
          for (const a of actions) {
            if (a.kind === 'read') {
              const c = await connectVehicle(gw, v.vin, v.secret);
              const recs = [];
              for (let i = 0; i < a.n; i++) {
                seq++;
                recs.push(record(seq, Date.now() - a.n + i, { consumption: { ...FULL_CONSUMPTION, totalDistanceKm: seq } }));
              }
              await publish(c, `v1/vehicles/${v.vin}/telemetry`, encodeBatch(v.vin, recs));
              await c.endAsync();
            } else if (a.kind === 'co2') {
              expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: true, co2Sharing: a.allow }, await token('customer', cur().owner))).status).toBe(200);
              cur().co2 = a.allow;
            } else if (a.kind === 'restrict') {
              expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: a.on }, await token('customer', cur().owner))).status).toBe(200);
              cur().restricted = a.on;
            } else {
              await sleep(3); // readings measured before the transfer are measured before its instant
              const next = `obfcm-${r}-${owners.length}`;
              owners.push(next);
              const t = await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: next });
              expect(t.status).toBe(200);
              cur().endMs = Date.parse(t.body.since);
              periods.push({ owner: next, endMs: null, co2: true, restricted: false });
              await sleep(3);
            }
            trace.push(JSON.stringify(a));
          }
          const stored = await tq<{ seq: number; ms: number }>('SELECT seq, (extract(epoch FROM recorded_at) * 1000)::float8 AS ms FROM obfcm_readings WHERE vin = $1 ORDER BY recorded_at, seq', [v.vin]);
          const periodOf = (ms: number) => periods.find((p) => p.endMs === null || ms < p.endMs)!;
          const candidates = stored.filter((s) => {
            const p = periodOf(s.ms);
            return obfcmShareable({ co2Sharing: p.co2, restricted: p.restricted });
          });
          const want = candidates[candidates.length - 1] ?? null;

          const rep = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/reports/obfcm`, { headers: { authorization: `Bearer ${await token('authority', `eu-${r}`)}` } });
          expect(rep.status).toBe(200);
          const rows = (await rep.text()).trim().split(/\r?\n/);
          const header = rows[0]!.split(',');
          const mine = rows.slice(1).filter((x) => x.startsWith(v.vin + ','));
          const msg = `run ${r}: ${trace.join(' ')}; stored ${JSON.stringify(stored)}; periods ${JSON.stringify(periods)}`;
          const disc = await db.query<{ owner_id: string }>('SELECT owner_id FROM disclosures WHERE vin = $1 AND subject = $2', [v.vin, `eu-${r}`]);
          const listed = await api(gw, 'GET', `/v1/vehicles/${v.vin}/disclosures`, undefined, await token('customer', cur().owner));
          const listedAuthority = (listed.body.disclosures as { subject: string }[]).filter((d) => d.subject === `eu-${r}`);
          if (want === null) {
            withheldRuns += stored.length > 0 ? 1 : 0;
            expect(mine, msg).toEqual([]);
            expect(disc, msg).toEqual([]);
            expect(listedAuthority, msg).toEqual([]);
          } else {
            reportedRuns++;
            expect(mine, msg).toHaveLength(1);
            const cols = mine[0]!.split(',');
            expect(Number(cols[header.indexOf('total_distance_km')]), msg).toBe(want.seq);
            const owner = periodOf(want.ms).owner;
            expect(disc, msg).toEqual([{ owner_id: owner }]);
            expect(listedAuthority, msg).toHaveLength(owner === cur().owner ? 1 : 0);
          }
        }),
        {
          numRuns: 17, // the 2 examples below, then 15 random runs
          interruptAfterTimeLimit: 150_000,
          // Run first, so both outcomes are exercised however few random runs a loaded
          // machine fits in the time limit: a reading then CO2 sharing refused in the same
          // period (withheld), and readings while sharing (reported).
          examples: [[[{ kind: 'read', n: 2 }, { kind: 'co2', allow: false }]], [[{ kind: 'read', n: 1 }, { kind: 'transfer' }, { kind: 'read', n: 2 }]]],
        },
      );
      // Both outcomes were exercised (the examples above, and the random runs).
      expect(reportedRuns).toBeGreaterThan(0);
      expect(withheldRuns).toBeGreaterThan(0);
    });

    it('a previous owner\'s refusal keeps their readings out after a transfer; the new owner\'s readings are reported and disclosed to them', async () => {
      const first = `obfcm-fixed-a-${Date.now()}`;
      const second = `obfcm-fixed-b-${Date.now()}`;
      const v = await provision(gw, undefined, first);
      const send = async (s: number) => {
        const c = await connectVehicle(gw, v.vin, v.secret);
        await publish(c, `v1/vehicles/${v.vin}/telemetry`, encodeBatch(v.vin, [record(s, Date.now(), { consumption: { ...FULL_CONSUMPTION, totalDistanceKm: s } })]));
        await c.endAsync();
      };
      await send(1);
      expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: true, co2Sharing: false }, await token('customer', first))).status).toBe(200);
      await sleep(3);
      expect((await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: second })).status).toBe(200);
      const report = async () => (await (await fetch(`http://127.0.0.1:${gw.httpPort}/v1/reports/obfcm`, { headers: { authorization: `Bearer ${await token('authority', 'eu-fixed')}` } })).text()).split(/\r?\n/).filter((x) => x.startsWith(v.vin));
      // before the fix, the transfer's reset to the defaults made reading 1 reappear
      expect(await report()).toEqual([]);
      await sleep(3);
      await send(2);
      const rows = await report();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.split(',')[3]).toBe('2');
      const d = await api(gw, 'GET', `/v1/vehicles/${v.vin}/disclosures`, undefined, await token('customer', second));
      expect(d.body.disclosures.map((x: { subject: string }) => x.subject)).toEqual(['eu-fixed']);
    });
  });

  describe('the OBFCM report range', () => {
    it('defaults to the configured window, refuses a range longer than the maximum (400 API_ERR_RANGE_TOO_LONG), streams CSV', async () => {
      const auth = await token('authority', 'eu-range');
      const get = (q: string) => fetch(`http://127.0.0.1:${gw.httpPort}/v1/reports/obfcm${q}`, { headers: { authorization: `Bearer ${auth}` } });
      const old = await provision(gw, undefined, `obfcm-old-${Date.now()}`);
      // a reading 100 days old: outside the default 90-day window, inside an explicit range
      await tdb(old.vin).query(`INSERT INTO obfcm_readings (vin, recorded_at, seq, total_distance_km) VALUES ($1, now() - interval '100 days', 1, 42)`, [old.vin]);
      const def = await get('');
      expect(def.status).toBe(200);
      expect(def.headers.get('content-type')).toMatch(/^text\/csv/);
      expect(await def.text()).not.toContain(old.vin);
      const from = new Date(Date.now() - 101 * 86_400_000).toISOString();
      const ranged = await get(`?from=${from}&to=${new Date().toISOString()}`);
      expect(ranged.status).toBe(200);
      expect(await ranged.text()).toContain(`${old.vin},`);
      // only `from`: the default window's length from it
      const fromOnly = await get(`?from=${from}`);
      expect(await fromOnly.text()).toContain(`${old.vin},`);
      for (const q of [`?from=2020-01-01&to=2021-01-03`, `?from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:01Z`]) {
        const r = await get(q);
        expect(r.status, q).toBe(400);
        expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(((await r.json()) as { code: string }).code).toBe('API_ERR_RANGE_TOO_LONG');
      }
      // exactly the maximum (366 days) is allowed
      expect((await get(`?from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z`)).status).toBe(200);
      const rev = await get(`?from=2021-01-01&to=2020-01-01`);
      expect(rev.status).toBe(400);
    });

    it('pages by VIN: small pages give the same rows, in VIN order, one disclosure per row', async () => {
      const pool = createPgDb(db.url, { max: 2 });
      const shards = await openShards(pool, nShards ? shardDbs.map((d) => d.url) : null, { role: 'test', max: 2, prepare: false });
      try {
        const reads = createReadRepo(pool, shards);
        const range = { from: new Date(Date.now() - 86_400_000), to: new Date(Date.now() + 60_000) };
        const who = (s: string) => ({ role: 'authority', subject: s, endpoint: 'test' });
        const whole = await reads.obfcmReport(range, who('eu-whole'));
        expect(whole.length).toBeGreaterThan(4);
        const pages: number[] = [];
        const paged = [];
        for await (const page of reads.obfcmReportPages(range, who('eu-paged'), 2)) {
          pages.push(page.length);
          paged.push(...page);
        }
        expect(paged).toEqual(whole);
        // Pages of 2 VINs, of which those with a shareable reading are reported (empty pages
        // skipped), in both modes: a page is a VIN range, each VIN's latest reading one index
        // probe (issue 24; test/integration/history-plans.test.ts asserts the plan).
        expect(pages.every((n) => n >= 1 && n <= 2)).toBe(true);
        expect(paged.map((x) => x.vin)).toEqual([...paged.map((x) => x.vin)].sort());
        const n = async (s: string) => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM disclosures WHERE subject = $1', [s]))[0]!.n;
        expect(await n('eu-paged')).toBe(whole.length);
        expect(await n('eu-whole')).toBe(whole.length);
      } finally {
        await shards.close();
        await pool.close();
      }
    });
  });
});
