// In-memory stores behind the HTTP API's ports (api/ports.ts), for route tests through
// app.inject() with no database. They honour the contracts the real storage keeps
// (storage/repos/*.ts), as far as the routes can tell:
// - vehicles.create rejects CONFLICT for a VIN that exists; rotateSecret answers false for an unknown one;
// - consents.set and rights.erase reject NOT_FOUND for an unknown VIN, and when the owner
//   they act for is not the current one; consents' timeline starts with the defaults
//   (sinceMs 0, location and CO2 sharing allowed, not restricted) when no event precedes;
// - rights.transfer rejects NOT_FOUND (unknown VIN) or CONFLICT (already the owner), ends
//   the period (and with it every grant made in it) and resets consent to the defaults;
//   periodsOf gives the vehicle's first period `from` the epoch, later ones their start;
// - grants.create / checkins.create reject NOT_FOUND unless the owner is the current one;
//   revoke answers 'not_found' (not this owner's grant on this VIN) or 'not_active';
//   listForRecipient lists active grants only; disclose / discloseSession file nothing
//   (false / null) unless the grant is active and the vehicle not restricted;
// - checkins.redeem answers null for an unknown, used, expired or other workshop's code,
//   and for a vehicle that changed hands since (the code stays unused);
// - reads.consumptionForWorkshop rejects NOT_FOUND when its grant no longer holds;
// - accounts.create rejects CONFLICT when the username or the subject is taken;
//   mintedTokens.revoke answers false for a jti never minted (revoking twice is not an error);
// - recipients.create rejects CONFLICT for an id that exists.
// Rejections are FakeStoreError; `fakeFailures` is the StoreFailures port over them.
// A test arranges the data with the helpers on `world` (reset() between cases).
import { randomUUID } from 'node:crypto';
import type {
  AccountStore,
  CheckinStore,
  ConsentEvent,
  ConsentPeriod,
  ConsentStore,
  Disclosure,
  ErasureResult,
  GrantRecord,
  GrantStore,
  MintedTokenStore,
  ObfcmRow,
  OwnershipPeriod,
  ReadStore,
  Recipient,
  RecipientRole,
  RecipientStore,
  RightsStore,
  SeriesStore,
  StoreFailures,
  StoredRecord,
  VehicleStore,
} from '../../../api/ports.ts';
import type { Group, StoredValues } from '../../../proto/fields.ts';

export type FakeFailure = 'CONFLICT' | 'NOT_FOUND' | 'UNAVAILABLE';

export class FakeStoreError extends Error {
  readonly code: FakeFailure;
  constructor(code: FakeFailure, message: string) {
    super(message);
    this.code = code;
    this.name = 'FakeStoreError';
  }
}

export const fakeFailures: StoreFailures = {
  isConflict: (err) => err instanceof FakeStoreError && err.code === 'CONFLICT',
  isNotFound: (err) => err instanceof FakeStoreError && err.code === 'NOT_FOUND',
  isUnavailable: (err) => err instanceof FakeStoreError && err.code === 'UNAVAILABLE',
};

const DEFAULTS = { location: true, co2Sharing: true, restricted: false } as const;
const GROUPS: readonly Group[] = ['technical', 'consumption', 'location'];
const BEGINNING = new Date(0);

interface Period {
  id: number;
  vin: string;
  ownerId: string;
  startedAt: Date;
  endedAt: Date | null;
}

interface StoredGrant {
  id: string;
  vin: string;
  ownerId: string;
  periodId: number;
  recipientId: string;
  categories: Group[];
  fields: string[] | null;
  access: ('history' | 'stream')[];
  purpose: string;
  dataFrom: Date;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  origin: 'owner' | 'checkin';
  events: { at: Date; kind: 'given' | 'withdrawn'; actor: string }[];
}

interface Code {
  vin: string;
  ownerId: string;
  periodId: number;
  recipientId: string | null;
  visitHours: number;
  dataFrom: Date;
  expiresAt: Date;
  redeemedAt: Date | null;
}

interface State {
  vehicles: Map<string, { ownerId: string; secretHash: string; createdAt: Date }>;
  periods: Period[];
  consent: (ConsentEvent & { vin: string })[];
  recipients: Map<string, Recipient>;
  grants: Map<string, StoredGrant>;
  codes: Map<string, Code>;
  disclosures: (Disclosure & { id: string; at: Date })[];
  telemetry: StoredRecord[];
  obfcm: ObfcmRow[];
  minted: Map<string, { role: string; subject: string; revoked: boolean }>;
  accounts: Map<string, { username: string; subject: string; role: string; createdAt: Date; passwordHash: string }>;
  erasures: { vin: string; ownerId: string; category: Group | null }[];
  /** Operations that reject UNAVAILABLE (the database is down for them). */
  down: Set<string>;
}

function empty(): State {
  return {
    vehicles: new Map(),
    periods: [],
    consent: [],
    recipients: new Map(),
    grants: new Map(),
    codes: new Map(),
    disclosures: [],
    telemetry: [],
    obfcm: [],
    minted: new Map(),
    accounts: new Map(),
    erasures: [],
    down: new Set(),
  };
}

import type { ConnectivityExport, ConnectivityReads } from '../../../api/routes/connectivity.ts';

export interface ApiStores {
  vehicles: VehicleStore;
  consents: ConsentStore;
  rights: RightsStore;
  recipients: RecipientStore;
  grants: GrantStore;
  checkins: CheckinStore;
  reads: ReadStore;
  series: SeriesStore;
  mintedTokens: MintedTokenStore & { isRevoked(jti: string): boolean };
  accounts: AccountStore;
  /** Connectivity: no connection is ever open here (offline, never seen); a grant's read files its disclosure. */
  connectivity: ConnectivityReads & ConnectivityExport;
}

export function createApiWorld() {
  let s = empty();
  let seq = 0;

  const down = (op: string) => {
    if (s.down.has(op)) throw new FakeStoreError('UNAVAILABLE', `${op}: connection refused`);
  };
  const openPeriod = (vin: string) => s.periods.find((p) => p.vin === vin && p.endedAt === null) ?? null;
  const isFirst = (p: Period) => s.periods.filter((x) => x.vin === p.vin).every((x) => x.id >= p.id);
  const toOwnership = (p: Period): OwnershipPeriod => ({ ownerId: p.ownerId, from: isFirst(p) ? BEGINNING : p.startedAt, startedAt: p.startedAt, to: p.endedAt });
  const stateAt = (vin: string, ms: number) => {
    const evs = s.consent.filter((e) => e.vin === vin && e.effectiveAt.getTime() <= ms);
    const last = evs.at(-1);
    return last ? { location: last.location, co2Sharing: last.co2Sharing, restricted: last.restricted } : { ...DEFAULTS };
  };
  const restrictedNow = (vin: string) => stateAt(vin, Date.now()).restricted;
  const grantRecord = (g: StoredGrant): GrantRecord => {
    const r = s.recipients.get(g.recipientId)!;
    const p = s.periods.find((x) => x.id === g.periodId)!;
    return {
      id: g.id,
      vin: g.vin,
      ownerId: g.ownerId,
      recipientId: g.recipientId,
      recipientRole: r.role,
      recipientName: r.name,
      categories: [...g.categories],
      fields: g.fields ? [...g.fields] : null,
      access: [...g.access],
      purpose: g.purpose,
      dataFrom: g.dataFrom,
      createdAt: g.createdAt,
      expiresAt: g.expiresAt,
      revokedAt: g.revokedAt,
      periodEndedAt: p.endedAt,
      origin: g.origin,
    };
  };
  /** Not revoked, not expired, its ownership period open (storage's ACTIVE). */
  const active = (g: StoredGrant, now = Date.now()) => g.revokedAt === null && g.expiresAt.getTime() > now && s.periods.find((p) => p.id === g.periodId)!.endedAt === null;
  const currentPeriod = (vin: string, ownerId: string): Period => {
    if (!s.vehicles.has(vin)) throw new FakeStoreError('NOT_FOUND', `vehicle ${vin} is not provisioned`);
    const p = openPeriod(vin);
    if (!p || p.ownerId !== ownerId) throw new FakeStoreError('NOT_FOUND', `${ownerId} is not the current owner of ${vin}`);
    return p;
  };
  const inPeriods = (ms: number, periods: readonly { from: Date; to: Date | null }[]) => periods.some((p) => ms >= p.from.getTime() && (p.to === null || ms < p.to.getTime()));
  const inRange = (ms: number, r: { from: Date | null; to: Date | null }) => (r.from === null || ms >= r.from.getTime()) && (r.to === null || ms < r.to.getTime());
  const project = (r: StoredRecord, cats: readonly Group[], fields: readonly string[] | null = null): StoredRecord => {
    const out: StoredRecord = { vin: r.vin, seq: r.seq, recordedAt: r.recordedAt };
    for (const g of GROUPS) {
      if (!cats.includes(g)) continue;
      const v = r[g] ?? null;
      // A field-level read: only the fields named (as storage selects only their columns).
      out[g] = v === null || fields === null ? v : Object.fromEntries(Object.entries(v).filter(([k]) => fields.includes(`${g}.${k}`)));
    }
    return out;
  };
  const selected = (vin: string, periods: readonly OwnershipPeriod[], range: { from: Date | null; to: Date | null }, cats: readonly Group[], fields: readonly string[] | null = null) =>
    s.telemetry
      .filter((r) => r.vin === vin && inPeriods(r.recordedAt.getTime(), periods) && inRange(r.recordedAt.getTime(), range))
      .sort((a, b) => a.recordedAt.getTime() - b.recordedAt.getTime())
      .map((r) => project(r, cats, fields));
  const line = (r: StoredRecord) => JSON.stringify({ ...r, recordedAt: r.recordedAt.toISOString() });
  const appendConsent = (vin: string, change: { location?: boolean | undefined; co2Sharing?: boolean | undefined; restricted?: boolean | undefined; actor: string; channel: string; eraseLocationHistory?: boolean | undefined }, reset = false) => {
    const v = s.vehicles.get(vin);
    if (!v) throw new FakeStoreError('NOT_FOUND', `vehicle ${vin} is not provisioned`);
    const now = new Date();
    const prev = stateAt(vin, now.getTime());
    const base = reset ? { ...DEFAULTS } : prev;
    const next = { location: change.location ?? base.location, co2Sharing: change.co2Sharing ?? base.co2Sharing, restricted: change.restricted ?? base.restricted };
    const erase = change.eraseLocationHistory === true && !next.location;
    let erasedLocationRows = 0;
    if (erase) {
      const p = openPeriod(vin)!;
      const since = toOwnership(p).from.getTime();
      for (const r of s.telemetry) {
        if (r.vin === vin && r.recordedAt.getTime() >= since && r.location) {
          r.location = null;
          erasedLocationRows++;
        }
      }
    }
    s.consent.push({ vin, id: ++seq, effectiveAt: now, ...next, actor: change.actor, channel: change.channel, ownerId: v.ownerId, previous: reset ? null : prev, erasedLocationHistory: erase });
    return { sinceMs: now.getTime(), ...next, erasedLocationRows };
  };
  const file = (d: Omit<Disclosure, 'vin' | 'ownerId'> & { vin: string; ownerId: string | null }) => {
    const id = String(++seq);
    s.disclosures.push({ ...d, id, at: new Date() });
    return id;
  };
  const fileThroughGrant = (d: { grantId: string; role: string; subject: string; endpoint: string; categories: readonly string[]; fields?: readonly string[] | null | undefined; rangeFrom: Date | null; rangeTo: Date | null }): string | null => {
    const g = s.grants.get(d.grantId);
    if (!g || !active(g) || restrictedNow(g.vin)) return null;
    return file({ vin: g.vin, role: d.role, subject: d.subject, endpoint: d.endpoint, categories: [...d.categories], fields: d.fields ? [...d.fields] : null, rangeFrom: d.rangeFrom, rangeTo: d.rangeTo, ownerId: g.ownerId, grantId: g.id });
  };
  const addGrant = (p: Period, g: Omit<StoredGrant, 'id' | 'periodId' | 'vin' | 'ownerId' | 'events'>, actor: string, id: string = randomUUID()): StoredGrant => {
    const sg: StoredGrant = { ...g, id, vin: p.vin, ownerId: p.ownerId, periodId: p.id, events: [{ at: g.createdAt, kind: 'given', actor }] };
    s.grants.set(id, sg);
    return sg;
  };

  const stores: ApiStores = {
    vehicles: {
      async create(v) {
        down('vehicles.create');
        if (s.vehicles.has(v.vin)) throw new FakeStoreError('CONFLICT', `vehicle ${v.vin} is already provisioned`);
        const createdAt = new Date();
        s.vehicles.set(v.vin, { ownerId: v.ownerId, secretHash: v.secretHash, createdAt });
        s.periods.push({ id: ++seq, vin: v.vin, ownerId: v.ownerId, startedAt: createdAt, endedAt: null });
        return { vin: v.vin, ownerId: v.ownerId, createdAt };
      },
      async rotateSecret(vin, secretHash) {
        const v = s.vehicles.get(vin);
        if (!v) return false;
        v.secretHash = secretHash;
        return true;
      },
    },
    consents: {
      async timeline(vin, sinceMs) {
        down('consents.timeline');
        const evs = s.consent.filter((e) => e.vin === vin);
        const before = evs.filter((e) => e.effectiveAt.getTime() <= sinceMs).at(-1);
        const after = evs.filter((e) => e.effectiveAt.getTime() > sinceMs);
        const rows = before ? [before, ...after] : after;
        const out: ConsentPeriod[] = [];
        if (rows.length === 0 || rows[0]!.effectiveAt.getTime() > sinceMs) out.push({ sinceMs: 0, ...DEFAULTS });
        for (const e of rows) out.push({ sinceMs: e.effectiveAt.getTime(), location: e.location, co2Sharing: e.co2Sharing, restricted: e.restricted });
        return out;
      },
      async set(vin, change, asOwner) {
        down('consents.set');
        currentPeriod(vin, asOwner);
        return appendConsent(vin, change);
      },
      async history(vin, fromMs) {
        return s.consent.filter((e) => e.vin === vin && (fromMs === undefined || e.effectiveAt.getTime() >= fromMs)).map(({ vin: _v, ...e }) => e);
      },
    },
    rights: {
      async currentOwner(vin) {
        down('rights.currentOwner');
        return s.vehicles.get(vin)?.ownerId ?? null;
      },
      async periodsOf(vin, ownerId) {
        return s.periods.filter((p) => p.vin === vin && p.ownerId === ownerId).map(toOwnership);
      },
      async transfer(vin, newOwnerId, actor) {
        const v = s.vehicles.get(vin);
        if (!v) throw new FakeStoreError('NOT_FOUND', `vehicle ${vin} is not provisioned`);
        if (v.ownerId === newOwnerId) throw new FakeStoreError('CONFLICT', `${newOwnerId} already owns ${vin}`);
        const t = new Date();
        openPeriod(vin)!.endedAt = t;
        s.periods.push({ id: ++seq, vin, ownerId: newOwnerId, startedAt: t, endedAt: null });
        v.ownerId = newOwnerId;
        appendConsent(vin, { actor, channel: 'transfer' }, true);
        return { ownerId: newOwnerId, from: t, startedAt: t, to: null };
      },
      async erase(vin, ownerId, category, opts): Promise<ErasureResult> {
        if (!s.vehicles.has(vin)) throw new FakeStoreError('NOT_FOUND', `vehicle ${vin} is not provisioned`);
        if (opts.asCurrentOwner) currentPeriod(vin, ownerId);
        const periods = s.periods.filter((p) => p.vin === vin && p.ownerId === ownerId).map(toOwnership);
        let deleted = 0;
        let updated = 0;
        s.telemetry = s.telemetry.filter((r) => {
          if (r.vin !== vin || !inPeriods(r.recordedAt.getTime(), periods)) return true;
          if (category === null) {
            deleted++;
            return false;
          }
          if (category !== 'connectivity' && r[category]) {
            r[category] = null;
            updated++;
          }
          return true;
        });
        if (category !== 'connectivity') s.erasures.push({ vin, ownerId, category });
        return { telemetryDeleted: deleted, telemetryUpdated: updated, obfcmDeleted: 0, obfcmKept: 0, quarantineDeleted: 0 };
      },
    },
    recipients: {
      async create(r) {
        if (s.recipients.has(r.id)) throw new FakeStoreError('CONFLICT', `recipient ${r.id} already exists`);
        const rec: Recipient = { ...r, createdAt: new Date() };
        s.recipients.set(r.id, rec);
        return rec;
      },
      async get(id) {
        return s.recipients.get(id) ?? null;
      },
      async list(opts = {}) {
        return [...s.recipients.values()].sort((a, b) => (a.name === b.name ? (a.id < b.id ? -1 : 1) : a.name < b.name ? -1 : 1)).slice(0, opts.limit ?? 1000);
      },
    },
    grants: {
      async create(g) {
        const p = currentPeriod(g.vin, g.ownerId);
        const now = new Date();
        const sg = addGrant(
          p,
          {
            recipientId: g.recipientId,
            categories: g.categories as Group[],
            fields: g.fields ? [...g.fields] : null,
            access: g.access as ('history' | 'stream')[],
            purpose: g.purpose,
            dataFrom: g.dataFrom ?? now,
            createdAt: now,
            expiresAt: g.expiresAt instanceof Date ? g.expiresAt : new Date(now.getTime() + g.expiresAt.afterMs),
            revokedAt: null,
            origin: 'owner',
          },
          g.actor,
        );
        return grantRecord(sg);
      },
      async get(id) {
        const g = s.grants.get(id.toLowerCase());
        return g ? grantRecord(g) : null;
      },
      async listByOwner(vin, ownerId) {
        return [...s.grants.values()].filter((g) => g.vin === vin && g.ownerId === ownerId).map(grantRecord);
      },
      async listForRecipient(recipientId, vin) {
        return [...s.grants.values()].filter((g) => g.recipientId === recipientId && (vin === undefined || g.vin === vin) && active(g)).map(grantRecord);
      },
      async revoke(vin, ownerId, id, actor) {
        const g = s.grants.get(id.toLowerCase());
        if (!g || g.vin !== vin || g.ownerId !== ownerId) return 'not_found';
        if (!active(g)) return 'not_active';
        g.revokedAt = new Date();
        g.events.push({ at: g.revokedAt, kind: 'withdrawn', actor });
        return 'revoked';
      },
      async events(id) {
        return [...(s.grants.get(id.toLowerCase())?.events ?? [])];
      },
      async disclose(d) {
        return fileThroughGrant(d) !== null;
      },
      async discloseSession(d) {
        return fileThroughGrant(d);
      },
      async settleSession(id, sent) {
        const d = s.disclosures.find((x) => x.id === id && x.grantId);
        if (d) {
          d.rangeFrom = sent?.from ?? null;
          d.rangeTo = sent?.to ?? null;
        }
      },
    },
    checkins: {
      async create(c) {
        const p = currentPeriod(c.vin, c.ownerId);
        const dataFrom = c.dataFrom ?? toOwnership(p).from;
        const expiresAt = new Date(Date.now() + c.ttlSeconds * 1000);
        s.codes.set(c.codeHash.toString('hex'), { vin: c.vin, ownerId: c.ownerId, periodId: p.id, recipientId: c.recipientId, visitHours: c.visitHours, dataFrom, expiresAt, redeemedAt: null });
        return { expiresAt, dataFrom };
      },
      async redeem(codeHash, recipientId, purpose) {
        const c = s.codes.get(codeHash.toString('hex'));
        const now = new Date();
        if (!c || c.redeemedAt !== null || c.expiresAt <= now || (c.recipientId !== null && c.recipientId !== recipientId)) return null;
        const p = s.periods.find((x) => x.id === c.periodId)!;
        // The vehicle changed hands since the code was made: rolled back, the code stays unused.
        if (p.endedAt !== null) return null;
        c.redeemedAt = now;
        const g = addGrant(
          p,
          { recipientId, categories: ['consumption'], fields: null, access: ['history'], purpose, dataFrom: c.dataFrom, createdAt: now, expiresAt: new Date(now.getTime() + c.visitHours * 3_600_000), revokedAt: null, origin: 'checkin' },
          `customer:${c.ownerId} (check-in code redeemed by workshop:${recipientId})`,
        );
        return grantRecord(g);
      },
    },
    reads: {
      async *records(vin, periods, range, categories, _pageSize, fields = null) {
        yield* selected(vin, periods, range, categories, fields);
      },
      async *ndjson(vin, periods, range, categories, _pageSize, fields = null) {
        for (const r of selected(vin, periods, range, categories, fields)) yield line(r) + '\n';
      },
      async latestLocation(vin, periods) {
        const r = selected(vin, periods, { from: null, to: null }, GROUPS).filter((x) => x.location).at(-1);
        return r ? { recordedAt: r.recordedAt, seq: r.seq, location: r.location! } : null;
      },
      async consumptionForWorkshop(vin, period, range, disclosure, limit, fields = null) {
        if (disclosure.grantId) {
          if (fileThroughGrant({ ...disclosure, grantId: disclosure.grantId }) === null) throw new FakeStoreError('NOT_FOUND', 'the grant is no longer active, or processing is restricted');
        } else file({ ...disclosure, ownerId: disclosure.ownerId ?? null });
        const rows = selected(vin, [{ ownerId: '', from: period.from, startedAt: period.from, to: period.to }], range, ['consumption'], fields).filter((r) => r.consumption);
        return rows.slice(-limit).map((r) => ({ recordedAt: r.recordedAt, seq: r.seq, consumption: r.consumption! }));
      },
      async *obfcmReportPages(range, who) {
        // Per reading, the state its ownership period's owner chose last (the defaults when
        // none): access/grants.ts obfcmShareable; the last shareable reading per VIN.
        const periodOf = (r: ObfcmRow) => s.periods.find((p) => p.vin === r.vin && r.recordedAt >= toOwnership(p).from && (p.endedAt === null || r.recordedAt < p.endedAt));
        const stateOf = (r: ObfcmRow) => {
          const p = periodOf(r);
          const last = p ? s.consent.filter((e) => e.vin === r.vin && e.ownerId === p.ownerId).at(-1) : undefined;
          return last ?? DEFAULTS;
        };
        const last = new Map<string, ObfcmRow>();
        for (const r of s.obfcm) {
          const st = stateOf(r);
          if (inRange(r.recordedAt.getTime(), range) && st.co2Sharing && !st.restricted && (last.get(r.vin)?.recordedAt.getTime() ?? -Infinity) <= r.recordedAt.getTime()) last.set(r.vin, r);
        }
        const page = [...last.values()].sort((a, b) => (a.vin < b.vin ? -1 : 1));
        for (const r of page) file({ vin: r.vin, ...who, categories: ['consumption'], rangeFrom: range.from, rangeTo: range.to, ownerId: periodOf(r)?.ownerId ?? null, grantId: null });
        if (page.length) yield page;
      },
      async obfcmReport(range, who) {
        const out: ObfcmRow[] = [];
        for await (const p of this.obfcmReportPages(range, who)) out.push(...p);
        return out;
      },
      async disclosures(vin, periods) {
        if (periods.length === 0) return [];
        return s.disclosures.filter((d) => d.vin === vin && d.ownerId === periods[0]!.ownerId).map(({ id: _id, ...d }) => d);
      },
    },
    series: {
      async ownedBy(ownerId) {
        return [...s.vehicles.entries()].filter(([, v]) => v.ownerId === ownerId).map(([vin]) => ({ vin, since: openPeriod(vin)!.startedAt })).sort((a, b) => (a.vin < b.vin ? -1 : 1));
      },
      async latest(vin, periods, categories) {
        return selected(vin, periods, { from: null, to: null }, categories).at(-1) ?? null;
      },
      async freshness(vin, periods, categories, depth = 1000) {
        const newest = new Map<string, { field: string; value: number; recordedAt: Date; receivedAt: Date | null }>();
        for (const r of selected(vin, periods, { from: null, to: null }, categories).slice(-depth)) {
          for (const g of categories) for (const [k, v] of Object.entries(r[g] ?? {})) newest.set(`${g}.${k}`, { field: `${g}.${k}`, value: v, recordedAt: r.recordedAt, receivedAt: r.receivedAt ?? null });
        }
        return [...newest.values()];
      },
      async series(vin, periods, range, bucketMs, categories, fields) {
        const rows = selected(vin, periods, range, categories);
        const t: number[] = [];
        const count: number[] = [];
        const acc: Record<string, { avg: (number | null)[]; min: (number | null)[]; max: (number | null)[] }> = {};
        for (const r of rows) {
          const b = Math.floor(r.recordedAt.getTime() / bucketMs) * bucketMs;
          if (t.at(-1) !== b) {
            t.push(b);
            count.push(0);
            for (const f of Object.values(acc)) {
              f.avg.push(null);
              f.min.push(null);
              f.max.push(null);
            }
          }
          count[count.length - 1]!++;
          const i = t.length - 1;
          for (const g of categories) {
            for (const [k, v] of Object.entries(r[g] ?? {})) {
              const name = `${g}.${k}`;
              if (fields && !fields.includes(name)) continue;
              const f = (acc[name] ??= { avg: t.map(() => null), min: t.map(() => null), max: t.map(() => null) });
              f.avg[i] = v;
              f.min[i] = Math.min(f.min[i] ?? v, v);
              f.max[i] = Math.max(f.max[i] ?? v, v);
            }
          }
        }
        return { t, count, fields: acc };
      },
    },
    mintedTokens: {
      async record(t) {
        s.minted.set(t.jti, { role: t.role, subject: t.subject, revoked: false });
      },
      async revoke(jti) {
        const t = s.minted.get(jti);
        if (!t) return false;
        t.revoked = true;
        return true;
      },
      isRevoked: (jti) => s.minted.get(jti)?.revoked === true,
    },
    accounts: {
      async create(a) {
        if (s.accounts.has(a.username) || [...s.accounts.values()].some((x) => x.subject === a.subject)) {
          throw new FakeStoreError('CONFLICT', `an account with username ${a.username} or subject ${a.subject} exists`);
        }
        const createdAt = new Date();
        s.accounts.set(a.username, { ...a, createdAt });
        return { username: a.username, subject: a.subject, role: a.role, createdAt };
      },
      async list() {
        return [...s.accounts.values()].map(({ passwordHash: _h, ...a }) => a);
      },
      async remove(username) {
        const a = s.accounts.get(username);
        s.accounts.delete(username);
        return a ? a.subject : null;
      },
      async setPassword(username, passwordHash) {
        const a = s.accounts.get(username);
        if (!a) return null;
        a.passwordHash = passwordHash;
        return a.subject;
      },
    },
    connectivity: {
      async status(vin) {
        return { vin, online: false, since: null, lastSeenAt: null };
      },
      async statusDisclosed(vin, _windows, d) {
        if (fileThroughGrant(d) === null) throw new FakeStoreError('NOT_FOUND', 'the grant is no longer active, or processing is restricted');
        return { vin, online: false, since: null, lastSeenAt: null };
      },
      async connections() {
        return [];
      },
    },
  };

  /** Arranging data, as the storage would have it after the corresponding writes. */
  const world = {
    get state(): Readonly<State> {
      return s;
    },
    reset() {
      s = empty();
    },
    /** A provisioned vehicle: its first ownership period (reads reach back to the epoch). */
    vehicle(vin: string, ownerId: string, startedAt = new Date(Date.now() - 30 * 86_400_000)) {
      s.vehicles.set(vin, { ownerId, secretHash: 'scrypt$fake', createdAt: startedAt });
      s.periods.push({ id: ++seq, vin, ownerId, startedAt, endedAt: null });
    },
    transfer(vin: string, newOwnerId: string) {
      return stores.rights.transfer(vin, newOwnerId, 'admin');
    },
    consent(vin: string, change: { location?: boolean; co2Sharing?: boolean; restricted?: boolean }) {
      return appendConsent(vin, { ...change, actor: 'test', channel: 'api' });
    },
    recipient(id: string, role: RecipientRole, name = id) {
      s.recipients.set(id, { id, role, name, createdAt: new Date() });
    },
    /** A grant of the vehicle's current owner (or of `periodOf` the owner's latest period). */
    grant(
      id: string,
      g: { vin: string; ownerId?: string; recipientId: string; categories?: Group[]; fields?: string[] | null; access?: ('history' | 'stream')[]; expiresAt?: Date; revokedAt?: Date | null; dataFrom?: Date; createdAt?: Date; origin?: 'owner' | 'checkin' },
    ) {
      const owner = g.ownerId ?? s.vehicles.get(g.vin)!.ownerId;
      const p = s.periods.filter((x) => x.vin === g.vin && x.ownerId === owner).at(-1)!;
      const createdAt = g.createdAt ?? new Date(Date.now() - 86_400_000);
      const sg = addGrant(
        p,
        {
          recipientId: g.recipientId,
          categories: g.categories ?? ['technical', 'consumption', 'location'],
          fields: g.fields ?? null,
          access: g.access ?? ['history', 'stream'],
          purpose: 'test purpose',
          dataFrom: g.dataFrom ?? BEGINNING,
          createdAt,
          expiresAt: g.expiresAt ?? new Date(Date.now() + 30 * 86_400_000),
          revokedAt: null,
          origin: g.origin ?? 'owner',
        },
        `customer:${owner}`,
        id,
      );
      if (g.revokedAt) {
        sg.revokedAt = g.revokedAt;
        sg.events.push({ at: g.revokedAt, kind: 'withdrawn', actor: `customer:${owner}` });
      }
    },
    /** A check-in code (by the hash the route computes) of the vehicle's current owner. */
    code(hash: Buffer, c: { vin: string; recipientId?: string | null; expiresAt?: Date; redeemed?: boolean; visitHours?: number }) {
      const p = openPeriod(c.vin)!;
      s.codes.set(hash.toString('hex'), {
        vin: c.vin,
        ownerId: p.ownerId,
        periodId: p.id,
        recipientId: c.recipientId ?? null,
        visitHours: c.visitHours ?? 2,
        dataFrom: toOwnership(p).from,
        expiresAt: c.expiresAt ?? new Date(Date.now() + 900_000),
        redeemedAt: c.redeemed ? new Date() : null,
      });
    },
    record(r: { vin: string; seq: number; recordedAt: Date; technical?: StoredValues | null; consumption?: StoredValues | null; location?: StoredValues | null }) {
      s.telemetry.push({ technical: null, consumption: null, location: null, ...r });
    },
    obfcm(r: ObfcmRow) {
      s.obfcm.push(r);
    },
    account(username: string, subject: string, role: string) {
      s.accounts.set(username, { username, subject, role, createdAt: new Date(), passwordHash: 'scrypt$fake' });
    },
    minted(jti: string, role: string, subject: string, revoked = false) {
      s.minted.set(jti, { role, subject, revoked });
    },
    /** Makes the named store operation reject UNAVAILABLE (the database not answering). */
    fail(op: 'rights.currentOwner' | 'consents.timeline' | 'consents.set' | 'vehicles.create') {
      s.down.add(op);
    },
  };
  return { stores, world };
}

export type ApiWorld = ReturnType<typeof createApiWorld>['world'];
