// The contract's fields (and the stored columns named after them), derived from the .proto (reflection, loaded once): a field
// added to the proto needs only a migration adding its column, never a second list here.
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';

export type Group = 'technical' | 'consumption' | 'location';

export interface FieldColumn {
  /** Group of the TelemetryRecord the field belongs to. */
  group: Group;
  /** proto field name = column name (snake_case). */
  column: string;
  /** Field name in generated JS objects (lowerCamelCase, also the proto3 JSON name). */
  jsName: string;
  /** Field number in the proto message. */
  id: number;
  /** The field's comment in the .proto (unit and meaning). */
  comment: string;
}

export const PROTO_FILE = fileURLToPath(new URL('./vehicle/v1/telemetry.proto', import.meta.url));

const GROUP_TYPES: Record<Group, string> = {
  technical: 'vehicle.v1.TechnicalData',
  consumption: 'vehicle.v1.ConsumptionData',
  location: 'vehicle.v1.Location',
};

function load(): FieldColumn[] {
  const root = new protobuf.Root();
  root.loadSync(PROTO_FILE, { keepCase: true, alternateCommentMode: true });
  const out: FieldColumn[] = [];
  for (const group of Object.keys(GROUP_TYPES) as Group[]) {
    const type = root.lookupType(GROUP_TYPES[group]);
    for (const f of type.fieldsArray.slice().sort((a, b) => a.id - b.id)) {
      if (f.type !== 'double') throw new Error(`${type.name}.${f.name}: only double fields are stored as columns`);
      out.push({ group, column: f.name, jsName: protobuf.util.camelCase(f.name), id: f.id, comment: (f.comment ?? '').trim() });
    }
  }
  return out;
}

/** Every value column of `telemetry`, in a fixed order: technical, consumption, location. */
export const FIELD_COLUMNS: readonly FieldColumn[] = Object.freeze(load());
export const CONSUMPTION_COLUMNS: readonly FieldColumn[] = FIELD_COLUMNS.filter((c) => c.group === 'consumption');

/** The telemetry column that says whether a record carried the group (it may carry it with every field absent). */
export const GROUP_FLAG: Readonly<Record<Group, string>> = { technical: 'has_technical', consumption: 'has_consumption', location: 'has_location' };
