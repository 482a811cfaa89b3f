// The shape of one row of the generated field table (proto/gen/fields.ts).

export type Group = 'technical' | 'consumption' | 'location';

export interface FieldColumnRow {
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
