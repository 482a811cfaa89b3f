// VSS names (README "Data that explains itself"): every stored field has a catalogue entry
// whose VSS path is valid against the shipped overlay (proto/vss/cardata-overlay.vspec,
// parsed here) plus the pinned standard paths (proto/vss/standard-paths.json), in the unit
// those name; and the one conversion (proto/vss-records.ts) keys and converts records.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { CATALOGUE } from '../../api/catalogue.ts';
import { FIELD_COLUMNS } from '../../proto/fields.ts';
import { VSS_NAMES, VSS_OVERLAY_FILE, VSS_RELEASE, VSS_STANDARD_FILE } from '../../proto/vss.ts';
import { toVssValue, vssCsvHeader, vssCsvRow, vssLine, vssRecord } from '../../proto/vss-records.ts';
import { vssNdjson } from '../../api/export.ts';

const ROOT = new URL('../../', import.meta.url);

type VNode = Record<string, string>;

/**
 * The YAML subset .vspec files use: top-level `Path.To.Node:` keys, each with indented
 * `key: value` members; a deeper-indented line continues the member before it (VSS
 * descriptions); `#` starts a comment line. Anything else fails the parse.
 */
function parseVspec(text: string): Map<string, VNode> {
  const nodes = new Map<string, VNode>();
  let node: VNode | null = null;
  let last: string | null = null;
  for (const [i, raw] of text.split('\n').entries()) {
    if (/^\s*(#.*)?$/.test(raw)) continue;
    const top = /^([A-Z][A-Za-z0-9]*(?:\.[A-Z][A-Za-z0-9]*)*):\s*$/.exec(raw);
    if (top) {
      if (nodes.has(top[1]!)) throw new Error(`line ${i + 1}: ${top[1]} declared twice`);
      node = {};
      nodes.set(top[1]!, node);
      last = null;
      continue;
    }
    const member = /^ {2}([a-z]+):\s*(.*)$/.exec(raw);
    if (member && node) {
      last = member[1]!;
      node[last] = member[2]!.trim();
      continue;
    }
    if (/^ {3,}\S/.test(raw) && node && last) {
      node[last] = `${node[last]} ${raw.trim()}`;
      continue;
    }
    throw new Error(`line ${i + 1}: not in the .vspec subset: ${raw}`);
  }
  return nodes;
}

const overlay = parseVspec(readFileSync(new URL(VSS_OVERLAY_FILE, ROOT), 'utf8'));
const standard = JSON.parse(readFileSync(new URL(VSS_STANDARD_FILE, ROOT), 'utf8')) as {
  release: string;
  signals: Record<string, { type: string; datatype: string; unit: string; description: string }>;
};

/** The catalogue's unit (from the .proto comment) as a VSS unit id, and powers of ten between VSS units. */
const CATALOGUE_UNIT: Record<string, string> = {
  kilometres: 'km',
  'kilometres per hour': 'km/h',
  'percent of capacity (0-100)': 'percent',
  'percent (0-100)': 'percent',
  'revolutions per minute': 'rpm',
  'degrees Celsius': 'Celsius',
  volts: 'V',
  litres: 'l',
  'kilowatt-hours': 'kWh',
  'decimal degrees (-90 to 90)': 'degrees',
  'decimal degrees (-180 to 180)': 'degrees',
  'degrees clockwise from true north (0 to <360)': 'degrees',
  metres: 'm',
};
const SCALE10: Record<string, number> = { 'km>m': 3 };

describe('the VSS names of the catalogue', () => {
  it('pins a standard list of the release the table names', () => {
    expect(standard.release).toBe(`COVESA VSS ${VSS_RELEASE}`);
    expect(Object.keys(standard.signals).length).toBeGreaterThan(10);
  });

  it('gives every stored field a catalogue entry with a VSS path of the overlay or the pinned list, in its unit and datatype', () => {
    expect(FIELD_COLUMNS.length).toBeGreaterThan(20);
    for (const c of FIELD_COLUMNS) {
      const name = `${c.group}.${c.jsName}`;
      const entry = CATALOGUE.find((f) => f.name === name);
      expect(entry, name).toBeDefined();
      expect(entry!.vss, name).not.toBeNull();
      const std = standard.signals[entry!.vss!];
      const ov = overlay.get(entry!.vss!);
      expect(!!std !== !!ov, `${name}: ${entry!.vss} in exactly one of overlay and pinned list`).toBe(true);
      const node = std ?? ov!;
      expect(node.type, name).toBe('sensor');
      expect(entry!.vssUnit, name).toBe(node.unit);
      expect(entry!.vssDatatype, name).toBe(node.datatype);
      expect(VSS_NAMES[name]!.overlay === true, `${name}: overlay flag`).toBe(!!ov);
      // Units consistent: the same unit, or a known power of ten the conversion applies.
      const from = CATALOGUE_UNIT[entry!.unit];
      expect(from, `${name}: catalogue unit "${entry!.unit}" known`).toBeDefined();
      const to = entry!.vssUnit!;
      expect(VSS_NAMES[name]!.scale10 ?? 0, `${name}: ${from} → ${to}`).toBe(from === to ? 0 : SCALE10[`${from}>${to}`]);
    }
  });

  it('lists no VSS path twice and leaves record metadata without one', () => {
    const paths = CATALOGUE.map((f) => f.vss).filter((p) => p !== null);
    expect(new Set(paths).size).toBe(paths.length);
    for (const n of ['vin', 'seq', 'recordedAt']) expect(CATALOGUE.find((f) => f.name === n)?.vss).toBeNull();
    for (const name of Object.keys(VSS_NAMES)) expect(CATALOGUE.some((f) => f.name === name), name).toBe(true);
  });

  it('ships an overlay whose nodes are declared under declared branches, each with type, unit, datatype and description', () => {
    expect(overlay.size).toBeGreaterThan(8);
    const used = new Set(CATALOGUE.map((f) => f.vss));
    for (const [path, n] of overlay) {
      expect(n.description, path).toBeTruthy();
      const parent = path.slice(0, path.lastIndexOf('.'));
      expect(parent === 'Vehicle' || overlay.get(parent)?.type === 'branch', `${path}: parent ${parent} declared as a branch`).toBe(true);
      expect(standard.signals[path], `${path} does not redefine a standard signal`).toBeUndefined();
      if (n.type === 'branch') continue;
      expect(n.type, path).toBe('sensor');
      expect(n.unit, path).toBeTruthy();
      expect(['float', 'double', 'uint8', 'uint16', 'uint32', 'int8', 'int16', 'int32']).toContain(n.datatype);
      expect(used.has(path), `${path} is named by the catalogue`).toBe(true);
    }
  });

  it('refuses a file outside the subset (the parser is strict)', () => {
    expect(() => parseVspec('Vehicle.X:\n  type: branch\nnot yaml at all\n')).toThrow(/line 3/);
    expect(() => parseVspec('Vehicle.X:\n  type: branch\nVehicle.X:\n  type: branch\n')).toThrow(/twice/);
  });
});

describe('the conversion to VSS names and units', () => {
  it('converts kilometres to metres exactly and rounds integer datatypes', () => {
    expect(toVssValue('technical.odometerKm', 56792)).toBe(56_792_000);
    expect(toVssValue('technical.odometerKm', 12345.678)).toBe(12_345_678);
    expect(toVssValue('technical.odometerKm', 0.0004)).toBe(0);
    expect(toVssValue('technical.remainingRangeKm', 412.3456)).toBe(412_346);
    expect(toVssValue('technical.fuelLevelPct', 55.5)).toBe(56);
    expect(toVssValue('technical.speedKmh', 88.5)).toBe(88.5);
    expect(toVssValue('consumption.totalDistanceKm', 1234.5)).toBe(1234.5);
    expect(toVssValue('location.latitude', 48.137154)).toBe(48.137154);
    expect(toVssValue('no.suchField', 1.5)).toBe(1.5);
  });

  it('keys a record line by VSS path, passing other members through in place', () => {
    const line = JSON.stringify({
      vin: 'WBA00000000000001',
      seq: 7,
      recordedAt: '2026-11-29T07:40:01.000Z',
      receivedAt: '2026-11-29T07:40:01.250Z',
      technical: { speedKmh: 88.5, odometerKm: 56792 },
      consumption: null,
      location: { latitude: 48.137154, longitude: 11.576124 },
    });
    const out = JSON.parse(vssLine(line)) as Record<string, unknown>;
    expect(out).toEqual({
      vin: 'WBA00000000000001',
      seq: 7,
      recordedAt: '2026-11-29T07:40:01.000Z',
      receivedAt: '2026-11-29T07:40:01.250Z',
      'Vehicle.Speed': 88.5,
      'Vehicle.TraveledDistance': 56_792_000,
      'Vehicle.CurrentLocation.Latitude': 48.137154,
      'Vehicle.CurrentLocation.Longitude': 11.576124,
    });
    expect(Object.keys(out).slice(0, 4)).toEqual(['vin', 'seq', 'recordedAt', 'receivedAt']);
    // A field the table does not know keeps its catalogue name rather than disappear.
    expect(vssRecord({ vin: 'X', technical: { newThing: 3 } })).toEqual({ vin: 'X', 'technical.newThing': 3 });
  });

  it('maps a CSV header and its rows, leaving empty cells and metadata as they are', () => {
    const cols = ['vin', 'seq', 'recordedAt', 'receivedAt', 'technical.odometerKm', 'technical.speedKmh', 'location.latitude'];
    expect(vssCsvHeader(cols)).toEqual(['vin', 'seq', 'recordedAt', 'receivedAt', 'Vehicle.TraveledDistance', 'Vehicle.Speed', 'Vehicle.CurrentLocation.Latitude']);
    expect(vssCsvRow(cols, ['WBA00000000000001', 3, '2026-11-29T07:40:01.000Z', '', 100.25, '', 1.5])).toEqual([
      'WBA00000000000001',
      3,
      '2026-11-29T07:40:01.000Z',
      '',
      100_250,
      '',
      1.5,
    ]);
  });

  it('rewrites NDJSON chunks whose lines are split across chunks, and stops its source when the consumer stops', async () => {
    const chunks = ['{"vin":"A","seq":1,"technical":{"odo', 'meterKm":1.5}}\n{"vin":"B","seq":2,"technical":null}\n{"vin":"C","seq":3,', '"location":{"latitude":1}}'];
    let out = '';
    for await (const c of vssNdjson((async function* () { yield* chunks; })())) out += c;
    expect(out.split('\n').filter(Boolean).map((l) => JSON.parse(l))).toEqual([
      { vin: 'A', seq: 1, 'Vehicle.TraveledDistance': 1500 },
      { vin: 'B', seq: 2 },
      { vin: 'C', seq: 3, 'Vehicle.CurrentLocation.Latitude': 1 },
    ]);
    expect(out.endsWith('\n')).toBe(true);
    let finished = false;
    const source = (async function* () {
      try {
        for (let i = 0; i < 1000; i++) yield `{"vin":"X","seq":${i}}\n`;
      } finally {
        finished = true;
      }
    })();
    let n = 0;
    for await (const _ of vssNdjson(source)) if (++n === 3) break;
    expect(finished).toBe(true);
  });

  it('scales any decimal reading of kilometres to the nearest metre, as arithmetic on the decimal would', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5_000_000_000 }), fc.integer({ min: 0, max: 6 }), (units, decimals) => {
        // A reading with `decimals` decimal places, as a vehicle sends it.
        const km = units / 10 ** decimals;
        const exact = Math.round(km * 1000);
        const got = toVssValue('technical.odometerKm', km);
        expect(Number.isInteger(got)).toBe(true);
        // Equal to rounding the exact decimal product: at most a rounding tie apart from the float product.
        expect(Math.abs(got - exact)).toBeLessThanOrEqual(1);
        if (decimals <= 3) expect(got).toBe(units * 10 ** (3 - decimals));
      }),
    );
  });
});
