// CarData export through the real path: what comes out (CSV parsed back with an RFC 4180
// parser, NDJSON, the zip archive) is compared field by field with what went in over
// MQTT; a location opt-out leaves no location in any format; and the NDJSON export of a
// large history is streamed — first bytes long before the end — and stops querying the
// database when the client goes away (seen in pg_stat_activity on the real gateway, and
// counted exactly on an app built with buildApp around a counting ReadRepo).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_CONSUMPTION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, testVin } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import type { ITelemetryRecord } from '../../proto/index.ts';
import { RANGES } from '../../gateway/validate.ts';
import { buildApp } from '../../api/app.ts';
import { createPgDb, type CopyDb, type Db } from '../../storage/driver/db.ts';
import { createCheckinRepo, createGrantRepo, createRecipientRepo } from '../../storage/repos/grants.ts';
import { createServiceClientRepo } from '../../storage/repos/service-clients.ts';
import { CHUNK_BYTES, createReadRepo, type ReadRepo } from '../../storage/repos/reads.ts';
import { createRightsRepo } from '../../storage/repos/rights.ts';
import { createConsentRepo } from '../../storage/repos/consent.ts';
import { createVehicleRepo } from '../../storage/repos/vehicles.ts';
import { createAccountRepo, createMintedTokenRepo } from '../../storage/repos/sign-in.ts';
import { storeFailures } from '../../storage/errors.ts';
import { createTokenService, parseKeys } from '../../identity/tokens.ts';

const JWT_KEYS = 'exp1:export-streaming-test-signing-secret-0123456789';
const tokens = createTokenService(parseKeys(JWT_KEYS));
const customer = async (subject: string) => (await tokens.sign({ role: 'customer', subject, ttlSeconds: 3600 })).token;

let db: TestDatabase;
let gw: RunningGateway;

const test = gatewayTest({ JWT_KEYS });
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Helpers: field lists, RFC 4180 parser, zip reader, HTTP
// ---------------------------------------------------------------------------------------

type GroupName = 'technical' | 'consumption' | 'location';
const GROUPS: GroupName[] = ['technical', 'consumption', 'location'];
/** Field names of each group, in .proto order (the order of the ranges table). */
const FIELDS: Record<GroupName, string[]> = {
  technical: Object.keys(RANGES.technical),
  consumption: Object.keys(RANGES.consumption),
  location: Object.keys(RANGES.location),
};
const CSV_HEADER = ['vin', 'seq', 'recordedAt', 'receivedAt', ...GROUPS.flatMap((g) => FIELDS[g].map((f) => `${g}.${f}`))];

/** RFC 4180: fields separated by commas, records by CRLF (LF accepted), "…" quoting with "" escapes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  let fieldStarted = false;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"') {
      if (field !== '') throw new Error(`quote inside an unquoted field at ${i}`);
      quoted = true;
      fieldStarted = true;
      i++;
    } else if (c === ',') {
      row.push(field);
      field = '';
      fieldStarted = true;
      i++;
    } else if (c === '\r' || c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      fieldStarted = false;
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
    } else {
      field += c;
      fieldStarted = true;
      i++;
    }
  }
  if (quoted) throw new Error('unterminated quoted field');
  if (fieldStarted || field !== '') {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** The entries of a zip archive (stored or deflated), read through its central directory. */
function unzip(buf: Buffer): Map<string, Buffer> {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive: no end of central directory');
  const entries = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out = new Map<string, Buffer>();
  for (let n = 0; n < entries; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error('bad central directory entry');
    const method = buf.readUInt16LE(p + 10);
    const csize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    if (buf.readUInt32LE(local) !== 0x04034b50) throw new Error(`bad local header of ${name}`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + csize);
    const data = method === 0 ? Buffer.from(raw) : method === 8 ? inflateRawSync(raw) : null;
    if (!data) throw new Error(`${name}: compression method ${method}`);
    expect(data.length, `${name} size`).toBe(size);
    out.set(name, data);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

async function get(port: number, path: string, token: string): Promise<{ status: number; buf: Buffer; type: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, buf: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') ?? '' };
}

type Line = { vin: string; seq: number; recordedAt: string } & Partial<Record<GroupName, Record<string, number> | null>>;
const ndjsonLines = (text: string): Line[] => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);

interface Timed {
  status: number;
  /** ms from sending the request to the first body byte. */
  ttfbMs: number;
  /** ms from sending the request to the end of the body (full reads only). */
  totalMs: number;
  body: Buffer;
}

/** GET over node:http; with `abortAfterFirstChunk` the request is destroyed once the first body chunk is in. */
function timedGet(port: number, path: string, token: string, opts: { abortAfterFirstChunk?: (at: number) => void } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request({ host: '127.0.0.1', port, path, method: 'GET', headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let ttfb = -1;
      res.on('data', (c: Buffer) => {
        if (ttfb < 0) ttfb = performance.now() - t0;
        chunks.push(c);
        if (opts.abortAfterFirstChunk && chunks.length === 1) {
          opts.abortAfterFirstChunk(Date.now());
          req.destroy();
          resolve({ status: res.statusCode ?? 0, ttfbMs: ttfb, totalMs: performance.now() - t0, body: Buffer.concat(chunks) });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ttfbMs: ttfb, totalMs: performance.now() - t0, body: Buffer.concat(chunks) }));
      res.on('error', (e) => {
        if (!opts.abortAfterFirstChunk) reject(e);
      });
    });
    req.on('error', (e) => {
      if (!opts.abortAfterFirstChunk) reject(e);
    });
    req.end();
  });
}

// ---------------------------------------------------------------------------------------
// (a) CSV and NDJSON against what was ingested
// ---------------------------------------------------------------------------------------

type Values = Record<string, number>;
interface Sent {
  seq: number;
  at: number;
  groups: Partial<Record<GroupName, Values>>;
}

/** A group: absent, present with no field, or a random subset of its fields with values in range. */
function groupArb(g: GroupName): fc.Arbitrary<Values | undefined> {
  const fields = Object.fromEntries(
    FIELDS[g].map((f) => {
      const [min, max] = (RANGES[g] as Record<string, readonly [number, number]>)[f]!;
      return [f, fc.double({ min, max, noNaN: true, noDefaultInfinity: true })];
    }),
  );
  return fc.option(fc.record(fields, { requiredKeys: [] }) as fc.Arbitrary<Values>, { nil: undefined, freq: 4 });
}
const recordsArb = fc.array(fc.tuple(groupArb('technical'), groupArb('consumption'), groupArb('location')), { minLength: 1, maxLength: 25 });

async function ingest(owner: string, recs: [Values | undefined, Values | undefined, Values | undefined][]): Promise<{ vin: string; sent: Sent[] }> {
  const { vin, secret } = await provision(gw, testVin(), owner);
  const client = await connectVehicle(gw, vin, secret);
  const base = Date.now() - 60_000;
  const sent: Sent[] = recs.map(([technical, consumption, location], i) => {
    const groups: Sent['groups'] = {};
    if (technical) groups.technical = technical;
    if (consumption) groups.consumption = consumption;
    if (location) groups.location = location;
    return { seq: i + 1, at: base + i * 1000, groups };
  });
  await publish(client, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, sent.map((s) => record(s.seq, s.at, s.groups as Partial<ITelemetryRecord>))));
  await client.endAsync();
  return { vin, sent };
}

describe('export content equals what was ingested', () => {
  it('CSV parsed back (RFC 4180) and NDJSON: every field of every group, absent fields as empty cells / missing keys', { timeout: 60_000 }, async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(recordsArb, async (recs) => {
        const owner = `csv-owner-${++n}`;
        const { vin, sent } = await ingest(owner, recs);
        // nothing quarantined: every generated value is valid
        expect(await db.query('SELECT reason, detail FROM quarantine WHERE vin = $1', [vin])).toEqual([]);
        const tok = await customer(owner);

        const csv = await get(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=csv`, tok);
        expect(csv.status).toBe(200);
        expect(csv.type).toContain('text/csv');
        const rows = parseCsv(csv.buf.toString('utf8'));
        expect(rows[0]).toEqual(CSV_HEADER);
        expect(rows).toHaveLength(sent.length + 1);
        for (const [i, s] of sent.entries()) {
          const row = rows[i + 1]!;
          expect(row, `row ${i + 1} width`).toHaveLength(CSV_HEADER.length);
          const cell = (name: string) => row[CSV_HEADER.indexOf(name)]!;
          expect([cell('vin'), cell('seq'), cell('recordedAt')]).toEqual([vin, String(s.seq), new Date(s.at).toISOString()]);
          for (const g of GROUPS) {
            for (const f of FIELDS[g]) {
              const v = s.groups[g]?.[f];
              const c = cell(`${g}.${f}`);
              if (v === undefined) expect(c, `seq ${s.seq} ${g}.${f} absent`).toBe('');
              // Number equality (===): a -0 may come back as 0 (the writer's text arrays write String(-0) = "0",
              // and so does the CSV); every other double must round-trip exactly.
              else expect(c !== '' && Number(c) === v, `seq ${s.seq} ${g}.${f}: sent ${v}, CSV cell ${JSON.stringify(c)}`).toBe(true);
            }
          }
        }

        const nd = await get(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=ndjson`, tok);
        expect(nd.status).toBe(200);
        const lines = ndjsonLines(nd.buf.toString('utf8'));
        expect(lines.map((l) => l.seq)).toEqual(sent.map((s) => s.seq));
        for (const [i, s] of sent.entries()) {
          const l = lines[i]!;
          expect(l.vin).toBe(vin);
          expect(l.recordedAt).toBe(new Date(s.at).toISOString());
          for (const g of GROUPS) {
            const want = s.groups[g];
            if (want === undefined) expect(l[g] ?? null, `seq ${s.seq} ${g} absent`).toBeNull();
            else {
              // the same keys, exactly the same doubles (=== : -0 and 0 count as equal, see the CSV note)
              const got = l[g] ?? {};
              expect(Object.keys(got).sort(), `seq ${s.seq} ${g} fields`).toEqual(Object.keys(want).sort());
              for (const [f, v] of Object.entries(want)) expect(got[f] === v, `seq ${s.seq} ${g}.${f}: sent ${v}, NDJSON ${got[f]}`).toBe(true);
            }
          }
        }
      }),
      { numRuns: 12 },
    );
  });

  it('CSV and NDJSON of the same export agree cell by cell, including the full FULL_* fixtures', async () => {
    const owner = 'csv-vs-ndjson';
    const { vin } = await ingest(owner, [
      [FULL_TECHNICAL, FULL_CONSUMPTION, { latitude: -33.8688, longitude: 151.2093, headingDeg: 0, altitudeM: -12.5, accuracyM: 1e-3 }],
      [{}, undefined, {}],
      [undefined, { totalDistanceKm: 0.1 + 0.2 }, undefined],
    ]);
    const tok = await customer(owner);
    const rows = parseCsv((await get(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=csv`, tok)).buf.toString('utf8'));
    const lines = ndjsonLines((await get(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=ndjson`, tok)).buf.toString('utf8'));
    expect(rows.length - 1).toBe(lines.length);
    for (const [i, l] of lines.entries()) {
      const row = rows[i + 1]!;
      for (const g of GROUPS) {
        for (const f of FIELDS[g]) {
          const v = l[g]?.[f];
          const c = row[CSV_HEADER.indexOf(`${g}.${f}`)]!;
          const got = c === '' ? undefined : Number(c);
          expect(got === v, `seq ${l.seq} ${g}.${f}: NDJSON ${v}, CSV ${JSON.stringify(c)}`).toBe(true);
        }
      }
    }
    // a group sent with no field is an empty object in NDJSON, absent a null
    expect([lines[1]!.technical, lines[1]!.consumption, lines[1]!.location]).toEqual([{}, null, {}]);
  });
});

// ---------------------------------------------------------------------------------------
// (b) location opt-out: no location values in any export format
// ---------------------------------------------------------------------------------------

/** A position with values that occur nowhere else, so they can be searched in raw bytes. */
const MARK = { latitude: 47.6543219, longitude: 9.1234567, headingDeg: 123.4567, altitudeM: 432.1098, accuracyM: 7.7654 };
const MARK_TEXTS = Object.values(MARK).map(String);

interface Exports {
  ndjson: Line[];
  csv: string[][];
  zipNdjson: Line[];
  zipCsv: string[][];
  raw: string[];
}

async function allExports(vin: string, tok: string): Promise<Exports> {
  const nd = await get(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=ndjson`, tok);
  const csv = await get(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=csv`, tok);
  const zip = await get(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=zip`, tok);
  for (const r of [nd, csv, zip]) expect(r.status).toBe(200);
  const files = unzip(zip.buf);
  const zn = files.get('records.ndjson')!.toString('utf8');
  const zc = files.get('records.csv')!.toString('utf8');
  return {
    ndjson: ndjsonLines(nd.buf.toString('utf8')),
    csv: parseCsv(csv.buf.toString('utf8')),
    zipNdjson: ndjsonLines(zn),
    zipCsv: parseCsv(zc),
    raw: [nd.buf.toString('utf8'), csv.buf.toString('utf8'), zn, zc, ...[...files.values()].map((b) => b.toString('utf8'))],
  };
}

const LOCATION_CELLS = FIELDS.location.map((f) => CSV_HEADER.indexOf(`location.${f}`));

/** seq → whether the record has location values, checked consistent across the four record exports. */
function locationBySeq(e: Exports): Map<number, boolean> {
  const out = new Map<number, boolean>();
  for (const [name, lines] of [['ndjson', e.ndjson], ['zip records.ndjson', e.zipNdjson]] as const) {
    for (const l of lines) {
      const has = l.location != null && Object.keys(l.location).length > 0;
      if (has) expect(l.location, `${name} seq ${l.seq}`).toEqual(MARK);
      if (out.has(l.seq)) expect(has, `${name} seq ${l.seq} agrees`).toBe(out.get(l.seq));
      out.set(l.seq, has);
    }
  }
  for (const [name, rows] of [['csv', e.csv], ['zip records.csv', e.zipCsv]] as const) {
    expect(rows[0]).toEqual(CSV_HEADER);
    for (const row of rows.slice(1)) {
      const seq = Number(row[1]);
      const cells = LOCATION_CELLS.map((i) => row[i]!);
      const has = cells.some((c) => c !== '');
      if (has) expect(cells.map(Number), `${name} seq ${seq}`).toEqual(Object.values(MARK));
      expect(has, `${name} seq ${seq} agrees with the NDJSON export`).toBe(out.get(seq));
    }
  }
  return out;
}

describe('location opt-out in every export format', () => {
  async function scenario(eraseHistory: boolean) {
    const owner = `optout-${eraseHistory ? 'erase' : 'keep'}`;
    const tok = await customer(owner);
    const { vin, secret } = await provision(gw, testVin(), owner);
    const client = await connectVehicle(gw, vin, secret);
    const topic = `v1/vehicles/${vin}/telemetry`;
    const full = { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: MARK };
    const tBefore = Date.now() - 10_000;
    // stored before the opt-out
    await publish(client, topic, encodeBatch(vin, [record(1, tBefore, full), record(2, tBefore + 1000, full), record(3, tBefore + 2000, full)]));
    const put = await api(gw, 'PUT', `/v1/vehicles/${vin}/consent${eraseHistory ? '?eraseHistory=true' : ''}`, { location: false, co2Sharing: true }, tok);
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.erasedLocationRecords).toBe(eraseHistory ? 3 : 0);
    const since = Date.parse(put.body.since);
    await sleep(200);
    // stored after the opt-out: one measured before it (arriving late), two measured after
    await publish(client, topic, encodeBatch(vin, [record(4, since - 3000, full), record(5, Date.now() - 50, full), record(6, Date.now(), full)]));
    await client.endAsync();
    const e = await allExports(vin, tok);
    const loc = locationBySeq(e);
    expect([...loc.keys()].sort()).toEqual([1, 2, 3, 4, 5, 6]);
    return { e, loc };
  }

  it('eraseHistory=false: records stored before keep their position, records stored after have none (ndjson, csv, zip)', async () => {
    const { loc } = await scenario(false);
    expect([1, 2, 3, 4, 5, 6].map((s) => loc.get(s))).toEqual([true, true, true, false, false, false]);
  });

  it('eraseHistory=true: no location value at all in any format, not even in the raw bytes', async () => {
    const { e, loc } = await scenario(true);
    expect([...loc.values()].every((x) => x === false)).toBe(true);
    for (const text of e.raw) for (const m of MARK_TEXTS) expect(text.includes(m), `export contains ${m}`).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------
// (c) streaming a 60,000-record export; stopping when the client goes away
// ---------------------------------------------------------------------------------------

const ROWS = 60_000;
const PAGE = 5000;

describe('streaming a large export', () => {
  const owner = 'stream-owner';
  let vin: string;
  let tok: string;

  beforeAll(async () => {
    ({ vin } = await provision(gw, testVin(), owner));
    tok = await customer(owner);
    // The first owner's period reaches back to the epoch: rows measured before provisioning are theirs.
    await db.query(
      `INSERT INTO telemetry (vin, recorded_at, seq, has_technical, odometer_km, speed_kmh, engine_rpm, has_consumption, total_fuel_consumed_l, total_distance_km,
                              has_location, latitude, longitude, heading_deg)
       SELECT $1, now() - interval '3 hours' + i * interval '100 milliseconds', i, true, 1000 + i * 0.1, (i % 180)::float8, 800 + (i % 5000)::float8,
              true, i * 0.007, 1000 + i * 0.1, true, 48 + i / 1e6, 11 + i / 1e6, (i % 360)::float8
         FROM generate_series(1, ${ROWS}) AS i`,
      [vin],
    );
  }, 120_000);

  let full: Timed;

  it('a full export returns exactly 60,000 lines, in time order, and its first byte long before the end', { timeout: 60_000 }, async () => {
    // One export of an empty range first: what only the first request pays (the route's
    // and the token checks' warm-up, the pool's first connections) is not the streaming
    // measured below (it took 0.8 s of a loaded CI machine's 1.0 s to the first byte).
    const warm = await timedGet(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=ndjson&from=${encodeURIComponent(new Date().toISOString())}`, tok);
    expect(warm.status).toBe(200);
    full = await timedGet(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=ndjson`, tok);
    expect(full.status).toBe(200);
    const lines = ndjsonLines(full.body.toString('utf8'));
    expect(lines).toHaveLength(ROWS);
    let prev = -Infinity;
    for (const [i, l] of lines.entries()) {
      if (l.seq !== i + 1) expect(l.seq, `line ${i + 1}`).toBe(i + 1);
      const t = Date.parse(l.recordedAt);
      if (!(t > prev)) expect(t, `line ${i + 1} recordedAt after the previous`).toBeGreaterThan(prev);
      prev = t;
    }
    expect(lines[0]!.location).toEqual({ latitude: 48.000001, longitude: 11.000001, headingDeg: 1 });
    console.info(`full export: ${full.body.length} bytes, first byte after ${full.ttfbMs.toFixed(0)} ms, end after ${full.totalMs.toFixed(0)} ms`);
    // Streamed: the first page is on the wire while the other eleven are still being read.
    expect(full.ttfbMs).toBeLessThan(full.totalMs / 2);
  });

  it('the gateway stops querying once the client goes away (pg_stat_activity of the real gateway)', { timeout: 60_000 }, async () => {
    // The gateway's reads of telemetry (the export's segment queries, COPY (SELECT …) on pg;
    // nothing else reads it here). pg_stat_activity keeps only the first 1 kB of a query
    // (track_activity_query_size): a query naming recorded_at is one.
    // An idle backend keeps its last query listed, with its start time, so every
    // (backend, query_start) pair seen is one page query that started.
    const activity = () =>
      db.query<{ pid: number; state: string; ms: number }>(
        `SELECT pid, state, extract(epoch FROM query_start) * 1000 AS ms FROM pg_stat_activity
          WHERE datname = $1 AND application_name = 'cardata-gateway' AND query ~* '^\\s*(SELECT|COPY)'
            AND (query ILIKE '%FROM telemetry%' OR query ILIKE '%recorded_at%')`,
        [db.name],
      );
    /** Samples until stop() resolves: every page-query start seen, and whether one was seen running. */
    function sample() {
      const starts = new Map<string, number>();
      let active = 0;
      let on = true;
      const loop = (async () => {
        while (on) {
          for (const a of await activity()) {
            starts.set(`${a.pid}@${a.ms}`, Number(a.ms));
            if (a.state === 'active') active++;
          }
          await sleep(2);
        }
      })();
      return {
        starts,
        get active() {
          return active;
        },
        stop: async () => {
          on = false;
          await loop;
          for (const a of await activity()) starts.set(`${a.pid}@${a.ms}`, Number(a.ms));
        },
      };
    }

    // The probe sees a full export's page queries start one after another.
    const before = Date.now();
    const s1 = sample();
    const again = await timedGet(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=ndjson`, tok);
    await s1.stop();
    expect(again.body.toString('utf8').split('\n').filter(Boolean)).toHaveLength(ROWS);
    const fullStarts = [...s1.starts.values()].filter((t) => t >= before);
    console.info(`full export: ${fullStarts.length} page queries seen starting over ${(Math.max(...fullStarts) - Math.min(...fullStarts)).toFixed(0)} ms (${s1.active} samples caught one running)`);
    expect(fullStarts.length, 'page queries of a full export seen in pg_stat_activity').toBeGreaterThanOrEqual(3);

    // Now read only the first chunk, then go away.
    let abortAt = 0;
    const s2 = sample();
    const part = await timedGet(gw.httpPort, `/v1/vehicles/${vin}/cardata?format=ndjson`, tok, { abortAfterFirstChunk: (t) => (abortAt = t) });
    expect(part.status).toBe(200);
    expect(part.body.length).toBeGreaterThan(0);
    expect(part.body.toString('utf8').startsWith(`{"vin":"${vin}","seq":1,`)).toBe(true);
    expect(part.ttfbMs, 'first byte of the aborted export before a full export ends').toBeLessThan(again.totalMs);
    // Watch for 2 s after the abort.
    await sleep(2000);
    await s2.stop();
    const after = await activity();
    expect(after.some((a) => a.state === 'active'), 'an export query still running 2 s after the abort').toBe(false);
    const partStarts = [...s2.starts.values()].filter((t) => t > Math.max(...fullStarts));
    const lateStarts = partStarts.filter((t) => t > abortAt);
    const lastStart = Math.max(...partStarts);
    console.info(
      `aborted export: first byte after ${part.ttfbMs.toFixed(0)} ms; ${partStarts.length} page queries seen, ${lateStarts.length} started after the abort, the last ${(lastStart - abortAt).toFixed(0)} ms after it (a full export takes ${again.totalMs.toFixed(0)} ms)`,
    );
    expect(partStarts.length, 'the aborted export queried at all').toBeGreaterThan(0);
    // A full export goes on starting page queries for its whole duration. After the abort
    // only what was already on its way may start (pages the socket buffers still took in,
    // a prefetched one) — right after it, and far fewer than the rest of the export.
    expect(lastStart - abortAt).toBeLessThan(again.totalMs / 2);
    expect(lateStarts.length).toBeLessThan(fullStarts.length / 2);
  });

  describe('counted on an app built with buildApp around a counting ReadRepo', () => {
    let app: FastifyInstance;
    let appDb: CopyDb;
    let port: number;
    /** Chunks ndjson() handed to the route, segment queries it issued, generators finished. */
    const count = { pages: 0, queries: 0, started: 0, finished: 0 };

    beforeAll(async () => {
      appDb = createPgDb(db.url, { max: 4, applicationName: 'cardata-export-spy' });
      // Counts the queries the export sends, and passes everything through.
      const countingDb: Db = Object.assign(Object.create(appDb) as Db, {
        query: (text: string, params?: readonly unknown[]) => {
          if (/FROM telemetry/.test(text)) count.queries++;
          return appDb.query(text, params);
        },
        copy: {
          ...appDb.copy,
          copyOut: (sql: string) => {
            if (/FROM telemetry/.test(sql)) count.queries++;
            return appDb.copy.copyOut(sql);
          },
        },
      });
      const inner = createReadRepo(countingDb);
      const reads: ReadRepo = {
        ...inner,
        // The route passes no segment size: 5000 rows a segment here, so a full export is 12
        // segments (and two queries that find nothing), handed on in chunks of CHUNK_BYTES.
        async *ndjson(vin, periods, range, categories, pageSize = PAGE) {
          count.started++;
          try {
            for await (const page of inner.ndjson(vin, periods, range, categories, pageSize)) {
              count.pages++;
              yield page;
            }
          } finally {
            count.finished++;
          }
        },
      };
      const rights = createRightsRepo(appDb);
      const consents = createConsentRepo(appDb);
      app = await buildApp({
        readiness: async () => ({ broker: true, database: true }),
        failures: storeFailures,
        admin: {
          adminToken: 'export-spy-admin-token-0123456789',
          secretCost: 4096,
          vehicles: createVehicleRepo(appDb),
          tokens,
          tokenTtlS: 3600,
          rights,
          mintedTokens: createMintedTokenRepo(appDb),
          onRevoked: () => {},
          revokeSubject: async () => ({ before: new Date() }),
          issuers: () => [tokens.issuer],
          embeddedIssuer: () => null,
          accounts: createAccountRepo(appDb),
          recipients: createRecipientRepo(appDb),
          serviceClients: { clients: createServiceClientRepo(appDb), remove: async () => null, available: () => false },
        },
        vehicles: { tokens, consents, rights },
        cardata: { tokens, consents, rights, reads, grants: createGrantRepo(appDb), obfcmReport: { defaultWindowDays: 90, maxRangeDays: 366 } },
        grants: {
          tokens,
          recipients: createRecipientRepo(appDb),
          grants: createGrantRepo(appDb),
          checkins: createCheckinRepo(appDb),
          consents,
          rights,
          reads,
          limits: { grantMaxDays: 365, checkinCodeTtlS: 900, visitMaxHours: 72 },
        },
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      port = (app.server.address() as net.AddressInfo).port;
    });
    afterAll(async () => {
      await app?.close();
      await appDb?.close();
    });

    const reset = () => Object.assign(count, { pages: 0, queries: 0, started: 0, finished: 0 });

    let fullChunks = 0;
    it('a full export reads 12 segments of 5000 and returns the 60,000 lines', { timeout: 60_000 }, async () => {
      reset();
      const r = await timedGet(port, `/v1/vehicles/${vin}/cardata?format=ndjson`, tok);
      expect(r.status).toBe(200);
      const lines = r.body.toString('utf8').split('\n').filter(Boolean);
      expect(lines).toHaveLength(ROWS);
      expect(JSON.parse(lines[ROWS - 1]!).seq).toBe(ROWS);
      // 12 full segments, then the window after the last one (empty) and the rest of the
      // range after it (empty): the segments after the first end at a time (issue 24).
      expect({ ...count, pages: 0 }).toEqual({ pages: 0, queries: ROWS / PAGE + 2, started: 1, finished: 1 });
      // whole lines in chunks of at most CHUNK_BYTES, each filled to within a line (< 2 kB) of
      // that size but the last of a segment
      expect(count.pages).toBeGreaterThanOrEqual(Math.ceil(r.body.length / CHUNK_BYTES));
      expect(count.pages).toBeLessThanOrEqual(Math.ceil(r.body.length / (CHUNK_BYTES - 2048)) + ROWS / PAGE);
      fullChunks = count.pages;
    });

    it('an export aborted after its first chunk reads at most 2 more segments, then its generator ends', { timeout: 60_000 }, async () => {
      reset();
      let atFirstChunk = -1;
      let queriesAtFirstChunk = -1;
      const r = await timedGet(port, `/v1/vehicles/${vin}/cardata?format=ndjson`, tok, {
        abortAfterFirstChunk: () => {
          atFirstChunk = count.pages;
          queriesAtFirstChunk = count.queries;
        },
      });
      expect(r.status).toBe(200);
      expect(r.body.length).toBeGreaterThan(0);
      // the first byte left before the export was read: streamed, not buffered
      expect(atFirstChunk).toBeGreaterThanOrEqual(1);
      // by then, at most the chunks the sockets' buffers hold (a few MB) were built
      expect(queriesAtFirstChunk, 'segments asked for when the first chunk arrived').toBeLessThanOrEqual(4);
      const deadline = Date.now() + 2000;
      while (count.finished === 0 && Date.now() < deadline) await sleep(10);
      expect(count.finished, 'ndjson() generator closed within 2 s of the abort').toBe(1);
      const settled = { ...count };
      await sleep(500);
      expect(count, 'nothing pulled or queried after the generator closed').toEqual(settled);
      console.info(
        `aborted export: ${atFirstChunk} chunk(s) pulled and ${queriesAtFirstChunk} segment(s) asked for at the first chunk, ${count.pages} chunks and ${count.queries} segments in all (a full export: ${fullChunks} chunks, 14 segments)`,
      );
      // What the socket buffers took in after the first chunk, and one segment prefetched.
      expect(count.queries - queriesAtFirstChunk, 'segments asked for after the first chunk arrived').toBeLessThanOrEqual(2);
      expect(count.queries).toBeLessThan(ROWS / PAGE);
      expect(count.pages).toBeLessThan(fullChunks);
    });
  });
});
