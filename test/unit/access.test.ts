// The access policy (access/grants.ts): pure decisions, table-tested with exact answers.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkNewGrant, chooseGrant, grantEnd, grantStatus, intersect, obfcmShareable, ownerRead, recipientRead, type GrantFacts, type Period } from '../../access/grants.ts';

const T = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000);
const grant = (over: Partial<GrantFacts> = {}): GrantFacts => ({
  id: 'g1',
  vin: 'WVWZZZ1JZXW000001',
  ownerId: 'alice',
  recipientId: 'insurer',
  recipientRole: 'third_party',
  categories: ['technical', 'location'],
  fields: null,
  access: ['history', 'stream'],
  dataFrom: T(100),
  createdAt: T(100),
  expiresAt: T(1000),
  revokedAt: null,
  periodEndedAt: null,
  ...over,
});
const alice: Period[] = [{ ownerId: 'alice', from: T(0), to: null }];
const insurer = { role: 'third_party', subject: 'insurer' };
const ctx = (over: Partial<Parameters<typeof recipientRead>[2]> = {}) => ({ ownerPeriods: alice, restricted: false, now: T(500), mode: 'history' as const, ...over });

describe('grantStatus', () => {
  it.each([
    ['active', {}, 500],
    ['expired', {}, 1000],
    ['revoked', { revokedAt: T(400) }, 500],
    ['ended', { periodEndedAt: T(300) }, 500],
    // whichever came first
    ['ended', { periodEndedAt: T(300), revokedAt: T(400) }, 1200],
    ['revoked', { periodEndedAt: T(450), revokedAt: T(400) }, 1200],
    ['expired', { revokedAt: T(1100) }, 1200],
    // not yet
    ['active', { revokedAt: T(600) }, 500],
  ] as const)('%s (%j at %i s)', (want, over, now) => {
    expect(grantStatus(grant(over), T(now))).toBe(want);
  });
  it('grantEnd is the earliest of expiry, revocation, transfer', () => {
    expect(grantEnd(grant())).toEqual(T(1000));
    expect(grantEnd(grant({ revokedAt: T(700), periodEndedAt: T(800) }))).toEqual(T(700));
  });
});

describe('recipientRead', () => {
  it('the recipient of an active grant reads its categories, from dataFrom to the grant\'s end, within the owner\'s periods', () => {
    expect(recipientRead(insurer, grant(), ctx())).toEqual({
      ok: true,
      scope: { grantId: 'g1', ownerId: 'alice', categories: ['technical', 'location'], connectivity: false, fields: null, windows: [{ from: T(100), to: T(1000) }] },
    });
  });
  it.each([
    ['no grant', insurer, null, {}, 'NOT_FOUND'],
    ['another subject', { role: 'third_party', subject: 'other' }, grant(), {}, 'NOT_FOUND'],
    ['same subject, another role', { role: 'workshop', subject: 'insurer' }, grant(), {}, 'NOT_FOUND'],
    ['the owner', { role: 'customer', subject: 'alice' }, grant(), {}, 'NOT_FOUND'],
    ['revoked', insurer, grant({ revokedAt: T(400) }), {}, 'NOT_FOUND'],
    ['expired', insurer, grant({ expiresAt: T(450) }), {}, 'NOT_FOUND'],
    ['ended by transfer', insurer, grant({ periodEndedAt: T(450) }), {}, 'NOT_FOUND'],
    ['category not granted', insurer, grant(), { need: 'consumption' as const }, 'NOT_FOUND'],
    ['restricted', insurer, grant(), { restricted: true }, 'RESTRICTED'],
    ['stream-only grant read as history', insurer, grant({ access: ['stream'] }), {}, 'MODE_NOT_GRANTED'],
    // a stranger learns nothing, even about a restricted vehicle
    ['restricted, another subject', { role: 'third_party', subject: 'x' }, grant(), { restricted: true }, 'NOT_FOUND'],
  ] as const)('%s → %s', (_l, who, g, over, refusal) => {
    expect(recipientRead(who, g, ctx(over))).toEqual({ ok: false, refusal });
  });
  it('windows: the granting owner\'s periods only, cut to dataFrom, the end and the asked range', () => {
    const periods: Period[] = [
      { ownerId: 'alice', from: T(0), to: T(200) },
      { ownerId: 'bob', from: T(200), to: T(300) },
      { ownerId: 'alice', from: T(300), to: null },
    ];
    const g = grant({ dataFrom: T(150), createdAt: T(350) });
    const d = recipientRead(insurer, g, ctx({ ownerPeriods: periods }));
    expect(d.ok && d.scope.windows).toEqual([
      { from: T(150), to: T(200) },
      { from: T(300), to: T(1000) },
    ]);
    const r = recipientRead(insurer, g, ctx({ ownerPeriods: periods, requested: { from: T(190), to: T(400) } }));
    expect(r.ok && r.scope.windows).toEqual([
      { from: T(190), to: T(200) },
      { from: T(300), to: T(400) },
    ]);
    const none = recipientRead(insurer, g, ctx({ ownerPeriods: periods, requested: { from: T(210), to: T(290) } }));
    expect(none.ok && none.scope.windows).toEqual([]);
  });
  it('categories: the grant\'s ∩ wanted ∩ needed', () => {
    const d = recipientRead(insurer, grant({ categories: ['technical', 'consumption', 'location'] }), ctx({ want: ['location', 'consumption'] }));
    expect(d.ok && d.scope.categories).toEqual(['consumption', 'location']);
    const w = recipientRead(insurer, grant({ categories: ['technical', 'consumption'] }), ctx({ need: 'consumption' }));
    expect(w.ok && w.scope.categories).toEqual(['consumption']);
  });
  it('windows never leave the grant, the periods or the asked range (property)', () => {
    const t = fc.integer({ min: 0, max: 2000 });
    fc.assert(
      fc.property(t, t, t, t, fc.option(t), fc.option(t), (a, b, df, exp, rf, rt) => {
        const periods: Period[] = [{ ownerId: 'alice', from: T(Math.min(a, b)), to: T(Math.max(a, b) + 1) }];
        const g = grant({ dataFrom: T(df), createdAt: T(0), expiresAt: T(exp + 1) });
        const d = recipientRead(insurer, g, ctx({ now: T(0), ownerPeriods: periods, requested: { from: rf === null ? null : T(rf), to: rt === null ? null : T(rt) } }));
        if (!d.ok) return;
        for (const w of d.scope.windows) {
          expect(w.to).not.toBeNull();
          expect(w.from.getTime()).toBeGreaterThanOrEqual(Math.max(periods[0]!.from.getTime(), g.dataFrom.getTime(), rf === null ? 0 : T(rf).getTime()));
          expect(w.to!.getTime()).toBeLessThanOrEqual(Math.min(periods[0]!.to!.getTime(), g.expiresAt.getTime(), rt === null ? Infinity : T(rt).getTime()));
          expect(w.to!.getTime()).toBeGreaterThan(w.from.getTime());
        }
      }),
    );
  });
});

describe('chooseGrant', () => {
  it('picks an active grant of the caller covering the category and mode, reaching furthest back', () => {
    const ws = { role: 'workshop', subject: 'garage' };
    const base = { recipientId: 'garage', recipientRole: 'workshop' as const, categories: ['consumption' as const] };
    const gs = [
      grant({ ...base, id: 'late', dataFrom: T(300) }),
      grant({ ...base, id: 'early', dataFrom: T(50) }),
      grant({ ...base, id: 'revoked', dataFrom: T(0), revokedAt: T(10) }),
      grant({ ...base, id: 'stream', dataFrom: T(0), access: ['stream'] }),
      grant({ ...base, id: 'tech', dataFrom: T(0), categories: ['technical'] }),
      grant({ id: 'others', dataFrom: T(0), categories: ['consumption'] }),
    ];
    expect(chooseGrant(ws, gs, T(500), 'consumption', 'history')?.id).toBe('early');
    expect(chooseGrant(ws, gs, T(500), 'location', 'history')).toBeNull();
  });
});

describe('ownerRead', () => {
  it('the current owner reads their own periods; anyone else: NOT_FOUND', () => {
    const p: Period[] = [{ ownerId: 'alice', from: T(0), to: T(10) }, { ownerId: 'bob', from: T(10), to: T(20) }, { ownerId: 'alice', from: T(20), to: null }];
    expect(ownerRead({ role: 'customer', subject: 'alice' }, 'alice', p)).toEqual({ ok: true, windows: [{ from: T(0), to: T(10) }, { from: T(20), to: null }] });
    expect(ownerRead({ role: 'customer', subject: 'bob' }, 'alice', p)).toEqual({ ok: false, refusal: 'NOT_FOUND' });
    expect(ownerRead({ role: 'workshop', subject: 'alice' }, 'alice', p)).toEqual({ ok: false, refusal: 'NOT_FOUND' });
    expect(ownerRead({ role: 'customer', subject: 'alice' }, null, p)).toEqual({ ok: false, refusal: 'NOT_FOUND' });
  });
});

describe('obfcmShareable and intersect', () => {
  it('shares under the defaults, refuses on a CO2-sharing refusal or a restriction', () => {
    expect(obfcmShareable(null)).toBe(true);
    expect(obfcmShareable({ co2Sharing: true, restricted: false })).toBe(true);
    expect(obfcmShareable({ co2Sharing: false, restricted: false })).toBe(false);
    expect(obfcmShareable({ co2Sharing: true, restricted: true })).toBe(false);
  });
  it('intersects half-open windows', () => {
    expect(intersect({ from: T(0), to: T(10) }, { from: T(5), to: null })).toEqual({ from: T(5), to: T(10) });
    expect(intersect({ from: T(0), to: T(10) }, { from: T(10), to: null })).toBeNull();
  });
});

describe('checkNewGrant', () => {
  const now = T(0);
  const tp = { role: 'third_party' };
  it('fills the defaults', () => {
    expect(checkNewGrant({ categories: ['location', 'technical'] }, tp, now, 30)).toEqual({
      ok: true,
      categories: ['technical', 'location'],
      fields: null,
      access: ['history', 'stream'],
      dataFrom: null,
      expiresAt: new Date(now.getTime() + 30 * 86_400_000),
    });
  });
  it.each([
    [{ categories: ['speed'] }, tp, /^categories: unknown category "speed"/],
    [{ categories: [] }, tp, /^categories: at least one/],
    [{ categories: ['technical'], access: ['live'] }, tp, /^access: unknown access "live"/],
    [{ categories: ['technical'], expiresAt: now }, tp, /^expiresAt: must be in the future/],
    [{ categories: ['technical'], expiresAt: new Date(now.getTime() + 31 * 86_400_000) }, tp, /^expiresAt: at most 30 days/],
    [{ categories: ['technical'] }, null, /^recipientId: not a registered/],
    [{ categories: ['technical'] }, { role: 'customer' }, /^recipientId: not a registered/],
  ])('%j for %j: refused', (req, rec, problem) => {
    const r = checkNewGrant(req, rec, now, 30);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problem).toMatch(problem);
  });
});
