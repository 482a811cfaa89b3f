// Field-level grants (issue 26), the pure parts: which `fields` a grant may name
// (access/grants.ts checkFields, checkNewGrant), what a read through it may carry
// (recipientRead's scope.fields, grantedFields), and the one column projection every
// reader builds its select list and its lines from (proto/fields.ts projectColumns;
// storage/driver/copy-out.ts ndjsonPlan; stream/held-rows.ts lineOf).
import { describe, expect, it } from 'vitest';
import { STORED_FIELDS, checkFields, checkNewGrant, closest, grantedFields, recipientRead, type GrantFacts } from '../../access/grants.ts';
import { FIELD_COLUMNS, fieldName, projectColumns } from '../../proto/fields.ts';
import { ndjsonPlan } from '../../storage/driver/copy-out.ts';
import { lineOf } from '../../stream/held-rows.ts';
import type { CopyRow } from '../../storage/driver/copy-binary.ts';

const T = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000);
const grant = (over: Partial<GrantFacts> = {}): GrantFacts => ({
  id: 'g1',
  vin: 'WVWZZZ1JZXW000001',
  ownerId: 'alice',
  recipientId: 'insurer',
  recipientRole: 'third_party',
  categories: ['technical', 'location'],
  fields: ['technical.speedKmh', 'location.latitude', 'location.longitude'],
  access: ['history', 'stream'],
  dataFrom: T(100),
  createdAt: T(100),
  expiresAt: T(1000),
  revokedAt: null,
  periodEndedAt: null,
  ...over,
});
const insurer = { role: 'third_party', subject: 'insurer' };
const ctx = { ownerPeriods: [{ ownerId: 'alice', from: T(0), to: null }], restricted: false, now: T(500), mode: 'history' as const };

describe('checkFields', () => {
  it('absent: whole categories (null); named: those, in the catalogue order, once each', () => {
    expect(checkFields(undefined, ['technical'])).toEqual({ ok: true, fields: null });
    expect(checkFields(['location.longitude', 'technical.speedKmh', 'location.latitude', 'technical.speedKmh'], ['technical', 'location'])).toEqual({
      ok: true,
      fields: ['technical.speedKmh', 'location.latitude', 'location.longitude'],
    });
  });
  it.each([
    // a typo: named, with the closest name
    [['technical.speedKmH'], ['technical'], 'UNKNOWN_FIELD', /unknown field "technical\.speedKmH": did you mean "technical\.speedKmh"\?/],
    [['technical.sped_kmh'], ['technical'], 'UNKNOWN_FIELD', /unknown field "technical\.sped_kmh": did you mean "technical\.speedKmh"\?/],
    [['tecnical.odometerKm'], ['technical'], 'UNKNOWN_FIELD', /did you mean "technical\.odometerKm"/],
    // nothing close: no guess
    [['technical.warpFactor'], ['technical'], 'UNKNOWN_FIELD', /^fields: unknown field "technical\.warpFactor" \(GET \/v1\/catalogue/],
    // the record keys are not fields to name
    [['recordedAt'], ['technical'], 'UNKNOWN_FIELD', /unknown field "recordedAt"/],
    [['location.latitude'], ['technical'], 'FIELD_OUTSIDE_CATEGORIES', /"location\.latitude" is a field of category "location", which the grant does not cover \(categories: technical\)/],
    [['technical.speedKmh'], ['technical', 'location'], 'CATEGORY_WITHOUT_FIELDS', /none of category "location"'s fields is named/],
    [[], ['technical'], 'CATEGORY_WITHOUT_FIELDS', /at least one field/],
  ] as const)('%j within %j: %s', (fields, cats, code, problem) => {
    const r = checkFields(fields, cats);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe(code);
    expect(!r.ok && r.problem).toMatch(problem);
  });
  it('checks against the catalogue handed in; its fields that are no telemetry column go whole (connectivity)', () => {
    const known = [...STORED_FIELDS, { name: 'connectivity.reason', category: 'connectivity' }];
    const cats = ['technical', 'connectivity'] as Parameters<typeof checkFields>[1];
    expect(checkFields(['connectivity.reason'], cats, known)).toMatchObject({ ok: false, code: 'FIELD_NOT_SELECTABLE', problem: expect.stringMatching(/shared whole/) });
    // A category shared whole needs no field named beside the others'.
    expect(checkFields(['technical.speedKmh'], cats, known)).toEqual({ ok: true, fields: ['technical.speedKmh'] });
    expect(checkFields(['connectivity.raeson'], cats, STORED_FIELDS)).toMatchObject({ ok: false, code: 'UNKNOWN_FIELD' });
  });
  it('closest: case-insensitive, within a third of the length, else null', () => {
    const names = STORED_FIELDS.map((f) => f.name);
    expect(closest('LOCATION.LATITUDE', names)).toBe('location.latitude');
    expect(closest('location.lat', names)).toBeNull();
    expect(closest('x', names)).toBeNull();
  });
  it('checkNewGrant carries the fields through, or refuses with their code', () => {
    const ok = checkNewGrant({ categories: ['consumption'], fields: ['consumption.totalDistanceKm'] }, { role: 'workshop' }, T(0), 30);
    expect(ok).toMatchObject({ ok: true, categories: ['consumption'], fields: ['consumption.totalDistanceKm'] });
    expect(checkNewGrant({ categories: ['consumption'] }, { role: 'workshop' }, T(0), 30)).toMatchObject({ ok: true, fields: null });
    expect(checkNewGrant({ categories: ['consumption'], fields: ['technical.speedKmh'] }, { role: 'workshop' }, T(0), 30)).toMatchObject({ ok: false, code: 'FIELD_OUTSIDE_CATEGORIES' });
  });
});

describe('the read scope of a field-level grant', () => {
  it('carries the grant\'s fields, narrowed to the categories read', () => {
    const all = recipientRead(insurer, grant(), ctx);
    expect(all.ok && all.scope.fields).toEqual(['technical.speedKmh', 'location.latitude', 'location.longitude']);
    const loc = recipientRead(insurer, grant(), { ...ctx, want: ['location'] });
    expect(loc.ok && loc.scope.categories).toEqual(['location']);
    expect(loc.ok && loc.scope.fields).toEqual(['location.latitude', 'location.longitude']);
    const whole = recipientRead(insurer, grant({ fields: null }), ctx);
    expect(whole.ok && whole.scope.fields).toBeNull();
  });
  it('grantedFields keeps the fields of the categories given only', () => {
    expect(grantedFields(['technical.speedKmh', 'location.latitude'], ['technical'])).toEqual(['technical.speedKmh']);
    expect(grantedFields(null, ['technical'])).toBeNull();
  });
});

describe('projectColumns', () => {
  it('every column of the categories without fields; only the named ones with', () => {
    expect(projectColumns(['location']).map(fieldName)).toEqual(['location.latitude', 'location.longitude', 'location.headingDeg', 'location.altitudeM', 'location.accuracyM']);
    expect(projectColumns(['technical', 'location'], ['location.longitude', 'technical.speedKmh']).map((c) => c.column)).toEqual(['speed_kmh', 'longitude']);
    // a field of a category not read stays out
    expect(projectColumns(['technical'], ['location.longitude', 'technical.speedKmh']).map((c) => c.column)).toEqual(['speed_kmh']);
  });
});

describe('line builders of a field-level projection', () => {
  it('the export plan selects only the named columns', () => {
    // The value columns of the select list (the record keys and group flags come with every line).
    const values = (select: string) => select.split(', ').filter((c) => FIELD_COLUMNS.some((f) => f.column === c));
    const plan = ndjsonPlan('WVWZZZ1JZXW000001', ['technical', 'location'], { fields: ['technical.speedKmh', 'location.latitude'] });
    expect(values(plan.select)).toEqual(['speed_kmh', 'latitude']);
    expect(plan.select.split(', ')).toEqual(expect.arrayContaining(['has_technical', 'has_location']));
    // unchanged without fields
    expect(values(ndjsonPlan('WVWZZZ1JZXW000001', ['location']).select)).toEqual(['latitude', 'longitude', 'heading_deg', 'altitude_m', 'accuracy_m']);
  });
  it('a held row\'s stream line carries the named fields only (others of the same category left out)', () => {
    const technical: Record<string, number> = {};
    for (const c of FIELD_COLUMNS) if (c.group === 'technical') technical[c.jsName] = c.id + 0.5;
    const row = { vin: 'WVWZZZ1JZXW000001', seq: 7, recordedAtMs: T(200).getTime(), technical, consumption: null, location: { latitude: 48.1, longitude: 11.5, headingDeg: 90 } } as unknown as CopyRow;
    const p = { categories: ['technical', 'location'] as const, nulled: [], fields: ['technical.speedKmh', 'location.latitude', 'location.longitude'] };
    const line = JSON.parse(lineOf(row, p)) as Record<string, unknown>;
    expect(line.technical).toEqual({ speedKmh: 2.5 });
    expect(line.location).toEqual({ latitude: 48.1, longitude: 11.5 });
    expect('consumption' in line).toBe(false);
    // the same row, whole categories: every field
    const whole = JSON.parse(lineOf(row, { categories: ['technical'], nulled: [] })) as { technical: Record<string, number> };
    expect(Object.keys(whole.technical)).toHaveLength(Object.keys(technical).length);
  });
});
