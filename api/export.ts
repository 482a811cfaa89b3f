// The streamed CarData export (NDJSON, CSV, ZIP), shared by the owner's route and the
// grant recipient's: what is read is decided before (windows and categories), this only
// shapes the bytes. Memory stays flat: every format streams from the database pages.
import { Readable, PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { stringify } from 'csv-stringify';
import yazl from 'yazl';
import { GROUPS, type Group } from '../proto/fields.ts';
import type { StoredRecord } from './ports.ts';
import { CATALOGUE } from './catalogue.ts';
import { csvStream } from './csv.ts';

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

export interface ExportRequest {
  vin: string;
  format: ExportFormat;
  groups: readonly Group[];
  /** File name without extension. */
  baseName: string;
  ndjson(): AsyncGenerator<string>;
  records(): AsyncGenerator<StoredRecord>;
  /** More files of the ZIP archive (name → content), after records and catalogue. */
  zipExtras?: () => Promise<[string, string][]>;
}

/** Sends the export in the asked format. */
export async function sendExport(reply: FastifyReply, x: ExportRequest): Promise<FastifyReply> {
  if (x.format === 'ndjson') {
    attachment(reply, `${x.baseName}.ndjson`, 'application/x-ndjson');
    return reply.send(ndjsonStream(x.ndjson()));
  }
  if (x.format === 'csv') {
    attachment(reply, `${x.baseName}.csv`, 'text/csv; charset=utf-8');
    return reply.send(csvStream(x.records(), x.groups));
  }
  const zip = new yazl.ZipFile();
  zip.addReadStream(Readable.from(x.ndjson(), { objectMode: false }), 'records.ndjson');
  zip.addReadStream(csvStream(x.records(), x.groups), 'records.csv');
  const fields = CATALOGUE.filter((f) => f.name.indexOf('.') < 0 || x.groups.includes(f.name.split('.')[0] as Group));
  zip.addBuffer(Buffer.from(JSON.stringify({ fields }, null, 2)), 'catalogue.json');
  for (const [name, content] of (await x.zipExtras?.()) ?? []) zip.addBuffer(Buffer.from(content), name);
  zip.end();
  attachment(reply, `${x.baseName}.zip`, 'application/zip');
  const out = new PassThrough();
  zip.outputStream.pipe(out);
  out.on('close', () => (zip.outputStream as Readable).destroy());
  return reply.send(out);
}
