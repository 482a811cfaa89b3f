// The data catalogue: every stored field with unit, category, purpose, legal basis and
// retention. Fields and units come from the .proto (proto/fields.ts reflects it);
// purposes, legal bases and retention come from the one table below. Nothing is listed twice.
import { FIELD_COLUMNS } from '../proto/fields.ts';
import { VSS_NAMES } from '../proto/vss.ts';
import type { DataCategory } from '../proto/connectivity.ts';

export interface Purpose {
  purpose: string;
  legalBasis: string;
  retention: string;
  recipients: string;
}

/** The one table of purposes (GDPR Art. 13/14/15(1)(a)-(d)), by category. */
export const PURPOSES: Readonly<Record<DataCategory, Purpose>> = {
  connectivity: {
    purpose: "Telling the owner (and whom they grant it) whether the vehicle is online, since when, and why a connection ended; operating and securing the connected service (failed logins, unstable links).",
    legalBasis: 'GDPR Art. 6(1)(b): performance of the connected-services contract with the owner.',
    retention: 'As technical data: while the owner owns the vehicle, then RETENTION_AFTER_CONTRACT_DAYS after the ownership ends (and RETENTION_DAYS when set); or until the owner erases it.',
    recipients: 'The owner; third parties and workshops the owner grants connectivity access to (every read disclosed to the owner).',
  },
  technical: {
    purpose: 'Operation, maintenance and diagnostics of the vehicle; the connected services the owner uses.',
    legalBasis: 'GDPR Art. 6(1)(b): performance of the connected-services contract with the owner.',
    retention: 'While the owner owns the vehicle, then RETENTION_AFTER_CONTRACT_DAYS (default 7 years) after the ownership ends; or until the owner erases it.',
    recipients: 'The owner; the workshops and third parties the owner grants access to (Data Act Art. 5), each read disclosed to the owner.',
  },
  consumption: {
    purpose:
      'On-board fuel and energy consumption monitoring (Regulation (EU) 2017/1151 Annex XXII); its transmission to the European Commission and national authorities (Regulation (EU) 2021/392); the owner\'s consumption statistics; servicing by workshops.',
    legalBasis:
      'GDPR Art. 6(1)(c): legal obligation under (EU) 2021/392 for the shareable copy, which the owner may refuse (co2Sharing); Art. 6(1)(b) for the owner\'s own record.',
    retention:
      "Owner's record: as technical data. Shareable readings: OBFCM_RETENTION_DAYS (default 7 years) after measurement; an erasure removes them once the owner has refused CO2 sharing.",
    recipients: 'The owner; authorities (shareable readings only, unless refused or restricted); workshops and third parties the owner grants access to, e.g. at a workshop visit (every read disclosed to the owner).',
  },
  location: {
    purpose: 'Showing the owner where the vehicle is and where it went (find my vehicle, trip history).',
    legalBasis: 'GDPR Art. 6(1)(a): consent, refused or withdrawn at any time (location opt-out); nothing is stored while refused.',
    retention: 'As technical data, or until the owner opts out with eraseHistory=true or erases it.',
    recipients: 'The owner; third parties the owner grants location access to (every read disclosed to the owner). None while location is refused: nothing is stored.',
  },
};

export interface CatalogueField {
  name: string;
  category: DataCategory;
  unit: string;
  description: string;
  purpose: string;
  legalBasis: string;
  retention: string;
  /** The COVESA VSS 6.0 path (or the overlay's, proto/vss/cardata-overlay.vspec); null: none (record metadata). */
  vss: string | null;
  /** The VSS unit id of `vss` (values in `?names=vss` records are in it); null without `vss`. */
  vssUnit: string | null;
  /** The VSS datatype of `vss`; null without `vss`. */
  vssDatatype: string | null;
}

/** The VSS name, unit and datatype of a catalogue field (proto/vss.ts), nulls when it has none. */
function vssOf(name: string): Pick<CatalogueField, 'vss' | 'vssUnit' | 'vssDatatype'> {
  const v = VSS_NAMES[name];
  return { vss: v?.path ?? null, vssUnit: v?.unit ?? null, vssDatatype: v?.datatype ?? null };
}

/** "Odometer reading, kilometres." → { description: 'Odometer reading', unit: 'kilometres' }. */
function splitComment(c: string): { description: string; unit: string } {
  const text = c.replace(/\s+/g, ' ').trim().replace(/\.$/, '');
  const i = text.lastIndexOf(', ');
  if (i < 0) return { description: text, unit: '' };
  return { description: text.slice(0, i), unit: text.slice(i + 2) };
}

export const CATALOGUE: readonly CatalogueField[] = [
  { name: 'vin', category: 'technical', unit: 'ISO 3779 VIN', description: 'Vehicle identification number', ...pick('technical'), ...vssOf('vin') },
  { name: 'seq', category: 'technical', unit: 'count', description: 'Per-vehicle sequence number of the record', ...pick('technical'), ...vssOf('seq') },
  { name: 'recordedAt', category: 'technical', unit: 'ISO 8601 time (UTC)', description: 'When the vehicle measured the record', ...pick('technical'), ...vssOf('recordedAt') },
  { name: 'receivedAt', category: 'technical', unit: 'ISO 8601 time (UTC)', description: 'When the gateway stored the record (its storing transaction); null for records stored before it was kept', ...pick('technical'), ...vssOf('receivedAt') },
  ...FIELD_COLUMNS.map((f) => {
    const { description, unit } = splitComment(f.comment);
    const name = `${f.group}.${f.jsName}`;
    return { name, category: f.group, unit, description, ...pick(f.group), ...vssOf(name) };
  }),
  // Connectivity (README "Connectivity"): one row per connection, in the ZIP's connectivity.ndjson.
  { name: 'connectivity.connectedAt', category: 'connectivity', unit: 'ISO 8601 time (UTC)', description: 'When the connection opened (the first of the sessions a coalesced row holds)', ...pick('connectivity'), ...vssOf('connectivity.connectedAt') },
  { name: 'connectivity.disconnectedAt', category: 'connectivity', unit: 'ISO 8601 time (UTC)', description: 'When it ended; null while open', ...pick('connectivity'), ...vssOf('connectivity.disconnectedAt') },
  { name: 'connectivity.reason', category: 'connectivity', unit: 'clean | keepalive_timeout | taken_over | refused | connection_lost | closed_by_gateway | shutdown | instance_lost', description: 'Why it ended (of a coalesced row: the last session\'s reason)', ...pick('connectivity'), ...vssOf('connectivity.reason') },
  { name: 'connectivity.coalesced', category: 'connectivity', unit: 'count', description: 'Short sessions (under 10 s, each within 60 s of the previous) folded into this row: a flapping link costs one row', ...pick('connectivity'), ...vssOf('connectivity.coalesced') },
];

function pick(g: DataCategory): Pick<CatalogueField, 'purpose' | 'legalBasis' | 'retention'> {
  const p = PURPOSES[g];
  return { purpose: p.purpose, legalBasis: p.legalBasis, retention: p.retention };
}
