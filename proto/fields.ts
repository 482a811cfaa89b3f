// The contract's fields (and the stored columns named after them), from the table that
// scripts/gen-proto.sh generates out of the .proto (proto/gen/fields.ts): a field added to
// the proto needs only `npm run proto:gen` and a migration adding its column.
import { FIELDS } from './gen/fields.ts';
import type { FieldColumnRow, Group } from './field-column.ts';

export type { Group };
export type FieldColumn = FieldColumnRow;

/** The record's data categories, in the contract's order (a tuple, so that `z.enum(GROUPS)` works). */
export const GROUPS = ['technical', 'consumption', 'location'] as const satisfies readonly Group[];

/** Every value column of `telemetry`, in a fixed order: technical, consumption, location. */
export const FIELD_COLUMNS: readonly FieldColumn[] = FIELDS;
export const CONSUMPTION_COLUMNS: readonly FieldColumn[] = FIELD_COLUMNS.filter((c) => c.group === 'consumption');

/** The telemetry column that says whether a record carried the group (it may carry it with every field absent). */
export const GROUP_FLAG: Readonly<Record<Group, string>> = { technical: 'has_technical', consumption: 'has_consumption', location: 'has_location' };

/** Field values of one group as they go to storage, by proto3 JSON name (null/absent: not sent). */
export type GroupValues = { readonly [field: string]: number | null | undefined };

/** Field values of one group as read back, by proto3 JSON name: only the fields stored. */
export type StoredValues = Record<string, number>;

/** A field's catalogue name, `group.jsName` (GET /v1/catalogue, the CSV header, a grant's `fields`). */
export function fieldName(c: FieldColumn): string {
  return `${c.group}.${c.jsName}`;
}

/**
 * Which fields of its categories a read carries: catalogue names (`technical.speedKmh`);
 * null: every field of them. A field-level grant's `fields` (access/grants.ts decides them).
 */
export type FieldList = readonly string[] | null;

/**
 * The value columns a read of `categories` carries, narrowed to `fields` when given, in the
 * table's order: the one list every SQL select and line builder of a projected read takes
 * its columns from, so that a field left out is never read, let alone written.
 */
export function projectColumns(categories: readonly Group[], fields?: FieldList): FieldColumn[] {
  return FIELD_COLUMNS.filter((c) => categories.includes(c.group) && (fields === null || fields === undefined || fields.includes(fieldName(c))));
}
