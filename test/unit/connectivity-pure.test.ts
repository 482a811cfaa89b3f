// Connectivity's pure pieces (issue 26): the export's categories, the ZIP's connectivity lines.
import { describe, expect, it } from 'vitest';
import { parseExportCategories } from '../../api/categories.ts';
import { connectivityNdjson } from '../../api/routes/connectivity.ts';
import { DATA_CATEGORIES, telemetryGroups } from '../../proto/connectivity.ts';
import { CATEGORIES } from '../../access/grants.ts';

describe('export categories', () => {
  it.each([
    ['technical,location', { ok: true, groups: ['technical', 'location'], connectivity: false }],
    ['location,technical,connectivity', { ok: true, groups: ['technical', 'location'], connectivity: true }],
    ['connectivity', { ok: true, groups: [], connectivity: true }],
    [' connectivity , connectivity ', { ok: true, groups: [], connectivity: true }],
  ])('%j', (list, want) => expect(parseExportCategories(list)).toEqual(want));

  it.each([
    ['', 'at least one category'],
    ['connectivty', 'unknown category "connectivty": use technical, consumption, location, connectivity'],
    ['connectivity,gps', 'unknown category "gps": use technical, consumption, location, connectivity'],
  ])('refuses %j', (list, message) => expect(parseExportCategories(list)).toEqual({ ok: false, message }));
});

describe('categories', () => {
  it('grants validate against the one list: the telemetry groups and connectivity', () => {
    expect(CATEGORIES).toEqual(DATA_CATEGORIES);
    expect(DATA_CATEGORIES).toEqual(['technical', 'consumption', 'location', 'connectivity']);
    expect(telemetryGroups(['connectivity', 'location', 'technical'])).toEqual(['technical', 'location']);
  });
});

describe('connectivity.ndjson', () => {
  it('one line per connection, open ones with null end and reason', () => {
    const vin = 'WBA00000000000001';
    const text = connectivityNdjson([
      { vin, connectedAt: new Date('2026-12-01T10:00:00.000Z'), disconnectedAt: new Date('2026-12-01T10:05:00.250Z'), reason: 'keepalive_timeout', coalesced: 0 },
      { vin, connectedAt: new Date('2026-12-01T11:00:00.000Z'), disconnectedAt: null, reason: null, coalesced: 3 },
    ]);
    expect(text).toBe(
      `{"vin":"${vin}","connectedAt":"2026-12-01T10:00:00.000Z","disconnectedAt":"2026-12-01T10:05:00.250Z","reason":"keepalive_timeout","coalesced":0}\n` +
        `{"vin":"${vin}","connectedAt":"2026-12-01T11:00:00.000Z","disconnectedAt":null,"reason":null,"coalesced":3}\n`,
    );
    expect(connectivityNdjson([])).toBe('');
  });
});
