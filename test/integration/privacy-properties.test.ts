// Property-based privacy tests (fast-check model-based testing) through the real path:
// one real gateway and TimescaleDB for the file, fresh VINs and owners per run, consent,
// restriction, transfer and erasure through the real HTTP API, telemetry over real MQTT.
//
// The model tracks, per VIN, every privacy-state change with the time window in which it
// took effect (from the `since` the API answers) and every ownership period. After each
// run it checks what the database and the CarData export hold against the model:
//   (a) no telemetry row carries a location where location was refused when the record
//       was measured or when it was processed;
//   (b) no obfcm_readings row exists where CO2 sharing was refused or processing was
//       restricted, when measured or when processed;
//   (c) a customer's export never returns a record recorded outside their ownership
//       periods; every other owner gets 404.
// Times close to a change (within its uncertainty window, or within the propagation
// allowance for processing time) are ambiguous: the model asserts nothing about them.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, testVin } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { TelemetryRecord } from '../../proto/index.ts';
import { createTokenService, parseKeys } from '../../identity/tokens.ts';

// Customer tokens are signed here with the gateway's own key (the admin API's 600
// requests/minute would otherwise cap the number of runs).
const JWT_KEYS = 'pp1:privacy-properties-test-signing-secret-0123456789';
const signer = createTokenService(parseKeys(JWT_KEYS));

let db: TestDatabase;
let gw: RunningGateway;

const test = gatewayTest({ JWT_KEYS });
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Timing assumptions
// ---------------------------------------------------------------------------------------

// The answering gateway drops its cached state before the 200 (other instances learn of a
// change by NOTIFY), but rather than assume that,
// after every change the test publishes probe records until one is stored the way the new
// state demands (README: in force within a second); records published after that are
// certainly processed under it, the probes themselves count as ambiguous.
/** The README's propagation bound: a change not in force by then fails the run. */
const IN_FORCE_WITHIN_MS = 1000;
/** Each consent window lasts at least this long, so records measured inside it are unambiguous. */
const MIN_WINDOW_MS = 60;
/** Extra margin around every boundary (clock granularity, ms truncation of `since`). */
const MARGIN_MS = 5;

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

interface State {
  location: boolean;
  co2Sharing: boolean;
  restricted: boolean;
}
const DEFAULTS: State = { location: true, co2Sharing: true, restricted: false };
const shares = (s: State) => s.co2Sharing && !s.restricted;
const showState = (s: State) => `{loc:${s.location ? 'y' : 'n'} co2:${s.co2Sharing ? 'y' : 'n'} restr:${s.restricted ? 'y' : 'n'}}`;

/** A privacy-state change that took effect at some instant in [lo, hi] (epoch ms). */
interface Change {
  lo: number;
  hi: number;
  after: State;
}

/** [from, to) of an owner; boundaries known within [lo, hi]; the first period starts at the epoch. */
interface Ownership {
  owner: string;
  from: { lo: number; hi: number } | null;
  to: { lo: number; hi: number } | null;
}

/** true/false: the model is certain; undefined: ambiguous, not asserted. */
type Tri = boolean | undefined;

interface Rec {
  vin: string;
  seq: number;
  at: number;
  /** What the run did to produce it (for messages). */
  label: string;
  exists: Tri;
  location: Tri;
  technical: Tri;
  consumption: Tri;
  obfcm: Tri;
  /** When the gateway received it: within its publish call (a quarantine row is erased by received_at). */
  received: { lo: number; hi: number };
}

interface Vehicle {
  idx: number;
  vin: string;
  client: MqttClient;
  topic: string;
  seq: number;
  changes: Change[];
  /** How many of the changes are known to be in force at the gateway (seen applied). */
  applied: number;
  ownership: Ownership[];
  records: Rec[];
  /** Invalid records (quarantined with their reason): only `location` is modelled. */
  quarantined: Rec[];
}

interface World {
  run: number;
  t0: number;
  owners: string[];
  tokens: Map<string, string>;
  vehicles: Vehicle[];
  /** Human-readable trace of what happened, with times relative to t0. */
  log: string[];
}

const current = (v: Vehicle): State => v.changes[v.changes.length - 1]?.after ?? DEFAULTS;
const currentOwner = (v: Vehicle): string => v.ownership[v.ownership.length - 1]!.owner;
const stateAfter = (v: Vehicle, k: number): State => (k === 0 ? DEFAULTS : v.changes[k - 1]!.after);

/** The states from the a-th to the b-th change. */
function statesBetween(v: Vehicle, a: number, b: number): State[] {
  const out: State[] = [];
  for (let k = a; k <= Math.max(a, b); k++) out.push(stateAfter(v, k));
  return out;
}

/** Every state that may have been in force at instant t (by the database's effective times). */
function statesAt(v: Vehicle, t: number): State[] {
  // a = changes certainly in force at t; b = changes possibly in force at t.
  const a = v.changes.filter((c) => c.hi + MARGIN_MS < t).length;
  const b = v.changes.filter((c) => c.lo - MARGIN_MS <= t).length;
  return statesBetween(v, a, b);
}

/** Every state the gateway may have processed with during [tBefore, tAfter]. */
function statesProcessing(v: Vehicle, tAfter: number): State[] {
  // Changes not yet seen applied may or may not have reached the cache.
  const b = v.changes.filter((c) => c.lo - MARGIN_MS <= tAfter).length;
  return statesBetween(v, Math.min(v.applied, b), b);
}

/** Whether `t` lies inside [from, to) of a boundary-uncertain period. */
function inPeriod(p: Ownership, t: number): Tri {
  const afterFrom: Tri = p.from === null ? true : t > p.from.hi + MARGIN_MS ? true : t < p.from.lo - MARGIN_MS ? false : undefined;
  const beforeTo: Tri = p.to === null ? true : t < p.to.lo - MARGIN_MS ? true : t > p.to.hi + MARGIN_MS ? false : undefined;
  if (afterFrom === false || beforeTo === false) return false;
  if (afterFrom === true && beforeTo === true) return true;
  return undefined;
}

/** Whether `t` lies in one of `owner`'s periods. */
function ownedBy(v: Vehicle, owner: string, t: number): Tri {
  let result: Tri = false;
  for (const p of v.ownership) {
    if (p.owner !== owner) continue;
    const m = inPeriod(p, t);
    if (m === true) return true;
    if (m === undefined) result = undefined;
  }
  return result;
}

/** Applies an erasure to the modelled rows: `hit` says whether a row is within its scope. */
function erase(v: Vehicle, hit: (r: Rec) => Tri, apply: (r: Rec, certain: boolean) => void): void {
  for (const r of v.records) {
    const h = hit(r);
    if (h === false) continue;
    apply(r, h === true);
  }
}
/** A value erased with certainty becomes false; an uncertain erasure makes true unknown. */
const erased = (before: Tri, certain: boolean): Tri => (certain ? false : before === false ? false : undefined);

const rel = (w: World, t: number) => `${t - w.t0 >= 0 ? '+' : ''}${t - w.t0}ms`;

// ---------------------------------------------------------------------------------------
// Actions (fast-check commands)
// ---------------------------------------------------------------------------------------

type Cmd = fc.AsyncCommand<World, World>;

async function ok(r: { status: number; body: any }, what: string): Promise<any> {
  if (r.status !== 200) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

class SetConsent implements Cmd {
  constructor(
    readonly v: number,
    readonly location: boolean,
    readonly co2Sharing: boolean,
    readonly eraseHistory: boolean,
  ) {}
  check = () => true;
  async run(w: World): Promise<void> {
    const v = w.vehicles[this.v]!;
    const owner = currentOwner(v);
    const q = this.eraseHistory ? '?eraseHistory=true' : '';
    const before = Date.now();
    const body = await ok(await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent${q}`, { location: this.location, co2Sharing: this.co2Sharing }, w.tokens.get(owner)), this.toString());
    const after = Date.now();
    const since = Date.parse(body.since);
    expect(since, 'consent since lies within the request').toBeGreaterThanOrEqual(before - MARGIN_MS);
    expect(since).toBeLessThanOrEqual(after + MARGIN_MS);
    expect(body).toMatchObject({ location: this.location, co2Sharing: this.co2Sharing, restricted: current(v).restricted });
    if (this.eraseHistory) {
      // Erases the positions of the current ownership period (the first owner's reaches back to the epoch).
      const period = v.ownership[v.ownership.length - 1]!;
      erase(v, (r) => inPeriod(period, r.at), (r, certain) => (r.location = erased(r.location, certain)));
    }
    v.changes.push({ lo: since, hi: since + 1, after: { ...current(v), location: this.location, co2Sharing: this.co2Sharing } });
    w.log.push(`${rel(w, since)} ${this.toString()} by ${owner} → ${showState(current(v))}`);
    await untilInForce(w, v, this.toString());
  }
  toString(): string {
    return `consent(v${this.v}, location=${this.location}, co2Sharing=${this.co2Sharing}${this.eraseHistory ? ', eraseHistory' : ''})`;
  }
}

class SetRestriction implements Cmd {
  constructor(
    readonly v: number,
    readonly restricted: boolean,
  ) {}
  check = () => true;
  async run(w: World): Promise<void> {
    const v = w.vehicles[this.v]!;
    const owner = currentOwner(v);
    const body = await ok(await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: this.restricted }, w.tokens.get(owner)), this.toString());
    const since = Date.parse(body.since);
    expect(body).toMatchObject({ restricted: this.restricted, location: current(v).location, co2Sharing: current(v).co2Sharing });
    v.changes.push({ lo: since, hi: since + 1, after: { ...current(v), restricted: this.restricted } });
    w.log.push(`${rel(w, since)} ${this.toString()} by ${owner} → ${showState(current(v))}`);
    await untilInForce(w, v, this.toString());
  }
  toString(): string {
    return `restriction(v${this.v}, ${this.restricted})`;
  }
}

class Transfer implements Cmd {
  constructor(
    readonly v: number,
    readonly to: number,
  ) {}
  check = (w: Readonly<World>) => currentOwner(w.vehicles[this.v]!) !== w.owners[this.to];
  async run(w: World): Promise<void> {
    const v = w.vehicles[this.v]!;
    const newOwner = w.owners[this.to]!;
    const body = await ok(await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: newOwner }), this.toString());
    const after = Date.now();
    const since = Date.parse(body.since);
    const boundary = { lo: since, hi: since + 1 };
    v.ownership[v.ownership.length - 1]!.to = boundary;
    v.ownership.push({ owner: newOwner, from: boundary, to: null });
    // The consent reset is committed in the same transaction, a moment after the period starts.
    v.changes.push({ lo: since, hi: after, after: { ...DEFAULTS } });
    w.log.push(`${rel(w, since)} ${this.toString()}: ${newOwner} owns from here, consent reset`);
    await untilInForce(w, v, this.toString());
  }
  toString(): string {
    return `transfer(v${this.v} → owner${this.to})`;
  }
}

class Erase implements Cmd {
  constructor(
    readonly v: number,
    readonly category: 'location' | 'technical' | 'consumption' | null,
  ) {}
  check = () => true;
  async run(w: World): Promise<void> {
    const v = w.vehicles[this.v]!;
    const owner = currentOwner(v);
    const q = this.category ? `?category=${this.category}` : '';
    await ok(await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data${q}`, undefined, w.tokens.get(owner)), this.toString());
    const sharingRefused = !current(v).co2Sharing;
    const hit = (r: Rec) => ownedBy(v, owner, r.at);
    if (this.category === null) {
      erase(v, hit, (r, c) => {
        r.exists = erased(r.exists, c);
        if (sharingRefused) r.obfcm = erased(r.obfcm, c);
      });
      // Quarantine rows go with a full erasure, chosen by when they were received.
      for (const r of v.quarantined) {
        const lo = ownedBy(v, owner, r.received.lo);
        const hi = ownedBy(v, owner, r.received.hi);
        if (lo === false && hi === false) continue;
        r.exists = erased(r.exists, lo === true && hi === true);
      }
    } else {
      const cat = this.category;
      erase(v, hit, (r, c) => {
        r[cat] = erased(r[cat], c);
        if (cat === 'consumption' && sharingRefused) r.obfcm = erased(r.obfcm, c);
      });
    }
    w.log.push(`${rel(w, Date.now())} ${this.toString()} by ${owner} (CO2 sharing ${sharingRefused ? 'refused' : 'not refused'})`);
  }
  toString(): string {
    return `erase(v${this.v}${this.category ? `, ${this.category}` : ''})`;
  }
}

/** When a published record was measured; `invalid`: out of range, so it goes to quarantine. */
type When = ({ kind: 'now' } | { kind: 'ago'; ms: number } | { kind: 'window'; back: number }) & { invalid?: true };
const showWhen = (x: When) => (x.kind === 'now' ? 'now' : x.kind === 'ago' ? `now-${x.ms}ms` : `mid(window[-${x.back}])`) + (x.invalid ? ' invalid' : '');

/** The middle of the back-th most recent consent window of v (0 = the current one). */
function windowTime(v: Vehicle, back: number, now: number): number {
  const n = v.changes.length;
  const i = n - back; // window i lies between change i-1 and change i
  if (i <= 0) return (v.changes[0]?.lo ?? now) - 2000; // before the first change
  const start = v.changes[i - 1]!.hi;
  const end = i < n ? v.changes[i]!.lo : now;
  return Math.floor((start + end) / 2);
}

/** An out-of-range speed: the record is quarantined (GW_ERR_OUT_OF_RANGE) with its other groups. */
const INVALID_TECHNICAL = { ...FULL_TECHNICAL, speedKmh: 9999 };

/** Publishes full records (all three groups) measured at `times`; updates the model. */
async function publishRecords(w: World, v: Vehicle, times: number[], label: string, invalid: ReadonlySet<number> = new Set()): Promise<Rec[]> {
  const seqs = times.map(() => ++v.seq);
  const tBefore = Date.now();
  await publish(
    v.client,
    v.topic,
    encodeBatch(
      v.vin,
      times.map((t, i) => record(seqs[i]!, t, { technical: invalid.has(i) ? INVALID_TECHNICAL : FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION })),
    ),
  );
  const tAfter = Date.now();
  // Processing: some instant of [tBefore, tAfter], under a change seen applied or a later one.
  const processed = statesProcessing(v, tAfter);
  const out: Rec[] = [];
  for (const [i, at] of times.entries()) {
    const measured = statesAt(v, at);
    const tri = (allowed: (s: State) => boolean): Tri =>
      measured.every((s) => !allowed(s)) || processed.every((s) => !allowed(s)) ? false : measured.every(allowed) && processed.every(allowed) ? true : undefined;
    out.push({
      vin: v.vin,
      seq: seqs[i]!,
      at,
      label: `seq ${seqs[i]} measured ${rel(w, at)} (${label}), published ${rel(w, tBefore)}..${rel(w, tAfter)}; state measured ${measured.map(showState).join('|')}, processed ${processed.map(showState).join('|')}`,
      exists: true,
      technical: true,
      consumption: true,
      location: tri((s) => s.location),
      obfcm: tri(shares),
      received: { lo: tBefore, hi: tAfter },
    });
  }
  v.quarantined.push(...out.filter((_, i) => invalid.has(i)));
  v.records.push(...out.filter((_, i) => !invalid.has(i)));
  w.log.push(`${rel(w, tBefore)} ${label === 'in-force probe' ? 'probe' : 'publish'}(v${v.idx}) seqs ${seqs.join(',')} measured ${times.map((t) => rel(w, t)).join(',')}`);
  return out;
}

/**
 * Publishes a record measured now, every 20 ms, until one is stored the way the latest
 * change demands (position kept or not, OBFCM shared or not): from then on the gateway
 * certainly processes under it. Fails when that takes over a second (README).
 */
async function untilInForce(w: World, v: Vehicle, what: string): Promise<void> {
  const want = current(v);
  const t0 = Date.now();
  for (;;) {
    const [probe] = await publishRecords(w, v, [Date.now()], 'in-force probe');
    const seq = probe!.seq;
    const [row] = await db.query<{ has_location: boolean }>('SELECT has_location FROM telemetry WHERE vin = $1 AND seq = $2', [v.vin, seq]);
    const shared = (await db.query('SELECT 1 FROM obfcm_readings WHERE vin = $1 AND seq = $2', [v.vin, seq])).length === 1;
    if (row && row.has_location === want.location && shared === shares(want)) break;
    if (Date.now() - t0 > IN_FORCE_WITHIN_MS) {
      throw new Error(`${what} (→ ${showState(want)}) not in force at the gateway within ${IN_FORCE_WITHIN_MS} ms: probe seq ${seq} stored location=${row?.has_location} shared=${shared}`);
    }
    await sleep(20);
  }
  v.applied = v.changes.length;
  const since = v.changes[v.changes.length - 1]!.hi;
  await sleep(Math.max(0, since + MIN_WINDOW_MS - Date.now()));
}

class Publish implements Cmd {
  constructor(
    readonly v: number,
    readonly when: When[],
  ) {}
  check = () => true;
  async run(w: World): Promise<void> {
    const v = w.vehicles[this.v]!;
    const now = Date.now();
    const times = this.when.map((x) => (x.kind === 'now' ? now : x.kind === 'ago' ? now - x.ms : windowTime(v, x.back, now)));
    const invalid = new Set(this.when.flatMap((x, i) => (x.invalid ? [i] : [])));
    await publishRecords(w, v, times, this.when.map(showWhen).join(', '), invalid);
  }
  toString(): string {
    return `publish(v${this.v}: ${this.when.map(showWhen).join(', ')})`;
  }
}

const VEHICLES = 2;
const OWNERS = 3;
const MAX_COMMANDS = 12;
/** Runs per property; PRIVACY_PROPERTY_RUNS raises it for a longer hunt (the time checks then relax). */
const NUM_RUNS = Number(process.env.PRIVACY_PROPERTY_RUNS ?? 15);

const vehicleArb = fc.integer({ min: 0, max: VEHICLES - 1 });
const whenArb: fc.Arbitrary<When> = fc
  .tuple(
    fc.oneof(
      fc.constant<When>({ kind: 'now' }),
      fc.integer({ min: 1, max: 10 * 60_000 }).map((ms): When => ({ kind: 'ago', ms })),
      fc.integer({ min: 0, max: 4 }).map((back): When => ({ kind: 'window', back })),
    ),
    fc.integer({ min: 0, max: 5 }),
  )
  .map(([x, d]): When => (d === 0 ? { ...x, invalid: true } : x));
const publishArb = fc.tuple(vehicleArb, fc.array(whenArb, { minLength: 1, maxLength: 3 })).map(([v, when]) => new Publish(v, when));
const commandArbs: fc.Arbitrary<Cmd>[] = [
  fc
    .tuple(vehicleArb, fc.boolean(), fc.boolean(), fc.boolean())
    .map(([v, location, co2, eraseHistory]) => new SetConsent(v, location, co2, eraseHistory && !location)),
  fc.tuple(vehicleArb, fc.boolean()).map(([v, r]) => new SetRestriction(v, r)),
  fc.tuple(vehicleArb, fc.integer({ min: 0, max: OWNERS - 1 })).map(([v, to]) => new Transfer(v, to)),
  fc.tuple(vehicleArb, fc.constantFrom(null, 'location' as const, 'technical' as const, 'consumption' as const)).map(([v, c]) => new Erase(v, c)),
  publishArb,
  publishArb,
];

// ---------------------------------------------------------------------------------------
// One run: fresh vehicles and owners, the commands, a final probe, the checks
// ---------------------------------------------------------------------------------------

let runCounter = 0;

async function newWorld(): Promise<World> {
  const run = ++runCounter;
  const tag = `${Date.now().toString(36)}${run}`;
  const owners = Array.from({ length: OWNERS }, (_, i) => `pp-${tag}-owner${i}`);
  const tokens = new Map<string, string>();
  for (const o of [...owners, `pp-${tag}-stranger`]) tokens.set(o, (await signer.sign({ role: 'customer', subject: o, ttlSeconds: 3600 })).token);
  const vehicles: Vehicle[] = [];
  for (let i = 0; i < VEHICLES; i++) {
    const { vin, secret } = await provision(gw, testVin(), owners[0]);
    const client = await connectVehicle(gw, vin, secret);
    vehicles.push({ idx: i, vin, client, topic: `v1/vehicles/${vin}/telemetry`, seq: 0, changes: [], applied: 0, ownership: [{ owner: owners[0]!, from: null, to: null }], records: [], quarantined: [] });
  }
  return { run, t0: Date.now(), owners, tokens, vehicles, log: [] };
}

/** Ends every run with records measured in each consent window, around each transfer, and now. */
async function finalProbe(w: World): Promise<void> {
  for (const v of w.vehicles) {
    const now = Date.now();
    const times = new Set<number>([now, now - 5 * 60_000]);
    for (let back = 0; back <= v.changes.length; back++) times.add(windowTime(v, back, now));
    for (const p of v.ownership) if (p.from) for (const d of [-40, 40]) times.add(p.from.lo + d);
    const sorted = [...times].sort((a, b) => a - b);
    // the same instants once more as invalid records, for the quarantine
    await publishRecords(w, v, [...sorted, ...sorted], 'final probe', new Set(sorted.map((_, i) => sorted.length + i)));
  }
}

interface Row {
  vin: string;
  seq: number;
  recorded_at: Date;
  has_location: boolean;
  has_technical: boolean;
  has_consumption: boolean;
  latitude: number | null;
  longitude: number | null;
  heading_deg: number | null;
  altitude_m: number | null;
  accuracy_m: number | null;
  odometer_km: number | null;
  total_distance_km: number | null;
}

/** How many certain checks verify() made (a property that asserts nothing proves nothing). */
const tally = { quarantineKept: 0, quarantineErased: 0, quarantineRefused: 0, locationRefused: 0, locationKept: 0, obfcmRefused: 0, obfcmShared: 0, erased: 0, exported: 0, notTheirs: 0, notFound404: 0 };

async function verify(w: World): Promise<void> {
  const trace = () => `\nrun ${w.run} trace:\n  ${w.log.join('\n  ')}`;
  const vins = w.vehicles.map((v) => v.vin);
  const rows = await db.query<Row>(
    `SELECT vin, seq, recorded_at, has_location, has_technical, has_consumption, latitude, longitude, heading_deg, altitude_m, accuracy_m, odometer_km, total_distance_km
       FROM telemetry WHERE vin = ANY($1)`,
    [vins],
  );
  const obfcm = await db.query<{ vin: string; seq: number }>('SELECT vin, seq FROM obfcm_readings WHERE vin = ANY($1)', [vins]);
  const rowOf = new Map(rows.map((r) => [`${r.vin}/${r.seq}`, r]));
  const obfcmOf = new Set(obfcm.map((r) => `${r.vin}/${r.seq}`));
  const modelled = new Set(w.vehicles.flatMap((v) => v.records.map((r) => `${r.vin}/${r.seq}`)));
  for (const k of rowOf.keys()) expect(modelled.has(k), `unexpected telemetry row ${k}${trace()}`).toBe(true);
  for (const k of obfcmOf) expect(modelled.has(k), `unexpected obfcm row ${k}${trace()}`).toBe(true);

  // (a) in quarantine too: a refused position is not kept in the quarantined bytes
  const quarantine = await db.query<{ vin: string; seq: number; reason: string; payload: Buffer | null }>('SELECT vin, seq, reason, payload FROM quarantine WHERE vin = ANY($1)', [vins]);
  for (const v of w.vehicles) {
    for (const rec of v.quarantined) {
      const q = quarantine.filter((x) => x.vin === v.vin && x.seq === rec.seq);
      expect(q.length, `quarantine rows of invalid v${v.idx} ${rec.label}${trace()}`).toBeLessThanOrEqual(1);
      const row = q[0];
      if (rec.exists !== undefined) expect(row !== undefined, `quarantine row exists (false: erased with the owner's data): invalid v${v.idx} ${rec.label}${trace()}`).toBe(rec.exists);
      if (rec.exists === false) tally.quarantineErased++;
      if (!row) continue;
      if (rec.exists === true) tally.quarantineKept++;
      expect(row.reason).toBe('GW_ERR_OUT_OF_RANGE');
      const decoded = row.payload ? TelemetryRecord.decode(row.payload) : null;
      if (rec.location === false) {
        tally.quarantineRefused++;
        expect(decoded?.location ?? null, `quarantined bytes keep a refused position: v${v.idx} ${rec.label}${trace()}`).toBeNull();
      } else if (rec.location === true && decoded) {
        expect(decoded.location?.latitude, `quarantined record lost an allowed position: v${v.idx} ${rec.label}${trace()}`).toBe(FULL_LOCATION.latitude);
      }
    }
  }
  const modelledQ = new Set(w.vehicles.flatMap((v) => v.quarantined.map((r) => `${r.vin}/${r.seq}`)));
  for (const q of quarantine) expect(modelledQ.has(`${q.vin}/${q.seq}`), `unexpected quarantine row ${q.vin}/${q.seq} ${q.reason}${trace()}`).toBe(true);

  for (const v of w.vehicles) {
    for (const rec of v.records) {
      const key = `${rec.vin}/${rec.seq}`;
      const row = rowOf.get(key);
      const what = `v${v.idx} ${rec.label}${trace()}`;
      if (rec.exists !== undefined) expect(row !== undefined, `telemetry row exists: ${what}`).toBe(rec.exists);
      if (row) {
        expect(row.recorded_at.getTime(), what).toBe(rec.at);
        // (a) no location where it was refused when measured or when processed
        if (rec.location === false) {
          tally.locationRefused++;
          expect([row.latitude, row.longitude, row.heading_deg, row.altitude_m, row.accuracy_m, row.has_location], `location stored although refused: ${what}`).toEqual([null, null, null, null, null, false]);
        } else if (rec.location === true) {
          tally.locationKept++;
          expect([row.latitude, row.has_location], `location missing although allowed and not erased: ${what}`).toEqual([FULL_LOCATION.latitude, true]);
        }
        if (rec.technical !== undefined) expect(row.has_technical && row.odometer_km === FULL_TECHNICAL.odometerKm, `technical: ${what}`).toBe(rec.technical);
        if (rec.consumption !== undefined) expect(row.has_consumption && row.total_distance_km === FULL_CONSUMPTION.totalDistanceKm, `consumption: ${what}`).toBe(rec.consumption);
      }
      // (b) no shareable OBFCM reading where sharing was refused or processing restricted
      if (rec.exists === false) tally.erased++;
      if (rec.obfcm === false) tally.obfcmRefused++;
      else if (rec.obfcm === true) tally.obfcmShared++;
      if (rec.obfcm === false) expect(obfcmOf.has(key), `obfcm_readings row although sharing refused/restricted: ${what}`).toBe(false);
      else if (rec.obfcm === true) expect(obfcmOf.has(key), `obfcm_readings row missing although shared and not erased: ${what}`).toBe(true);
    }

    // (c) the current owner's export holds exactly their periods' records; everyone else gets 404
    const owner = currentOwner(v);
    const res = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/vehicles/${v.vin}/cardata?format=ndjson`, { headers: { authorization: `Bearer ${w.tokens.get(owner)!}` } });
    expect(res.status, `export by the current owner ${owner}`).toBe(200);
    const text = await res.text();
    const lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq: number; recordedAt: string; location?: unknown });
    const bySeq = new Map(v.records.map((r) => [r.seq, r]));
    const exported = new Set<number>();
    for (const line of lines) {
      const rec = bySeq.get(line.seq);
      expect(rec, `export of v${v.idx} returned unknown seq ${line.seq}${trace()}`).toBeDefined();
      const what = `v${v.idx} export by ${owner}: ${rec!.label}${trace()}`;
      exported.add(line.seq);
      tally.exported++;
      expect(Date.parse(line.recordedAt), what).toBe(rec!.at);
      expect(ownedBy(v, owner, rec!.at), `exported a record recorded outside ${owner}'s ownership periods: ${what}`).not.toBe(false);
      expect(rec!.exists, `exported an erased record: ${what}`).not.toBe(false);
      if (rec!.location === false) expect(line.location ?? null, `export has a refused location: ${what}`).toBeNull();
    }
    for (const rec of v.records) {
      if (ownedBy(v, owner, rec.at) === false && rec.exists !== false) tally.notTheirs++;
      if (rec.exists === true && ownedBy(v, owner, rec.at) === true) {
        expect(exported.has(rec.seq), `export by ${owner} misses a record of their period: v${v.idx} ${rec.label}${trace()}`).toBe(true);
      }
    }
    for (const other of w.tokens.keys()) {
      if (other === owner) continue;
      const r = await api(gw, 'GET', `/v1/vehicles/${v.vin}/cardata?format=ndjson`, undefined, w.tokens.get(other));
      expect(r.status, `export of v${v.idx} by non-owner ${other}${trace()}`).toBe(404);
      tally.notFound404++;
    }
  }
}

/** Runs commands through one world as the property does, then the final probe and the checks. */
async function runWorld(cmds: Iterable<Cmd>): Promise<World> {
  const w = await newWorld();
  try {
    await fc.asyncModelRun(() => ({ model: w, real: w }), cmds);
    await finalProbe(w);
    await verify(w);
    return w;
  } finally {
    await Promise.all(w.vehicles.map((v) => v.client.endAsync()));
  }
}

describe('privacy properties over random interleavings', () => {
  it('a scripted interleaving through the same model: every kind of check is exercised', async () => {
    const before = { ...tally };
    const ago = (ms: number): When => ({ kind: 'ago', ms });
    const win = (back: number): When => ({ kind: 'window', back });
    const now: When = { kind: 'now' };
    const w = await runWorld([
      new Publish(0, [now, ago(60_000)]),
      new SetConsent(0, false, false, false),
      new Publish(0, [now, ago(2_000), win(1), { ...now, invalid: true }]),
      new SetRestriction(1, true),
      new Publish(1, [now, ago(1_000)]),
      new SetConsent(0, true, true, false),
      // measured during the opt-out, arriving after the opt-in: stays without location and unshared
      new Publish(0, [win(1), win(2), now]),
      new Transfer(0, 1),
      new Publish(0, [win(1), win(3), now]),
      new SetConsent(0, false, true, true),
      new Erase(1, 'consumption'),
      new SetRestriction(1, false),
      new Transfer(0, 0),
      new Erase(0, null),
      new Publish(0, [now, win(2)]),
      new Erase(1, 'location'),
    ]);
    const d = Object.fromEntries(Object.entries(tally).map(([k, n]) => [k, n - before[k as keyof typeof tally]]));
    console.info(`scripted run: ${w.vehicles.reduce((n, v) => n + v.records.length, 0)} records; checks ${JSON.stringify(d)}`);
    for (const [k, n] of Object.entries(d)) expect(n, `${k} checks`).toBeGreaterThan(0);
  });

  it('consent, restriction, transfer, erasure and telemetry: no refused location or OBFCM stored, exports stay within ownership', { timeout: NUM_RUNS === 15 ? 120_000 : NUM_RUNS * 8_000 }, async () => {
    const t0 = Date.now();
    let runs = 0;
    let published = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(commandArbs, { maxCommands: MAX_COMMANDS, size: 'max' }), async (cmds) => {
        const w = await runWorld(cmds);
        runs++;
        published += w.vehicles.reduce((n, v) => n + v.records.length, 0);
      }),
      // A failure is shrunk for at most the rest of the budget, then reported as it stands.
      { numRuns: NUM_RUNS, interruptAfterTimeLimit: NUM_RUNS === 15 ? 80_000 : NUM_RUNS * 6_000 },
    );
    // An interrupted property passes silently in fast-check: make sure every run happened.
    expect(runs).toBe(NUM_RUNS);
    console.info(`${runs} runs, ${published} records, ${Date.now() - t0} ms; certain checks so far ${JSON.stringify(tally)}`);
    expect(published).toBeGreaterThan(NUM_RUNS * VEHICLES * 3);
    if (NUM_RUNS === 15) expect(Date.now() - t0).toBeLessThan(90_000);
  });
});
