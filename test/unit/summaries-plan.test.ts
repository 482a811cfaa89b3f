// The pure half of the hourly summaries: which hours a change cuts, and how a bucketed read
// splits into whole hours (from the summaries) and partial ones (from the rows).
import { describe, expect, it } from 'vitest';
import { HOUR_MS, ceilHour, edgeHours, floorHour, planRead, wholeHours } from '../../storage/repos/summaries.ts';

const t = (s: string) => new Date(s);
const iso = (d: Date | null) => d?.toISOString() ?? null;

describe('hour arithmetic', () => {
  it('rounds to whole UTC hours, whole hours stay', () => {
    expect(iso(floorHour(t('2026-03-01T10:30:00.001Z')))).toBe('2026-03-01T10:00:00.000Z');
    expect(iso(ceilHour(t('2026-03-01T10:30:00.001Z')))).toBe('2026-03-01T11:00:00.000Z');
    expect(iso(floorHour(t('2026-03-01T10:00:00.000Z')))).toBe('2026-03-01T10:00:00.000Z');
    expect(iso(ceilHour(t('2026-03-01T10:00:00.000Z')))).toBe('2026-03-01T10:00:00.000Z');
    expect(iso(floorHour(t('1999-12-31T23:59:59.999Z')))).toBe('1999-12-31T23:00:00.000Z');
  });

  it('wholeHours: the hours inside, none when the span holds no whole hour', () => {
    expect(wholeHours(t('2026-03-01T10:30:00Z'), t('2026-03-01T13:15:00Z'))).toEqual({ from: t('2026-03-01T11:00:00Z'), to: t('2026-03-01T13:00:00Z') });
    expect(wholeHours(t('2026-03-01T10:30:00Z'), t('2026-03-01T11:15:00Z'))).toBeNull();
    expect(wholeHours(t('2026-03-01T10:00:00Z'), null)).toEqual({ from: t('2026-03-01T10:00:00Z'), to: null });
  });

  it('edgeHours: the hours cut, once each', () => {
    expect(edgeHours(t('2026-03-01T10:30:00Z'), t('2026-03-01T13:15:00Z')).map(iso)).toEqual(['2026-03-01T10:00:00.000Z', '2026-03-01T13:00:00.000Z']);
    expect(edgeHours(t('2026-03-01T10:30:00Z'), t('2026-03-01T10:45:00Z')).map(iso)).toEqual(['2026-03-01T10:00:00.000Z']);
    expect(edgeHours(t('2026-03-01T10:00:00Z'), t('2026-03-01T12:00:00Z'))).toEqual([]);
    expect(edgeHours(t('2026-03-01T10:00:00.001Z'), null).map(iso)).toEqual(['2026-03-01T10:00:00.000Z']);
  });
});

describe('planRead', () => {
  const range = { from: t('2026-03-01T10:30:00Z'), to: t('2026-03-02T10:30:00Z') };
  const always = [{ from: new Date(0), to: null }];

  it('whole hours from the summaries, the partial hours at the range edges from the rows', () => {
    expect(planRead(always, range, HOUR_MS)).toEqual([
      { source: 'rows', from: range.from, to: t('2026-03-01T11:00:00Z') },
      { source: 'hourly', from: t('2026-03-01T11:00:00Z'), to: t('2026-03-02T10:00:00Z') },
      { source: 'rows', from: t('2026-03-02T10:00:00Z'), to: range.to },
    ]);
  });

  it('cuts at ownership periods: a transfer inside an hour reads that hour from the rows', () => {
    const transfer = t('2026-03-01T18:20:00Z');
    const plan = planRead([{ from: new Date(0), to: transfer }], range, 3 * HOUR_MS);
    expect(plan.at(-1)).toEqual({ source: 'rows', from: t('2026-03-01T18:00:00Z'), to: transfer });
    expect(plan.every((p) => p.to <= transfer)).toBe(true);
    expect(planRead([{ from: transfer, to: null }], range, 3 * HOUR_MS)[0]).toEqual({ source: 'rows', from: transfer, to: t('2026-03-01T19:00:00Z') });
  });

  it('buckets that are not whole hours read the rows only; a period outside the range reads nothing', () => {
    expect(planRead(always, range, 15 * 60_000)).toEqual([{ source: 'rows', from: range.from, to: range.to }]);
    expect(planRead(always, range, 90 * 60_000).every((p) => p.source === 'rows')).toBe(true);
    expect(planRead([{ from: t('2020-01-01T00:00:00Z'), to: t('2021-01-01T00:00:00Z') }], range, HOUR_MS)).toEqual([]);
  });
});
