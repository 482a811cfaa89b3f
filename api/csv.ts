// CarData as CSV (csv-stringify): the one CSV writer, used by the API's export and the CLI.
import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import { FIELD_COLUMNS, type Group } from '../proto/fields.ts';
import type { StoredRecord } from './ports.ts';

/** Header names of the CSV: proto3 JSON names, flattened as group.field. */
function csvColumns(groups: readonly Group[]): string[] {
  return ['vin', 'seq', 'recordedAt', ...FIELD_COLUMNS.filter((c) => groups.includes(c.group)).map((c) => `${c.group}.${c.jsName}`)];
}

function csvRow(r: StoredRecord, groups: readonly Group[]): (string | number)[] {
  const row: (string | number)[] = [r.vin, r.seq, r.recordedAt.toISOString()];
  for (const c of FIELD_COLUMNS) {
    if (!groups.includes(c.group)) continue;
    const v = r[c.group]?.[c.jsName];
    row.push(v === undefined ? '' : v);
  }
  return row;
}

export function csvStream(records: AsyncGenerator<StoredRecord>, groups: readonly Group[]): Readable {
  const out = stringify({ header: true, columns: csvColumns(groups), quoted_match: /[",\r\n]/ });
  const src = Readable.from(
    (async function* () {
      for await (const r of records) yield csvRow(r, groups);
    })(),
    { objectMode: true },
  );
  src.pipe(out);
  out.on('close', () => src.destroy());
  src.on('error', (e) => out.destroy(e));
  return out;
}
