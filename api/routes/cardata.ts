// What customers, workshops and authorities read: CarData export, latest position,
// disclosures, the catalogue, workshop consumption, the authority OBFCM report.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenVerifier } from '../auth.ts';
import type { ConsentStore, GrantStore, OwnershipPeriod, Range, ReadStore, RightsStore, StoreFailures } from '../ports.ts';
import { CONSUMPTION_COLUMNS, type Group } from '../../proto/fields.ts';
import { parseCategories, parseExportCategories } from '../categories.ts';
import { connectivityNdjson, type ConnectivityExport } from './connectivity.ts';
import { CATALOGUE, PURPOSES } from '../catalogue.ts';
import { chooseGrant, recipientRead } from '../../access/grants.ts';
import { ALL_GROUPS, NamesParam, attachment, fieldsReadme, readVssFiles, rowsCsvStream, sendExport } from '../export.ts';
import type { RecordNames } from '../../proto/vss-records.ts';
import { caller, callerKey, ownerCaller, rolesHook } from '../auth.ts';
import { ApiError, refusalError } from '../errors.ts';
import { createExportSlots } from '../export-slots.ts';
import { VinParams } from './vehicles.ts';

export interface CardataDeps {
  /** Verifies bearer tokens (the gateway's own and every trusted OpenID Provider's). */
  tokens: TokenVerifier;
  consents: Pick<ConsentStore, 'timeline' | 'history'>;
  rights: Pick<RightsStore, 'currentOwner' | 'periodsOf'>;
  reads: ReadStore;
  /** Longest history a workshop gets in one answer, rows. */
  workshopMaxRows?: number;
  /** The workshop's grants (GET /v1/workshop/vehicles/{vin}/consumption needs one). */
  grants: Pick<GrantStore, 'listForRecipient'>;
  /** The authority's OBFCM report: window without a range, and the longest range, days. */
  obfcmReport: { defaultWindowDays: number; maxRangeDays: number };
  /** Tells the stores' misses apart from other failures. */
  failures: Pick<StoreFailures, 'isNotFound'>;
  /** Exports (CarData, OBFCM report) one caller may run at once; past it 429. Default 2. */
  exportsPerCaller?: number;
  /** The vehicle's connections, for the ZIP's connectivity.ndjson; absent: none in the ZIP. */
  connectivity?: ConnectivityExport;
}

export const isoTime = z
  .string()
  .max(40)
  .refine((s) => /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) && !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 date or date-time')
  .transform((s) => new Date(s));

export const RangeQuery = z.object({ from: isoTime.optional(), to: isoTime.optional() });

export function range(q: { from?: Date | undefined; to?: Date | undefined }): Range {
  if (q.from && q.to && q.from.getTime() >= q.to.getTime()) throw new ApiError(400, 'API_ERR_VALIDATION', 'querystring: "from" must be before "to"');
  return { from: q.from ?? null, to: q.to ?? null };
}

export const categoriesParam = z
  .string()
  .max(100)
  .transform((s, ctx) => {
    const r = parseCategories(s);
    if (r.ok) return r.groups;
    ctx.addIssue({ code: 'custom', message: r.message });
    return z.NEVER;
  });

/** The periods narrowed to the asked range (windows of data). */
function clipWindows(periods: readonly { from: Date; to: Date | null }[], r: Range): { from: Date; to: Date | null }[] {
  return periods.flatMap((p) => {
    const from = r.from && r.from > p.from ? r.from : p.from;
    let to = p.to;
    if (r.to && (to === null || r.to < to)) to = r.to;
    return to !== null && to <= from ? [] : [{ from, to }];
  });
}

/** `categories` of a CarData export: the telemetry groups, and `connectivity` (the ZIP's connectivity.ndjson). */
const exportCategoriesParam = z
  .string()
  .max(100)
  .transform((s, ctx) => {
    const r = parseExportCategories(s);
    if (r.ok) return r;
    ctx.addIssue({ code: 'custom', message: r.message });
    return z.NEVER;
  });

export const cardataRoutes: FastifyPluginAsync<CardataDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', rolesHook(deps.tokens));
  const workshopMax = deps.workshopMaxRows ?? 10_000;
  const exportSlots = createExportSlots(deps.exportsPerCaller ?? 2);
  const vssFiles = await readVssFiles();

  async function ownerPeriods(req: FastifyRequest, vin: string): Promise<{ subject: string; periods: OwnershipPeriod[] }> {
    const p = await ownerCaller(req, vin, deps.rights.currentOwner);
    return { subject: p.subject, periods: await deps.rights.periodsOf(vin, p.subject) };
  }

  app.get(
    '/v1/vehicles/:vin/cardata',
    {
      config: { roles: ['customer'] as const },
      schema: {
        params: VinParams,
        querystring: RangeQuery.extend({ format: z.enum(['ndjson', 'csv', 'zip']).default('ndjson'), categories: exportCategoriesParam.optional(), names: NamesParam }).strict(),
      },
    },
    async (req, reply) => {
      const { vin } = req.params;
      // Before any database work: the slot is held until the answer is closed.
      const c = caller(req);
      exportSlots.take(callerKey(c), reply);
      const { subject, periods } = await ownerPeriods(req, vin);
      const r = range(req.query);
      const groups = req.query.categories?.groups ?? ALL_GROUPS;
      // Connectivity travels in the ZIP only (connectivity.ndjson); NDJSON and CSV are records.
      const withConnectivity = (req.query.categories?.connectivity ?? true) && deps.connectivity !== undefined;
      if (req.query.categories?.connectivity && req.query.format !== 'zip') {
        throw new ApiError(400, 'API_ERR_VALIDATION', 'querystring.categories: connectivity is exported in the ZIP (format=zip, file connectivity.ndjson); NDJSON and CSV carry the records');
      }
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      req.log.info({ event: 'cardata_export', vin, format: req.query.format, categories: groups }, 'CarData export');
      return sendExport(reply, {
        vin,
        format: req.query.format,
        groups,
        baseName: `cardata-${vin}-${stamp}`,
        names: req.query.names,
        vss: vssFiles,
        ndjson: () => deps.reads.ndjson(vin, periods, r, groups),
        records: () => deps.reads.records(vin, periods, r, groups),
        // The full CarData archive (GDPR Art. 15(1)(a)-(h), Art. 20 portability).
        zipExtras: async () => {
          const history = (await deps.consents.history(vin)).filter((e) => e.ownerId === subject);
          const disc = await deps.reads.disclosures(vin, periods);
          return [
            ['consent-history.json', JSON.stringify({ vin, events: history.map((e) => ({ ...e, id: undefined, ownerId: undefined })) }, null, 2)],
            ['disclosures.json', JSON.stringify({ vin, disclosures: disc }, null, 2)],
            ...(withConnectivity ? [['connectivity.ndjson', connectivityNdjson(await deps.connectivity!.connections(vin, clipWindows(periods, r)))] as [string, string]] : []),
            ['README.md', archiveReadme(vin, subject, periods, r, groups, req.query.names)],
          ];
        },
      });
    },
  );

  app.get(
    '/v1/vehicles/:vin/location/latest',
    {
      config: { roles: ['customer'] as const },
      schema: {
        params: VinParams,
        response: {
          200: z.object({
            vin: z.string(),
            seq: z.number(),
            recordedAt: z.string(),
            location: z.object({ latitude: z.number().optional(), longitude: z.number().optional(), headingDeg: z.number().optional(), altitudeM: z.number().optional(), accuracyM: z.number().optional() }),
          }),
        },
      },
    },
    async (req, reply) => {
      const { vin } = req.params;
      const { periods } = await ownerPeriods(req, vin);
      const l = await deps.reads.latestLocation(vin, periods);
      if (!l) throw new ApiError(404, 'API_ERR_NOT_FOUND', 'no stored position for this vehicle (none received, or location processing refused)');
      void reply.header('cache-control', 'private, no-cache');
      return { vin, seq: l.seq, recordedAt: l.recordedAt.toISOString(), location: l.location };
    },
  );

  app.get(
    '/v1/vehicles/:vin/disclosures',
    {
      config: { roles: ['customer'] as const },
      schema: {
        params: VinParams,
        response: {
          200: z.object({
            vin: z.string(),
            disclosures: z.array(
              z.object({
                at: z.string(),
                role: z.string(),
                subject: z.string(),
                endpoint: z.string(),
                categories: z.array(z.string()),
                /** The fields a read through a field-level grant carried; null: whole categories. */
                fields: z.array(z.string()).nullable(),
                from: z.string().nullable(),
                to: z.string().nullable(),
                /** The grant the read went through; null for the authority's report. */
                grantId: z.string().nullable(),
              }),
            ),
          }),
        },
      },
    },
    async (req) => {
      const { vin } = req.params;
      const { periods } = await ownerPeriods(req, vin);
      const list = await deps.reads.disclosures(vin, periods);
      return {
        vin,
        disclosures: list.map((d) => ({
          at: d.at.toISOString(),
          role: d.role,
          subject: d.subject,
          endpoint: d.endpoint,
          categories: d.categories,
          fields: d.fields ?? null,
          from: d.rangeFrom?.toISOString() ?? null,
          to: d.rangeTo?.toISOString() ?? null,
          grantId: d.grantId ?? null,
        })),
      };
    },
  );

  const catalogueBody = JSON.stringify({ fields: CATALOGUE, purposes: PURPOSES });
  const catalogueEtag = `"${createHash('sha256').update(catalogueBody).digest('base64url').slice(0, 27)}"`;
  app.get('/v1/catalogue', {}, async (req, reply) => {
    void reply.header('etag', catalogueEtag).header('cache-control', 'public, max-age=3600');
    if (req.headers['if-none-match'] === catalogueEtag) return reply.status(304).send();
    return reply.type('application/json; charset=utf-8').send(catalogueBody);
  });

  const ConsumptionValues = z.object(Object.fromEntries(CONSUMPTION_COLUMNS.map((c) => [c.jsName, z.number().optional()])));
  app.get(
    '/v1/workshop/vehicles/:vin/consumption',
    {
      config: { roles: ['workshop'] as const },
      schema: {
        params: VinParams,
        querystring: RangeQuery.strict(),
        response: {
          200: z.object({
            vin: z.string(),
            latest: z.object({ recordedAt: z.string(), consumption: ConsumptionValues }).nullable(),
            history: z.array(z.object({ recordedAt: z.string(), consumption: ConsumptionValues })),
            truncated: z.boolean(),
          }),
        },
      },
    },
    async (req, reply) => {
      const p = caller(req);
      const { vin } = req.params;
      const r = range(req.query);
      // Need-to-know (Data Act Art. 5): only through an active grant of the owner to this
      // workshop covering consumption (made by the owner, or by redeeming the owner's
      // check-in code at a visit). No grant: 404, whether or not the vehicle exists.
      const now = new Date();
      const g = chooseGrant(p, await deps.grants.listForRecipient(p.subject, vin), now, 'consumption', 'history');
      const owner = g ? await deps.rights.currentOwner(vin) : null;
      const periods = g ? await deps.rights.periodsOf(vin, g.ownerId) : [];
      const restricted = g ? (await deps.consents.timeline(vin, now.getTime())).at(-1)!.restricted : false;
      const d = recipientRead(p, g && owner === g.ownerId ? g : null, { ownerPeriods: periods, restricted, now, mode: 'history', need: 'consumption', requested: r });
      if (!d.ok) throw refusalError(d.refusal, { mode: 'history', grantReads: false, notFound: () => new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${vin} not found`) });
      // The most recent window: a workshop wants the latest counters.
      const w = d.scope.windows.at(-1) ?? { from: r.from ?? now, to: r.from ?? now };
      let rows;
      try {
        rows = await deps.reads.consumptionForWorkshop(
          vin,
          w,
          { from: null, to: null },
          { vin, role: p.role, subject: p.subject, endpoint: 'GET /v1/workshop/vehicles/{vin}/consumption', categories: ['consumption'], fields: d.scope.fields, rangeFrom: r.from, rangeTo: r.to, ownerId: d.scope.ownerId, grantId: d.scope.grantId },
          workshopMax + 1,
          // A field-level grant's consumption fields only.
          d.scope.fields,
        );
      } catch (err) {
        // Revoked, ended or restricted between the decision and the read.
        if (deps.failures.isNotFound(err)) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${vin} not found`);
        throw err;
      }
      const truncated = rows.length > workshopMax;
      const hist = (truncated ? rows.slice(rows.length - workshopMax) : rows).map((x) => ({ recordedAt: x.recordedAt.toISOString(), consumption: x.consumption }));
      void reply.header('cache-control', 'no-store');
      return { vin, latest: hist[hist.length - 1] ?? null, history: hist, truncated };
    },
  );

  app.get('/v1/reports/obfcm', { config: { roles: ['authority'] as const }, schema: { querystring: RangeQuery.strict() } }, async (req, reply) => {
    const p = caller(req);
    exportSlots.take(callerKey(p), reply);
    const r = reportRange(req.query, deps.obfcmReport, new Date());
    req.log.info({ event: 'obfcm_report', from: r.from.toISOString(), to: r.to.toISOString() }, 'OBFCM report');
    attachment(reply, `obfcm-report-${new Date().toISOString().slice(0, 10)}.csv`, 'text/csv; charset=utf-8');
    // Streamed a page of VINs at a time; each page's disclosures are written by the statement that reads it.
    const rows = (async function* () {
      for await (const page of deps.reads.obfcmReportPages(r, { role: p.role, subject: p.subject, endpoint: 'GET /v1/reports/obfcm' })) yield* page;
    })();
    return reply.send(
      rowsCsvStream(rows, ['vin', 'recordedAt', ...CONSUMPTION_COLUMNS.map((c) => c.column)], (row) => [
        row.vin,
        row.recordedAt.toISOString(),
        ...CONSUMPTION_COLUMNS.map((c) => row.values[c.jsName] ?? ''),
      ]),
    );
  });
};

/**
 * The OBFCM report's range (README "Authority OBFCM report"): without `from`/`to`, the last
 * `defaultWindowDays` up to now; with only one of them, that many days from or up to it.
 * Longer than `maxRangeDays`: 400 API_ERR_RANGE_TOO_LONG.
 */
export function reportRange(q: { from?: Date | undefined; to?: Date | undefined }, o: { defaultWindowDays: number; maxRangeDays: number }, now: Date): { from: Date; to: Date } {
  const day = 86_400_000;
  const given = range(q);
  const to = given.to ?? (given.from ? new Date(Math.min(now.getTime(), given.from.getTime() + o.defaultWindowDays * day)) : now);
  const from = given.from ?? new Date(to.getTime() - o.defaultWindowDays * day);
  if (from.getTime() >= to.getTime()) throw new ApiError(400, 'API_ERR_VALIDATION', 'querystring: "from" must be before "to"');
  if (to.getTime() - from.getTime() > o.maxRangeDays * day) {
    throw new ApiError(400, 'API_ERR_RANGE_TOO_LONG', `querystring: the range may span at most ${o.maxRangeDays} days (OBFCM_REPORT_MAX_RANGE_DAYS); ask for several reports`);
  }
  return { from, to };
}

function archiveReadme(vin: string, subject: string, periods: readonly OwnershipPeriod[], r: Range, groups: readonly Group[], names: RecordNames): string {
  const lines = [
    `# CarData of vehicle ${vin}`,
    '',
    `Prepared on ${new Date().toISOString()} for owner \`${subject}\` (GDPR Art. 15 access, Art. 20 portability).`,
    '',
    '## Contents',
    '- `records.ndjson`: every stored record, one JSON object per line, in time order.',
    '- `records.csv`: the same records as CSV (RFC 4180), one column per field.',
    '- `catalogue.json`: every field included: unit, category, purpose, legal basis, retention, COVESA VSS name, unit and datatype.',
    '- `vss/cardata-overlay.vspec`, `vss/standard-paths.json`: the VSS overlay and the standard VSS signals the field names refer to.',
    '- `consent-history.json`: your consent and restriction choices for this vehicle, with their dates.',
    '- `disclosures.json`: every read of this vehicle\'s data by anyone but you (who, what, when).',
    '',
    '## Scope',
    `- Categories: ${groups.join(', ')}.`,
    `- Time range: ${r.from?.toISOString() ?? 'start of your ownership'} to ${r.to?.toISOString() ?? 'now'}, within your ownership periods:`,
    ...periods.map((p) => `  - ${p.from.toISOString()} to ${p.to?.toISOString() ?? 'now'}`),
    '',
    '## Purposes, legal bases, recipients, retention (Art. 15(1)(a)-(d))',
  ];
  for (const g of ALL_GROUPS) {
    const p = PURPOSES[g];
    lines.push('', `### ${g}`, `- Purpose: ${p.purpose}`, `- Legal basis: ${p.legalBasis}`, `- Recipients: ${p.recipients}`, `- Retention: ${p.retention}`);
  }
  lines.push(
    '',
    ...fieldsReadme(groups, names),
    '## Your rights (Art. 15(1)(e)-(h))',
    '- Rectification (Art. 16), erasure (Art. 17: `DELETE /v1/vehicles/{vin}/data`), restriction (Art. 18: `PUT /v1/vehicles/{vin}/restriction`), objection (Art. 21: the location and CO2-sharing opt-outs, `PUT /v1/vehicles/{vin}/consent`).',
    '- You may lodge a complaint with a supervisory authority (Art. 77).',
    '- Source: all data was sent by the vehicle itself (Art. 15(1)(g)).',
    '- No automated decision-making or profiling is based on this data (Art. 15(1)(h)).',
    '',
  );
  return lines.join('\n');
}
