// CarData as CSV (csv-stringify): the one CSV writer, used by the API's export and the CLI.
import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import { fieldName, projectColumns, type FieldColumn, type FieldList, type Group } from '../proto/fields.ts';
import type { StoredRecord } from './ports.ts';
import { vssCsvHeader, vssCsvRow, type RecordNames } from '../proto/vss-records.ts';

/** Header names of the CSV: proto3 JSON names, flattened as group.field (a field-level grant's fields only). */
function csvColumns(groups: readonly Group[], fields: FieldList): string[] {
  return ['vin', 'seq', 'recordedAt', 'receivedAt', ...projectColumns(groups, fields).map(fieldName)];
}

/** `cols`: the projected columns (projectColumns), computed once per export. */
function csvRow(r: StoredRecord, cols: readonly FieldColumn[]): (string | number)[] {
  const row: (string | number)[] = [r.vin, r.seq, r.recordedAt.toISOString(), r.receivedAt ? r.receivedAt.toISOString() : ''];
  for (const c of cols) {
    const v = r[c.group]?.[c.jsName];
    row.push(v === undefined ? '' : v);
  }
  return row;
}

/** `fields`: only these of the groups (a field-level grant's); null or absent: every field. */
/** `names`: `vss` keys the columns by VSS path with values in VSS units (proto/vss-records.ts). */
export function csvStream(records: AsyncGenerator<StoredRecord>, groups: readonly Group[], fields: FieldList = null, names: RecordNames = 'catalogue'): Readable {
  const cols = projectColumns(groups, fields);
  const header = csvColumns(groups, fields);
  const vss = names === 'vss';
  const out = stringify({ header: true, columns: vss ? vssCsvHeader(header) : header, quoted_match: /[",\r\n]/ });
  const src = Readable.from(
    (async function* () {
      for await (const r of records) yield vss ? vssCsvRow(header, csvRow(r, cols)) : csvRow(r, cols);
    })(),
    { objectMode: true },
  );
  src.pipe(out);
  out.on('close', () => src.destroy());
  src.on('error', (e) => out.destroy(e));
  return out;
}
