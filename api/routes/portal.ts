// What the portal needs beyond the export: the caller's vehicles, the latest stored
// record, and time-bucketed summaries for charts (a year in a few hundred rows, computed
// by the database's time functions). Owner only, like the export they summarise.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { FIELD_COLUMNS, GROUPS } from '../../proto/fields.ts';
import type { RightsStore, SeriesStore } from '../ports.ts';
import { caller, ownerCaller, rolesHook, type TokenVerifier } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { VinParams } from './vehicles.ts';
import { categoriesParam, isoTime } from './cardata.ts';

export interface PortalRouteDeps {
  /** Verifies bearer tokens (the gateway's own and every trusted OpenID Provider's). */
  tokens: TokenVerifier;
  rights: Pick<RightsStore, 'currentOwner' | 'periodsOf'>;
  series: SeriesStore;
  /** Most buckets one series answer may hold. Default 5000. */
  maxBuckets?: number;
}

const CUSTOMER = { roles: ['customer'] as const };
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** The bucket widths chosen when the caller names none: the smallest giving ≤ 500 buckets. */
const NICE = ['1m', '5m', '15m', '1h', '3h', '6h', '12h', '1d', '7d'];
const DEFAULT_SPAN_MS = 7 * 86_400_000;

const bucketParam = z
  .string()
  .max(8)
  .regex(/^[1-9]\d{0,4}[smhd]$/, 'must be a whole number and a unit: s, m, h or d (e.g. 30s, 5m, 1h, 1d)');

const FIELD_NAMES = new Set(FIELD_COLUMNS.map((c) => `${c.group}.${c.jsName}`));
/** `fields=technical.speedKmh,location.latitude`: only these (the catalogue's names). */
const fieldsParam = z
  .string()
  .max(2000)
  .transform((s, ctx) => {
    const list = [...new Set(s.split(',').map((x) => x.trim()).filter(Boolean))];
    const unknown = list.filter((f) => !FIELD_NAMES.has(f));
    if (list.length === 0 || unknown.length > 0) {
      ctx.addIssue({ code: 'custom', message: list.length === 0 ? 'name at least one field' : `unknown field: ${unknown.slice(0, 3).join(', ')} (the catalogue's names, e.g. technical.speedKmh)` });
      return z.NEVER;
    }
    return list;
  });

const bucketMs = (b: string): number => Number(b.slice(0, -1)) * UNIT_MS[b.slice(-1) as keyof typeof UNIT_MS];

const Values = z.record(z.string(), z.number()).nullable();
const RecordOut = z.object({
  vin: z.string(),
  seq: z.number(),
  recordedAt: z.string(),
  /** When the gateway stored it (README "Freshness"); null for rows stored before it was kept. */
  receivedAt: z.string().nullable().optional(),
  technical: Values.optional(),
  consumption: Values.optional(),
  location: Values.optional(),
});
const Column = z.array(z.number().nullable());

export const portalRoutes: FastifyPluginAsync<PortalRouteDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', rolesHook(deps.tokens));
  const maxBuckets = deps.maxBuckets ?? 5000;

  app.get(
    '/v1/vehicles',
    {
      config: CUSTOMER,
      schema: { response: { 200: z.object({ vehicles: z.array(z.object({ vin: z.string(), since: z.string() })) }) } },
    },
    async (req, reply) => {
      const p = caller(req);
      void reply.header('cache-control', 'private, no-cache');
      return { vehicles: (await deps.series.ownedBy(p.subject)).map((v) => ({ vin: v.vin, since: v.since.toISOString() })) };
    },
  );

  app.get(
    '/v1/vehicles/:vin/latest',
    {
      config: CUSTOMER,
      schema: {
        params: VinParams,
        querystring: z.object({ categories: categoriesParam.optional() }).strict(),
        response: {
          200: z.object({
            vin: z.string(),
            record: RecordOut.nullable(),
            /** Per field (catalogue name): its newest value among the newest 1,000 records, when measured and stored, and its age (ms) at this answer. */
            fields: z.record(z.string(), z.object({ value: z.number(), recordedAt: z.string(), receivedAt: z.string().nullable(), ageMs: z.number() })),
          }),
        },
      },
    },
    async (req, reply) => {
      const { vin } = req.params;
      const p = await ownerCaller(req, vin, deps.rights.currentOwner);
      const periods = await deps.rights.periodsOf(vin, p.subject);
      const categories = req.query.categories ?? GROUPS;
      const [rec, fresh] = await Promise.all([deps.series.latest(vin, periods, categories), deps.series.freshness(vin, periods, categories)]);
      const now = Date.now();
      const fields = Object.fromEntries(
        fresh.map((f) => [f.field, { value: f.value, recordedAt: f.recordedAt.toISOString(), receivedAt: f.receivedAt?.toISOString() ?? null, ageMs: Math.max(0, now - f.recordedAt.getTime()) }]),
      );
      void reply.header('cache-control', 'private, no-cache');
      return { vin, record: rec ? { ...rec, recordedAt: rec.recordedAt.toISOString(), receivedAt: rec.receivedAt?.toISOString() ?? null } : null, fields };
    },
  );

  app.get(
    '/v1/vehicles/:vin/series',
    {
      config: CUSTOMER,
      // The answer is built here from numbers and nulls only; checking its tens of thousands
      // of values against the schema on every call cost 5-25 ms of the event loop, on the
      // path of the portal's first render. The schema still documents it (OpenAPI).
      serializerCompiler: () => (data) => JSON.stringify(data),
      schema: {
        params: VinParams,
        querystring: z
          .object({ from: isoTime.optional(), to: isoTime.optional(), bucket: bucketParam.optional(), categories: categoriesParam.optional(), fields: fieldsParam.optional() })
          .strict(),
        response: {
          200: z.object({
            vin: z.string(),
            from: z.string(),
            to: z.string(),
            bucket: z.string(),
            bucketSeconds: z.number(),
            t: z.array(z.number()),
            count: z.array(z.number()),
            fields: z.record(z.string(), z.object({ avg: Column, min: Column, max: Column })),
          }),
        },
      },
    },
    async (req, reply) => {
      const { vin } = req.params;
      const q = req.query;
      const to = q.to ?? new Date();
      const from = q.from ?? new Date(to.getTime() - DEFAULT_SPAN_MS);
      if (from.getTime() >= to.getTime()) throw new ApiError(400, 'API_ERR_VALIDATION', 'querystring: "from" must be before "to"');
      const span = to.getTime() - from.getTime();
      const bucket = q.bucket ?? NICE.find((b) => span / bucketMs(b) <= 500) ?? NICE[NICE.length - 1]!;
      const ms = bucketMs(bucket);
      if (Math.ceil(span / ms) > maxBuckets) {
        throw new ApiError(400, 'API_ERR_VALIDATION', `querystring.bucket: ${bucket} over this range makes more than ${maxBuckets} buckets; choose a wider bucket or a shorter range`);
      }
      // Ownership after validation: a bad query gets its 400 before any look-up.
      const p = await ownerCaller(req, vin, deps.rights.currentOwner);
      const periods = await deps.rights.periodsOf(vin, p.subject);
      // Named fields bring their categories; otherwise technical and consumption (location only when asked for).
      const categories = q.categories ?? (q.fields ? GROUPS : ['technical', 'consumption']);
      const s = await deps.series.series(vin, periods, { from, to }, ms, categories, q.fields);
      void reply.header('cache-control', 'private, no-cache');
      return { vin, from: from.toISOString(), to: to.toISOString(), bucket, bucketSeconds: ms / 1000, ...s };
    },
  );
};
