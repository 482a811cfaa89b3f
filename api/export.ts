// The streamed CarData export (NDJSON, CSV, ZIP), shared by the owner's route and the
// grant recipient's: what is read is decided before (windows and categories), this only
// shapes the bytes. Memory stays flat: every format streams from the database pages.
import { Readable, PassThrough } from 'node:stream';
import { readFile } from 'node:fs/promises';
import type { FastifyReply } from 'fastify';
import { stringify } from 'csv-stringify';
import yazl from 'yazl';
import { z } from 'zod';
import { GROUPS, type FieldList, type Group } from '../proto/fields.ts';
import type { StoredRecord } from './ports.ts';
import { CATALOGUE } from './catalogue.ts';
import { csvStream } from './csv.ts';
import { VSS_NAMES, VSS_OVERLAY_FILE, VSS_RELEASE, VSS_STANDARD_FILE } from '../proto/vss.ts';
import { RECORD_NAMES, vssLine, type RecordNames } from '../proto/vss-records.ts';

export const ALL_GROUPS: Group[] = [...GROUPS];
export type ExportFormat = 'ndjson' | 'csv' | 'zip';

/** The NDJSON lines as the response body; stops reading the database when the consumer goes away. */
export function ndjsonStream(pages: AsyncGenerator<string>): Readable {
  // With the stream's encoding matching push()'s default, the strings pass through as
  // strings (storage/repos/reads.ts CHUNK_BYTES says why); the lines are ASCII.
  return Readable.from(pages, { objectMode: false, encoding: 'utf8' });
}

/** Rows as RFC 4180 CSV with a header; the source stops when the consumer goes away. */
export function rowsCsvStream<T>(rows: AsyncIterable<T>, columns: string[], toRow: (r: T) => (string | number)[]): Readable {
  const out = stringify({ header: true, columns, quoted_match: /[",\r\n]/ });
  const src = Readable.from(
    (async function* () {
      for await (const r of rows) yield toRow(r);
    })(),
    { objectMode: true },
  );
  src.pipe(out);
  out.on('close', () => src.destroy());
  src.on('error', (e) => out.destroy(e));
  return out;
}

export function attachment(reply: FastifyReply, name: string, type: string): void {
  void reply.header('content-type', type).header('content-disposition', `attachment; filename="${name}"`).header('cache-control', 'no-store');
}

/**
 * What describes an export (Data Act Art. 4(1): "together with the relevant metadata that is
 * necessary to interpret and use those data"): the catalogue and the data description,
 * linked from every NDJSON, CSV and ZIP answer and from the live streams (RFC 8288).
 */
export const DESCRIBED_BY = '</v1/catalogue>; rel="describedby"; type="application/json", </v1/data-description>; rel="describedby"; type="application/json"';

/** `?names=`: the records' keys, the catalogue's names (default) or VSS paths in VSS units; anything else 400 API_ERR_UNKNOWN_NAMES. */
export const NamesParam = z.enum(RECORD_NAMES).default('catalogue').describe("Keys of the records: catalogue (the catalogue's names, default) or vss (COVESA VSS 6.0 paths, values in VSS units)");

/** The VSS overlay and the pinned standard paths, as shipped (the ZIP carries them). */
export interface VssFiles {
  overlay: string;
  standardPaths: string;
}

/** Reads the VSS files of the repository (once per plugin registration, never at import). */
export async function readVssFiles(): Promise<VssFiles> {
  const root = new URL('../', import.meta.url);
  const [overlay, standardPaths] = await Promise.all([readFile(new URL(VSS_OVERLAY_FILE, root), 'utf8'), readFile(new URL(VSS_STANDARD_FILE, root), 'utf8')]);
  return { overlay, standardPaths };
}

/**
 * NDJSON chunks (whole lines, or lines split across chunks) keyed by VSS path
 * (proto/vss-records.ts); stops its source when the consumer stops.
 */
export async function* vssNdjson(chunks: AsyncIterable<string>): AsyncGenerator<string> {
  let rest = '';
  for await (const c of chunks) {
    const text = rest + c;
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      rest = text;
      continue;
    }
    rest = text.slice(end + 1);
    let out = '';
    for (const line of text.slice(0, end).split('\n')) if (line !== '') out += `${vssLine(line)}\n`;
    if (out !== '') yield out;
  }
  if (rest !== '') yield `${vssLine(rest)}\n`;
}

/**
 * The README lines that describe the fields of an export: unit, VSS path, VSS unit, and how
 * `?names=vss` records differ (both archives' README.md carry them).
 */
export function fieldsReadme(groups: readonly Group[], names: RecordNames, only: FieldList = null): string[] {
  const lines = [
    '## Fields and their COVESA VSS names',
    '',
    `Every field has the name of the COVESA Vehicle Signal Specification (VSS ${VSS_RELEASE}) signal it is, or of the gateway's overlay`,
    '(`vss/cardata-overlay.vspec`, branch `Vehicle.OBFCM`: the lifetime OBFCM counters of (EU) 2017/1151 Annex XXII, which VSS has no signal for);',
    '`vss/standard-paths.json` lists the standard signals used, with their VSS units. `catalogue.json` has the same per field.',
    names === 'vss'
      ? 'The records of this archive are keyed by VSS path, values in the VSS unit (kilometres → metres; integer datatypes rounded).'
      : 'The records of this archive use the catalogue names; ask with `names=vss` for records keyed by VSS path in VSS units.',
    '',
    '| field | unit | VSS path | VSS unit | VSS datatype |',
    '|---|---|---|---|---|',
  ];
  for (const f of CATALOGUE) {
    if (f.name.indexOf('.') >= 0 && (!groups.includes(f.name.split('.')[0] as Group) || (only !== null && !only.includes(f.name)))) continue;
    const v = VSS_NAMES[f.name];
    lines.push(`| \`${f.name}\` | ${f.unit} | ${v ? `\`${v.path}\`` : '-'} | ${v?.unit ?? '-'} | ${v?.datatype ?? '-'} |`);
  }
  lines.push('');
  return lines;
}

export interface ExportRequest {
  vin: string;
  format: ExportFormat;
  groups: readonly Group[];
  /** Only these fields of the groups (a field-level grant's, catalogue names); absent or null: every field. */
  fields?: FieldList;
  /** File name without extension. */
  baseName: string;
  /** Keys of the records: the catalogue's names (default) or VSS paths in VSS units (`?names=vss`). */
  names?: RecordNames;
  /** The VSS overlay and standard paths the ZIP carries (readVssFiles). */
  vss: VssFiles;
  ndjson(): AsyncGenerator<string>;
  records(): AsyncGenerator<StoredRecord>;
  /** More files of the ZIP archive (name → content), after records and catalogue. */
  zipExtras?: () => Promise<[string, string][]>;
}

/** Sends the export in the asked format. */
export async function sendExport(reply: FastifyReply, x: ExportRequest): Promise<FastifyReply> {
  const names = x.names ?? 'catalogue';
  const lines = (): AsyncGenerator<string> => (names === 'vss' ? vssNdjson(x.ndjson()) : x.ndjson());
  void reply.header('link', DESCRIBED_BY);
  if (x.format === 'ndjson') {
    attachment(reply, `${x.baseName}.ndjson`, 'application/x-ndjson');
    return reply.send(ndjsonStream(lines()));
  }
  if (x.format === 'csv') {
    attachment(reply, `${x.baseName}.csv`, 'text/csv; charset=utf-8');
    return reply.send(csvStream(x.records(), x.groups, x.fields ?? null, names));
  }
  const zip = new yazl.ZipFile();
  zip.addReadStream(Readable.from(lines(), { objectMode: false }), 'records.ndjson');
  zip.addReadStream(csvStream(x.records(), x.groups, x.fields ?? null, names), 'records.csv');
  const only = x.fields ?? null;
  const fields = CATALOGUE.filter((f) => f.name.indexOf('.') < 0 || (x.groups.includes(f.name.split('.')[0] as Group) && (only === null || only.includes(f.name))));
  const vss = { release: `COVESA VSS ${VSS_RELEASE}`, overlay: 'vss/cardata-overlay.vspec', standardPaths: 'vss/standard-paths.json', recordsKeyedBy: names };
  zip.addBuffer(Buffer.from(JSON.stringify({ fields, vss }, null, 2)), 'catalogue.json');
  zip.addBuffer(Buffer.from(x.vss.overlay), 'vss/cardata-overlay.vspec');
  zip.addBuffer(Buffer.from(x.vss.standardPaths), 'vss/standard-paths.json');
  for (const [name, content] of (await x.zipExtras?.()) ?? []) zip.addBuffer(Buffer.from(content), name);
  zip.end();
  attachment(reply, `${x.baseName}.zip`, 'application/zip');
  const out = new PassThrough();
  zip.outputStream.pipe(out);
  out.on('close', () => (zip.outputStream as Readable).destroy());
  return reply.send(out);
}
